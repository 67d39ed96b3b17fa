"""Live conversion against its bars: latency, compute per block, dropped blocks (vc_app.streaming).

    python bench/live_latency.py [--seconds 60] [--threads 2] [--vocoders hifigan:universal,griffinlim]

1. Compute per block of each vocoder's stream, as a share of the block's duration (the median and the
   95th percentile of 40 blocks of real speech, converted as fast as possible), and as a ratio against the
   offline conversion of the same speech measured in the same run (compute per second of audio): what
   recomputing the left context and the vocoder's context with every block costs.
2. The vocoder `vc-app live` picks (the best that keeps up, `LIVE_VOCODERS`) plays `--seconds` of real
   speech (CMU ARCTIC clb, clips concatenated) through the real-time simulation: dropped blocks.
3. Latency from a sound entering to its conversion leaving: the simulation's output cross-correlated
   (log-mel spectra, `mel_lag`) with the offline conversion; reported against measured.
Bars (issue 30): latency <= 250 ms, compute <= 70 % of a block, no dropped block.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SPEECH = ROOT.parent / "shared" / "data" / "speech" / "arctic" / "clb"
TARGET = ROOT / "vc_app" / "examples" / "arctic_slt_target.flac"
BARS = {"latency_ms": 250.0, "compute_share": 0.70, "dropped": 0}


def real_speech(seconds: float, rate: int) -> torch.Tensor:
    """ARCTIC clb clips (or the example clips when the shared data is missing) joined to `seconds`: (N,)."""
    from vc_app.audio import load_audio

    files = sorted(SPEECH.glob("*.flac")) or sorted((ROOT / "vc_app" / "examples").glob("*source.flac"))
    pieces, total = [], 0
    while total < seconds * rate:
        for path in files:
            pieces.append(load_audio(path, rate))
            total += pieces[-1].numel()
            if total >= seconds * rate:
                break
    return torch.cat(pieces)[: int(seconds * rate)]


def compute_shares(stream, speech: torch.Tensor, blocks: int) -> list[float]:
    """Compute of each of `blocks` blocks of `speech` (after one warm-up) over the block's duration."""
    bs, block_seconds = stream.block_samples, stream.block_samples / stream.sample_rate
    shares = []
    for i in range(blocks + 1):
        started = time.perf_counter()
        stream.process(speech[i * bs:(i + 1) * bs])
        if i:
            shares.append((time.perf_counter() - started) / block_seconds)
    stream.reset()
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="real speech played in real time")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blocks", type=int, default=40, help="blocks timed per vocoder")
    parser.add_argument("--vocoders", default="hifigan:universal,griffinlim")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from vc_app.converter import VoiceConverter
    from vc_app.streaming import KEEPS_UP_SHARE, LiveEngine, mel_lag, simulate
    from vc_app.vocoders import load_vocoder

    base = VoiceConverter.from_specs(None, "griffinlim", device="cpu")
    voice = base.voice(TARGET)
    speech = real_speech(args.seconds, base.sample_rate)
    print(f"threads {torch.get_num_threads()}, {args.seconds:.0f} s of ARCTIC clb, target {TARGET.name}")
    print(f"{'vocoder':20s} {'median':>7s} {'p95':>7s} {'max':>7s}  of a block   live vs offline compute per s")
    picked = None
    for spec in args.vocoders.split(","):
        converter = VoiceConverter(base.bundle, load_vocoder(spec, base.mel_cfg), device="cpu")
        stream = converter.stream(voice)
        shares = sorted(compute_shares(stream, speech, args.blocks))
        piece = speech[: 10 * base.sample_rate]
        started = time.perf_counter()
        converter.convert(piece, voice)
        offline = (time.perf_counter() - started) / 10.0  # compute per second of audio
        live = sum(shares) / len(shares)  # compute per second of audio, block by block
        median, p95 = shares[len(shares) // 2], shares[int(0.95 * (len(shares) - 1))]
        verdict = "keeps up" if median <= KEEPS_UP_SHARE else "too slow"
        print(f"{spec:20s} {median:7.0%} {p95:7.0%} {shares[-1]:7.0%}  {verdict:11s}"
              f"  {live / offline:.1f}x offline ({offline:.3f} s per s offline)")
        if picked is None and median <= KEEPS_UP_SHARE:
            picked = (spec, converter)
    if picked is None:
        print("no vocoder keeps up here")
        return
    spec, converter = picked
    engine = LiveEngine(converter.stream(voice))
    heard = simulate(engine, speech, realtime=True)
    engine.close()
    mean, peak = engine.stats.load(engine.block_seconds)
    offline = converter.convert(speech, voice)
    lag, correlation = mel_lag(heard, offline, converter.mel_cfg, longest=2 * engine.latency_samples,
                               skip_frames=130)
    measured_ms, reported_ms = lag / converter.sample_rate * 1000, engine.latency * 1000
    print(f"real time, {spec}: {engine.stats.blocks} blocks converted, {engine.stats.dropped} dropped; "
          f"compute mean {mean:.0%}, max {peak:.0%} of a block")
    print(f"latency: measured {measured_ms:.1f} ms (log-mel correlation {correlation:.3f} with offline), "
          f"reported {reported_ms:.1f} ms, ratio {measured_ms / reported_ms:.3f}")
    ok = (measured_ms <= BARS["latency_ms"], mean <= BARS["compute_share"], engine.stats.dropped == BARS["dropped"])
    print(f"bars: latency <= 250 ms {'met' if ok[0] else 'MISSED'}, compute <= 70 % {'met' if ok[1] else 'MISSED'}, "
          f"no drops {'met' if ok[2] else 'MISSED'}")


if __name__ == "__main__":
    from results import recorded  # bench/results.py: every run appends its printout, with the machine

    with recorded(__file__):
        main()
