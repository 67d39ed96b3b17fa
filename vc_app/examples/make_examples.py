"""Rebuild the example clips from real recordings: `python -m vc_app.examples.make_examples [--speech DIR] [--out DIR]`.

DIR is a folder holding `arctic/` (CMU ARCTIC) and `vctk_sample/wav48/` (VCTK) as in the project's
development data (default: ../shared/data/speech beside the checkout). Each recording is mixed to mono,
resampled to 22 050 Hz and trimmed of leading/trailing audio 30 dB below its peak; a clip made of two
recordings joins them with 0.3 s of silence; 0.1 s of silence is kept either side, the clip is
peak-normalised to 0.9 and written as 16-bit FLAC.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from vc_app.audio import load_audio, peak_normalize, trim_silence, write_audio
from vc_app.errors import VcAppError, add_debug_option, run_entry_point
from vc_app.examples import CLIPS, EXAMPLES_DIR, Clip

SAMPLE_RATE = 22050
PAD_SECONDS = 0.1
GAP_SECONDS = 0.3
TRIM_TOP_DB = 30.0  # VCTK has a noise floor ~35 dB below its peaks: trim what lies under -30 dB
DEFAULT_SPEECH = Path(__file__).resolve().parents[3] / "shared" / "data" / "speech"


def make_clip(clip: Clip, speech: Path, out_dir: Path) -> Path:
    """Join the clip's recordings as the module docstring says and write the clip into `out_dir`."""
    pad, gap = torch.zeros(int(PAD_SECONDS * SAMPLE_RATE)), torch.zeros(int(GAP_SECONDS * SAMPLE_RATE))
    parts = []
    for recording in clip.recordings:
        path = speech / recording
        if not path.is_file():
            raise VcAppError(f"{path} is missing: pass --speech with the folder holding arctic/ and vctk_sample/.")
        parts += [trim_silence(load_audio(path, SAMPLE_RATE), TRIM_TOP_DB), gap]
    wav = peak_normalize(torch.cat([pad, *parts[:-1], pad]), 0.9)
    return write_audio(out_dir / clip.name, wav.numpy().astype(np.float32), SAMPLE_RATE, overwrite=True, fmt="FLAC")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speech", type=Path, default=DEFAULT_SPEECH, help="the recordings (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="where to write (default: the package folder)")
    add_debug_option(parser)
    args = parser.parse_args(argv)

    def make_all() -> None:
        for clip in CLIPS:
            path = make_clip(clip, args.speech, args.out)
            print(f"{path}  {path.stat().st_size / 1024:.0f} KiB  ({', '.join(clip.recordings)}: {clip.text})")

    return run_entry_point("make_examples", make_all, debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
