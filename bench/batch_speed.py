"""`vc-app batch` against the naive loop (one `vc-app convert` process per file), measured in the same run.

    python bench/batch_speed.py [--clips 50] [--seconds 5] [--naive-clips 20] [--checkpoint DIR] [--workers N]

Makes a folder of `--clips` clips of about `--seconds` s (espeak-ng speech when it is installed, else
speech-like harmonic tones), converts it with Griffin-Lim once with `vc-app batch` and once file by file
with `vc-app convert`, and prints audio-seconds converted per wall-second for both and their ratio.
The naive loop runs on the first `--naive-clips` clips only (it is the slow one; its rate does not depend
on how many clips it gets). Target on 2 CPU cores: batch >= 10x the naive loop.
Uses the shipped checkpoint when present, else a randomly initialised default-size model (speed does not
depend on the weights). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
SENTENCES = [
    "The birch canoe slid on the smooth planks and drifted quietly toward the far shore of the lake.",
    "Glue the sheet to the dark blue background, then let it dry in the sun for an hour or two.",
    "It is easy to tell the depth of a well when you drop a stone and count the seconds slowly.",
    "These days a chicken leg is a rare dish, and the cook saves it for the family on Sunday.",
    "Rice is often served in round bowls, with a little fish and pickled greens on the side.",
]


def make_clips(folder: Path, count: int, seconds: float, rate: int = 22050) -> float:
    """`count` clips of ~`seconds` s in two sub-folders; returns their total duration in seconds."""
    espeak = shutil.which("espeak-ng")
    total = 0.0
    for i in range(count):
        path = folder / f"part{i % 2}" / f"clip{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        if espeak:
            voice = ["en-us", "en-gb", "en-us+f3", "en-gb+m3"][i % 4]
            subprocess.run([espeak, "-v", voice, "-s", str(150 + 5 * (i % 5)), "-w", str(path),
                            SENTENCES[i % len(SENTENCES)]], check=True, capture_output=True)
            wav, sr = sf.read(str(path), dtype="float32")
            n = int(seconds * sr)
            wav = np.tile(wav, int(np.ceil(n / len(wav))))[:n]  # trim or repeat to the asked length
            sf.write(str(path), wav, sr)
        else:
            t = np.arange(int(seconds * rate)) / rate
            f0 = 110 + 8 * i + 20 * np.sin(2 * np.pi * 0.7 * t)
            phase = 2 * np.pi * np.cumsum(f0) / rate
            wav = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) ** 2
            sf.write(str(path), (0.3 * wav / np.abs(wav).max()).astype(np.float32), rate)
        total += sf.info(str(path)).duration
    return total


def vc_app(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "vc_app", *args], cwd=str(REPO), capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    if done.returncode != 0:
        raise SystemExit(f"vc-app {args[0]} failed: {done.stderr.strip()}")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--naive-clips", type=int, default=20)
    parser.add_argument("--checkpoint")
    parser.add_argument("--workers", type=int, help="decoding processes (default: vc-app batch's own default)")
    return parser


def main() -> None:
    args = get_parser().parse_args()
    sys.path.insert(0, str(REPO))
    from vc_app.bundle import default_checkpoint, save_bundle
    from vc_app.config import MelConfig, ModelConfig
    from vc_app.models import AdaINVC

    work = Path(tempfile.mkdtemp(prefix="vc_batch_bench_"))
    try:
        checkpoint = args.checkpoint or default_checkpoint()
        if not Path(checkpoint).exists():
            checkpoint = str(save_bundle(AdaINVC(ModelConfig()), MelConfig(), work / "random"))
            print("(no shipped checkpoint: timing a randomly initialised default-size model)")
        inputs = work / "in"
        audio = make_clips(inputs, args.clips, args.seconds)
        target = work / "voice.wav"
        make_clips(work / "target", 1, 6.0)
        shutil.move(str(work / "target" / "part0" / "clip000.wav"), target)
        print(f"{args.clips} clips, {audio:.0f} s of audio, {os.cpu_count()} CPU cores, vocoder griffinlim (32 it.)")

        start = time.perf_counter()
        vc_app("batch", str(inputs), "--target", str(target), "--output", str(work / "batch"), "--checkpoint",
               checkpoint, "--vocoder", "griffinlim", "--quiet",
               *(["--workers", str(args.workers)] if args.workers is not None else []))
        batch_s = time.perf_counter() - start
        assert len(list((work / "batch").rglob("*.wav"))) == args.clips

        naive = sorted(inputs.rglob("*.wav"))[: args.naive_clips]
        naive_audio = sum(sf.info(str(p)).duration for p in naive)
        start = time.perf_counter()
        for i, path in enumerate(naive):
            vc_app("convert", "--source", str(path), "--target", str(target), "--output",
                   str(work / f"naive{i}.wav"), "--checkpoint", checkpoint, "--vocoder", "griffinlim")
        naive_s = time.perf_counter() - start

        batch_rate, naive_rate = audio / batch_s, naive_audio / naive_s
        print(f"{'method':<34} {'files':>5} {'wall s':>8} {'audio s / wall s':>17}")
        label = "vc-app batch" + (f" --workers {args.workers}" if args.workers is not None else " (defaults)")
        print(f"{label:<34} {args.clips:>5} {batch_s:>8.1f} {batch_rate:>17.2f}")
        print(f"{'naive: one vc-app convert per file':<34} {len(naive):>5} {naive_s:>8.1f} {naive_rate:>17.2f}")
        print(f"batch / naive: {batch_rate / naive_rate:.1f}x (target >= 10x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    from results import recorded  # bench/results.py: every run appends its printout, with the machine

    with recorded(__file__):
        main()
