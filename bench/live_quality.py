"""Live conversion's quality against the offline conversion of the same source, and what the look-ahead costs.

    python bench/live_quality.py [--targets p226,p228,VCC2SF3,VCC2TM2] [--models 6/128/0,6,20,140]
                                 [--vocoders griffinlim,hifigan:universal] [--threads 1] [--no-stream]

Source: 33 s of real speech, CMU ARCTIC clb arctic_a0001-a0010 joined (clb is a cross-corpus held-out
speaker), peak-normalised once so that both paths hear the same level; the text is the ARCTIC prompts.
Targets: held-out speakers of recipes/folder/lists/heldout-sets.json (VCTK p226 M, p228 F; VCC 2018 SF3 F,
TM2 M), `--target-clips` clips each. For every target and vocoder, the default model:

  offline    `VoiceConverter.convert` of the whole source: what `vc-app convert` gives
  stream     the simulation (`simulate(..., realtime=False)`, unthreaded, so nothing is dropped) at the
             default `StreamConfig`: what a listener hears live, its latency cut off
  model L=N  `stream_mel` with N frames of look-ahead, vocoded in one pass: what cutting the model's
             context to the stream's window costs, the vocoder's block-by-block voicing aside (L = the
             default is the stream's own mel; 140 frames is as far ahead as the model's convolutions see)
  L=N C=M    (`--models N/M`) the same with M frames of left context instead of the default 128: a window
             as long as L=140's (`--models 6/262`: 262 + 8 + 6 = 276 frames) tells the look-ahead's cost
             from the window's; left context costs compute, not latency
  L=N S=K    (`--models N/M/K`) the same with the norms' running statistics over K frames instead of the
             default `stats_frames` (0: each window's own statistics, as before the running statistics)

Measured with `vc-app evaluate`'s instruments: similarity of the whole output to the target's clips
(Resemblyzer), WER of each sentence's stretch (PocketSphinx, pooled over sentences and targets), DNSMOS
P.808 of the whole output, and the join excess (`streaming.join_excess_db`: how much rougher the output is
in 128 samples around block joins than elsewhere; offline's at the same places, where it has no joins, is
the measure's own spread). Streamed outputs are brought to the source's loudness first (`match_loudness`,
as offline does; live itself does not, docs/live.md). Bars (issue 30): similarity within 0.03 of offline,
WER within 10 % relative, no clicks at joins (join excess < 3 dB, the bar of tests/test_live.py).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "speech"
SOURCE = DATA / "arctic" / "clb"
# CMU ARCTIC prompts arctic_a0001-a0010 (festvox cmuarctic.data), what clb reads in those files
PROMPTS = (
    "Author of the danger trail, Philip Steels, etc.",
    "Not at this particular case, Tom, apologized Whittemore.",
    "For the twentieth time that evening the two men shook hands.",
    "Lord, but I'm glad to see you again, Phil.",
    "Will we ever forget it.",
    "God bless 'em, I hope I'll go on seeing them forever.",
    "And you always want to see it in the superlative degree.",
    "Gad, your letter came just in time.",
    "He turned sharply, and faced Gregson across the table.",
    "I'm playing a single hand in what looks like a losing game.",
)
TARGETS = "p226,p228,VCC2SF3,VCC2TM2"
BARS = {"similarity": 0.03, "wer_relative": 0.10, "join_db": 3.0}


@dataclass
class Row:
    """One kind of output, over the targets: per target similarity, DNSMOS, join excess; pooled word errors."""

    sims: list[float] = field(default_factory=list)
    dnsmos: list[float] = field(default_factory=list)
    joins: list[float] = field(default_factory=list)
    errors: list = field(default_factory=list)  # WordErrors of every sentence of every target
    latency_ms: float = float("nan")

    @property
    def wer(self) -> float:
        from vc_app.evaluate.intelligibility import corpus_wer

        return corpus_wer(self.errors)


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def first_join(lookahead: int, block: int) -> int:
    """The first block join of an aligned stream output, in frames, at least one block in: block k is source
    frames [k * block - lookahead, (k + 1) * block - lookahead)."""
    return (lookahead // block + 2) * block - lookahead


def source_speech(rate: int) -> tuple[torch.Tensor, list[int]]:
    """The joined clips, peak-normalised: (N,), and the sample where each clip starts (plus N at the end)."""
    from vc_app.audio import load_audio, peak_normalize

    clips = [load_audio(SOURCE / f"arctic_a{i:04d}.flac", rate) for i in range(1, len(PROMPTS) + 1)]
    bounds = [0]
    for clip in clips:
        bounds.append(bounds[-1] + clip.numel())
    return peak_normalize(torch.cat(clips)), bounds


def target_clips(speaker: str, n: int) -> list[Path]:
    """The first n clips of a speaker's folder under ../shared/data/speech."""
    folders = [p for p in DATA.rglob(speaker) if p.is_dir()]
    if not folders:
        raise SystemExit(f"no folder {speaker} under {DATA}")
    return sorted(p for p in folders[0].iterdir() if p.suffix in (".flac", ".wav"))[:n]


class Judges:
    """The evaluation's instruments, built once: Resemblyzer, PocketSphinx, DNSMOS."""

    def __init__(self, threads: int):
        from vc_app.evaluate.intelligibility import Recognizer
        from vc_app.evaluate.naturalness import DNSMOS
        from vc_app.evaluate.similarity import SpeakerSimilarity

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.similarity = SpeakerSimilarity("cpu")
        self.recognizer, self.dnsmos = Recognizer(), DNSMOS(threads)

    def measure(self, row: Row, wav: torch.Tensor, rate: int, bounds: list[int], target=None) -> str:
        """Measure `wav` (aligned with the source, (N,)) into `row`: the words of each sentence's stretch
        [bounds[i], bounds[i + 1]), DNSMOS and, given the target's d-vector, similarity. Returns a line of them."""
        from vc_app.evaluate.intelligibility import corpus_wer, word_errors
        from vc_app.evaluate.similarity import cosine

        errors = [word_errors(text, self.recognizer.transcribe(wav[a:b], rate))
                  for text, a, b in zip(PROMPTS, bounds, bounds[1:])]
        row.errors.extend(errors)
        row.dnsmos.append(self.dnsmos.score(wav, rate).p808)
        if target is not None:
            row.sims.append(cosine(self.similarity.embed(wav, rate), target))
        sim = f"{row.sims[-1]:6.3f} " if target is not None else ""
        return f"{sim}{corpus_wer(errors):6.1%} {row.dnsmos[-1]:6.2f}"


def outputs(converter, voice, source: torch.Tensor, models: list[tuple[int, int, int]], stream: bool = True):
    """Yield (name, output aligned with the source (N,), the look-ahead whose joins to check, latency in ms) for
    the offline conversion, the stream at the default sizes (unless not `stream`) and the model at each
    (look-ahead, left context, statistics frames)."""
    from vc_app.audio import active_rms, match_loudness
    from vc_app.config import StreamConfig
    from vc_app.streaming import LiveEngine, simulate, stream_mel

    n, level, default = source.numel(), active_rms(source), StreamConfig()
    yield "offline", converter.convert(source, voice), default.lookahead_frames, float("nan")
    if stream:
        engine = LiveEngine(converter.stream(voice), threaded=False)
        lag = engine.latency_samples  # output sample n is what leaves the speaker at time n
        heard = simulate(engine, source, realtime=False)[lag:lag + n]
        yield "stream", match_loudness(heard, level), default.lookahead_frames, engine.latency * 1000
    for la, context, stats in models:
        config = StreamConfig(lookahead_frames=la, context_frames=context, stats_frames=stats)
        mel = stream_mel(converter.stream(voice, config), source)
        with torch.inference_mode():
            wav = converter.vocoder(mel)[0].float().cpu()[:n]
        wav = torch.cat([wav, torch.zeros(n - wav.numel())])
        name = (f"model L={la}" + (f" C={context}" if context != default.context_frames else "")
                + (f" S={stats}" if stats != default.stats_frames else ""))
        latency = LiveEngine(converter.stream(voice, config), threaded=False).latency * 1000
        yield name, match_loudness(wav, level), la, latency


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=TARGETS, help="held-out speakers (folders under ../shared/data/speech)")
    parser.add_argument("--target-clips", type=int, default=3)
    parser.add_argument("--models", default="6/128/0,6,20,140",
                        help="the model-only rows: look-ahead frames[/left-context frames[/statistics frames]]")
    parser.add_argument("--no-stream", action="store_true", help="leave out the real stream's row")
    parser.add_argument("--vocoders", default="griffinlim,hifigan:universal")
    parser.add_argument("--threads", type=int, default=1)
    return parser


def main() -> None:
    args = get_parser().parse_args()
    torch.set_num_threads(args.threads)
    from vc_app.config import StreamConfig
    from vc_app.converter import VoiceConverter
    from vc_app.streaming import join_excess_db
    from vc_app.vocoders import load_vocoder

    started = time.perf_counter()
    base = VoiceConverter.from_specs(None, "griffinlim", device="cpu")
    rate, hop = base.sample_rate, base.mel_cfg.hop_length
    source, bounds = source_speech(rate)
    n = source.numel()
    judges = Judges(args.threads)
    default = StreamConfig()
    sizes = [[int(v) for v in m.split("/")] for m in args.models.split(",")]
    models = [(s[0], s[1] if len(s) > 1 else default.context_frames, s[2] if len(s) > 2 else default.stats_frames)
              for s in sizes]
    block = default.block_frames * hop
    targets = args.targets.split(",")
    words = sum(len(p.split()) for p in PROMPTS)
    wer, mos = judges.measure(Row(), source, rate, bounds).split()
    print(f"threads {torch.get_num_threads()}; source {n / rate:.1f} s, CMU ARCTIC clb arctic_a0001-a0010, "
          f"{words} words; unconverted: WER {wer}, DNSMOS {mos}")
    print(f"targets {', '.join(targets)} ({args.target_clips} clips each); model {base.bundle.name}; "
          f"default stream: block {default.block_frames}, context {default.context_frames}, "
          f"look-ahead {default.lookahead_frames}, statistics {default.stats_frames} frames")

    for spec in args.vocoders.split(","):
        converter = VoiceConverter(base.bundle, load_vocoder(spec, base.mel_cfg), device="cpu")
        rows: dict[str, Row] = {}
        print(f"\n{spec}: per target      {'sim':>6s} {'WER':>6s} {'DNSMOS':>6s} {'join dB':>7s}")
        for speaker in targets:
            clips = target_clips(speaker, args.target_clips)
            voice = converter.voice(clips)
            target = judges.similarity.embed_speaker(clips)

            for name, wav, lookahead, latency_ms in outputs(converter, voice, source, models, not args.no_stream):
                row = rows.setdefault(name, Row(latency_ms=latency_ms))
                line = judges.measure(row, wav, rate, bounds, target)
                # its block joins are where a stream with `lookahead` frames joins blocks (offline has none
                # there: its number is the measure's own spread)
                row.joins.append(join_excess_db(wav, block, first_join(lookahead, default.block_frames) * hop))
                print(f"  {speaker:8s} {name:15s} {line} {row.joins[-1]:+7.1f}")

        off = rows["offline"]
        print(f"{spec}: mean over {len(targets)} targets (WER pooled over {len(off.errors)} sentences)")
        print(f"  {'output':15s} {'latency':>8s} {'sim':>6s} {'Δsim':>6s} {'worst':>6s} {'WER':>6s} {'rel. WER':>8s} "
              f"{'DNSMOS':>6s} {'ΔDNSMOS':>7s} {'join dB':>7s}")
        for name, row in rows.items():
            deltas = [s - o for s, o in zip(row.sims, off.sims)]
            rel = (row.wer - off.wer) / off.wer if off.wer else float("nan")
            latency = f"{row.latency_ms:6.0f}ms" if row.latency_ms == row.latency_ms else f"{'-':>8s}"
            print(f"  {name:15s} {latency} {mean(row.sims):6.3f} {mean(deltas):+6.3f} {min(deltas):+6.3f} "
                  f"{row.wer:6.1%} {rel:+8.0%} {mean(row.dnsmos):6.2f} {mean(row.dnsmos) - mean(off.dnsmos):+7.2f} "
                  f"{mean(row.joins):+7.1f}")
        if "stream" not in rows:
            continue
        live = rows["stream"]
        ok = (mean(off.sims) - mean(live.sims) <= BARS["similarity"],
              (live.wer - off.wer) <= BARS["wer_relative"] * off.wer,
              max(live.joins) < BARS["join_db"])
        print(f"bars (stream against offline, {spec}): similarity within 0.03 {'met' if ok[0] else 'MISSED'}, "
              f"WER within 10 % relative {'met' if ok[1] else 'MISSED'}, no clicks at joins (< 3 dB) "
              f"{'met' if ok[2] else 'MISSED'}")
    print(f"\n{time.perf_counter() - started:.0f} s in all")


if __name__ == "__main__":
    from results import recorded  # bench/results.py: every run appends its printout, with the machine

    with recorded(__file__):
        main()
