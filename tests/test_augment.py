"""Training-data augmentation: new voices from few speakers, information perturbation, another segment, a noise
floor on the speaker input.

Each transform works on log-mels and must keep content and timing: frames stay frames, the
spectral envelope moves. Checked on a synthetic harmonic signal whose formant we know.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch


def harmonic_mel(seconds: float = 1.5, f0: float = 150.0, formant: float = 1000.0) -> np.ndarray:
    """Log-mel (80, T) of a harmonic tone with one formant-like spectral peak at `formant` Hz,
    silent for its last third (so timing can be checked)."""
    from vc_app.config import MelConfig
    from vc_app.mel import mel_spectrogram

    rate = MelConfig().sample_rate
    t = np.arange(int(seconds * rate)) / rate
    harmonics = np.arange(1, int(7000 / f0))
    amps = np.exp(-0.5 * ((harmonics * f0 - formant) / 250.0) ** 2) + 0.01
    wav = (amps[:, None] * np.sin(2 * np.pi * f0 * harmonics[:, None] * t)).sum(0)
    wav[int(len(wav) * 2 / 3):] = 0.0
    wav = 0.5 * wav / np.abs(wav).max()
    return mel_spectrogram(torch.from_numpy(wav).float(), MelConfig()).numpy()


def envelope_peak_hz(mel: np.ndarray, centres: np.ndarray) -> float:
    """Centre frequency of the strongest band of the time-averaged voiced part."""
    voiced = mel[:, : mel.shape[1] // 2].mean(axis=1)
    return float(centres[int(np.argmax(voiced))])


def test_formant_warp_moves_the_spectral_envelope_not_the_duration():
    from vc_app.config import MelConfig
    from vc_app.train.data import band_centres, tilt_mel, warp_mel

    centres = band_centres(MelConfig())
    mel = harmonic_mel(formant=1000.0)
    peak = envelope_peak_hz(mel, centres)
    assert 850 < peak < 1150
    for factor in (0.85, 1.2):
        warped = warp_mel(mel, factor, centres)
        assert warped.shape == mel.shape  # same frames: content timing untouched
        assert envelope_peak_hz(warped, centres) == pytest.approx(peak * factor, rel=0.08)
        # the silent last third stays silent: energy is not moved in time
        silent = mel.shape[1] * 2 // 3 + 4
        assert np.allclose(warped[:, silent:], mel[:, silent:], atol=1e-3)
    tilted = tilt_mel(mel, 6.0, centres)
    assert tilted.shape == mel.shape
    assert tilted[-1] - mel[-1] == pytest.approx(np.full(mel.shape[1], 6.0 / 20 * np.log(10)), abs=1e-5)
    assert np.allclose(tilted[0], mel[0], atol=0.01)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A packed cache of 3 speakers x 4 utterances of random smooth log-mels."""
    from vc_app.config import MelConfig
    from vc_app.corpus import Utterance
    from vc_app.features import FeatureCache, pack_features

    root = tmp_path_factory.mktemp("aug")
    rng = np.random.default_rng(0)
    utts = []
    (root / "utts").mkdir()
    for s in range(3):
        for n in range(4):
            utt_id = f"spk{s}_{n}"
            mel = np.cumsum(rng.standard_normal((80, 200 + 10 * n)).astype(np.float32), axis=1) * 0.05 - 5
            np.save(root / "utts" / f"{utt_id}.npy", mel)
            utts.append(Utterance(utt_id, f"spk{s}", f"{utt_id}.wav", ""))
    pack_features(utts, root, MelConfig())
    return FeatureCache.open(root)


def dataset(cache, seed=0, **data):
    from vc_app.config import MelConfig
    from vc_app.train.config import DataConfig
    from vc_app.train.data import SegmentDataset

    return SegmentDataset(cache, DataConfig(**{"segment_frames": 64, **data}), MelConfig(), seed)


def test_without_perturbation_all_three_inputs_are_the_segment(cache):
    mel, content, speaker_mel, speaker = dataset(cache, warp_range=(0.9, 1.1), gain_db=3.0)[(0, 5)]
    assert mel.shape == (80, 64) and speaker == 1
    assert content is mel and speaker_mel is mel


def test_information_perturbation_warps_only_the_content_input(cache):
    from vc_app.config import MelConfig
    from vc_app.train.data import band_centres

    plain = dataset(cache)[(0, 2)][0]
    mel, content, speaker_mel, _ = dataset(cache, content_warp_range=(0.8, 1.25))[(0, 2)]
    assert torch.equal(mel, plain) and speaker_mel is mel  # target and speaker input untouched
    assert content.shape == mel.shape and not torch.allclose(content, mel)
    # it is a frequency warp of the same frames: some factor in range reproduces it
    from vc_app.train.data import warp_mel

    centres = band_centres(MelConfig())
    errors = [np.abs(warp_mel(mel.numpy(), f, centres) - content.numpy()).max() for f in np.geomspace(0.8, 1.25, 4000)]
    assert min(errors) < 0.01 < 0.5 < errors[len(errors) // 2]  # a warp, not the identity


def test_pseudo_speakers_give_each_voice_a_fixed_warp_and_tilt(cache):
    from vc_app.train.config import DataConfig
    from vc_app.train.data import pseudo_speaker_voices

    cfg = DataConfig(pseudo_speakers=5, warp_range=(0.85, 1.18), tilt_db=4.0)
    voices = pseudo_speaker_voices(3, cfg, seed=7)
    assert voices == pseudo_speaker_voices(3, cfg, seed=7)  # fixed by the seed
    assert [len(v) for v in voices] == [5, 5, 5]
    assert all(v[0] == (1.0, 0.0) for v in voices)  # voice 0 is the real speaker
    factors = [f for v in voices for f, _ in v[1:]]
    assert all(0.85 <= f <= 1.18 for f in factors) and len(set(factors)) == len(factors)
    assert all(abs(t) <= 4.0 for v in voices for _, t in v)


def test_another_segment_comes_from_the_same_speaker_in_the_same_voice(cache):
    from vc_app.config import MelConfig
    from vc_app.train.data import band_centres, tilt_mel, warp_mel

    data = dataset(cache, pseudo_speakers=4, warp_range=(0.8, 1.25), tilt_db=6.0, speaker_segment="other")
    centres = band_centres(MelConfig())
    plain = dataset(cache)
    seen_other_utterance = False
    for i in range(len(data)):
        mel, content, speaker_mel, speaker = data[(3, i)]
        assert content is mel and speaker_mel.shape == mel.shape
        # the target is one of this speaker's voices applied to the plain segment
        base = plain[(3, i)][0].numpy()
        options = [tilt_mel(warp_mel(base, f, centres), t, centres) for f, t in data.voices[speaker]]
        assert min(np.abs(o - mel.numpy()).max() for o in options) < 1e-4
        seen_other_utterance |= not torch.equal(speaker_mel, mel)
    assert seen_other_utterance


def test_a_fresh_warp_per_item_is_the_same_for_the_target_and_the_speaker_input(cache):
    # segments as long as the longest utterance: one clip per speaker, so the "other" segment is the same frames
    data = dataset(cache, segment_frames=230, warp_range=(0.8, 1.25), speaker_segment="other")
    plain = dataset(cache, segment_frames=230)
    assert len(data) == 3
    for epoch in range(4):
        for i in range(3):
            mel, _, speaker_mel, _ = data[(epoch, i)]
            assert not torch.allclose(mel, plain[(epoch, i)][0], atol=1e-3)  # warped ...
            assert torch.equal(speaker_mel, mel)  # ... by the same factor for both


def test_a_noise_floor_sits_at_its_level_under_the_loudest_frame_and_leaves_the_speech():
    from vc_app.config import MelConfig
    from vc_app.models.adain_vc import frame_levels_db
    from vc_app.train.data import add_noise_floor, band_centres

    mel = harmonic_mel()  # its last third is digital silence
    centres = band_centres(MelConfig())
    silent = slice(mel.shape[1] * 2 // 3 + 6, None)  # past the window that still hears the tone
    for level in (-50.0, -30.0):
        for tilt in (-12.0, 0.0, 12.0):
            noisy = add_noise_floor(mel, level, tilt, centres, np.random.default_rng(1))
            levels = frame_levels_db(torch.from_numpy(noisy)[None])[0].numpy()
            assert noisy.shape == mel.shape and noisy.dtype == np.float32
            assert abs(levels[silent].mean() - level) < 1.0  # the pauses now sit at the floor
            assert np.all(noisy >= mel - 1e-5)  # power is only added
            voiced = mel[:, : mel.shape[1] // 2]
            assert np.abs(noisy[:, : mel.shape[1] // 2] - voiced)[voiced > voiced.max() - 2].max() < 0.01
    # the tilt: the top band's floor is `tilt` dB above the bottom band's (in the mean, over the silence)
    tilted = add_noise_floor(mel, -40.0, 12.0, centres, np.random.default_rng(2))[:, silent]
    rise_db = 20 / np.log(10) * (tilted[-1].mean() - tilted[0].mean())
    assert abs(rise_db - 12.0) < 1.5


def test_the_noise_floor_reaches_the_speaker_input_alone_and_changes_no_other_draw(cache):
    cfg = dict(pseudo_speakers=3, warp_range=(0.85, 1.18), tilt_db=3.0, gain_db=3.0)
    for segment in ("same", "other"):
        plain = dataset(cache, speaker_segment=segment, **cfg)
        noisy = dataset(cache, speaker_segment=segment, speaker_noise_db=(-20.0, -20.0), speaker_noise_tilt_db=0.0,
                        **cfg)
        for i in range(len(plain)):
            mel, _, speaker_mel, speaker = plain[(1, i)]
            mel2, content2, speaker_mel2, speaker2 = noisy[(1, i)]
            assert torch.equal(mel, mel2) and torch.equal(content2, mel2) and speaker == speaker2
            assert not torch.equal(speaker_mel2, mel2)
            # the same segment with noise added in power, on average 20 dB under its loudest frame's
            power, noisy_power = torch.exp(2 * speaker_mel.double()), torch.exp(2 * speaker_mel2.double())
            assert torch.all(noisy_power >= power * (1 - 1e-5))
            added_db = 10 * torch.log10((noisy_power - power).mean() / power.mean(0).max())
            assert abs(float(added_db) + 20.0) < 0.5


def test_augmented_items_are_reproducible_for_exact_resume(cache):
    cfg = dict(pseudo_speakers=3, warp_range=(0.85, 1.18), tilt_db=3.0, gain_db=3.0,
               content_warp_range=(0.8, 1.25), speaker_segment="other", speaker_noise_db=(-50.0, -25.0))
    a, b = dataset(cache, **cfg)[(2, 4)], dataset(cache, **cfg)[(2, 4)]
    for x, y in zip(a[:3], b[:3]):
        assert torch.equal(x, y)
    assert not torch.equal(dataset(cache, **cfg)[(3, 4)][0], a[0])


def test_bad_augmentation_settings_are_refused():
    from vc_app.errors import VcAppError
    from vc_app.train.config import load_config

    with pytest.raises(VcAppError, match="speaker_segment must be same or other"):
        load_config(None, ["data.speaker_segment=another"])
    with pytest.raises(VcAppError, match="content_warp_range must be two positive factors"):
        load_config(None, ["data.content_warp_range=[1.2, 0.8]"])
    with pytest.raises(VcAppError, match="speaker_noise_db must be two levels in dB"):
        load_config(None, ["data.speaker_noise_db=[-25, -50]"])
