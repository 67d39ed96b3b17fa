"""DNSMOS naturalness (speechmos ONNX models run by onnxruntime): it ranks clean speech above noisy speech,
stays on the MOS scale, and its absence is one sentence in `vc-app evaluate`, not a traceback."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO

CLEAN = REPO / "vc_app" / "examples" / "vctk_p228_source.flac"  # real recorded speech, shipped


def test_clean_speech_scores_higher_than_the_same_speech_in_heavy_noise():
    pytest.importorskip("speechmos", reason="the eval extra is not installed")
    from vc_app.evaluate.naturalness import DNSMOS

    wav, rate = sf.read(str(CLEAN), dtype="float32")
    noise = np.random.default_rng(0).standard_normal(len(wav)).astype(np.float32)
    noisy = wav + noise * np.sqrt(np.mean(wav ** 2) / np.mean(noise ** 2))  # 0 dB SNR; may exceed 1: clipped
    dnsmos = DNSMOS()
    clean, dirty = dnsmos.score(wav, rate), dnsmos.score(noisy, rate)
    for value in (clean.p808, clean.ovrl, dirty.p808, dirty.ovrl):
        assert 1.0 <= value <= 5.0
    assert clean.p808 > dirty.p808 + 0.5 and clean.ovrl > dirty.ovrl + 0.5, (clean, dirty)


def test_without_speechmos_evaluate_says_not_measured_in_one_sentence(monkeypatch):
    import importlib.util

    from vc_app.evaluate import naturalness
    from vc_app.evaluate.report import naturalness_line
    from vc_app.evaluate.summary import evaluate_bars, naturalness_summary

    real = importlib.util.find_spec
    monkeypatch.setattr(naturalness.importlib.util, "find_spec",
                        lambda name, *a: None if name == "speechmos" else real(name, *a))
    missing = naturalness.dnsmos_missing()
    assert missing == "needs the package speechmos (part of the eval extra: pip install 'vc-app[eval]')"
    summary = {"speaker_similarity": {"n": 0, "share_closer_to_target": float("nan"), "margin": float("nan")},
               "intelligibility": {"n": 0, "wer_converted": 0.0, "wer_source": 0.0, "ratio": float("nan")},
               "disentanglement": {"measured": False, "reason": "x"},
               "naturalness": naturalness_summary([], missing)}
    bar = evaluate_bars(summary)[-1]
    assert bar.name == "DNSMOS P.808 of the converted clips" and bar.measured is None
    assert bar.status == f"not measured ({missing})"
    assert naturalness_line(summary["naturalness"]) == f"DNSMOS: not measured ({missing})"


# --- pause level and tail level (vc_app.evaluate.levels) --------------------------------------------------
HOP = 256  # MelConfig().hop_length
BURST_SIGMA, SOURCE_FLOOR_DB = 0.1, -50.0  # speech stand-in: white-noise bursts over a quiet noise floor


def noise(n: int, sigma: float, seed: int) -> np.ndarray:
    return (sigma * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def source_with_pauses() -> tuple[np.ndarray, int]:
    """Three noise bursts with pauses between them and after them, over a floor 50 dB down.

    Burst edges fall on samples 128 + k * 256, where every mel frame either misses a burst or holds a quarter
    of a window of it (so no frame sits in between, at -40..-50 dB): the pauses are pure floor and the expected
    levels are exact. Returns the clip and the sample where the last burst ends.
    """
    layout = [(40, False), (60, True), (40, False), (60, True), (40, False), (60, True), (60, False)]  # hops
    n = sum(hops for hops, _ in layout) * HOP
    wav = noise(n, BURST_SIGMA * 10 ** (SOURCE_FLOOR_DB / 20), seed=1)
    start = 128
    for i, (hops, burst) in enumerate(layout):
        if burst:
            wav[start:start + hops * HOP] += noise(hops * HOP, BURST_SIGMA, seed=10 + i)
            end = start + hops * HOP
        start += hops * HOP
    return wav, end


@pytest.mark.parametrize("added_db", [30.0, 12.0])
def test_pause_and_tail_level_come_out_at_the_noise_floor_put_in(added_db):
    import torch

    from vc_app.config import MelConfig
    from vc_app.evaluate.levels import pause_level, tail_level

    cfg = MelConfig()
    source, _ = source_with_pauses()
    # the output: the source with a second floor `added_db` above the source's own, and at another gain
    floor = noise(len(source), BURST_SIGMA * 10 ** ((SOURCE_FLOOR_DB + added_db) / 20), seed=2)
    output = torch.from_numpy(0.3 * (source + floor))
    expected = 10 * np.log10(1 + 10 ** (added_db / 10))  # floor power + source floor power, over the latter
    src = torch.from_numpy(source)
    assert pause_level(src, output, cfg) == pytest.approx(expected, abs=1.0)
    assert tail_level(src, output, cfg) == pytest.approx(expected, abs=1.0)
    assert abs(pause_level(src, 0.3 * src, cfg)) < 0.01 and abs(tail_level(src, 0.3 * src, cfg)) < 0.01


def test_tail_level_sees_a_burst_after_the_last_word_and_the_pause_level_its_own_span():
    import torch

    from vc_app.config import MelConfig
    from vc_app.evaluate.levels import pause_level, tail_level

    cfg = MelConfig()
    source, end = source_with_pauses()
    output = source.copy()
    output[end:] += noise(len(source) - end, BURST_SIGMA * 10 ** ((SOURCE_FLOOR_DB + 20) / 20), seed=3)
    src, out = torch.from_numpy(source), torch.from_numpy(output)
    assert tail_level(src, out, cfg) == pytest.approx(10 * np.log10(1 + 100), abs=1.0)
    # the pauses: 40 + 40 + 40 hops of the source's own floor and 60 of the tail's, less the frames at edges
    assert 3.0 < pause_level(src, out, cfg) < 10 * np.log10(1 + 100) * 60 / 180 + 1.0


def test_clips_without_pauses_or_tail_are_left_out():
    import torch

    from vc_app.config import MelConfig
    from vc_app.evaluate.levels import pause_level, tail_level

    cfg = MelConfig()
    speech = torch.from_numpy(noise(100 * HOP, BURST_SIGMA, seed=4))  # sound from the first frame to the last
    assert np.isnan(pause_level(speech, speech, cfg)) and np.isnan(tail_level(speech, speech, cfg))
