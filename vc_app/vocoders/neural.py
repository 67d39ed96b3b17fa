"""Neural vocoders behind the `Vocoder` interface, and the check that they speak our mel dialect.

A pretrained generator can only voice mels made the way its training mels
were. `check_mel` compares the recipe a checkpoint states (`TrainedMel`) with
ours and refuses a mismatch with one sentence naming it. One near-match is
accepted: vocoders trained on `center=True` frames (SpeechBrain), whose frame
t is centred at t * hop rather than our t * hop + hop / 2; their output is
delayed by that half hop to line up with ours, and a warning says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

from vc_app.config import MelConfig
from vc_app.errors import VcAppError

log = logging.getLogger(__name__)
T = TypeVar("T")

CHUNK_FRAMES = 1024  # ~12 s at 22.05 kHz: longer mels are vocoded in pieces so memory stays flat
CONTEXT_FRAMES = 48  # context each side of a piece: more than the receptive field (BigVGAN v2: ~35 frames)


@dataclass(frozen=True)
class TrainedMel:
    """The mel recipe a vocoder was trained on; None = not stated by the checkpoint (not checked)."""

    sample_rate: int | None
    hop_length: int
    n_mels: int
    n_fft: int | None = None
    win_length: int | None = None
    f_min: float | None = None
    f_max: float | None = None
    center: bool = False


def trained_mel_from_json(d: dict, hop_length: int, n_mels: int) -> TrainedMel:
    """The mel fields of a jik876/BigVGAN `config.json` (`fmax: null` means half the sample rate)."""
    rate = d.get("sampling_rate")
    f_max = d.get("fmax")
    if f_max is None and "fmax" in d and rate:
        f_max = rate / 2
    return TrainedMel(sample_rate=rate, hop_length=int(d.get("hop_size", hop_length)), n_mels=n_mels,
                      n_fft=d.get("n_fft"), win_length=d.get("win_size"), f_min=d.get("fmin"), f_max=f_max)


def check_mel(trained: TrainedMel, ours: MelConfig, name: str) -> int:
    """Refuse a vocoder trained on another mel recipe; return the output delay (samples) for a near-match.

    Raises:
        VcAppError: sample rate, hop, bands, FFT/window size, fmin or fmax differ (the message names them).
    """
    fields = (("sample rate", trained.sample_rate, ours.sample_rate, " Hz"),
              ("hop", trained.hop_length, ours.hop_length, ""),
              ("mel bands", trained.n_mels, ours.n_mels, ""),
              ("n_fft", trained.n_fft, ours.n_fft, ""),
              ("window", trained.win_length, ours.win_length, ""),
              ("fmin", trained.f_min, ours.f_min, " Hz"),
              ("fmax", trained.f_max, ours.f_max, " Hz"))
    wrong = [f"{label} {float(theirs):g}{unit} where ours is {float(mine):g}{unit}"
             for label, theirs, mine, unit in fields if theirs is not None and abs(float(theirs) - mine) > 1e-6]
    if wrong:
        raise VcAppError(
            f"The vocoder {name} was trained on another mel recipe ({', '.join(wrong)}), so it cannot voice "
            f"ours; use one trained on {ours.sample_rate} Hz, hop {ours.hop_length}, {ours.n_mels} bands, "
            f"{ours.f_min:g}-{ours.f_max:g} Hz, such as 'bigvgan:v2-22khz', or 'griffinlim'.")
    if not trained.center:
        return 0
    delay = ours.n_fft // 2 - (ours.n_fft - ours.hop_length) // 2
    log.warning("The vocoder %s was trained on centred mel frames (center=True); its output is delayed by %d "
                "samples to line up with vc_app's frames.", name, delay)
    return delay


class NeuralVocoder:
    """A HiFi-GAN / BigVGAN generator as a `Vocoder`.

    Args:
        generator: mel (B, n_mels, T) -> wav (B, 1, T * hop), weights fused, in eval mode.
        name: the spec string that built it.
        mel: our mel recipe (sample rate, hop and bands of the output).
        pad_frames: replicate-pad the mel by this many frames each side before the generator (SpeechBrain's
            inference padding); the samples they produce are trimmed off.
        delay: samples the output is delayed by (see `check_mel`).
        device: where the generator runs.
        chunk_frames / context_frames: mels longer than `chunk_frames` are vocoded in pieces of that many
            frames, each with `context_frames` of context on both sides (discarded), so memory stays flat.
        runner: what runs the generator instead of `generator` itself, with the same numbers (the ONNX Runtime
            session of `vc_app.vocoders.onnx_cpu`); None: the PyTorch module.
    """

    def __init__(self, generator: nn.Module, *, name: str, mel: MelConfig, pad_frames: int = 0, delay: int = 0,
                 device: str | torch.device = "cpu", chunk_frames: int = CHUNK_FRAMES,
                 context_frames: int = CONTEXT_FRAMES, runner=None):
        self.device = torch.device(device)
        self.generator = generator.to(self.device).eval()
        self.run = runner if runner is not None else self.generator
        self.backend = "onnxruntime" if runner is not None else "pytorch"
        self.name = name
        self.sample_rate, self.hop_length, self.n_mels = mel.sample_rate, mel.hop_length, mel.n_mels
        self.pad_frames, self.delay = pad_frames, delay
        self.chunk_frames, self.context_frames = chunk_frames, context_frames

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, T) natural-log mel -> wav (B, T * hop) in [-1, 1], on mel's device."""
        if mel.dim() != 3 or mel.shape[1] != self.n_mels or mel.shape[-1] < 1:
            raise VcAppError(f"The vocoder {self.name} needs mels of shape (batch, {self.n_mels}, frames), "
                             f"not {tuple(mel.shape)}.")
        x = mel.to(self.device, torch.float32)
        frames = x.shape[-1]
        pieces = [self._piece(x, start, min(start + self.chunk_frames, frames))
                  for start in range(0, frames, self.chunk_frames)]
        return torch.cat(pieces, dim=-1).to(mel.device)

    def _piece(self, mel: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Samples of frames [start, stop), vocoded with up to `context_frames` of context each side."""
        hop = self.hop_length
        first, last = max(start - self.context_frames, 0), min(stop + self.context_frames, mel.shape[-1])
        x = mel[..., first:last]
        if self.pad_frames:
            x = F.pad(x, (self.pad_frames, self.pad_frames), mode="replicate")
        wav = self.run(x).to(mel.device).squeeze(1)
        offset = (start - first + self.pad_frames) * hop - self.delay
        length = (stop - start) * hop
        if offset < 0:
            wav, offset = F.pad(wav, (-offset, 0)), 0
        wav = wav[..., offset:offset + length]
        return F.pad(wav, (0, length - wav.shape[-1])) if wav.shape[-1] < length else wav


def read_config_json(path: Path, origin: str, parse: Callable[[dict], T]) -> tuple[T, dict]:
    """A vocoder's `config.json` and what `parse` makes of it; what goes wrong reading or parsing it (not JSON,
    a missing or invalid field) becomes one sentence naming `origin`."""
    try:
        d = json.loads(Path(path).read_text())
        return parse(d), d
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VcAppError(f"The config.json of {origin} is not valid JSON ({err}).") from None
    except KeyError as err:
        raise VcAppError(f"The config.json of {origin} lacks the field {err.args[0]!r}.") from None
    except (TypeError, ValueError, AttributeError) as err:
        raise VcAppError(f"The config.json of {origin} is invalid ({err}).") from None
