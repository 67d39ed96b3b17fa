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

import torch

from vc_app.config import MelConfig


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> torch.Tensor:
    """Slaney-scale, area-normalised mel filterbank, (n_mels, n_fft // 2 + 1), float32.

    librosa's default filterbank (`librosa.filters.mel`, within 1e-7), built by torchaudio, which is
    loaded anyway: importing librosa for it cost a cold `vc-app convert` over a second.
    Cached on every parameter; callers must not modify the returned tensor.
    """
    import torchaudio.functional as AF

    basis = AF.melscale_fbanks(n_fft // 2 + 1, f_min, f_max, n_mels, sample_rate, norm="slaney", mel_scale="slaney")
    return basis.T.contiguous().float()


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
