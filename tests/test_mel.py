"""The one mel function: the project's mel recipe (ARCHITECTURE.md), checked against a librosa-built reference."""

import inspect

import librosa
import numpy as np
import pytest
import torch

from vc_app.config import MelConfig
from vc_app.mel import mel_spectrogram


def librosa_reference(wav: np.ndarray, cfg: MelConfig) -> np.ndarray:
    """Recipe J written independently with numpy + librosa: reflect pad, centre-less STFT, Slaney mels, log."""
    pad = (cfg.n_fft - cfg.hop_length) // 2
    y = np.pad(wav.astype(np.float64), (pad, pad), mode="reflect")
    spec = librosa.stft(y, n_fft=cfg.n_fft, hop_length=cfg.hop_length, win_length=cfg.win_length,
                        window="hann", center=False)
    magnitude = np.sqrt(np.abs(spec) ** 2 + 1e-9)
    basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.f_min,
                                fmax=cfg.f_max, htk=False, norm="slaney")
    return np.log(np.maximum(basis @ magnitude, cfg.log_floor))


@pytest.mark.parametrize("n_samples", [22050, 22050 * 2 + 77, 5000])
def test_matches_librosa_reference(n_samples):
    cfg = MelConfig()
    rng = np.random.default_rng(n_samples)
    t = np.arange(n_samples) / cfg.sample_rate
    wav = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n_samples)
    ours = mel_spectrogram(torch.from_numpy(wav.astype(np.float32)), cfg).numpy()
    ref = librosa_reference(wav.astype(np.float32), cfg)
    assert ours.shape == (80, n_samples // 256) == ref.shape
    assert np.max(np.abs(ours - ref)) < 1e-4


@pytest.mark.parametrize("f_min, f_max, n_mels", [(0.0, 8000.0, 80), (80.0, 7600.0, 80), (0.0, 11025.0, 128)])
def test_band_centres_are_librosas_mel_frequencies(f_min, f_max, n_mels):
    """The augmentations' band centres: librosa's Slaney points of the filterbank, without importing librosa."""
    from vc_app.mel import band_centres

    cfg = MelConfig(f_min=f_min, f_max=f_max, n_mels=n_mels)
    expected = librosa.mel_frequencies(n_mels + 2, fmin=f_min, fmax=f_max)[1:-1]
    np.testing.assert_allclose(band_centres(cfg), expected, rtol=1e-12, atol=1e-9)


def test_batch_equals_single_and_silence_hits_the_floor():
    cfg = MelConfig()
    wavs = torch.randn(3, 8192) * 0.1
    batch = mel_spectrogram(wavs, cfg)
    assert batch.shape == (3, 80, 32)
    assert torch.allclose(batch[1], mel_spectrogram(wavs[1], cfg), atol=1e-5)
    silent = mel_spectrogram(torch.zeros(4096), cfg)
    assert torch.allclose(silent, torch.full_like(silent, np.log(1e-5)))


def test_training_features_and_inference_use_the_same_function(monkeypatch, tmp_path, speech_clips, tiny_bundle):
    """Both code paths must go through vc_app.mel.mel_spectrogram (one function, everywhere)."""
    import vc_app.converter
    import vc_app.features
    import vc_app.mel

    calls = []
    real = vc_app.mel.mel_spectrogram

    def spy(wav, cfg):
        calls.append(inspect.stack()[1].function)
        return real(wav, cfg)

    monkeypatch.setattr(vc_app.mel, "mel_spectrogram", spy)
    monkeypatch.setattr(vc_app.converter, "mel_spectrogram", spy)
    feature = vc_app.features.utterance_mel(str(speech_clips["target"]), MelConfig())
    assert calls == ["utterance_mel"]
    from vc_app.converter import VoiceConverter

    converter = VoiceConverter.from_specs(str(tiny_bundle), "griffinlim:2", device="cpu")
    voice = converter.voice([speech_clips["target"]])
    assert "_target_mels" in calls  # the voice's analysis of the target clips
    converter.convert(speech_clips["source"], voice)
    assert "_convert_piece" in calls
    # the same clip analysed by both paths gives the same mel
    from vc_app.audio import prepare_clip

    wav = prepare_clip(speech_clips["target"], 22050, "target", trim=True)
    assert np.allclose(real(wav, MelConfig()).numpy(), feature, atol=1e-6)
