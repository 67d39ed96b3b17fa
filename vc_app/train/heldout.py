"""Held-out losses: how well a model reconstructs and converts speakers it never heard in training.

The recipes' stage 4 reports these on the unseen split (they need only the
model and a packed feature cache); `vc-app evaluate` adds the perceptual
protocol (Resemblyzer similarity, WER, MCD) when it is installed.

    rec               self-reconstruction L1, in the units of the training term "rec"
    rec_oneshot       reconstruction with the speaker vector of *another* clip of the same speaker
    cycle             L1 of A -> B -> A against A: the content survives a round trip
    content           L1 between the content codes of A and of A -> B: conversion keeps the content
    spk_cos_target    cosine of the converted clip's speaker vector to the target clip's
    spk_cos_source    ... and to the source clip's (leakage)
    closer_to_target  share of conversions whose speaker vector is closer to the target than to the source
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vc_app.features import FeatureCache
from vc_app.pairs import index_pairs


@torch.no_grad()
def heldout_losses(model, cache: FeatureCache, *, n_pairs: int = 100, max_frames: int = 512,
                   seed: int = 0) -> dict[str, float]:
    """Mean reconstruction and conversion measures (module docstring) over `n_pairs` seeded pairs.

    Args:
        model: an `AdaINVC`; it is put in eval mode.
        cache: the packed features of held-out speakers; clips are cut to `max_frames`.
    """
    model.eval()
    device = next(model.parameters()).device

    def clip(i: int) -> torch.Tensor:  # (1, n_mels, T)
        return torch.from_numpy(cache.utterance(i)[:, :max_frames].copy()).unsqueeze(0).to(device)

    def l1(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(F.l1_loss(model.scale(a), model.scale(b)))

    sums: dict[str, float] = {}
    pairs = index_pairs(list(cache.speakers), n_pairs, seed)
    for source, other, target in pairs:
        a, a2, b = clip(source), clip(other), clip(target)
        s_a, s_b = model.speaker(a), model.speaker(b)
        ab = model.convert(a, s_b)
        s_ab = model.speaker(ab)
        cos_t, cos_s = float(F.cosine_similarity(s_ab, s_b)), float(F.cosine_similarity(s_ab, s_a))
        values = {
            "rec": l1(model.unscale(model(a).recon), a),
            "rec_oneshot": l1(model.convert(a, model.speaker(a2)), a),
            "cycle": l1(model.convert(ab, s_a), a),
            "content": float(F.l1_loss(model.content(ab), model.content(a))),
            "spk_cos_target": cos_t,
            "spk_cos_source": cos_s,
            "closer_to_target": float(cos_t > cos_s),
        }
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v / len(pairs)
    return {**sums, "pairs": len(pairs), "speakers": len(set(cache.speakers))}
