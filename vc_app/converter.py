"""Voice conversion: source clip + target voice -> the source's words in the target's voice.

`VoiceConverter` is built once (bundle + vocoder) and reused: by the CLI, the
batch command, evaluation and the web UI; `convert` is the one-call front door
(`vc_app.convert`). The target is always a `Voice` (`VoiceConverter.voice(clips)`,
`Voice.load(path)`, `blend`), checked against the model. Long sources are
converted in overlapping chunks joined with a raised-cosine cross-fade, so memory
stays flat however long the source is. The output keeps the source's loudness:
its active-speech RMS is matched to the source's, limited to a peak of 0.99.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from vc_app.audio import (
    AudioStream,
    active_rms,
    check_clip,
    check_sound,
    match_loudness,
    peak_normalize,
    prepare_clip,
    write_audio,
)
from vc_app.bundle import Bundle, default_checkpoint, load_bundle, weights_sha256
from vc_app.devices import resolve_device
from vc_app.errors import VcAppError
from vc_app.mel import mel_spectrogram
from vc_app.paths import check_output_path
from vc_app.targets import load_target
from vc_app.vocoders import Vocoder, load_vocoder
from vc_app.voice import Voice, VoiceClip

if TYPE_CHECKING:
    from vc_app.config import StreamConfig
    from vc_app.streaming import StreamingConverter

CHUNK_SECONDS = 20.0
OVERLAP_SECONDS = 1.0
TARGET_PIECE_SECONDS = 30.0


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

    # -- the target voice ----------------------------------------------------------
    @cached_property
    def model_sha256(self) -> str:
        """SHA-256 of the model's weights: the identity a voice file is checked against."""
        return weights_sha256(self.model)

    def _target_mels(self, clips: list) -> tuple[list[torch.Tensor], list[VoiceClip]]:
        """Log-mels of the target clips (each (n_mels, T), clips over 30 s in 30 s pieces) and what was analysed."""
        if not clips:
            raise VcAppError("At least one target clip is needed.")
        piece = int(TARGET_PIECE_SECONDS * self.sample_rate)
        mels, analysed = [], []
        for i, clip in enumerate(clips):
            if isinstance(clip, torch.Tensor):
                wav, name = check_clip(clip.float().flatten(), self.sample_rate, f"target clip {i + 1}", trim=True), \
                    f"clip {i + 1}"
            else:
                wav, name = prepare_clip(clip, self.sample_rate, "target", trim=True), Path(clip).name
            analysed.append(VoiceClip(name, wav.numel() / self.sample_rate))
            for start in range(0, wav.numel(), piece):
                part = wav[start:start + piece]
                if part.numel() >= self.mel_cfg.n_fft or start == 0:
                    mels.append(mel_spectrogram(part.to(self.device), self.mel_cfg))
        return mels, analysed

    @torch.no_grad()  # not inference_mode: a kept vector must be usable anywhere later, autograd included
    def voice(self, clips: Sequence[str | os.PathLike | torch.Tensor] | str | os.PathLike | torch.Tensor, *,
              name: str | None = None) -> Voice:
        """The voice of target clips of one speaker: the mean of their speaker vectors, and where it came from.

        Args:
            clips: paths, or (N,) waveforms at the model's rate; clips over 30 s are analysed in 30 s pieces.
            name: display name (default: the first clip's file stem).
        Returns:
            a `Voice` of this model; `voice.save(path)` keeps it, `convert(source, voice)` uses it.
        """
        clips = [clips] if isinstance(clips, (str, os.PathLike, torch.Tensor)) else list(clips)
        mels, analysed = self._target_mels(clips)
        vector = self.model.speaker_from_clips(mels).float().cpu()
        return Voice(name=name or Path(analysed[0].name).stem, vector=vector, model=self.bundle.name,
                     model_sha256=self.model_sha256, mel=self.mel_cfg, clips=tuple(analysed))

    def check_voice(self, voice: Voice) -> None:
        """Refuse, in one sentence naming both models, a voice that was made with another model."""
        voice.require_model(self.bundle.name, self.model_sha256, self.mel_cfg)

    def _speaker(self, voice: Voice) -> torch.Tensor:
        """The voice's (c_speaker,) vector on the model's device, once it is known to belong to this model."""
        self.check_voice(voice)
        return voice.vector.to(self.device)

    # -- conversion ----------------------------------------------------------------
    @torch.inference_mode()
    def convert(self, source: str | os.PathLike | AudioStream | torch.Tensor, voice: Voice, *,
                progress: bool = False) -> torch.Tensor:
        """Convert one source into `voice`.

        Args:
            source: a path, an `AudioStream` of it (opened by a caller that has read its header), or a (N,)
                waveform at the model's rate.
            voice: the target, made with this model (refused, naming both models, otherwise).
            progress: show chunks done and the time left on stderr (sources longer than one chunk).
        Returns:
            wav: (N,) float32 at `self.sample_rate`, as long as the source, at the source's loudness.
        """
        speaker = self._speaker(voice)
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
    def convert_many(self, sources: Sequence[torch.Tensor], voices: Sequence[Voice]) -> list[torch.Tensor]:
        """Convert several waveforms with one model and vocoder call (GPU batching).

        Args:
            sources: raw (N_i,) waveforms at the model's rate, each already accepted by `check_clip`;
                similar lengths waste least (shorter ones are zero-padded to the longest).
            voices: one target voice per source.
        Returns:
            one (N_i,) waveform per source, at its source's loudness.
        """
        hop = self.mel_cfg.hop_length
        long = [i for i, s in enumerate(sources) if s.numel() > self.chunk]
        if len(sources) == 1 or long:
            return [self.convert(s, v) for s, v in zip(sources, voices)]
        speakers = torch.stack([self._speaker(v) for v in voices])
        levels = [active_rms(s) for s in sources]
        width = max(s.numel() for s in sources)
        width += (-width) % hop
        batch = torch.stack([F.pad(peak_normalize(s.float()), (0, width - s.numel())) for s in sources])
        mel = mel_spectrogram(batch.to(self.device), self.mel_cfg)
        wav = self.vocoder(self.model.convert(mel, speakers)).float().cpu()
        return [match_loudness(w[:s.numel()], level) for w, s, level in zip(wav, sources, levels)]

    def stream(self, voice: Voice, config: StreamConfig | None = None) -> StreamingConverter:
        """A live converter into `voice`: `push(block) -> block` at a constant `latency` (seconds).

        Args:
            voice: the target, made with this model; its vector is computed once, here.
            config: block, context and look-ahead sizes (default: `vc_app.config.StreamConfig()`).
        """
        from vc_app.streaming import StreamingConverter

        return StreamingConverter(self.model, self.vocoder, self._speaker(voice), self.mel_cfg, config)

    def _convert_stream(self, stream: AudioStream, speaker: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """A long file, read a chunk at a time: two passes (level, then conversion), flat memory."""
        peak, level, sounding = stream.level()
        check_sound(peak, sounding, f"source clip {stream.path.name}")
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
        bar = _chunk_bar(-(-(n - self.chunk) // step) + 1, n / self.sample_rate, show=progress)
        for start in range(0, n, step):
            piece = self._convert_piece(read(start, min(start + self.chunk, n)), speaker)
            if start > 0:
                head = min(self.overlap, piece.numel())
                piece[:head] *= fade_in[:head]
                out[start:start + head] *= 1 - fade_in[:head]
            out[start:start + piece.numel()] += piece
            bar.update(1)
            if start + self.chunk >= n:
                break
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
    targets: list = [target] if isinstance(target, (str, os.PathLike, torch.Tensor, Voice)) else list(target)
    if output is not None:  # a bad output path is refused before the model loads
        check_output_path(output, inputs=[s for s in (source, *targets) if isinstance(s, (str, os.PathLike))],
                          overwrite=overwrite)
    converter = VoiceConverter.from_specs(checkpoint, vocoder, device=device)
    voice = target if isinstance(target, Voice) else load_target(targets, converter.voice)
    wav = converter.convert(source, voice)
    return wav if output is None else write_audio(output, wav, converter.sample_rate, overwrite=overwrite)


def _chunk_bar(chunks: int, seconds: float, *, show: bool):
    """A tqdm bar on stderr for a conversion of `chunks` chunks (`seconds` of audio); silent unless `show`."""
    import sys

    from tqdm import tqdm

    return tqdm(total=chunks, unit="chunk", desc=f"converting {seconds / 60:.1f} min", file=sys.stderr,
                dynamic_ncols=True, disable=not show)
