"""`vc-app download`: fetch a hub vocoder (and/or a model bundle) now, so later runs work offline.

Files go to the Hugging Face cache ($HF_HUB_CACHE); with HF_HUB_OFFLINE=1
later runs read them from there without touching the network. Each download
is checked by loading it once.
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("download", help="fetch a vocoder or checkpoint for offline use", description=__doc__)
    p.add_argument("--vocoder", action="append", default=[], metavar="SPEC",
                   help="vocoder spec, e.g. hifigan:speechbrain-libritts, bigvgan:v2-22khz, "
                        "bigvgan:nvidia/bigvgan_base_22khz_80band (repeatable)")
    p.add_argument("--checkpoint", action="append", default=[], metavar="HUB_ID",
                   help="a model bundle on the hub, org/name (repeatable)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="only download; do not load each vocoder to check it fits our mel recipe")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vc_app.errors import VcAppError

    if not args.vocoder and not args.checkpoint:
        raise VcAppError("Name what to download: --vocoder SPEC and/or --checkpoint HUB_ID.")
    from vc_app.config import MelConfig
    from vc_app.vocoders import download_vocoder, load_vocoder

    for spec in args.vocoder:
        paths = download_vocoder(spec)
        if args.check:
            load_vocoder(spec, MelConfig())
        if paths:
            print(f"{spec}: ready offline ({', '.join(str(p) for p in paths)})")
        else:
            print(f"{spec}: nothing to download (no weights, or a local folder)")
    for hub_id in args.checkpoint:
        from vc_app.bundle import load_bundle

        bundle = load_bundle(hub_id)
        print(f"{hub_id}: ready offline ({bundle.architecture})")
    return 0
