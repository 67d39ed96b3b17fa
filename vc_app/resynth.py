"""Vocoding on its own: a saved mel, or a clip's own mel, through one vocoder into a file.

Owns the arrows ".npy mel -> vocoder -> file" and "clip -> mel -> vocoder ->
file" (resynthesis), so a vocoder's quality can be heard apart from the
voice-conversion model. A clip keeps its length and its active-speech level.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vc_app.audio import active_rms, check_clip, load_audio, match_loudness, write_audio
from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.mel import mel_spectrogram
from vc_app.vocoders import Vocoder, load_vocoder

MEL_SUFFIX = ".npy"


def read_mel(path: str | os.PathLike, mel: MelConfig) -> torch.Tensor:
    """A saved log-mel (.npy, shape (n_mels, T) or (1, n_mels, T)) -> (1, n_mels, T) float32.

    Raises:
        VcAppError: missing, not a plain .npy array, wrong shape, or not finite.
    """
    path = Path(path)
    if not path.is_file():
        raise VcAppError(f"{path} does not exist.")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise VcAppError(f"{path} is not a readable .npy array ({str(err).splitlines()[0]}).") from None
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2 or array.shape[0] != mel.n_mels or array.shape[1] < 1:
        hint = " (transpose it)" if array.ndim == 2 and array.shape[-1] == mel.n_mels else ""
        raise VcAppError(f"{path} holds an array of shape {array.shape}; a mel of shape ({mel.n_mels}, frames) "
                         f"is needed{hint}.")
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise VcAppError(f"{path} must hold finite floating-point log-mel values.")
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).unsqueeze(0)


def resynthesize(wav: torch.Tensor, vocoder: Vocoder, mel: MelConfig) -> torch.Tensor:
    """wav: (N,) at mel.sample_rate -> our mel -> vocoder -> (N,) float32 on the CPU."""
    n = wav.numel()
    padded = F.pad(wav, (0, (-n) % mel.hop_length))
    return vocoder(mel_spectrogram(padded, mel).unsqueeze(0))[0, :n].float().cpu()


def vocode_file(source: str | os.PathLike, output: str | os.PathLike, spec: str, mel: MelConfig, *,
                device: str = "cpu", overwrite: bool = False) -> Path:
    """Vocode `source` (a .npy mel, or an audio clip to resynthesise) with vocoder `spec` into `output`
    (checked by the caller, `vc-app vocode`, before anything loads).

    Raises:
        VcAppError: bad input, unknown or unavailable vocoder, or an output that cannot be written.
    """
    source = Path(source)
    if source.suffix.lower() == MEL_SUFFIX:
        log_mel = read_mel(source, mel)
        wav = load_vocoder(spec, mel, device=device)(log_mel)[0].float().cpu()
    else:
        raw = load_audio(source, mel.sample_rate)
        clip = check_clip(raw, mel.sample_rate, f"input clip {source.name}", trim=False)
        wav = match_loudness(resynthesize(clip, load_vocoder(spec, mel, device=device), mel), active_rms(raw))
    return write_audio(output, wav, mel.sample_rate, overwrite=overwrite)
