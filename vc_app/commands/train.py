"""`vc-app train`: train AdaIN-VC on cached features (one process; torchrun runs `python -m vc_app.train`)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model on cached features", description=__doc__)
    p.add_argument("--config", metavar="YAML", help="training config (e.g. recipes/vctk/conf/adain.yaml)")
    p.add_argument("--out", required=True, metavar="DIR", help="experiment folder (checkpoints, logs)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in DIR")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set run.max_steps=2000 (repeatable)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vc_app.train.config import load_config
    from vc_app.train.engine import train

    cfg = load_config(args.config, args.overrides)
    result = train(cfg, args.out, resume=args.resume)
    if result.checkpoint is not None:
        print(f"last checkpoint: {result.checkpoint}")
    return 0
