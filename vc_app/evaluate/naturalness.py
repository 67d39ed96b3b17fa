"""Naturalness without listeners: DNSMOS (Reddy et al. 2021/2022), a MOS predictor trained on human ratings.

The `speechmos` package ships Microsoft's DNSMOS ONNX models (`model_v8.onnx`
for the ITU-T P.808 MOS, `sig_bak_ovr.onnx` for the P.835 SIG/BAK/OVRL
scores); `onnxruntime` runs them. Both are in the `eval` extra. Clips are
resampled to 16 kHz and clipped to [-1, 1] first, as the models expect; a clip
shorter than the models' 9.01 s window is repeated to fill it (their own rule).
Scores lie on the 1-5 MOS scale, higher is more natural. DNSMOS only measures;
it is never part of a model or its losses.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DNSMOS_RATE = 16000
DNSMOS_PACKAGES = ("speechmos", "onnxruntime")


@dataclass(frozen=True)
class Naturalness:
    """DNSMOS of one clip: the P.808 MOS and the P.835 overall quality (OVRL), both on 1-5."""

    p808: float
    ovrl: float


NOT_MEASURED = Naturalness(float("nan"), float("nan"))


def dnsmos_missing() -> str:
    """'' when DNSMOS can run here, else one sentence saying what to install (nothing is imported)."""
    missing = [name for name in DNSMOS_PACKAGES if importlib.util.find_spec(name) is None]
    if not missing:
        return ""
    return (f"needs the package{'s' if len(missing) > 1 else ''} {' and '.join(missing)} (part of the eval extra: "
            f"pip install 'vc-app[eval]')")


class DNSMOS:
    """The DNSMOS models, loaded once (ONNX Runtime sessions on the CPU).

    Raises:
        ImportError: speechmos or onnxruntime is not installed (check `dnsmos_missing()` first).
    """

    def __init__(self, threads: int | None = None) -> None:
        import onnxruntime as ort
        from speechmos import dnsmos

        models = Path(dnsmos.__file__).resolve().parent / "dnsmos_models"
        options = ort.SessionOptions()  # as many threads as PyTorch, and no busy-waiting on a shared CPU
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # speechmos's class, with sessions built here (its own constructor takes no session options)
        self._model = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)
        self._model.primary_model_path = str(models / "sig_bak_ovr.onnx")
        self._model.onnx_sess = ort.InferenceSession(self._model.primary_model_path, options,
                                                     providers=["CPUExecutionProvider"])
        self._model.p808_onnx_sess = ort.InferenceSession(str(models / "model_v8.onnx"), options,
                                                          providers=["CPUExecutionProvider"])

    def score(self, wav: torch.Tensor | np.ndarray, sample_rate: int) -> Naturalness:
        """wav: (N,) mono at `sample_rate` -> its DNSMOS (NaN for an empty clip)."""
        from vc_app.audio import resample

        wav = torch.as_tensor(wav, dtype=torch.float32).flatten()
        if wav.numel() == 0:
            return NOT_MEASURED
        if sample_rate != DNSMOS_RATE:
            wav = resample(wav, sample_rate, DNSMOS_RATE)
        audio = wav.clamp(-1.0, 1.0).numpy().astype(np.float64)
        scores = self._model(audio, DNSMOS_RATE, False)
        return Naturalness(float(scores["p808_mos"]), float(scores["ovrl_mos"]))


def mean_naturalness(values: list[Naturalness]) -> Naturalness:
    """Mean P.808 and OVRL over the clips that were measured (NaN when none was)."""
    kept = [v for v in values if math.isfinite(v.p808)]
    if not kept:
        return NOT_MEASURED
    return Naturalness(float(np.mean([v.p808 for v in kept])), float(np.mean([v.ovrl for v in kept])))
