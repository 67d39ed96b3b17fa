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
