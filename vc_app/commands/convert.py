"""`vc-app convert`: one source clip in the voice of one or more target clips."""

from __future__ import annotations

import argparse

from vc_app.vocoders import DEFAULT_VOCODER


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, --vocoder, --device: shared by every command that converts."""
    parser.add_argument("--checkpoint", metavar="DIR_OR_HUB_ID",
                        help="bundle folder, .pt file or hub repo id (default: the shipped checkpoint)")
    parser.add_argument("--vocoder", default=DEFAULT_VOCODER, metavar="SPEC",
                        help=f"vocoder spec: griffinlim[:N], hifigan[:HUB_ID_OR_FOLDER], bigvgan[:HUB_ID_OR_FOLDER] "
                             f"(default: {DEFAULT_VOCODER})")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the model runs (default: auto)")


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert one clip", description=__doc__)
    p.add_argument("--source", required=True, metavar="FILE", help="clip whose words are kept")
    p.add_argument("--target", required=True, action="append", metavar="FILE",
                   help="clip of the voice to use; repeat for several clips of the same speaker")
    p.add_argument("--output", required=True, metavar="FILE", help="where to write the result (.wav/.flac/.ogg)")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vc_app.paths import check_output_path

    # a bad --output is refused before PyTorch is even imported
    check_output_path(args.output, inputs=[args.source, *args.target], overwrite=args.overwrite, try_write=True)
    from vc_app.audio import audio_info
    from vc_app.convert import VoiceConverter

    for path in [args.source, *args.target]:
        audio_info(path)  # fail fast on a missing or unreadable file, before the model loads
    converter = VoiceConverter.from_specs(args.checkpoint, args.vocoder, device=args.device)
    out = converter.convert_file(args.source, args.target, args.output, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
