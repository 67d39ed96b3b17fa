"""Where models run: the `--device` choice (auto, cpu, cuda) turned into a `torch.device`, and how many CPU
threads PyTorch gets.

Shared by everything that loads a model or a vocoder (`VoiceConverter.from_specs`, `vc-app vocode`);
PyTorch is imported only when a device is resolved.
"""

from __future__ import annotations

import os
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


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, e.g. under taskset or a container's cpuset)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


def idle_cores() -> int:
    """The usable cores that other work is not already keeping busy: cores minus the 1-minute load average,
    at least 1."""
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows)
        busy = 0.0
    return max(1, min(usable_cores(), round(usable_cores() - busy)))


def default_threads(torch_default: int) -> int:
    """PyTorch's CPU threads when --threads is not given: its own choice (one per physical core), but no more
    than the cores that are idle.

    Why not PyTorch's choice alone: its OpenMP threads wait for each other at the end of every parallel
    operation, so one thread that another process keeps off its core stalls them all; on a busy 2-core
    machine two threads converted 3-7x slower than one.
    """
    return max(1, min(torch_default, idle_cores()))
