"""What the web UI does, without the web: checking uploads, picking a model, converting, analysing.

`vc_app.ui` lays the page out with Gradio and calls `ConversionService`; everything here raises
`VcAppError` with one sentence (file names, never server paths) and can be tested without a
browser. Models are loaded once and shared by every session: `ConverterPool` keeps the converter
built at start plus a few loaded on demand, keyed by (model spec, vocoder spec). Saved voices live
in one folder of the server (`vc_app.voice_library.VoiceLibrary`), by name.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import queue
import re
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vc_app.audio import SILENT_PEAK, audio_info, clips, load_audio, resample, write_audio
from vc_app.bundle import list_local_bundles, load_bundle
from vc_app.config import MelConfig
from vc_app.converter import VoiceConverter
from vc_app.errors import VcAppError
from vc_app.hub import is_hub_repo_id
from vc_app.mel import mel_spectrogram
from vc_app.ui_limits import UiLimits
from vc_app.vocoders import GRIFFINLIM_ITERATIONS, load_vocoder, parse_spec, vocoder_choices
from vc_app.voice import Voice, blend
from vc_app.voice_library import VoiceLibrary, check_voice_name, list_voices

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]


def default_concurrency(device: torch.device | str) -> int:
    """Conversions to run at once: 4 on a GPU; on CPU one per 4 cores (at least 1, at most 8).

    Each CPU conversion already uses several cores through PyTorch's threads, so running more at
    once than cores / 4 only makes every one of them slower.
    """
    if torch.device(device).type == "cuda":
        return 4
    return max(1, min(8, (os.cpu_count() or 1) // 4))


def share_threads(device: torch.device | str, limits: UiLimits) -> int:
    """On CPU, split PyTorch's threads among the conversions that run at once; returns threads per conversion."""
    if torch.device(device).type != "cpu":
        return torch.get_num_threads()
    per_job = max(1, (os.cpu_count() or 1) // (limits.concurrency or default_concurrency(device)))
    torch.set_num_threads(per_job)
    return per_job


def canonical_vocoder(spec: str) -> str:
    """One spelling per vocoder: 'griffinlim' -> 'griffinlim:32', 'HiFiGAN' -> 'hifigan:speechbrain-libritts'."""
    family, argument = parse_spec(spec)
    if family == "griffinlim" and not argument:
        argument = str(GRIFFINLIM_ITERATIONS)
    return f"{family}:{argument}" if argument else family


class ConverterPool:
    """The converter loaded at start plus up to `capacity` more, loaded on demand and shared.

    A converter for another vocoder reuses the loaded bundle, and one for another model reuses a
    loaded vocoder with the same mel recipe; the least recently used extra converter is dropped.
    """

    def __init__(self, default: VoiceConverter, capacity: int = 3):
        self.default = default
        self.default_model = default.bundle.source
        self.default_vocoder = canonical_vocoder(default.vocoder.name)
        self.capacity = capacity
        self._converters: OrderedDict[tuple[str, str], VoiceConverter] = OrderedDict(
            {(self.default_model, self.default_vocoder): default})
        self._lock = threading.Lock()  # guards the dict
        self._load_lock = threading.Lock()  # one load at a time, so two requests never load the same model twice

    def get(self, model: str | None = None, vocoder: str | None = None) -> VoiceConverter:
        """The converter for `model` (a bundle folder or hub id) and `vocoder` (a spec); None: the defaults."""
        key = (model or self.default_model, canonical_vocoder(vocoder or self.default_vocoder))
        found = self._lookup(key)
        if found is not None:
            return found
        with self._load_lock:
            found = self._lookup(key)
            if found is not None:
                return found
            converter = self._build(*key)
            with self._lock:
                self._converters[key] = converter
                extras = [k for k in self._converters if self._converters[k] is not self.default]
                for old in extras[:max(0, len(extras) - self.capacity)]:
                    del self._converters[old]
        return converter

    def is_loaded(self, model: str | None = None, vocoder: str | None = None) -> bool:
        """Whether `get(model, vocoder)` would return at once, without loading anything."""
        with self._lock:
            return (model or self.default_model, canonical_vocoder(vocoder or self.default_vocoder)) in self._converters

    def _lookup(self, key: tuple[str, str]) -> VoiceConverter | None:
        with self._lock:
            converter = self._converters.get(key)
            if converter is not None:
                self._converters.move_to_end(key)
            return converter

    def _build(self, model: str, vocoder: str) -> VoiceConverter:
        with self._lock:
            loaded = list(self._converters.items())
        device = self.default.device
        bundle = next((c.bundle for (m, _), c in loaded if m == model), None)
        if bundle is None:
            log.info("loading model %s", model)
            bundle = load_bundle(model, device=device)
        voc = next((c.vocoder for (_, v), c in loaded if v == vocoder and c.mel_cfg == bundle.mel), None)
        if voc is None:
            log.info("loading vocoder %s", vocoder)
            voc = load_vocoder(vocoder, bundle.mel, device=str(device))
        return VoiceConverter(bundle, voc, device=device)

    def __len__(self) -> int:
        return len(self._converters)


@dataclass
class Conversion:
    """One finished conversion: the output file and what the analysis step needs to look at."""

    output: Path
    source: str
    targets: list[str]
    mel: MelConfig
    voices: tuple[tuple[Voice, float], ...] = ()  # the saved voice(s) used instead of clips, with their shares


@dataclass
class Analysis:
    """Pictures (label, RGB uint8 (H, W, 3) or None) of source, target and converted; similarities and/or a note."""

    pictures: list[tuple[str, np.ndarray | None]]
    similarity: dict[str, float] | None = None
    note: str = ""


@dataclass
class Choices:
    """What the page offers: (label, value) pairs and the default value of each menu."""

    models: list[tuple[str, str]]
    vocoders: list[tuple[str, str]]
    unusable_vocoders: dict[str, str] = field(default_factory=dict)

    @property
    def default_model(self) -> str:
        return self.models[0][1]

    @property
    def default_vocoder(self) -> str:
        return self.vocoders[0][1]


class VoiceExists(VcAppError):
    """Saving would replace a saved voice: the page asks for a confirmation first."""


class ConversionService:
    """Converts uploads with a shared `ConverterPool`, writing results under `work_dir` only.

    Args:
        pool: the converters (the one built at start plus those loaded on demand).
        limits: upload size and duration limits.
        work_dir: a temp folder the service owns; results older than `limits.keep_outputs_seconds`
            are deleted as new requests arrive.
        voices_dir: where saved voices are kept (None: `vc_app.voice_library.default_voices_dir()`).
    """

    def __init__(self, pool: ConverterPool, limits: UiLimits, work_dir: str | os.PathLike,
                 voices_dir: str | os.PathLike | None = None):
        self.pool, self.limits, self.work_dir = pool, limits, Path(work_dir)
        self.voices = VoiceLibrary(voices_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.choices = self._choices()
        self._similarity = None
        self._similarity_lock = threading.Lock()
        self._live_vocoders: dict[str, tuple[str, str]] = {}  # model -> (the vocoder live picked, why)

    # -- what the page offers ------------------------------------------------------------
    def _choices(self) -> Choices:
        default = self.pool.default_model
        models = [(f"{_model_name(default)} (loaded)", default)]
        models += [(p.name, str(p)) for p in list_local_bundles() if not _same_path(p, default)]
        loaded = self.pool.default_vocoder
        vocoders, unusable = [(f"{loaded} (loaded)", loaded)], {}
        for spec, usable, reason in vocoder_choices():
            if canonical_vocoder(spec) == loaded:
                continue
            vocoders.append((spec if usable else f"{spec} (unavailable)", spec))
            if not usable:
                unusable[spec] = reason
        return Choices(models, vocoders, unusable)

    def resolve_model(self, model: str | None, hub_id: str | None) -> str:
        """The bundle to use: a hub id typed by the user wins over the menu's choice."""
        hub_id = (hub_id or "").strip()
        if hub_id:
            if not is_hub_repo_id(hub_id) or Path(hub_id).exists():
                raise VcAppError(f"'{hub_id[:80]}' is not a Hugging Face hub id of the form org/name.")
            return hub_id
        model = model or self.choices.default_model
        if model not in {value for _, value in self.choices.models}:
            raise VcAppError(f"'{_model_name(model)}' is not one of the models offered here.")
        return model

    def resolve_vocoder(self, vocoder: str | None) -> str:
        """One of the offered vocoders (any spelling of it), or Griffin-Lim with 1 to 512 iterations."""
        vocoder = (vocoder or self.choices.default_vocoder).strip()
        unusable = {canonical_vocoder(spec): (spec, why) for spec, why in self.choices.unusable_vocoders.items()}
        if canonical_vocoder(vocoder) in unusable:
            spec, reason = unusable[canonical_vocoder(vocoder)]
            raise VcAppError(f"The {spec} vocoder cannot be used on this server: {reason.strip().rstrip('.')}.")
        family, argument = parse_spec(vocoder)
        if family == "griffinlim" and (not argument or (argument.isdigit() and 1 <= int(argument) <= 512)):
            return vocoder
        if canonical_vocoder(vocoder) not in {canonical_vocoder(value) for _, value in self.choices.vocoders}:
            raise VcAppError(f"'{vocoder[:80]}' is not one of the vocoders offered here (Griffin-Lim takes "
                             f"griffinlim:N with N from 1 to 512).")
        return vocoder

    # -- checking uploads -----------------------------------------------------------------
    def check_upload(self, path: str | os.PathLike, role: str) -> float:
        """Refuse a clip that is too big, too long or not readable audio; return its duration in seconds."""
        path = Path(path)
        if path.is_file() and path.stat().st_size > self.limits.max_upload_mb * 1e6:
            raise VcAppError(f"The {role} clip {path.name} is {path.stat().st_size / 1e6:.1f} MB; this server "
                             f"takes files of up to {self.limits.max_upload_mb:g} MB.")
        try:
            info = audio_info(path)
        except VcAppError as err:  # "PATH is not audio ..." -> "The source clip NAME is not audio ..."
            message = str(err)
            if message.startswith(str(path)):
                message = f"The {role} clip {path.name}{message[len(str(path)):]}"
            raise VcAppError(message) from None
        seconds = info.frames / info.samplerate
        if seconds > self.limits.max_seconds:
            raise VcAppError(f"The {role} clip {path.name} is {seconds:.0f} s long; this server takes clips of up "
                             f"to {self.limits.max_seconds:g} s.")
        return seconds

    # -- converting ----------------------------------------------------------------------
    def convert(self, source: str | None, targets: Sequence[str] | None, *, model: str | None = None,
                hub_id: str | None = None, vocoder: str | None = None, voice: str | None = None,
                blend_with: str | None = None, voice_percent: float = 100.0,
                progress: Progress | None = None) -> Conversion:
        """Convert `source` into the voice of `targets` (several clips: their speaker vectors are averaged),
        or of the saved `voice` (then the clips are not used), blended with `blend_with` when given.

        Args:
            voice_percent: the share of `voice` in a blend with `blend_with`, 0 to 100.
        Raises:
            VcAppError: one sentence naming the clip (by file name), the voice or the choice that is wrong.
        """
        report = progress or (lambda fraction, text: None)
        targets = [str(t) for t in (targets or []) if t]
        voice, blend_with = (voice or "").strip(), (blend_with or "").strip()
        if not source:
            raise VcAppError("Upload or record a source clip first.")
        if blend_with and not voice:
            raise VcAppError("Pick a saved voice to blend the second one with.")
        if not targets and not voice:
            raise VcAppError("Give at least one target clip (upload files or record the target voice), or pick "
                             "a saved voice.")
        targets = [] if voice else targets
        paths = [str(source), *targets, *self._voice_files(voice, blend_with)]
        try:
            report(0.02, "Checking the clips")
            seconds = self.check_upload(source, "source")
            for target in targets:
                self.check_upload(target, "target")
            model_spec, vocoder_spec = self.resolve_model(model, hub_id), self.resolve_vocoder(vocoder)
            report(0.1, "Model ready" if self.pool.is_loaded(model_spec, vocoder_spec) else "Loading the model")
            converter = self.pool.get(model_spec, vocoder_spec)
            if voice:
                report(0.25, f"Loading the voice {voice}")
                parts = self.saved_voices(voice, blend_with, voice_percent)
                kept = blend([v for v, _ in parts], [w for _, w in parts])
            else:
                report(0.25, f"Analysing the target voice ({len(targets)} clip{'s' * (len(targets) > 1)})")
                kept, parts = converter.voice(targets), []
            report(0.45, f"Converting {seconds:.1f} s of speech")
            wav = converter.convert(str(source), kept)
            report(0.95, "Writing the result")
            output = self._output_path(source, kept.name)
            write_audio(output, wav, converter.sample_rate)
        except VcAppError as err:
            raise VcAppError(_without_paths(str(err), paths)) from None
        return Conversion(output, str(source), targets, converter.mel_cfg, tuple((v, w) for v, w in parts if w > 0))

    def warm_up(self) -> float:
        """Convert and analyse a generated clip once, so the first visitor does not pay the first-call costs
        (PyTorch kernels, the vocoder's first run, loading Resemblyzer); returns the seconds it took."""
        start = time.perf_counter()
        folder = self.work_dir / f"{WARM_UP_NAME}-{uuid.uuid4().hex}"
        folder.mkdir()
        try:
            path = write_warm_up_clip(folder, self.pool.default.sample_rate)
            conversion = self.convert(str(path), [str(path)])
            self.analyse(conversion)
            shutil.rmtree(conversion.output.parent, ignore_errors=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return time.perf_counter() - start

    # -- live conversion ------------------------------------------------------------------
    def start_live(self, voice: str | None, targets: Sequence[str] | None, *, model: str | None = None,
                   vocoder: str | None = None, progress: Progress | None = None) -> LiveSession:
        """A live conversion for one browser session into the saved `voice`, or else the voice of `targets`.

        Args:
            vocoder: a vocoder spec, or `AUTO_VOCODER` (the default): the best of `LIVE_VOCODERS` that keeps up
                here, measured once per model (`vc_app.streaming.pick_live_stream`) and remembered.
        Raises:
            VcAppError: one sentence naming the clip, the voice or the choice that is wrong.
        """
        from vc_app.streaming import describe_pick, pick_live_stream

        report = progress or (lambda fraction, text: None)
        targets = [str(t) for t in (targets or []) if t]
        voice = (voice or "").strip()
        if not targets and not voice:
            raise VcAppError("Pick a saved voice or give target clips before starting the microphone.")
        if shutil.which("ffmpeg") is None:  # Gradio encodes the streamed output with it
            raise VcAppError("Live conversion needs ffmpeg on the server to stream the audio back: install it "
                             "(Debian/Ubuntu: apt-get install ffmpeg) and restart the app.")
        targets = [] if voice else targets
        paths = [*targets, *self._voice_files(voice)]
        try:
            for target in targets:
                self.check_upload(target, "target")
            model_spec = self.resolve_model(model, None)
            auto = (vocoder or AUTO_VOCODER).strip() == AUTO_VOCODER
            spec = self._live_vocoders.get(model_spec, (None, ""))[0] if auto else self.resolve_vocoder(vocoder)
            report(0.1, "Model ready" if self.pool.is_loaded(model_spec, spec) else "Loading the model")
            converter = self.pool.get(model_spec, spec)
            report(0.3, f"Loading the voice {voice}" if voice else "Analysing the target voice")
            kept = self.voices.load(check_voice_name(voice)) if voice else converter.voice(targets)
            if spec is not None:  # named in the menu, or picked for this model before
                note = self._live_vocoders[model_spec][1] if auto else f"vocoder {canonical_vocoder(spec)} (chosen)"
                return LiveSession(converter.stream(kept), note)
            report(0.5, "Timing the vocoders on this machine")

            def make_stream(candidate: str):
                try:
                    return self.pool.get(model_spec, candidate).stream(kept)
                except VcAppError as err:  # not installed or not reachable here: the next one is tried
                    log.info("live conversion cannot use %s: %s", candidate, err)
                    return None

            picked, share, stream, tried = pick_live_stream(make_stream)
            note = describe_pick(picked, share, tried, stream.block_samples / stream.sample_rate)
            self._live_vocoders[model_spec] = (picked, note)
            log.info("live conversion: %s", note)
            return LiveSession(stream, note)
        except VcAppError as err:
            raise VcAppError(_without_paths(str(err), paths)) from None

    def _output_path(self, source: str, target_name: str) -> Path:
        """A fresh folder under work_dir holding `<source>_as_<target>.wav` (old folders are swept first)."""
        self.sweep()
        folder = self.work_dir / uuid.uuid4().hex
        folder.mkdir()
        return folder / f"{_slug(Path(source).stem)}_as_{_slug(target_name)}.wav"

    # -- saved voices ---------------------------------------------------------------------
    def voice_choices(self) -> list[tuple[str, str]]:
        """(label, name) of every readable saved voice, e.g. ("alice (2 clips, 8 s)", "alice")."""
        if not self.voices.folder.is_dir():
            return []
        choices = []
        for path, meta in list_voices(self.voices.folder):
            if isinstance(meta, str):
                log.warning("skipping a voice file: %s", meta)
                continue
            n = len(meta["clips"])
            what = "a blend" if meta["mix"] else f"{n} clip{'s' * (n != 1)}"
            choices.append((f"{path.stem} ({what}, {sum(c.seconds for c in meta['clips']):.0f} s)", path.stem))
        return choices

    def saved_voices(self, voice: str, blend_with: str = "", voice_percent: float = 100.0) -> list[tuple[Voice, float]]:
        """The saved voice(s) to convert with and their shares: [(voice, 1.0)] or a two-voice blend."""
        first = self.voices.load(check_voice_name(voice))
        if not blend_with:
            return [(first, 1.0)]
        try:
            share = float(voice_percent)
        except (TypeError, ValueError):
            raise VcAppError(f"The blend share must be a number from 0 to 100, not {voice_percent!r}.") from None
        if not 0 <= share <= 100:
            raise VcAppError(f"The blend share must be from 0 to 100 %, not {share:g}.")
        return [(first, share / 100), (self.voices.load(check_voice_name(blend_with)), 1 - share / 100)]

    def _voice_files(self, *names: str) -> list[str]:
        """The server paths of these voices, so that messages can name them by file name instead."""
        files = []
        for name in names:
            try:
                files.append(str(self.voices.path(name)))
            except VcAppError:
                continue
        return files

    def save_voice(self, name: str | None, targets: Sequence[str] | None, *, model: str | None = None,
                   hub_id: str | None = None, overwrite: bool = False, progress: Progress | None = None) -> str:
        """Keep the target clips as the saved voice `name` (for the model chosen); returns what was saved.

        Raises:
            VoiceExists: a voice of that name exists and `overwrite` is False.
            VcAppError: a bad name (a path, NUL, too long...), no clips, a bad clip.
        """
        report = progress or (lambda fraction, text: None)
        name = check_voice_name(name)
        targets = [str(t) for t in (targets or []) if t]
        if not targets:
            raise VcAppError("Upload or record the target clips to keep as a voice first.")
        if self.voices.exists(name) and not overwrite:
            raise VoiceExists(f"A voice called '{name}' is already saved.")
        paths = [*targets, str(self.voices.path(name))]
        try:
            report(0.05, "Checking the clips")
            for target in targets:
                self.check_upload(target, "target")
            model_spec = self.resolve_model(model, hub_id)
            report(0.2, "Model ready" if self.pool.is_loaded(model_spec) else "Loading the model")
            converter = self.pool.get(model_spec)
            report(0.4, f"Analysing the target voice ({len(targets)} clip{'s' * (len(targets) > 1)})")
            voice = converter.voice(targets, name=name)
            if similarity_available():
                report(0.7, "Measuring its d-vector for speaker similarity")
                from vc_app.evaluate.similarity import attach_dvector

                voice = attach_dvector(voice, targets, self._speaker_similarity())
            self.voices.save(voice, name, overwrite=overwrite)
        except VcAppError as err:
            raise VcAppError(_without_paths(str(err), paths)) from None
        n = len(voice.clips)
        return f"Saved the voice **{name}** ({n} clip{'s' * (n != 1)}, {voice.seconds:.1f} s, model {voice.model})."

    def delete_voice(self, name: str | None) -> str:
        """Delete the saved voice `name`; returns what was done."""
        name = (name or "").strip()
        if not name:
            raise VcAppError("Pick the saved voice to delete first.")
        self.voices.delete(check_voice_name(name))
        return f"Deleted the voice **{name}**."

    def sweep(self, older_than: float | None = None) -> int:
        """Delete result folders older than `older_than` seconds (default: the limit); returns how many."""
        age = self.limits.keep_outputs_seconds if older_than is None else older_than
        now, removed = time.time(), 0
        for folder in self.work_dir.iterdir():
            try:
                if folder.is_dir() and now - folder.stat().st_mtime > age:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:  # another request swept it first
                continue
        return removed

    # -- analysing ------------------------------------------------------------------------
    def analyse(self, conversion: Conversion, progress: Progress | None = None) -> Analysis:
        """Log-mel pictures of source, target(s) and result, and speaker similarities when Resemblyzer is there."""
        report = progress or (lambda fraction, text: None)
        rate = conversion.mel.sample_rate
        try:
            report(0.1, "Drawing spectrograms")
            source = load_audio(conversion.source, rate)
            targets = [load_audio(t, rate) for t in conversion.targets]
            converted = load_audio(conversion.output, rate)
        except VcAppError as err:
            raise VcAppError(_without_paths(str(err), [conversion.source, *conversion.targets])) from None
        target_picture: tuple[str, np.ndarray | None]
        if targets:
            n, target = len(targets), torch.cat(targets)
            target_picture = (f"Target ({n} clip{'s' * (n > 1)}, {_seconds(target, rate)})",
                              mel_picture(target, conversion.mel))
        else:  # a saved voice keeps no audio to draw
            target_picture = (f"Target: saved voice {' + '.join(v.name for v, _ in conversion.voices)}", None)
        pictures: list[tuple[str, np.ndarray | None]] = [
            (f"Source ({_seconds(source, rate)})", mel_picture(source, conversion.mel)), target_picture,
            (f"Converted ({_seconds(converted, rate)})", mel_picture(converted, conversion.mel))]
        if not similarity_available():
            return Analysis(pictures, note=SIMILARITY_HELP)
        report(0.5, "Measuring speaker similarity")
        try:
            return Analysis(pictures, *self.similarities(source, converted, rate, targets, conversion.voices))
        except ImportError as err:  # Resemblyzer is there but one of its own dependencies is not
            log.warning("speaker similarity is unavailable: %s", err)
            return Analysis(pictures, note=f"{SIMILARITY_HELP} (Resemblyzer could not be imported: {err}.)")

    def similarities(self, source: torch.Tensor, converted: torch.Tensor, rate: int, targets: list[torch.Tensor],
                     voices: Sequence[tuple[Voice, float]] = ()) -> tuple[dict[str, float], str]:
        """Cosines of Resemblyzer d-vectors: converted vs target, converted vs source, source vs target, and a note.

        The target is the clips' mean d-vector, or the one a saved voice carries; a blend's result is measured
        against each voice of the blend instead (keys "converted_vs_voice:NAME").
        """
        from vc_app.evaluate.similarity import cosine

        encoder = self._speaker_similarity()
        conv, src = encoder.embed(converted, rate), encoder.embed(source, rate)
        sims = {"converted_vs_source": cosine(conv, src)}
        measured = [(v.name, v.dvector) for v, _ in voices if v.dvector is not None]
        if targets:
            target = np.mean([encoder.embed(t, rate) for t in targets], axis=0)
            measured = [("target", target / np.linalg.norm(target))]
        if len(voices) > 1:
            sims.update({f"converted_vs_voice:{name}": cosine(conv, dvector) for name, dvector in measured})
        elif measured:
            sims.update(converted_vs_target=cosine(conv, measured[0][1]), source_vs_target=cosine(src, measured[0][1]))
        missing = [v.name for v, _ in voices if v.dvector is None]
        return sims, (f"The saved voice {', '.join(missing)} carries no d-vector (saved without the eval extra), so "
                      f"the similarity to it cannot be measured." if missing else "")

    def _speaker_similarity(self):
        with self._similarity_lock:
            if self._similarity is None:
                import warnings

                from vc_app.evaluate.similarity import SpeakerSimilarity

                with warnings.catch_warnings():  # webrtcvad (via resemblyzer) warns that pkg_resources is deprecated
                    warnings.simplefilter("ignore", UserWarning)
                    self._similarity = SpeakerSimilarity("cpu")
            return self._similarity


AUTO_VOCODER = "auto"  # the Live tab's default: the best live vocoder that keeps up, measured
STREAM_EVERY = 0.25  # seconds of microphone audio per chunk the browser sends (Gradio's stream_every)


class StreamResampler:
    """Resamples a signal that arrives in pieces of any length as if it were resampled whole (torchaudio's
    band-limited sinc): each piece is resampled with the input before it, and the last `lookahead` input
    samples wait for the next piece, since the filter needs them. Output comes in whole periods of the two
    rates (e.g. 320 samples at 48 kHz -> 147 at 22.05 kHz), so every piece lands on the same grid.

    Args:
        orig_rate, new_rate: the rates in and out (equal: pieces pass through untouched).
    Attributes:
        lookahead: input samples held back (at least 64: the filter reaches 14 input samples either side).
    """

    def __init__(self, orig_rate: int, new_rate: int):
        g = math.gcd(orig_rate, new_rate)
        self.orig_rate, self.new_rate = orig_rate, new_rate
        self.period_in, self.period_out = orig_rate // g, new_rate // g
        self.lookahead = 0 if orig_rate == new_rate else -(-64 // self.period_in) * self.period_in
        self.buffer = torch.zeros(0)  # input from sample `start` on
        self.start = self.done = self.received = 0  # input positions: buffer's first, resampled up to, heard

    def __call__(self, piece: torch.Tensor) -> torch.Tensor:
        """piece: (N,) float at `orig_rate` -> (M,) float at `new_rate` (M about N * new / orig, 0 at first)."""
        if self.orig_rate == self.new_rate:
            return piece
        self.buffer = torch.cat([self.buffer, piece.float().flatten()])
        self.received += piece.numel()
        end = (self.received - self.lookahead) // self.period_in * self.period_in
        if end <= self.done:
            return torch.zeros(0)
        wav = resample(self.buffer, self.orig_rate, self.new_rate)
        a, b = ((x - self.start) // self.period_in * self.period_out for x in (self.done, end))
        self.done = end
        keep_from = max(0, end - self.lookahead) // self.period_in * self.period_in  # the filter's left reach
        self.buffer, self.start = self.buffer[keep_from - self.start:], keep_from
        return wav[a:b]


class LiveSession:
    """One browser session's live conversion: microphone chunks in (`push`), converted chunks out (`converted`).

    `push` resamples a chunk to the model's rate (`StreamResampler`), runs it through the stream
    (`StreamingConverter.push`) and queues the result at the model's rate; `converted` hands the queued
    chunks to the page's output as they come. Nothing here knows Gradio.

    Args:
        stream: the streaming converter into the chosen voice; vocoder_note: which vocoder and why, in words.
    """

    def __init__(self, stream, vocoder_note: str = ""):
        self.stream, self.vocoder_note = stream, vocoder_note
        self.sample_rate: int = stream.sample_rate
        self.input_rate: int | None = None
        self._resampler: StreamResampler | None = None
        self._outbox: queue.Queue[np.ndarray] = queue.Queue()
        self._closed = threading.Event()
        self.chunks = self.blocks = 0
        self.heard = 0.0  # seconds of microphone audio received
        self.compute: list[float] = []  # seconds per chunk, resampling and conversion
        self.peak = 0.0
        self.clipped = False  # whether any chunk clipped (`vc_app.audio.clips`)

    def push(self, rate: int, samples: np.ndarray) -> None:
        """One chunk from the browser: (N,) or (N, channels), int16 or float, at `rate` Hz."""
        started = time.perf_counter()
        wav = _float_mono(samples)
        if self._resampler is None:
            self.input_rate, self._resampler = rate, StreamResampler(rate, self.sample_rate)
        elif rate != self.input_rate:
            raise VcAppError(f"The microphone changed from {self.input_rate} Hz to {rate} Hz mid-stream; stop and "
                             f"start it again.")
        pending = self.stream.pending.numel()
        piece = self._resampler(torch.from_numpy(wav))
        out = self.stream.push(piece)
        self.blocks += (pending + piece.numel()) // self.stream.block_samples
        self.compute.append(time.perf_counter() - started)
        self.chunks += 1
        self.heard += wav.size / rate
        self.peak = max(self.peak, float(np.abs(wav).max(initial=0.0)))
        self.clipped = self.clipped or clips(wav)
        if out.numel():
            self._outbox.put(out.numpy())

    def converted(self, poll: float = 0.2, idle: float = 10.0):
        """Yield each converted chunk, (M,) float32 at `sample_rate`, as it is ready, until `close` (the chunks
        queued by then included) or until nothing has come for `idle` seconds (the browser has gone)."""
        last = time.monotonic()
        while True:
            try:
                yield self._outbox.get(timeout=poll)
                last = time.monotonic()
            except queue.Empty:
                if self._closed.is_set() or time.monotonic() - last > idle:
                    return

    def close(self) -> None:
        """Stop: `converted` ends once what is queued has been handed out."""
        self._closed.set()

    @property
    def resampling_delay(self) -> float:
        """Seconds the resampler holds back (the look-ahead its filter needs), 0 at the model's rate."""
        held = self._resampler.lookahead + self._resampler.period_in / 2 if self._resampler else 0
        return held / (self.input_rate or self.sample_rate)

    def latency(self) -> dict[str, float]:
        """The measured latency in seconds, by part: the stream (block + look-ahead), the resampler, the chunk the
        browser sends (mean duration received), and the server's work per chunk (mean); "total" adds them."""
        parts = {"stream": self.stream.latency, "resampling": self.resampling_delay,
                 "chunks": self.heard / self.chunks if self.chunks else STREAM_EVERY,
                 "compute": sum(self.compute) / len(self.compute) if self.compute else 0.0}
        return {**parts, "total": sum(parts.values())}

    def status(self) -> str:
        """The Live tab's status line (Markdown): latency by part, blocks converted, load, input level."""
        parts = {key: value * 1000 for key, value in self.latency().items()}
        chunk_seconds = parts["chunks"] / 1000
        load = parts["compute"] / 1000 / chunk_seconds if chunk_seconds else 0.0
        rate = f"{self.input_rate} Hz" if self.input_rate else "the microphone's rate"
        text = (f"**Latency {parts['total']:.0f} ms** on the server: stream {parts['stream']:.0f} ms (block + "
                f"look-ahead) + Gradio's chunks {parts['chunks']:.0f} ms + compute {parts['compute']:.0f} ms per "
                f"chunk + resampling {parts['resampling']:.0f} ms ({rate} to {self.sample_rate} Hz); the browser's "
                f"player adds its own buffer (below). {self.blocks} blocks converted from {self.heard:.1f} s of "
                f"microphone in {self.chunks} chunks, compute {load:.0%} of real time; {self.vocoder_note}.")
        if self.heard >= 2 and self.peak < SILENT_PEAK:
            text += " **The microphone is silent**: check that the browser uses the right one."
        elif self.clipped:
            text += (" **The microphone clips** (its peaks are flattened at full scale): the conversion will sound "
                     "distorted.")
        return text


def _float_mono(samples: np.ndarray) -> np.ndarray:
    """A chunk as the browser sends it -> (N,) float32 in [-1, 1] (int16 scaled, channels averaged)."""
    wav = np.asarray(samples)
    wav = wav.astype(np.float32) / 32768.0 if wav.dtype.kind in "iu" else wav.astype(np.float32)
    return wav.mean(axis=1) if wav.ndim == 2 else wav.reshape(-1)


WARM_UP_NAME = "vc-app-warm-up"


def write_warm_up_clip(folder: Path, rate: int) -> Path:
    """FOLDER/vc-app-warm-up.wav: 1.5 s of a hummed tone at `rate`, enough to run every step once."""
    t = np.arange(int(1.5 * rate)) / rate
    clip = 0.3 * np.sin(2 * np.pi * 140 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return write_audio(folder / f"{WARM_UP_NAME}.wav", clip.astype(np.float32), rate, overwrite=True)


SIMILARITY_HELP = ("Speaker-similarity numbers need the `eval` extra (Resemblyzer): "
                   "`pip install -e '.[eval]'`, then restart the app.")


def similarity_available() -> bool:
    """Whether Resemblyzer (the `eval` extra) is installed."""
    return importlib.util.find_spec("resemblyzer") is not None


# -- pictures ---------------------------------------------------------------------------------
# A perceptually ordered dark-to-light palette (black, purple, red, orange, pale yellow), 256 steps.
_PALETTE_STOPS = np.array([[0, 0, 4], [59, 15, 112], [140, 41, 129], [222, 73, 104], [254, 159, 109],
                           [252, 253, 191]], dtype=np.float64)


def _palette() -> np.ndarray:
    x = np.linspace(0, 1, len(_PALETTE_STOPS))
    steps = np.linspace(0, 1, 256)
    return np.stack([np.interp(steps, x, _PALETTE_STOPS[:, c]) for c in range(3)], axis=1).astype(np.uint8)


def mel_picture(wav: torch.Tensor, mel: MelConfig, *, max_width: int = 900, row_height: int = 2,
                range_nats: float = 8.0) -> np.ndarray:
    """A log-mel spectrogram as an RGB picture, low frequencies at the bottom.

    Args:
        wav: (N,) waveform at `mel.sample_rate`.
        max_width: longer spectrograms are sampled down to this many columns.
        row_height: pixels per mel band.
        range_nats: the colour scale spans the loudest value down to this much lower (8 nats ~ 70 dB).
    Returns:
        (n_mels * row_height, min(T, max_width), 3) uint8.
    """
    wav = wav.float().flatten()
    if wav.numel() < mel.n_fft:
        wav = torch.nn.functional.pad(wav, (0, mel.n_fft - wav.numel()))
    log_mel = mel_spectrogram(wav, mel).numpy()  # (n_mels, T)
    top = float(log_mel.max())
    scaled = np.clip((log_mel - (top - range_nats)) / range_nats, 0.0, 1.0)
    columns = np.linspace(0, scaled.shape[1] - 1, min(scaled.shape[1], max_width)).round().astype(int)
    image = _palette()[(scaled[::-1, columns] * 255).astype(np.uint8)]
    return np.repeat(image, row_height, axis=0)


# -- small helpers ------------------------------------------------------------------------------
def _model_name(spec: str) -> str:
    path = Path(spec)
    return path.name if path.is_absolute() or path.exists() else spec


def _same_path(a: Path, b: str) -> bool:
    try:
        return a.resolve() == Path(b).resolve()
    except OSError:
        return False


def _slug(stem: str, limit: int = 40) -> str:
    """A file-name-safe piece of a stem: letters, digits, '-' and '_' only."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-_")[:limit] or "clip"


def _seconds(wav: torch.Tensor, rate: int) -> str:
    return f"{wav.numel() / rate:.1f} s"


def _without_paths(message: str, paths: Sequence[str]) -> str:
    """Replace server-side paths of uploads by their file names in a message meant for the user."""
    for path in sorted({str(p) for p in paths}, key=len, reverse=True):
        for spelling in {path, str(Path(path).resolve())}:
            message = message.replace(spelling, Path(path).name)
    return message
