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


class SpeakerIdentifier(nn.Module):
    """Tells the training voices apart from the speaker encoder's vector: the term that teaches the speaker
    encoder to separate the voices it hears (issue 33), as speaker-verification encoders are trained.

    A linear softmax classifier, trained with the model on the same cross-entropy ("spk_id"): its gradient
    reaches the speaker encoder through real segments only, so the decoder has no channel to game (the
    speaker-consistency term's fault, EXPERIMENTS.md). It is never part of a shipped bundle.
    """

    def __init__(self, c_speaker: int, n_speakers: int):
        super().__init__()
        self.out = nn.Linear(c_speaker, n_speakers)

    def forward(self, speaker: torch.Tensor) -> torch.Tensor:
        """speaker: (B, c_speaker) vectors -> (B, n_speakers) logits over the training voices."""
        return self.out(speaker)
