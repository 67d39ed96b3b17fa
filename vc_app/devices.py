"""Where models run: the `--device` choice (auto, cpu, cuda) turned into a `torch.device`.

Shared by everything that loads a model or a vocoder (`VoiceConverter.from_specs`, `vc-app vocode`);
PyTorch is imported only when a device is resolved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vc_app.errors import VcAppError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is an error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise VcAppError("--device cuda was asked for, but PyTorch sees no CUDA GPU here.")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise VcAppError(f"Unknown device {device!r}: use cpu, cuda or auto.")
    return torch.device(device)
