"""Recipe stages as library calls, shared by recipes/vctk/run.sh and recipes/folder/run.sh.

    python -m vc_app.recipe manifests --corpus-type folder|vctk --root DIR --out data/ [--unseen a,b] ...
    python -m vc_app.recipe features --manifests data/ --out feats/ [--workers N]
    python -m vc_app.recipe export --checkpoint exp/checkpoints/step-N --out checkpoints/NAME [--half]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from vc_app.errors import VcAppError

SPLITS = ("train", "valid", "unseen")


def stage_manifests(args: argparse.Namespace) -> None:
    from vc_app.corpus import read_speaker_info, scan_folder, scan_vctk, split_corpus, write_manifest

    utts = scan_vctk(args.root, mic=args.mic) if args.corpus_type == "vctk" else scan_folder(args.root)
    unseen = [s for s in args.unseen.split(",") if s] if args.unseen else None
    split = split_corpus(utts, n_unseen=args.n_unseen, unseen=unseen, valid_fraction=args.valid_fraction,
                         seed=args.seed)
    out = Path(args.out)
    for name in SPLITS:
        write_manifest(out / f"{name}.csv", getattr(split, name))
    info = read_speaker_info(args.root) if args.corpus_type == "vctk" else {}
    held = sorted({u.speaker for u in split.unseen})
    genders = ", ".join(f"{s} ({info[s]['gender']})" if s in info else s for s in held)
    print(f"{len(split.train)} train, {len(split.valid)} valid, {len(split.unseen)} unseen utterances; "
          f"unseen speakers: {genders}")


def stage_features(args: argparse.Namespace) -> None:
    from vc_app.config import MelConfig
    from vc_app.corpus import read_manifest
    from vc_app.features import extract_features, pack_features

    mel = MelConfig()
    manifests = Path(args.manifests)
    for name in SPLITS:
        manifest = manifests / f"{name}.csv"
        if not manifest.is_file():
            continue
        utts = read_manifest(manifest)
        cache = Path(args.out) / name
        failures = extract_features(utts, Path(args.out) / "all", mel, workers=args.workers)
        for utt_id, reason in failures.items():
            print(f"skipped {utt_id}: {reason}", file=sys.stderr)
        cache.mkdir(parents=True, exist_ok=True)
        _link_utts(Path(args.out) / "all" / "utts", cache / "utts")
        pack_features(utts, cache, mel)
        print(f"{name}: packed {cache}")


def _link_utts(shared: Path, own: Path) -> None:
    """Each split's cache reads the shared per-utterance folder (one extraction for all splits)."""
    if own.is_symlink() or own.exists():
        return
    own.symlink_to(shared.resolve(), target_is_directory=True)


def stage_export(args: argparse.Namespace) -> None:
    from vc_app.bundle import CARD, load_bundle, save_bundle

    source = Path(args.checkpoint)
    bundle = load_bundle(source)
    out = Path(args.out)
    card = Path(args.card).read_text() if args.card else None
    save_bundle(bundle.model, bundle.mel, out, training=bundle.config.get("training"), card=card, half=args.half)
    if card is None and (source / CARD).is_file() and not (out / CARD).exists():
        shutil.copy(source / CARD, out / CARD)
    print(f"exported {out}")
    if args.push_to_hub:
        from huggingface_hub import HfApi

        HfApi().upload_folder(folder_path=str(out), repo_id=args.push_to_hub, repo_type="model")
        print(f"pushed to https://huggingface.co/{args.push_to_hub}")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vc_app.recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="stage", required=True)
    m = sub.add_parser("manifests", help="scan a corpus and split it")
    m.add_argument("--corpus-type", choices=("folder", "vctk"), default="folder")
    m.add_argument("--root", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--mic", type=int, default=1, help="VCTK 0.92 microphone (1 or 2)")
    m.add_argument("--unseen", default="", help="comma-separated speakers to hold out (overrides --n-unseen)")
    m.add_argument("--n-unseen", type=int, default=20)
    m.add_argument("--valid-fraction", type=float, default=0.05)
    m.add_argument("--seed", type=int, default=0)
    m.set_defaults(func=stage_manifests)
    f = sub.add_parser("features", help="extract and pack mels for every split")
    f.add_argument("--manifests", required=True)
    f.add_argument("--out", required=True)
    f.add_argument("--workers", type=int, default=2)
    f.set_defaults(func=stage_features)
    e = sub.add_parser("export", help="write a checkpoint as an inference bundle")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--out", required=True)
    e.add_argument("--card", help="Markdown model card to include")
    e.add_argument("--half", action="store_true", help="store float16 weights")
    e.add_argument("--push-to-hub", metavar="REPO", help="upload the bundle to this hub repo")
    e.set_defaults(func=stage_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = get_parser().parse_args(argv)
    try:
        args.func(args)
    except VcAppError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
