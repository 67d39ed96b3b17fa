"""Safe weight loading, shared by model bundles (`vc_app.bundle`) and vocoders (`vc_app.vocoders.weights`).

A checkpoint is read only with `torch.load(weights_only=True)` (tensors and plain containers, never code),
and a state dict is compared with the model's own before `load_state_dict(strict=True)`, so a mismatch is
one sentence naming the keys or the shape.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from vc_app.errors import VcAppError


def torch_load_plain(path: Path) -> Any:
    """`torch.load(path, weights_only=True)` on the CPU: tensors and plain containers only, never code.

    Raises:
        VcAppError: the file needs arbitrary unpickling, or is not a torch checkpoint.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VcAppError(f"Refused to load {path}: it is not a plain-tensor checkpoint that loads with "
                         f"weights_only=True ({first[:160]}).") from None


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
