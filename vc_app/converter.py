"""Voice conversion: source clip + target clip(s) -> the source's words in the target's voice.

`VoiceConverter` is built once (bundle + vocoder) and reused: by the CLI, the
batch command and the web UI; `convert` is the one-call front door
(`vc_app.convert`), and `Converter` the protocol batch and evaluation type
against. Long sources are converted in overlapping
chunks joined with a raised-cosine cross-fade, so memory stays flat however
long the source is. The output keeps the source's loudness: its active-speech
RMS is matched to the source's, limited to a peak of 0.99.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import torch
import torch.nn.functional as F

from vc_app.audio import (
    MIN_SECONDS,
    SILENT_PEAK,
    AudioStream,
    active_rms,
    check_clip,
    match_loudness,
    peak_normalize,
    prepare_clip,
    write_audio,
)
from vc_app.bundle import Bundle, default_checkpoint, load_bundle
from vc_app.config import MelConfig
from vc_app.devices import resolve_device
from vc_app.errors import VcAppError
from vc_app.mel import mel_spectrogram
from vc_app.paths import check_output_path
from vc_app.vocoders import Vocoder, load_vocoder
from vc_app.voice import Voice, VoiceClip, blend, find_voice, is_voice_path, model_display_name, weights_sha256

if TYPE_CHECKING:
    from vc_app.models import AdaINVC

CHUNK_SECONDS = 20.0
OVERLAP_SECONDS = 1.0
TARGET_PIECE_SECONDS = 30.0


class Converter(Protocol):
    """What batch conversion (`vc_app.batch`) and evaluation (`vc_app.evaluate.runner`) use of a converter.

    `VoiceConverter` is the implementation; the protocol names the surface those callers rely on, so a
    test double or another front end can stand in for it.
    """

    bundle: Bundle
    vocoder: Vocoder
    model: AdaINVC
    mel_cfg: MelConfig
    device: torch.device
    sample_rate: int
    chunk: int  # samples converted in one piece; longer sources are streamed

    def speaker_vector(self, targets: Sequence) -> torch.Tensor: ...

    def convert(self, source, targets=None, *, speaker: torch.Tensor | None = None,
                voice: Voice | str | os.PathLike | None = None, progress: bool = False) -> torch.Tensor: ...

    def convert_many(self, sources: Sequence[torch.Tensor], speakers: torch.Tensor) -> list[torch.Tensor]: ...


class VoiceConverter:
    """A loaded model + vocoder that converts clips.

    Args:
        bundle: a loaded inference bundle.
        vocoder: a vocoder for the bundle's mel recipe.
        device: where the acoustic model runs.
        chunk_seconds / overlap_seconds: how long sources are split.
    """

    def __init__(self, bundle: Bundle, vocoder: Vocoder, *, device: torch.device | str = "cpu",
                 chunk_seconds: float = CHUNK_SECONDS, overlap_seconds: float = OVERLAP_SECONDS):
        self.bundle, self.vocoder = bundle, vocoder
        self.mel_cfg = bundle.mel
        self.device = torch.device(device)
        self.model = bundle.model.to(self.device).eval()
        self.sample_rate = self.mel_cfg.sample_rate
        hop = self.mel_cfg.hop_length
        self.chunk = max(int(chunk_seconds * self.sample_rate) // hop, 64) * hop
        self.overlap = min(max(int(overlap_seconds * self.sample_rate) // hop, 8) * hop, self.chunk // 2)
        if (vocoder.sample_rate, vocoder.hop_length, vocoder.n_mels) != (self.sample_rate, hop, self.mel_cfg.n_mels):
            raise VcAppError(f"The vocoder {vocoder.name} ({vocoder.sample_rate} Hz, hop {vocoder.hop_length}, "
                             f"{vocoder.n_mels} mels) does not match the model's mel recipe ({self.sample_rate} Hz, "
                             f"hop {hop}, {self.mel_cfg.n_mels} mels).")

    @classmethod
    def from_specs(cls, checkpoint: str | None = None, vocoder: str | None = None, *, device: str = "auto",
                   **kwargs) -> VoiceConverter:
        """Load the bundle (default: the shipped one) and the vocoder named by a spec string (default:
        `DEFAULT_VOCODER`, or Griffin-Lim with a notice when its package is missing)."""
        dev = resolve_device(device)
        spec = checkpoint or default_checkpoint()
        if checkpoint is None and not Path(spec).exists():
            raise VcAppError(f"The default checkpoint {spec} is missing; pass --checkpoint with a bundle "
                             f"folder or hub id.")
        bundle = load_bundle(spec, device=dev)
        return cls(bundle, load_vocoder(vocoder, bundle.mel, device=str(dev)), device=dev,
                   **kwargs)

    # -- speaker -----------------------------------------------------------------
    @cached_property
    def model_sha256(self) -> str:
        """SHA-256 of the model's weights: the identity a voice file is checked against."""
        return weights_sha256(self.model)

    @property
    def model_name(self) -> str:
        """The model's short name (bundle folder or hub id), as voice files and their errors name it."""
        return model_display_name(self.bundle.source)

    def _target_wav(self, target, index: int) -> torch.Tensor:
        if isinstance(target, torch.Tensor):
            return check_clip(target.float().flatten(), self.sample_rate, f"target clip {index + 1}", trim=True)
        return prepare_clip(target, self.sample_rate, "target", trim=True)

    def _target_mels(self, targets: Sequence) -> tuple[list[torch.Tensor], list[VoiceClip]]:
        """Log-mels of the target clips (each (n_mels, T), clips over 30 s in 30 s pieces) and what was analysed."""
        if not targets:
            raise VcAppError("At least one target clip is needed.")
        piece = int(TARGET_PIECE_SECONDS * self.sample_rate)
        mels, clips = [], []
        for i, target in enumerate(targets):
            wav = self._target_wav(target, i)
            name = f"clip {i + 1}" if isinstance(target, torch.Tensor) else Path(target).name
            clips.append(VoiceClip(name, wav.numel() / self.sample_rate))
            for start in range(0, wav.numel(), piece):
                part = wav[start:start + piece]
                if part.numel() >= self.mel_cfg.n_fft or start == 0:
                    mels.append(mel_spectrogram(part.to(self.device), self.mel_cfg))
        return mels, clips

    def _voice_target(self, targets: list) -> Voice | None:
        """The voice when `targets` is one voice (a `Voice` or a .voice path), checked against this model."""
        voices = [t for t in targets if isinstance(t, Voice) or is_voice_path(t)]
        if not voices:
            return None
        if len(targets) > 1:
            raise VcAppError("A target is either audio clips or one voice file, not several voices or a voice "
                             "with clips; to combine voices, blend them (--mix).")
        voice = voices[0] if isinstance(voices[0], Voice) else Voice.load(find_voice(voices[0]))
        voice.require_model(self.model_name, self.model_sha256, self.mel_cfg)
        return voice

    @staticmethod
    def _as_list(targets) -> list:
        return [targets] if isinstance(targets, (str, os.PathLike, torch.Tensor, Voice)) else list(targets)

    @torch.inference_mode()
    def speaker_vector(self, targets: Sequence) -> torch.Tensor:
        """Mean speaker vector of target clips (paths or (N,) waveforms at the model's rate) -> (c_speaker,).

        Clips longer than 30 s are analysed in 30 s pieces. `targets` may instead be one voice (a `Voice`
        or a `.voice` file made with this model): its stored vector is returned.
        """
        targets = self._as_list(targets)
        voice = self._voice_target(targets)
        if voice is not None:
            return voice.vector.to(self.device)
        return self.model.speaker_from_clips(self._target_mels(targets)[0])

    @torch.no_grad()  # not inference_mode: a kept vector must be usable anywhere later, autograd included
    def voice(self, targets, *, name: str | None = None) -> Voice:
        """Keep the voice of target clips: their speaker vector (as `speaker_vector`) and where it came from.

        Args:
            targets: clip paths or (N,) waveforms of one speaker; or one voice (loaded and checked).
            name: display name (default: the first clip's file stem).
        Returns:
            a `Voice` of this model; `voice.save(path)` keeps it, `convert(source, voice=voice)` uses it.
        """
        targets = self._as_list(targets)
        voice = self._voice_target(targets)
        if voice is None:
            mels, clips = self._target_mels(targets)
            vector = self.model.speaker_from_clips(mels).float().cpu()
            return Voice(name=name or Path(clips[0].name).stem, vector=vector, model=self.model_name,
                         model_sha256=self.model_sha256, mel=self.mel_cfg, clips=tuple(clips))
        return voice if name is None else dataclasses.replace(voice, name=name)

    def blend(self, parts: Sequence[tuple[object, float]], *, name: str | None = None) -> Voice:
        """A weighted mix of voices and/or clip sets: `sum_i w_i s_i` of their speaker vectors (see `vc_app.voice`).

        Args:
            parts: (targets, weight) pairs; targets as for `voice` (clips of one speaker, or one voice).
                Weights must be non-negative and not all zero; they are normalised to sum to 1.
            name: display name (default: e.g. "70% alice + 30% bob").
        """
        voices = [self.voice(targets) for targets, _ in parts]
        return blend(voices, [weight for _, weight in parts], name=name)

    # -- conversion ----------------------------------------------------------------
    @torch.inference_mode()
    def convert(self, source, targets=None, *, speaker: torch.Tensor | None = None,
                voice: Voice | str | os.PathLike | None = None, progress: bool = False) -> torch.Tensor:
        """Convert one source.

        Args:
            source: a path, an `AudioStream` of it (opened by a caller that has read its header), or a (N,)
                waveform at the model's rate.
            targets: path(s) or waveform(s) of the target voice, or one .voice file; or pass `speaker`/`voice`.
            speaker: a precomputed (c_speaker,) vector from `speaker_vector` (or a `Voice`'s `vector`).
            voice: a `Voice` or .voice file made with this model (checked; refused otherwise).
            progress: show chunks done and the time left on stderr (sources longer than one chunk).
        Returns:
            wav: (N,) float32 at `self.sample_rate`, as long as the source, at the source's loudness.
        """
        if voice is not None:
            speaker = self.speaker_vector([voice])
        if speaker is None:
            if targets is None:
                raise VcAppError("Give target clips or a speaker vector.")
            speaker = self.speaker_vector(targets)
        speaker = speaker.to(self.device)
        if not isinstance(source, torch.Tensor):
            stream = source if isinstance(source, AudioStream) else AudioStream(source, self.sample_rate)
            if stream.num_samples > self.chunk:
                return self._convert_stream(stream, speaker, progress)
            source = stream.load()
            name = f"source clip {stream.path.name}"
        else:
            name = "source clip"
        raw = source.float().flatten()
        wav = check_clip(raw, self.sample_rate, name, trim=False)
        out = self._convert_chunks(wav.numel(), lambda a, b: wav[a:b], speaker, progress)
        return match_loudness(out, active_rms(raw))

    @torch.inference_mode()
    def convert_many(self, sources: Sequence[torch.Tensor], speakers: torch.Tensor) -> list[torch.Tensor]:
        """Convert several waveforms with one model and vocoder call (GPU batching).

        Args:
            sources: raw (N_i,) waveforms at the model's rate, each already accepted by `check_clip`;
                similar lengths waste least (shorter ones are zero-padded to the longest).
            speakers: (B, c_speaker), one speaker vector per source.
        Returns:
            one (N_i,) waveform per source, at its source's loudness.
        """
        hop = self.mel_cfg.hop_length
        long = [i for i, s in enumerate(sources) if s.numel() > self.chunk]
        if len(sources) == 1 or long:
            return [self.convert(s, speaker=v) for s, v in zip(sources, speakers)]
        levels = [active_rms(s) for s in sources]
        width = max(s.numel() for s in sources)
        width += (-width) % hop
        batch = torch.stack([F.pad(peak_normalize(s.float()), (0, width - s.numel())) for s in sources])
        mel = mel_spectrogram(batch.to(self.device), self.mel_cfg)
        wav = self.vocoder(self.model.convert(mel, speakers.to(self.device))).float().cpu()
        return [match_loudness(w[:s.numel()], level) for w, s, level in zip(wav, sources, levels)]

    def _convert_stream(self, stream: AudioStream, speaker: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """A long file, read a chunk at a time: two passes (level, then conversion), flat memory."""
        name = f"source clip {stream.path.name}"
        peak, level, sounding = stream.level()
        if peak < SILENT_PEAK:
            raise VcAppError(f"The {name} is silent.")
        if sounding < MIN_SECONDS:
            raise VcAppError(f"The {name} has {sounding:.2f} s of sound; at least {MIN_SECONDS} s is needed.")
        gain = 0.95 / peak
        out = self._convert_chunks(stream.num_samples, lambda a, b: stream.read(a, b - a) * gain, speaker, progress)
        return match_loudness(out, level)

    def _convert_chunks(self, n: int, read, speaker: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """Convert n samples, `read(a, b)` giving samples [a, b); chunked with cross-faded overlaps.

        With `progress`, a bar on stderr counts the chunks and estimates the time left.
        """
        if n <= self.chunk:
            return self._convert_piece(read(0, n), speaker)
        step = self.chunk - self.overlap
        out = torch.zeros(n)
        fade_in = 0.5 - 0.5 * torch.cos(torch.linspace(0, math.pi, self.overlap))
        bar = _chunk_bar(-(-(n - self.chunk) // step) + 1, n / self.sample_rate) if progress else None
        for start in range(0, n, step):
            piece = self._convert_piece(read(start, min(start + self.chunk, n)), speaker)
            if start > 0:
                head = min(self.overlap, piece.numel())
                piece[:head] *= fade_in[:head]
                out[start:start + head] *= 1 - fade_in[:head]
            out[start:start + piece.numel()] += piece
            if bar is not None:
                bar.update(1)
            if start + self.chunk >= n:
                break
        if bar is not None:
            bar.close()
        return out

    def _convert_piece(self, wav: torch.Tensor, speaker: torch.Tensor) -> torch.Tensor:
        """wav: (M,) -> converted (M,): mel -> content -> AdaIN decoder -> vocoder."""
        hop = self.mel_cfg.hop_length
        m = wav.numel()
        padded = torch.nn.functional.pad(wav, (0, (-m) % hop + (hop if m < self.mel_cfg.n_fft else 0)))
        mel = mel_spectrogram(padded.to(self.device), self.mel_cfg).unsqueeze(0)
        converted = self.model.convert(mel, speaker.unsqueeze(0))
        return self.vocoder(converted)[0, :m].float().cpu()

    def convert_file(self, source: str | os.PathLike | AudioStream, targets: Sequence[str | os.PathLike | Voice],
                     output: str | os.PathLike, *, overwrite: bool = False, progress: bool = False,
                     fmt: str | None = None) -> Path:
        """Convert `source` to the voice of `targets` (clips, or one voice) and write `output` atomically
        (never over an input).

        Args:
            source: a path, or an `AudioStream` the caller opened (its header is not read again).
            progress: show chunks done and the time left on stderr (for sources longer than one chunk).
            fmt: the output format `paths.check_output_path` returned when the caller (an entry point) has
                checked `output` already; None: it is checked here, before converting.
        """
        if fmt is None:
            files = [t for t in self._as_list(targets) if isinstance(t, (str, os.PathLike))]
            path = source.path if isinstance(source, AudioStream) else source
            fmt = check_output_path(output, inputs=[path, *files], overwrite=overwrite)
        wav = self.convert(source, targets, progress=progress)
        return write_audio(output, wav, self.sample_rate, overwrite=overwrite, fmt=fmt, checked=True)


def convert(source: str | os.PathLike | torch.Tensor, target: str | os.PathLike | Voice | Sequence,
            output: str | os.PathLike | None = None, *, checkpoint: str | None = None, vocoder: str | None = None,
            device: str = "auto", overwrite: bool = False) -> torch.Tensor | Path:
    """One call: the source's words in the target's voice (`vc_app.convert`, the front door).

    Loads the model and vocoder on every call; to convert several clips, build a `VoiceConverter` once.

    Args:
        source: a clip (any format libsndfile reads), or a (N,) waveform at 22 050 Hz.
        target: a clip, several clips of one speaker, a .voice file or a `Voice`.
        output: where to write the result (.wav/.flac/.ogg, atomically, never over an input); None: return it.
        checkpoint, vocoder, device: as `vc-app convert` (default: the shipped model, the default vocoder, auto).
        overwrite: replace `output` if it exists.
    Returns:
        the path written, or the waveform (N,) float32 at 22 050 Hz, as long as the source.
    Raises:
        VcAppError: one sentence on anything wrong with the inputs, the output path or the model.
    """
    targets = VoiceConverter._as_list(target)
    fmt = None
    if output is not None:  # a bad output path is refused before the model loads
        files = [t for t in targets if isinstance(t, (str, os.PathLike))]
        inputs = [source, *files] if isinstance(source, (str, os.PathLike)) else files
        fmt = check_output_path(output, inputs=inputs, overwrite=overwrite)
    converter = VoiceConverter.from_specs(checkpoint, vocoder, device=device)
    if output is None:
        return converter.convert(source, targets)
    if isinstance(source, torch.Tensor):
        return write_audio(output, converter.convert(source, targets), converter.sample_rate, overwrite=overwrite,
                           fmt=fmt, checked=True)
    return converter.convert_file(source, targets, output, overwrite=overwrite, fmt=fmt)


def _chunk_bar(chunks: int, seconds: float):
    """A tqdm bar on stderr for a conversion of `chunks` chunks (`seconds` of audio)."""
    import sys

    from tqdm import tqdm

    return tqdm(total=chunks, unit="chunk", desc=f"converting {seconds / 60:.1f} min", file=sys.stderr,
                dynamic_ncols=True)
