"""Per-pair results -> the summary (summary.json) and the project's bars, each met / not met / not measured."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vc_app.evaluate.intelligibility import corpus_wer

# The bars a default model must meet on held-out speakers of other recordings (the recipes' cross-corpus
# set) with the default vocoder; README *Evaluation* and recipes/folder/EXPERIMENTS.md.
MIN_SHARE_CLOSER_TO_TARGET = 0.90
MIN_SIMILARITY_MARGIN = 0.12
MAX_WER_RATIO = 1.5
MAX_CONTENT_TO_SPEAKER_PROBE = 0.5
MIN_DNSMOS_P808 = 3.1  # mean DNSMOS P.808 MOS of the converted clips
# The probe ratio means something only with a few test clips per speaker and a speaker probe that finds anything.
MIN_PROBE_TEST_CLIPS_PER_SPEAKER = 2
TOO_FEW_CLIPS = "too few clips"


def finite_or_none(value) -> float | None:
    """JSON has no NaN: NaN and infinities become null."""
    return float(value) if value is not None and math.isfinite(value) else None


def _mean(values) -> float:
    values = [v for v in values if math.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


@dataclass(frozen=True)
class Bar:
    name: str
    measured: float | None
    required: str
    met: bool | None  # None: not measured
    why_not_measured: str = ""

    @property
    def status(self) -> str:
        if self.met is None:
            return f"not measured ({self.why_not_measured})" if self.why_not_measured else "not measured"
        return "met" if self.met else "not met"

    def to_dict(self) -> dict:
        return {"name": self.name, "measured": finite_or_none(self.measured), "required": self.required,
                "status": self.status}


def similarity_summary(ok) -> dict:
    to_target, to_source = _mean(r.sim_to_target for r in ok), _mean(r.sim_to_source for r in ok)
    return {"n": len(ok), "mean_sim_to_target": to_target, "mean_sim_to_source": to_source,
            "margin": to_target - to_source,
            "share_closer_to_target": float(np.mean([r.closer_to_target for r in ok])) if ok else float("nan"),
            "mean_sim_source_to_target": _mean(r.sim_source_to_target for r in ok)}


def intelligibility_summary(ok) -> dict:
    scored = [r for r in ok if r.errors_converted is not None and r.errors_converted.words]
    converted = corpus_wer([r.errors_converted for r in scored])
    source = corpus_wer([r.errors_source for r in scored])
    if not scored:
        ratio = float("nan")
    elif source > 0:
        ratio = converted / source
    else:
        ratio = 1.0 if converted == 0 else float("inf")
    return {"n": len(scored), "words": sum(r.errors_converted.words for r in scored),
            "wer_converted": converted, "wer_source": source, "ratio": ratio}


def speed_summary(ok) -> dict:
    audio = sum(r.seconds for r in ok)
    compute = sum(r.convert_seconds for r in ok)
    rtf = compute / audio if audio else float("nan")
    return {"audio_seconds": audio, "compute_seconds": compute, "rtf": rtf,
            "times_real_time": 1 / rtf if rtf > 0 else float("nan")}


def naturalness_summary(ok, not_measured: str = "") -> dict:
    """Mean DNSMOS (P.808 MOS and OVRL) of the converted clips, the unconverted sources and their copy-synthesis
    through the same vocoder; each source counted once. `not_measured`: why DNSMOS did not run ('' if it did)."""
    from vc_app.evaluate.naturalness import mean_naturalness

    scored = [r for r in ok if math.isfinite(r.dnsmos_converted.p808)]
    if not scored:
        return {"n": 0, "reason": not_measured or "no clip was scored"}
    sources = {r.pair.source: r for r in scored}.values()
    out: dict[str, float] = {"n": len(scored), "n_sources": len(sources)}
    for key, values in (("converted", [r.dnsmos_converted for r in scored]),
                        ("source", [r.dnsmos_source for r in sources]),
                        ("copy_synthesis", [r.dnsmos_copy_synthesis for r in sources])):
        mean = mean_naturalness(values)
        out[f"p808_{key}"], out[f"ovrl_{key}"] = mean.p808, mean.ovrl
    return out


def rung_summary(rungs) -> dict:
    """Means over one rung's measured clips (`ladder.Rung`s): DNSMOS, similarity to the source, pause and tail
    level (over the clips where they apply: `pause_n`, `tail_n`), and corpus WER over the clips with text."""
    from vc_app.evaluate.naturalness import mean_naturalness

    measured = [r for r in rungs if r.measured]
    pauses = [r.pause_level for r in measured if math.isfinite(r.pause_level)]
    tails = [r.tail_level for r in measured if math.isfinite(r.tail_level)]
    scored = [r.errors for r in measured if r.errors is not None and r.errors.words]
    nat = mean_naturalness([r.dnsmos for r in measured])
    return {"n": len(measured), "p808": nat.p808, "ovrl": nat.ovrl,
            "sim_to_source": _mean(r.sim_to_source for r in measured),
            "pause_level": _mean(pauses), "pause_n": len(pauses), "tail_level": _mean(tails), "tail_n": len(tails),
            "wer": corpus_wer(scored), "words": sum(e.words for e in scored)}


def ladder_summary(ok, self_rungs: bool = True) -> dict:
    """The naturalness ladder: every rung of `ladder.RUNGS` summarised; the source rungs over the pairs' distinct
    sources, the conversion over the pairs. `no_other_clip`: sources whose speaker has no other clip in the
    pairs (their self-reconstruction from another clip is not measured)."""
    from vc_app.evaluate.ladder import RUNGS, SOURCE_RUNGS

    sources = list({r.pair.source: r.ladder for r in ok}.values())
    rungs = {key: [ladder[key] for ladder in sources] for key in SOURCE_RUNGS}
    rungs["conversion"] = [r.conversion for r in ok]
    return {"n_sources": len(sources), "n_pairs": len(ok), "self_reconstruction": self_rungs,
            "no_other_clip": sum(not ladder["self_other"].target for ladder in sources) if self_rungs else 0,
            "rungs": {key: {"label": RUNGS[key], **rung_summary(values)} for key, values in rungs.items()}}


def disentanglement_summary(probes) -> dict:
    if probes is None or probes.content is None or probes.speaker is None:
        return {"measured": False, "reason": "needs at least two speakers with at least two clips each"}
    return {"measured": True, "content_probe": probes.content.to_dict(), "speaker_probe": probes.speaker.to_dict(),
            "chance": probes.speaker.chance, "skipped_clips": probes.skipped}


def evaluate_bars(summary: dict) -> list[Bar]:
    """The project's five bars (README, *Evaluation*), judged on the summary's numbers."""
    sim, wer, dis = summary["speaker_similarity"], summary["intelligibility"], summary["disentanglement"]
    nat = summary["naturalness"]
    share, margin = sim["share_closer_to_target"], sim["margin"]
    bars = [
        Bar("share of conversions closer to the target than to the source", share,
            f">= {MIN_SHARE_CLOSER_TO_TARGET:.2f}", share >= MIN_SHARE_CLOSER_TO_TARGET if sim["n"] else None),
        Bar("mean similarity to target minus to source", margin, f">= {MIN_SIMILARITY_MARGIN:.2f}",
            margin >= MIN_SIMILARITY_MARGIN if sim["n"] else None),
    ]
    wer_met = wer["wer_converted"] <= MAX_WER_RATIO * wer["wer_source"] if wer["n"] else None
    bars.append(Bar("WER converted / WER source", wer["ratio"], f"<= {MAX_WER_RATIO:g}", wer_met))
    probe_bar = ("content-probe accuracy / speaker-probe accuracy", f"<= {MAX_CONTENT_TO_SPEAKER_PROBE:g}")
    if _probes_enough(dis):
        content, speaker = dis["content_probe"]["accuracy"], dis["speaker_probe"]["accuracy"]
        met = content <= MAX_CONTENT_TO_SPEAKER_PROBE * speaker
        bars.append(Bar(probe_bar[0], content / speaker, probe_bar[1], met))
    else:
        bars.append(Bar(probe_bar[0], None, probe_bar[1], None, TOO_FEW_CLIPS))
    if nat["n"]:
        bars.append(Bar("DNSMOS P.808 of the converted clips", nat["p808_converted"], f">= {MIN_DNSMOS_P808:g}",
                        nat["p808_converted"] >= MIN_DNSMOS_P808))
    else:
        bars.append(Bar("DNSMOS P.808 of the converted clips", None, f">= {MIN_DNSMOS_P808:g}", None, nat["reason"]))
    return bars


def _probes_enough(dis: dict) -> bool:
    """Whether the probes were measured on enough clips: at least `MIN_PROBE_TEST_CLIPS_PER_SPEAKER` test clips
    per speaker (so at least twice as many clips per speaker in all) and a speaker probe above zero."""
    if not dis["measured"]:
        return False
    speaker = dis["speaker_probe"]
    return speaker["n_test"] >= MIN_PROBE_TEST_CLIPS_PER_SPEAKER * speaker["n_speakers"] and speaker["accuracy"] > 0


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, float):
        return finite_or_none(obj)
    return obj


def summarize(results, probes, info: dict) -> dict:
    """The run's summary: every aggregate metric, the bars, and what produced it (JSON-ready)."""
    ok = [r for r in results if not r.error]
    mcd = [r for r in ok if math.isfinite(r.mcd)]
    summary = {
        "run": info,
        "pairs": {"n": len(results), "failed": len(results) - len(ok)},
        "speaker_similarity": similarity_summary(ok),
        "intelligibility": intelligibility_summary(ok),
        "mcd": {"n": len(mcd), "mean_db": _mean(r.mcd for r in mcd),
                "mean_db_source": _mean(r.mcd_source for r in mcd)},
        "naturalness": naturalness_summary(ok, info.get("dnsmos_not_measured", "")),
        "ladder": ladder_summary(ok, info.get("ladder", True)),
        "disentanglement": disentanglement_summary(probes),
        "speed": speed_summary(ok),
    }
    return _clean({**summary, "bars": [bar.to_dict() for bar in evaluate_bars(summary)]})
