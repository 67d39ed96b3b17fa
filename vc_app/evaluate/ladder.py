"""The naturalness ladder: where a conversion loses naturalness, rung by rung, for every source of the pairs.

    the unconverted source
      -> copy-synthesis: our mel of the source -> the vocoder           (what the vocoder loses)
      -> self-reconstruction: the source converted to its own speaker,  (what the acoustic model loses
         target = another clip of that speaker, and = the source itself   when it converts nothing)
      -> conversion to the pair's target voice                          (what converting loses)

Every rung is measured like the conversion: DNSMOS, Resemblyzer similarity to the source, pause and tail
level against the source (`levels`), WER when the pair has text. The first four rungs depend on the source
only and are measured once per source clip; the conversion rung is the pair's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from vc_app.audio import load_audio, read_audio, to_mono
from vc_app.config import MelConfig
from vc_app.converter import VoiceConverter
from vc_app.errors import VcAppError
from vc_app.evaluate.intelligibility import RECOGNISER_RATE, WordErrors, word_errors
from vc_app.evaluate.levels import pause_level, tail_level
from vc_app.evaluate.naturalness import NOT_MEASURED, Naturalness
from vc_app.evaluate.similarity import cosine
from vc_app.mel import mel_spectrogram
from vc_app.pairs import Pair
from vc_app.targets import load_target

RUNGS = {  # key (summary.json, ladder.csv) -> what is played (report.md)
    "source": "the unconverted source",
    "copy_synthesis": "copy-synthesis: our mel → the vocoder",
    "self_other": "self-reconstruction: target = another clip of the source's speaker",
    "self_source": "self-reconstruction: target = the source itself",
    "conversion": "conversion to the target voice",
}
SOURCE_RUNGS = ("source", "copy_synthesis", "self_other", "self_source")  # measured once per source clip
SELF_RUNGS = ("self_other", "self_source")  # skipped with `vc-app evaluate --no-ladder`


@dataclass
class Rung:
    """One rung's clip, measured (NaN / None where not measured)."""

    target: str = ""  # what it was converted to: a clip, ';'-separated clips, or '' (source, copy-synthesis)
    dnsmos: Naturalness = NOT_MEASURED
    sim_to_source: float = math.nan
    pause_level: float = math.nan
    tail_level: float = math.nan
    transcript: str = ""
    errors: WordErrors | None = None

    @property
    def measured(self) -> bool:
        return math.isfinite(self.sim_to_source)


def other_clip(pair: Pair, clips: dict[str, list[str]]) -> str:
    """Another clip of the source's speaker in the pairs (`clips`: speaker -> the pairs' audio clips: sources,
    target clips, references), the next after the source in sorted order (so a speaker's sources do not all
    share one); '' when the pairs hold none."""
    own = clips.get(pair.source_speaker, [])
    others = [clip for clip in own if clip != pair.source]
    if not others:
        return ""
    later = [clip for clip in others if clip > pair.source]
    return later[0] if later else others[0]


def measure_output(output: torch.Tensor, source: torch.Tensor, pair: Pair, tools, mel: MelConfig, *,
                   target: str = "") -> Rung:
    """Measure one rung's clip against its source.

    Args:
        output: (N,) the rung's clip; source: (N,) the pair's source clip; both at mel.sample_rate.
        tools: the run's `runner.Tools` (similarity, recogniser, DNSMOS).
        target: what the clip was converted to, for the record.
    """
    sim = tools.similarity
    rung = Rung(target=target, sim_to_source=cosine(sim.embed(output, mel.sample_rate), sim.embed_file(pair.source)),
                pause_level=pause_level(source, output, mel), tail_level=tail_level(source, output, mel))
    if tools.dnsmos is not None:
        rung.dnsmos = tools.dnsmos.score(output, mel.sample_rate)
    if pair.text and tools.recognizer is not None:
        rung.transcript = tools.recognizer.transcribe(output, mel.sample_rate)
        rung.errors = word_errors(pair.text, rung.transcript)
    return rung


def source_rung(pair: Pair, tools) -> Rung:
    """The unconverted source: its DNSMOS at its own rate, its transcript; similarity 1 and no pause or tail
    level, by definition."""
    rung = Rung(sim_to_source=1.0)
    if tools.dnsmos is not None:
        samples, rate = read_audio(pair.source)
        rung.dnsmos = tools.dnsmos.score(to_mono(samples), rate)
    if pair.text and tools.recognizer is not None:
        rung.transcript = tools.recognizer.transcribe(load_audio(pair.source, RECOGNISER_RATE), RECOGNISER_RATE)
        rung.errors = word_errors(pair.text, rung.transcript)
    return rung


def source_ladder(converter: VoiceConverter, tools, pair: Pair, other: str, *, self_rungs: bool = True
                  ) -> dict[str, Rung]:
    """The rungs of `SOURCE_RUNGS` for a pair's source (self-reconstructions only with `self_rungs`).

    Args:
        other: another clip of the source's speaker (`other_clip`); '' leaves that rung not measured.
    Returns:
        {rung key: Rung}; a self-reconstruction whose target clip is refused (silent, too short) is not measured.
    """
    from vc_app.resynth import resynthesize

    mel = converter.mel_cfg
    source = load_audio(pair.source, mel.sample_rate)
    rungs = {"source": source_rung(pair, tools),
             "copy_synthesis": measure_output(resynthesize(source, converter.vocoder, mel), source, pair, tools, mel)}
    for key, clip in zip(SELF_RUNGS, (other, pair.source)):
        rungs[key] = Rung(target=clip if self_rungs else "")
        if self_rungs and clip:
            try:
                output = converter.convert(pair.source, converter.voice([clip]))
            except VcAppError:
                continue
            rungs[key] = measure_output(output, source, pair, tools, mel, target=clip)
    return rungs


def ladder_mels(converter: VoiceConverter, pair: Pair, *, self_rungs: bool = True) -> dict[str, np.ndarray]:
    """The log-mels (`mel.mel_spectrogram`, (n_mels, T) each) of one pair's ladder, for its plot: source,
    copy-synthesis, self-reconstruction (target = the source itself; only with `self_rungs`), conversion."""
    from vc_app.resynth import resynthesize

    source = load_audio(pair.source, converter.sample_rate)
    clips = {"source": source, "copy_synthesis": resynthesize(source, converter.vocoder, converter.mel_cfg)}
    if self_rungs:
        clips["self_source"] = converter.convert(pair.source, converter.voice([pair.source]))
    clips["conversion"] = converter.convert(pair.source, load_target(pair.targets, converter.voice))
    return {key: mel_spectrogram(wav.float().cpu(), converter.mel_cfg).numpy() for key, wav in clips.items()}
