"""The `Vocoder` interface every backend implements."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch


@runtime_checkable
class Vocoder(Protocol):
    """Turns log-mels of our recipe into waveforms.

    Attributes:
        name: the spec string that built it (shown to users).
        sample_rate, hop_length, n_mels: what it expects and produces.
    """

    name: str
    sample_rate: int
    hop_length: int
    n_mels: int

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, T) natural-log mel -> wav: (B, T * hop_length) float in [-1, 1]."""
        ...
