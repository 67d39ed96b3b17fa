"""`SpeakerClassifier`: the adversary of Chou et al. (2018) on the content code.

It tries to tell the speaker from the content code; training alternates a
classifier step with an encoder step that pushes the classifier's output
towards uniform, so speaker information is driven out of the content code.
"""

from __future__ import annotations

import torch
from torch import nn

from vc_app.models.blocks import SameConv1d, activation


class SpeakerClassifier(nn.Module):
    def __init__(self, c_in: int, c_h: int, n_speakers: int, n_layers: int = 3, kernel_size: int = 5,
                 act: str = "lrelu"):
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n_layers):
            layers += [SameConv1d(c_in if i == 0 else c_h, c_h, kernel_size), activation(act)]
        self.convs = nn.Sequential(*layers)
        self.out = nn.Linear(c_h, n_speakers)

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        """content: (B, c_in, T') -> speaker logits (B, n_speakers)."""
        return self.out(self.convs(content).mean(dim=-1))
