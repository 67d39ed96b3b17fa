"""Mel-cepstral distortion (MCD, dB) between a converted clip and a parallel reference, DTW-aligned.

Definition used here (all of it, so the numbers can be reproduced):
1. Both clips at 22 050 Hz, mono, leading and trailing silence trimmed (40 dB below the peak,
   `vc_app.audio.trim_silence`).
2. Log-mel: the project's one mel function (`vc_app.mel.mel_spectrogram`, ARCHITECTURE.md's mel recipe: 80 Slaney
   bands 0-8 kHz, n_fft 1024, hop 256; natural log of the mel *amplitude*).
3. Mel-cepstrum: the DCT-II of each frame's log-mel, scaled so that
   `log_mel[k] = c_0 + 2 * sum_m c_m cos(pi * m * (k + 1/2) / K)` (K = 80 bands), i.e. the
   cepstrum convention of SPTK; `c_1 .. c_24` are kept, `c_0` (loudness) is excluded.
4. Alignment: dynamic time warping (`librosa.sequence.dtw`, steps (1,1), (1,0), (0,1), equal
   weights) with the Euclidean distance between the 24-d cepstra.
5. MCD = mean over the aligned path of `10 / ln 10 * sqrt(2 * sum_m (c_m - c'_m)^2)`.
The cepstra come from a mel filterbank rather than SPTK's all-pass-warped `mcep`, so absolute values
are comparable between runs of this protocol, not with papers that use SPTK.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vc_app.audio import trim_silence
from vc_app.config import MelConfig
from vc_app.mel import mel_spectrogram

N_CEPSTRA = 24  # c_1 .. c_24
MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)


def mel_cepstrum(wav: torch.Tensor, mel_cfg: MelConfig, n_cepstra: int = N_CEPSTRA) -> np.ndarray:
    """wav: (N,) float at `mel_cfg.sample_rate` -> mel-cepstra c_1..c_n, (T, n_cepstra) float64."""
    from scipy.fft import dct

    log_mel = mel_spectrogram(wav.float().flatten(), mel_cfg).double().numpy()  # (n_mels, T)
    cepstra = dct(log_mel, type=2, axis=0) / (2 * mel_cfg.n_mels)  # scipy's DCT-II carries a factor 2
    return cepstra[1:n_cepstra + 1].T


def mcd_aligned(reference: np.ndarray, converted: np.ndarray) -> float:
    """DTW-aligned MCD (dB) of two mel-cepstrum sequences, (T1, D) and (T2, D), c_0 already excluded."""
    import librosa

    _, path = librosa.sequence.dtw(X=reference.T, Y=converted.T, metric="euclidean")
    diff = reference[path[:, 0]] - converted[path[:, 1]]
    return float(np.mean(MCD_SCALE * np.sqrt(np.sum(diff ** 2, axis=1))))


def mel_cepstral_distortion(reference: torch.Tensor, converted: torch.Tensor, mel_cfg: MelConfig) -> float:
    """MCD in dB between two waveforms (N,) at `mel_cfg.sample_rate` (the full definition above)."""
    ref = mel_cepstrum(trim_silence(reference.float().flatten()), mel_cfg)
    conv = mel_cepstrum(trim_silence(converted.float().flatten()), mel_cfg)
    return mcd_aligned(ref, conv)
