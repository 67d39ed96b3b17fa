"""Griffin-Lim, the always-available vocoder: alignment with our mel frames, determinism, thread safety."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from vc_app.config import MelConfig
from vc_app.mel import mel_spectrogram
from vc_app.vocoders import load_vocoder

from conftest import synthetic_speech


def test_resynthesis_is_aligned_and_close_in_mel():
    cfg = MelConfig()
    wav = torch.from_numpy(synthetic_speech(2.0, cfg.sample_rate))
    wav = wav[: wav.numel() // 256 * 256]
    mel = mel_spectrogram(wav, cfg).unsqueeze(0)
    out = load_vocoder("griffinlim:32", cfg)(mel)[0]
    assert out.shape == wav.shape
    # the envelope lines up with the input (no half-frame shift): best lag of the energy curves is ~0
    env_in = np.convolve(wav.numpy() ** 2, np.ones(256), "same")
    env_out = np.convolve(out.numpy() ** 2, np.ones(256), "same")
    lags = range(-300, 301, 4)
    best = max(lags, key=lambda k: float(np.dot(env_in, np.roll(env_out, k))))
    assert abs(best) <= 32
    again = mel_spectrogram(out, cfg)
    assert float((again - mel[0]).abs()[:, 2:-2].mean()) < 1.0  # log-mel distance, nats


def test_deterministic_even_from_several_threads():
    cfg = MelConfig()
    vocoder = load_vocoder("griffinlim:8", cfg)
    mels = [mel_spectrogram(torch.from_numpy(synthetic_speech(1.0, cfg.sample_rate, seed=i)), cfg).unsqueeze(0)
            for i in range(4)]
    alone = [vocoder(m) for m in mels]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(vocoder, mels * 2))
    for i, out in enumerate(together):
        assert torch.equal(out, alone[i % 4])
