"""Safe weight loading, shared by model bundles (`vc_app.bundle`) and vocoders (`vc_app.vocoders.weights`).

A checkpoint is read only with `torch.load(weights_only=True)` (tensors and plain containers, never code),
and a state dict is compared with the model's own before `load_state_dict(strict=True)`, so a mismatch is
one sentence naming the keys or the shape.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from vc_app.errors import VcAppError


def torch_load_plain(path: Path) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU: tensors and plain containers only, never code.

    Raises:
        VcAppError: the file is not a torch checkpoint, or needs arbitrary unpickling.
    """
    if not _looks_like_torch_save(path):
        raise VcAppError(f"Cannot load {path}: it is not a PyTorch checkpoint (torch.save writes a zip archive "
                         "or a pickle, and this is neither).")
    try:
        with warnings.catch_warnings():  # a damaged file's "unusual pickle protocol" warnings say nothing more
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged pickle fails in many ways (IndexError, KeyError, ...)
        raise VcAppError(f"Cannot load {path}: it is damaged, or holds more than plain tensors and would need "
                         f"unsafe unpickling (weights_only=True refused it: {_reason(err)}).") from None


def _looks_like_torch_save(path: Path) -> bool:
    """Whether the file starts like something `torch.save` writes: a zip archive, or a pickle (legacy format)."""
    import zipfile

    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
        return zipfile.is_zipfile(path) or (len(head) == 2 and head[0] == pickle.PROTO[0] and 2 <= head[1] <= 5)
    except OSError as err:
        raise VcAppError(f"Cannot read {path} ({err.strerror}).") from None


def _reason(err: Exception, limit: int = 160) -> str:
    """The part of a loading error that says what was wrong, whole words only.

    torch's weights-only refusal is a paragraph about `weights_only` defaults; its reason is the line after
    "WeightsUnpickler error:" (e.g. "Unsupported global: GLOBAL foo.Bar").
    """
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    marker = next((i for i, line in enumerate(lines) if "WeightsUnpickler error:" in line), None)
    if marker is not None:
        tail = lines[marker].split("WeightsUnpickler error:", 1)[1].strip()
        lines = [tail] if tail else lines[marker + 1:marker + 2]
    text = lines[0].split(". ", 1)[0].rstrip(".") if lines else ""  # its first sentence
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text


def check_state_dict(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], problem: str) -> None:
    """Raise a `VcAppError` "<problem>: missing keys ...; unexpected keys ..." (or the first wrong shape).

    Args:
        expected: the model's own state dict; state: the one to load into it.
    """
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_names(unexpected)}")
        raise VcAppError(f"{problem}: {'; '.join(parts)}.")
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        k = wrong[0]
        raise VcAppError(f"{problem}: {k} has shape {tuple(state[k].shape)}, the model expects "
                         f"{tuple(expected[k].shape)}.")


def _names(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")
