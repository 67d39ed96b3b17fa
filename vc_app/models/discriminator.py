"""`MelDiscriminator`: is this log-mel spectrogram real speech, or the decoder's output?

The decoder's reconstruction objective is an L1 distance, which the average of what could be there
minimises: blurred harmonics and formants, a noise floor in the pauses. A discriminator judges what a
distance cannot. This one scores *patches* of the mel image (2-D convolutions over bands and frames, as
PatchGAN judges image patches; Isola et al. 2017), trained with least squares (Mao et al. 2017) or the
hinge loss; its hidden features also give the decoder a feature-matching distance (Salimans et al. 2016,
as HiFi-GAN uses it). With `speaker` it is conditioned on the speaker vector by projection (Miyato &
Koyama 2018): each patch's score adds the inner product of its features with a projection of the voice, so
it can also ask whether the mel sounds like *that* voice, which a plain discriminator does not reward.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrizations


def _normed(conv: nn.Conv2d, norm: str) -> nn.Module:
    if norm == "spectral":
        return parametrizations.spectral_norm(conv)
    if norm == "weight":
        return parametrizations.weight_norm(conv)
    return conv


class MelDiscriminator(nn.Module):
    """Patch scores for a (scaled) log-mel spectrogram.

    Args:
        c_h: channels of the first layer (doubling per layer, at most 4 * c_h); n_layers: convolution layers
            before the score layer, each halving bands and frames (4 layers: patches of about 31 bands x 31
            frames, 0.36 s, scored on a grid of 5 x 8 for an 80 x 128 segment); c_speaker: the speaker
            vector's size for projection conditioning (0 = unconditioned); norm: spectral | weight | none.

    Every layer strides: at full resolution the same network costs about 15 times the arithmetic, four times
    the AdaIN-VC step it judges (it runs four times a step: real and generated for its own update, both again
    for the decoder's terms).
    """

    def __init__(self, c_h: int = 16, n_layers: int = 4, c_speaker: int = 0, norm: str = "spectral"):
        super().__init__()
        if norm not in ("spectral", "weight", "none"):
            raise ValueError(f"discriminator norm must be spectral, weight or none, not {norm!r}")
        channels = [1] + [c_h * min(2 ** i, 4) for i in range(n_layers)]
        self.convs = nn.ModuleList(
            _normed(nn.Conv2d(channels[i], channels[i + 1], kernel_size=3, stride=2, padding=1),
                    norm)
            for i in range(n_layers))
        self.act = nn.LeakyReLU(0.2)
        self.score = _normed(nn.Conv2d(channels[-1], 1, kernel_size=3, padding=1), norm)
        self.project = nn.Linear(c_speaker, channels[-1], bias=False) if c_speaker > 0 else None

    def forward(self, mel: torch.Tensor, speaker: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """mel: (B, n_mels, T) scaled; speaker: (B, c_speaker), needed when conditioned.

        Returns:
            scores: (B, 1, n_mels', T') one per patch (real: high); features: each hidden layer's output.
        """
        h = mel.unsqueeze(1)
        features = []
        for conv in self.convs:
            h = self.act(conv(h))
            features.append(h)
        scores = self.score(h)
        if self.project is not None:
            if speaker is None:
                raise ValueError("this discriminator is conditioned on the speaker vector: pass one")
            scores = scores + (h * self.project(speaker)[:, :, None, None]).sum(dim=1, keepdim=True)
        return scores, features
