"""The evaluation run: convert every pair once, measure it and its source's naturalness ladder, probe the
model, write the results.

`evaluate()` is what `vc-app evaluate` calls. The converter, the Resemblyzer encoder, the
PocketSphinx decoder and the DNSMOS models are each built once and passed around.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vc_app.audio import load_audio, prepare_clip, write_audio
from vc_app.converter import VoiceConverter
from vc_app.errors import VcAppError
from vc_app.evaluate.intelligibility import Recognizer, WordErrors, word_errors
from vc_app.evaluate.ladder import Rung, ladder_mels, other_clip, source_ladder
from vc_app.evaluate.levels import pause_level, tail_level
from vc_app.evaluate.mcd import mel_cepstral_distortion
from vc_app.evaluate.naturalness import DNSMOS, NOT_MEASURED, Naturalness, dnsmos_missing
from vc_app.evaluate.probe import speaker_probe, utterance_codes
from vc_app.evaluate.similarity import SpeakerSimilarity, cosine
from vc_app.pairs import Pair
from vc_app.targets import is_voice_path, load_target

NAN = float("nan")


@dataclass
class PairResult:
    """The measurements of one pair (NaN where a metric does not apply, `error` when it failed)."""

    pair: Pair
    seconds: float = NAN
    convert_seconds: float = NAN
    sim_to_target: float = NAN
    sim_to_source: float = NAN
    sim_source_to_target: float = NAN
    transcript_converted: str = ""
    transcript_source: str = ""
    errors_converted: WordErrors | None = None
    errors_source: WordErrors | None = None
    mcd: float = NAN
    mcd_source: float = NAN
    dnsmos_converted: Naturalness = NOT_MEASURED
    dnsmos_source: Naturalness = NOT_MEASURED  # the unconverted source clip
    dnsmos_copy_synthesis: Naturalness = NOT_MEASURED  # the source through the same vocoder: its ceiling
    pause_level: float = NAN  # dB, the converted clip against the source (evaluate.levels)
    tail_level: float = NAN
    ladder: dict[str, Rung] = field(default_factory=dict)  # the source's rungs (ladder.SOURCE_RUNGS), shared
    audio: str = ""
    error: str = ""

    @property
    def closer_to_target(self) -> bool:
        return self.sim_to_target > self.sim_to_source

    @property
    def conversion(self) -> Rung:
        """The ladder's last rung: this pair's conversion."""
        return Rung(target=";".join(self.pair.targets), dnsmos=self.dnsmos_converted, sim_to_source=self.sim_to_source,
                    pause_level=self.pause_level, tail_level=self.tail_level, transcript=self.transcript_converted,
                    errors=self.errors_converted)


@dataclass
class Probes:
    """Disentanglement: the two probes and the vectors behind them (for the projection plot)."""

    content: object  # ProbeResult | None
    speaker: object  # ProbeResult | None
    speaker_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    content_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    labels: list[str] = field(default_factory=list)
    skipped: int = 0  # clips that could not be analysed (silent, too short)


@dataclass
class Tools:
    """The measuring instruments, built once per run."""

    similarity: SpeakerSimilarity
    recognizer: Recognizer | None
    dnsmos: DNSMOS | None = None  # None: not installed (naturalness not measured)
    clips: dict[str, list[str]] = field(default_factory=dict)  # speaker -> the pairs' audio clips, sorted
    self_rungs: bool = True  # measure the ladder's self-reconstructions
    ladders: dict[str, dict[str, Rung]] = field(default_factory=dict)  # source path -> its rungs
    ladder_seconds: float = 0.0  # time spent on the ladders' rungs (all but the conversion)


def ladder_of(converter: VoiceConverter, tools: Tools, pair: Pair) -> dict[str, Rung]:
    """The source's rungs of the naturalness ladder, measured once per source clip."""
    if pair.source not in tools.ladders:
        start = time.perf_counter()
        tools.ladders[pair.source] = source_ladder(converter, tools, pair, other_clip(pair, tools.clips),
                                                   self_rungs=tools.self_rungs)
        tools.ladder_seconds += time.perf_counter() - start
    return tools.ladders[pair.source]


def measure_pair(converter: VoiceConverter, tools: Tools, pair: Pair, audio_path: Path | None) -> PairResult:
    """Convert one pair (timed) and measure similarity, WER, MCD, naturalness and its source's ladder."""
    result = PairResult(pair)
    rate = converter.sample_rate
    start = time.perf_counter()
    voice = load_target(pair.targets, converter.voice)
    converted = converter.convert(pair.source, voice)
    result.convert_seconds = time.perf_counter() - start
    result.seconds = converted.numel() / rate
    if audio_path is not None:
        write_audio(audio_path, converted, rate, overwrite=True)
        result.audio = f"{audio_path.parent.name}/{audio_path.name}"  # relative to the output folder

    sim = tools.similarity
    target_embedding = sim.embed_speaker(pair.targets) if voice.dvector is None else voice.dvector
    converted_embedding = sim.embed(converted, rate)
    result.sim_to_target = cosine(converted_embedding, target_embedding)
    result.sim_to_source = cosine(converted_embedding, sim.embed_file(pair.source))
    result.sim_source_to_target = cosine(sim.embed_file(pair.source), target_embedding)

    source = load_audio(pair.source, rate)
    result.ladder = ladder_of(converter, tools, pair)
    if pair.text and tools.recognizer is not None:
        result.transcript_converted = tools.recognizer.transcribe(converted, rate)
        result.transcript_source = result.ladder["source"].transcript
        result.errors_converted = word_errors(pair.text, result.transcript_converted)
        result.errors_source = word_errors(pair.text, result.transcript_source)

    if pair.reference:
        reference = prepare_clip(pair.reference, rate, "reference", trim=False)  # refuses silent clips
        result.mcd = mel_cepstral_distortion(reference, converted, converter.mel_cfg)
        result.mcd_source = mel_cepstral_distortion(reference, source, converter.mel_cfg)

    result.pause_level = pause_level(source, converted, converter.mel_cfg)
    result.tail_level = tail_level(source, converted, converter.mel_cfg)
    if tools.dnsmos is not None:
        result.dnsmos_converted = tools.dnsmos.score(converted, rate)
    result.dnsmos_source = result.ladder["source"].dnsmos
    result.dnsmos_copy_synthesis = result.ladder["copy_synthesis"].dnsmos
    return result


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "-" for c in name) or "x"


def audio_name(n: int, pair: Pair) -> str:
    """File name of a kept converted clip: 0001_<source speaker>_to_<target speaker>_<source stem>.wav."""
    parts = (pair.source_speaker, "to", pair.target_speaker, Path(pair.source).stem)
    return f"{n:04d}_" + "_".join(_file_safe(p) for p in parts) + ".wav"


def convert_and_measure(converter: VoiceConverter, tools: Tools, pairs: list[Pair], out: Path, *, keep_audio: bool,
                        progress: bool) -> list[PairResult]:
    """Measure every pair; a pair that fails (e.g. a silent clip) is recorded with its error and skipped."""
    from tqdm import tqdm

    try:  # warm-up, so that the first pair's timing is fair
        converter.convert(pairs[0].source, load_target(pairs[0].targets, converter.voice))
    except VcAppError:
        pass  # the pair itself will report it
    audio_dir = out / "audio"
    if keep_audio:
        audio_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for n, pair in enumerate(tqdm(pairs, desc="pairs", unit="pair", disable=not progress, file=sys.stderr), 1):
        try:
            results.append(measure_pair(converter, tools, pair, audio_dir / audio_name(n, pair) if keep_audio
                                        else None))
        except VcAppError as err:
            results.append(PairResult(pair, error=str(err)))
    if all(r.error for r in results):
        raise VcAppError(f"Every pair failed; the first: {results[0].error}")
    return results


def run_probes(converter: VoiceConverter, clips: list[tuple[str, str]], *, seed: int) -> Probes | None:
    """Probe time-averaged content codes and speaker vectors of (path, speaker) clips; None if there are none.

    Clips that cannot be analysed (silent, too short) are skipped and counted.
    """
    contents, speakers, labels, skipped = [], [], [], 0
    for path, speaker in clips:
        try:
            content, vector = utterance_codes(converter.model, converter.mel_cfg, path, converter.device)
        except VcAppError:
            skipped += 1
            continue
        contents.append(content)
        speakers.append(vector)
        labels.append(speaker)
    if not labels:
        return None
    content_codes, speaker_vectors = np.stack(contents), np.stack(speakers)
    return Probes(speaker_probe(content_codes, labels, seed=seed), speaker_probe(speaker_vectors, labels, seed=seed),
                  speaker_vectors, content_codes, labels, skipped)


def pair_clips(pairs: list[Pair]) -> list[tuple[str, str]]:
    """Every distinct clip of a pair set with its speaker: sources, targets and references."""
    seen: dict[str, str] = {}
    for pair in pairs:
        seen.setdefault(pair.source, pair.source_speaker)
        for clip in (*pair.targets, *([pair.reference] if pair.reference else [])):
            if not is_voice_path(clip):  # a voice file holds no audio to probe
                seen.setdefault(clip, pair.target_speaker)
    return sorted(seen.items(), key=lambda item: (item[1], item[0]))


def clips_by_speaker(pairs: list[Pair]) -> dict[str, list[str]]:
    """speaker -> the pairs' audio clips of that speaker (`pair_clips`), sorted."""
    clips: dict[str, list[str]] = {}
    for path, speaker in pair_clips(pairs):
        clips.setdefault(speaker, []).append(path)
    return clips


def spread_subset(pairs: list[Pair], n: int | None) -> list[Pair]:
    """`n` pairs spread evenly over the list, first and last included (the screening subset: the same pairs for
    every model, and every part of a file ordered by speakers); all of them when `n` is None or not smaller."""
    if n is None or n >= len(pairs):
        return pairs
    if n <= 1:
        return pairs[:max(n, 0)]
    return [pairs[round(i * (len(pairs) - 1) / (n - 1))] for i in range(n)]


def evaluate(pairs: list[Pair], converter: VoiceConverter, out: str | Path, *,
             probe_clips: list[tuple[str, str]] | None = None, keep_audio: bool = False, seed: int = 0,
             ladder: bool = True, similarity_device: str = "cpu",
             progress: bool = True, run_info: dict | None = None) -> dict:
    """Run the whole protocol and write per_pair.csv, ladder.csv, summary.json, report.md and plots into `out`.

    Args:
        pairs: what to convert and measure.
        converter: built once by the caller.
        probe_clips: (path, speaker) clips for the disentanglement probes; default: every clip of `pairs`.
        keep_audio: also write the converted clips to `out/audio/`.
        ladder: measure the naturalness ladder's self-reconstructions (source and copy-synthesis always are).
        run_info: what produced the run (checkpoint, vocoder, command), stored in the summary.
    Returns:
        The summary (the content of summary.json).
    """
    from vc_app.evaluate.report import write_outputs
    from vc_app.evaluate.summary import summarize

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    missing = dnsmos_missing()
    tools = Tools(SpeakerSimilarity(similarity_device), Recognizer() if any(p.text for p in pairs) else None,
                  dnsmos=None if missing else DNSMOS(), clips=clips_by_speaker(pairs), self_rungs=ladder)
    results = convert_and_measure(converter, tools, pairs, out, keep_audio=keep_audio, progress=progress)
    probes = run_probes(converter, probe_clips if probe_clips is not None else pair_clips(pairs), seed=seed)
    info = {**(run_info or {}), "device": str(converter.device), "torch_threads": torch.get_num_threads(),
            "seed": seed, "ladder": ladder, "ladder_seconds": tools.ladder_seconds,
            **({"dnsmos_not_measured": missing} if missing else {})}
    summary = summarize(results, probes, info)
    plotted = next(r for r in results if not r.error).pair  # the first pair measured: the same pair in every run
    write_outputs(out, results, probes, summary, (plotted, ladder_mels(converter, plotted, self_rungs=ladder)))
    return summary

