"""The one mel-spectrogram function (ARCHITECTURE.md, *The mel recipe*; its parameters: `config.MelConfig`).

Training features, inference, evaluation and the vocoders' resynthesis all
call `mel_spectrogram`; nothing else in the project computes a mel. It speaks
the dialect of the public jik876 HiFi-GAN and NVIDIA BigVGAN vocoders:
reflect-pad (n_fft - hop) / 2 each side, `torch.stft(center=False)`, periodic
Hann window, magnitude sqrt(re^2 + im^2 + 1e-9), a Slaney mel filterbank
(librosa's defaults), natural log of clamp(x, 1e-5). Frames = samples // hop.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from vc_app.config import MelConfig


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Slaney-scale, area-normalised mel filterbank, (n_mels, n_fft // 2 + 1), float32.

    librosa's default filterbank (`librosa.filters.mel`, within 1e-7), built by torchaudio, which is
    loaded anyway: importing librosa (and through it scipy.signal and scikit-learn) for it would slow every
    cold `vc-app convert`.
    Cached on every parameter; callers must not modify the returned tensor.
    """
    import torchaudio.functional as AF

    basis = AF.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm="slaney", mel_scale="slaney")
    return basis.T.contiguous().float()


def band_centres(cfg: MelConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band of the filterbank above, (n_mels,) float64.

    The Slaney scale (linear below 1 kHz, logarithmic above), `n_mels + 2` points evenly spaced in mel from
    f_min to f_max, ends dropped: `librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max)[1:-1]`.
    Written out so that training needs neither librosa nor a private torchaudio helper.
    """
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def to_mel(hz: float) -> float:
        return hz / f_sp if hz < min_log_hz else min_log_mel + np.log(hz / min_log_hz) / logstep

    mels = np.linspace(to_mel(cfg.f_min), to_mel(cfg.f_max), cfg.n_mels + 2)[1:-1]
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_spectrogram(wav: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Log-mel spectrogram of a waveform.

    Args:
        wav: (N,) or (B, N) float waveform in [-1, 1] at `cfg.sample_rate`.
        cfg: the mel recipe.
    Returns:
        log-mel: (n_mels, T) or (B, n_mels, T), T = N // hop_length.
    """
    squeeze = wav.dim() == 1
    batch = wav.unsqueeze(0) if squeeze else wav
    pad = (cfg.n_fft - cfg.hop_length) // 2
    if batch.shape[-1] <= pad:
        raise ValueError(f"waveform of {batch.shape[-1]} samples is too short for a mel frame")
    padded = torch.nn.functional.pad(batch.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    window = torch.hann_window(cfg.win_length, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(padded, cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                      window=window, center=False, normalized=False, onesided=True, return_complex=True)
    magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
    basis = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
    mel = torch.matmul(basis.to(device=wav.device, dtype=magnitude.dtype), magnitude)
    log_mel = torch.log(torch.clamp(mel, min=cfg.log_floor))
    return log_mel.squeeze(0) if squeeze else log_mel
