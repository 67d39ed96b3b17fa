"""`vc-app convert`: one source clip in the voice of one or more target clips."""

from __future__ import annotations

import argparse

from vc_app.commands.voice import add_target_options
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
    add_target_options(p)
    p.add_argument("--output", required=True, metavar="FILE", help="where to write the result (.wav/.flac/.ogg)")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from vc_app.commands.voice import parse_mix_options, target_files
    from vc_app.paths import check_output_path
    from vc_app.voice import check_target_file

    parts = parse_mix_options(args)
    # a bad --output is refused before PyTorch is even imported
    check_output_path(args.output, inputs=[args.source, *target_files(args, parts)], overwrite=args.overwrite,
                      try_write=True)
    from vc_app.audio import audio_info
    from vc_app.convert import VoiceConverter

    audio_info(args.source)  # fail fast on a missing or unreadable file, before the model loads
    for path in target_files(args, parts):
        check_target_file(path)
    converter = VoiceConverter.from_specs(args.checkpoint, args.vocoder, device=args.device)
    targets = [converter.blend([(p.targets, p.weight) for p in parts])] if parts else args.target
    out = converter.convert_file(args.source, targets, args.output, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0
