"""Vocoder checkpoints: read safely, fuse weight norm, load strictly.

Upstream generators are trained with weight norm, so their checkpoints hold
each conv weight as a pair: `X.weight_g` / `X.weight_v` (torch.nn.utils.weight_norm)
or `X.parametrizations.weight.original0` / `original1` (the newer
parametrization). `fuse_weight_norm` turns each pair into the plain
`X.weight` = g * v / ||v|| our plain convs hold, once, at load time; already
fused checkpoints pass through unchanged.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vc_app.errors import VcAppError
from vc_app.state_dicts import check_state_dict, torch_load_plain

WEIGHT_NORM_PAIRS = ((".weight_g", ".weight_v"),
                     (".parametrizations.weight.original0", ".parametrizations.weight.original1"))


def read_state_dict(path: Path, *, key: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict in a torch checkpoint, loaded with weights_only=True.

    Args:
        key: the entry holding it ("generator" in jik876/BigVGAN files); None: the file is the state dict.
    Raises:
        VcAppError: unsafe or unreadable file, no such entry, or not a dict of tensors.
    """
    obj = torch_load_plain(path)
    if key is not None:
        if not isinstance(obj, dict) or key not in obj:
            raise VcAppError(f"{path} has no {key!r} entry; is it a generator checkpoint?")
        obj = obj[key]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise VcAppError(f"{path} does not hold a state dict of tensors.")
    return obj


def fuse_weight_norm(state: dict[str, torch.Tensor], origin: str = "the checkpoint") -> dict[str, torch.Tensor]:
    """Replace each weight-norm pair (g, v) by the weight g * v / ||v|| (norm over all dims but g's).

    Raises:
        VcAppError: half a pair is missing (the message names the missing key).
    """
    fused = dict(state)
    for g_suffix, v_suffix in WEIGHT_NORM_PAIRS:
        for key in [k for k in state if k.endswith(g_suffix) or k.endswith(v_suffix)]:
            if key not in fused:
                continue  # consumed as the partner of an earlier key
            base = key[: -len(g_suffix)] if key.endswith(g_suffix) else key[: -len(v_suffix)]
            g_key, v_key = base + g_suffix, base + v_suffix
            if g_key not in fused or v_key not in fused:
                have, lack = (g_key, v_key) if g_key in fused else (v_key, g_key)
                raise VcAppError(f"The weights in {origin} have {have} but not its pair: missing key {lack}.")
            g, v = fused.pop(g_key), fused.pop(v_key)
            dim = next((d for d in range(g.dim()) if g.shape[d] != 1), 0)
            fused[base + ".weight"] = torch._weight_norm(v.float(), g.float(), dim)
    return fused


def load_generator(model: nn.Module, state: dict[str, torch.Tensor], origin: str) -> nn.Module:
    """Fuse weight norm in `state` and load it into `model` strictly; returns the model in eval mode.

    Raises:
        VcAppError: a key is missing or unexpected, or a shape differs (the message names it).
    """
    state = fuse_weight_norm(state, origin)
    check_state_dict(model.state_dict(), state, f"The weights in {origin} do not fit its config")
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)
