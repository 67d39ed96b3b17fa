"""Run a fused HiFi-GAN generator with ONNX Runtime on the CPU: the same numbers, faster.

HiFi-GAN V1 spends most of its CPU time in convolutions, and ONNX Runtime's
CPU kernels run them faster than eager PyTorch does (TorchScript freezing and
`optimize_for_inference` did not; bench/convert_speed.py times the pipelines,
bench/results/convert_speed.md keeps the runs with their machines), with
outputs equal up to float32 rounding. So on CPU the generator is exported once
to ONNX (opset 17, dynamic length) into the user cache, keyed by the weights'
SHA-256 and the PyTorch version, checked against PyTorch on a test mel, and
run from there.
Anything missing or failing (no `onnx`/`onnxruntime`, an unwritable cache, a
mismatch) keeps the PyTorch generator; nothing changes but the speed.
A generator with a step ONNX cannot express (the inverse FFT of the fast
vocoder, `vc_app.vocoders.convnext_istft`) exports the part before it
(`exported`) and keeps that step in PyTorch (`finish`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger(__name__)

OPSET = 17
CHECK_FRAMES = 40
CHECK_TOLERANCE = 1e-3  # float32 differences between the two runtimes are ~1e-5


class OnnxGenerator:
    """An ONNX Runtime session that behaves like the generator: mel (B, n_mels, T) -> wav (B, 1, T * hop).

    Args:
        finish: what turns the session's output into the waveform, in PyTorch (None: it is the waveform).
    """

    def __init__(self, path: Path, threads: int, finish: Callable[[torch.Tensor], torch.Tensor] | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path, self.finish = path, finish
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        out = torch.from_numpy(self.session.run(None, {"mel": mel.detach().float().contiguous().cpu().numpy()})[0])
        return out if self.finish is None else self.finish(out)


def cache_path(weights_sha256: str, tag: str = "") -> Path:
    """Where the exported model of these weights lives: <user cache>/vc-app/vocoders/<tag><sha>-torch<version>.onnx."""
    from platformdirs import user_cache_dir

    version = torch.__version__.split("+")[0]
    name = f"{tag}{weights_sha256[:16]}-torch{version}-opset{OPSET}.onnx"
    return Path(user_cache_dir("vc-app")) / "vocoders" / name


def _export(generator: nn.Module, n_mels: int, path: Path) -> None:
    """Export `generator` to `path` atomically (a temp file beside it, then renamed)."""
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(generator, (torch.zeros(1, n_mels, CHECK_FRAMES),), str(tmp), input_names=["mel"],
                              output_names=["wav"], dynamic_axes={"mel": {0: "batch", 2: "frames"},
                                                                  "wav": {0: "batch", 2: "samples"}},
                              opset_version=OPSET, dynamo=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def onnx_generator(generator: nn.Module, n_mels: int, weights_sha256: str, *, exported: nn.Module | None = None,
                   finish: Callable[[torch.Tensor], torch.Tensor] | None = None,
                   tag: str = "") -> OnnxGenerator | None:
    """The generator under ONNX Runtime (exported on first use), or None when that is not possible here.

    The session is checked against PyTorch on a fixed random mel before it is used.
    Args:
        exported: the module to export (default: `generator`); `finish` turns its output into the waveform.
        tag: a prefix of the cached file's name, telling exports of different parts apart.
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        log.debug("onnxruntime is not installed: the vocoder runs in PyTorch")
        return None
    path = cache_path(weights_sha256, tag)
    try:
        if not path.is_file():
            import onnx  # noqa: F401 - the exporter needs it

            log.info("preparing the vocoder for ONNX Runtime (once): %s", path)
            _export(generator if exported is None else exported, n_mels, path)
        runner = OnnxGenerator(path, torch.get_num_threads(), finish)
        mel = torch.randn(1, n_mels, CHECK_FRAMES, generator=torch.Generator().manual_seed(0)) - 4
        with torch.inference_mode():
            expected = generator(mel)
        if (runner(mel) - expected).abs().max().item() > CHECK_TOLERANCE:
            path.unlink(missing_ok=True)
            log.warning("The ONNX export of the vocoder differs from PyTorch; using PyTorch.")
            return None
        return runner
    except Exception as err:  # noqa: BLE001 - any failure only costs speed
        log.debug("ONNX Runtime not used for the vocoder (%s: %s)", type(err).__name__, err)
        return None
