"""Regenerate the example clips: `python -m vc_app.examples.make_examples [--out DIR]`.

Needs the Debian/Ubuntu packages espeak-ng and flite. Each clip is spoken, mixed to mono,
resampled to 22 050 Hz, trimmed of leading/trailing silence (with 0.1 s kept either side),
peak-normalised to 0.9 and written as 16-bit FLAC.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from vc_app.audio import load_audio, peak_normalize, trim_silence, write_audio
from vc_app.errors import VcAppError, add_debug_option, run_entry_point
from vc_app.examples import CLIPS, EXAMPLES_DIR, Clip

SAMPLE_RATE = 22050
PAD_SECONDS = 0.1


def speak(clip: Clip, wav_path: Path) -> None:
    """Run the clip's TTS voice into `wav_path` (a WAV at the engine's own rate)."""
    engine, _, voice = clip.voice.partition(":")
    if engine == "flite":
        command = ["flite", "-voice", voice, "-t", clip.text, "-o", str(wav_path)]
    elif engine == "espeak":
        command = ["espeak-ng", "-v", voice, "-w", str(wav_path), clip.text]
    else:
        raise VcAppError(f"Unknown TTS engine {engine!r} for {clip.name}.")
    if shutil.which(command[0]) is None:
        raise VcAppError(f"{command[0]} is not installed; install it (apt-get install {command[0]}) to make "
                         f"the example clips.")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise VcAppError(f"{command[0]} failed for {clip.name}: {done.stderr.strip()[:200]}")


def make_clip(clip: Clip, out_dir: Path) -> Path:
    """Speak one clip and write it, processed as the module docstring says, into `out_dir`."""
    with tempfile.TemporaryDirectory(prefix="vc_app_examples_") as tmp:
        raw = Path(tmp) / "raw.wav"
        speak(clip, raw)
        wav = load_audio(raw, SAMPLE_RATE)
    pad = torch.zeros(int(PAD_SECONDS * SAMPLE_RATE))
    wav = peak_normalize(torch.cat([pad, trim_silence(wav), pad]), 0.9)
    return write_audio(out_dir / clip.name, wav.numpy().astype(np.float32), SAMPLE_RATE, overwrite=True, fmt="FLAC")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="where to write (default: the package folder)")
    add_debug_option(parser)
    args = parser.parse_args(argv)

    def make_all() -> None:
        for clip in CLIPS:
            path = make_clip(clip, args.out)
            print(f"{path}  {path.stat().st_size / 1024:.0f} KiB  ({clip.voice}: {clip.text})")

    return run_entry_point("make_examples", make_all, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
