"""Real-time factor of conversion on CPU: the acoustic model alone, and the full pipeline with Griffin-Lim.

    python bench/convert_speed.py [--checkpoint DIR] [--seconds 10] [--threads 2] [--repeats 3]

RTF here = seconds of compute per second of audio (lower is faster); "x real time" = 1 / RTF.
Targets (2 CPU threads, 10 s of speech): acoustic model >= 100x real time, full pipeline >= 15x.
Uses the shipped checkpoint when present, else a randomly initialised model of the default size
(speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from vc_app.bundle import default_checkpoint, load_bundle, save_bundle
    from vc_app.config import MelConfig, ModelConfig
    from vc_app.converter import VoiceConverter
    from vc_app.mel import mel_spectrogram
    from vc_app.models import AdaINVC
    from vc_app.vocoders import load_vocoder

    spec = args.checkpoint or default_checkpoint()
    if not Path(spec).exists() and args.checkpoint is None:
        spec = str(save_bundle(AdaINVC(ModelConfig()), MelConfig(), Path(tempfile.mkdtemp()) / "random"))
        print("(no shipped checkpoint: timing a randomly initialised default-size model)")
    bundle = load_bundle(spec)
    converter = VoiceConverter(bundle, load_vocoder("griffinlim", bundle.mel))
    sr = bundle.mel.sample_rate
    t = torch.arange(int(args.seconds * sr)) / sr
    wav = (0.3 * torch.sin(2 * torch.pi * 150 * t) * (1 + torch.sin(2 * torch.pi * 3 * t))).float()
    wav += 0.01 * torch.randn_like(wav)
    mel = mel_spectrogram(wav, bundle.mel).unsqueeze(0)
    speaker = converter.speaker_vector([wav[: 5 * sr]])

    with torch.inference_mode():
        acoustic = timed(lambda: bundle.model.convert(mel, speaker.unsqueeze(0)), args.repeats)
        vocoder = timed(lambda: converter.vocoder(mel), args.repeats)
    full = timed(lambda: converter.convert(wav, speaker=speaker), args.repeats)
    print(f"audio: {args.seconds:.1f} s, threads: {torch.get_num_threads()}, checkpoint: {spec}")
    for name, seconds, target in (("acoustic model", acoustic, 100), ("griffinlim(32) alone", vocoder, None),
                                  ("full pipeline (griffinlim)", full, 15)):
        rtf = seconds / args.seconds
        verdict = "" if target is None else f"  target >= {target}x: {'met' if 1 / rtf >= target else 'NOT met'}"
        print(f"{name:28s} RTF {rtf:.4f}  = {1 / rtf:7.1f}x real time{verdict}")


if __name__ == "__main__":
    main()
