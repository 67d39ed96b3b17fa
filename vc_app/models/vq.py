"""`VectorQuantizer`: the optional discrete bottleneck on the content code.

VQ-VAE (van den Oord et al. 2017): every content vector is replaced by its
nearest codebook entry; gradients pass straight through; a commitment loss
keeps the encoder near its codes. The codebook learns either by exponential
moving averages (EMA, the default) or by a codebook loss. Codes unused for a
while ("dead") are reset to random encoder outputs of the current batch.

Under DistributedDataParallel every process must keep the same codebook: the
EMA statistics are summed over all processes, and codes that are (re)set from
encoder outputs take process 0's picks. Quantisation runs in float32 even
under autocast (nearest-neighbour distances in float16 pick wrong codes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class VQOutput:
    """What one quantisation step returns.

    quantized: (B, D, T) straight-through codes; codes: (B, T) indices;
    commitment / codebook: scalar losses (codebook is 0 with EMA);
    perplexity: exp(entropy) of code use in the batch; usage: share of codes used.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor
    codebook: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


class VectorQuantizer(nn.Module):
    embedding: torch.Tensor  # (codebook_size, D), a buffer in EMA mode, else a parameter
    embedding_sum: torch.Tensor
    cluster_size: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, codebook_size: int, dim: int, *, ema: bool = True, decay: float = 0.99,
                 dead_code_threshold: float = 1e-3, eps: float = 1e-5):
        super().__init__()
        self.codebook_size, self.dim, self.ema = codebook_size, dim, ema
        self.decay, self.dead_code_threshold, self.eps = decay, dead_code_threshold, eps
        init = torch.randn(codebook_size, dim)
        if ema:
            self.register_buffer("embedding", init)
            self.register_buffer("embedding_sum", init.clone())
        else:
            self.embedding = nn.Parameter(init)
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def forward(self, z: torch.Tensor) -> VQOutput:
        """z: (B, D, T) continuous content code -> VQOutput."""
        with torch.autocast(z.device.type, enabled=False):
            return self._quantize(z.float())

    def _quantize(self, z: torch.Tensor) -> VQOutput:
        flat = z.permute(0, 2, 1).reshape(-1, self.dim)
        if self.training and not bool(self.initialized):
            self._init_from(flat.detach())
        codes = self.nearest(flat)
        chosen = F.embedding(codes, self.embedding)
        if self.training:
            self._update(flat.detach(), codes)
        commitment = F.mse_loss(flat, chosen.detach())
        codebook = flat.new_zeros(()) if self.ema else F.mse_loss(chosen, flat.detach())
        quantized_flat = flat + (chosen - flat).detach()
        b, _, t = z.shape
        quantized = quantized_flat.reshape(b, t, self.dim).permute(0, 2, 1)
        counts = torch.bincount(codes, minlength=self.codebook_size).float()
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
        usage = (counts > 0).float().mean()
        return VQOutput(quantized, codes.reshape(b, t), commitment, codebook, perplexity, usage)

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """flat: (N, D) -> (N,) index of the nearest codebook entry (squared L2)."""
        distances = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.embedding.t()
                     + self.embedding.pow(2).sum(1).unsqueeze(0))
        return distances.argmin(dim=1)

    @torch.no_grad()
    def _init_from(self, flat: torch.Tensor) -> None:
        picks = _from_first_process(flat[torch.randint(0, flat.shape[0], (self.codebook_size,), device=flat.device)])
        self.embedding.data.copy_(picks)
        if self.ema:
            self.embedding_sum.copy_(picks)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """Track code use (both modes), move codes by EMA (EMA mode), reset dead codes."""
        onehot = F.one_hot(codes, self.codebook_size).type(flat.dtype)
        counts = _sum_over_processes(onehot.sum(0))
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.ema:
            self._ema_move(_sum_over_processes(onehot.t() @ flat))
        self._reset_dead_codes(flat)

    def _ema_move(self, sums: torch.Tensor) -> None:
        """sums: (codebook_size, D) sum of the encoder outputs assigned to each code in this step."""
        self.embedding_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n
        self.embedding.copy_(self.embedding_sum / smoothed.unsqueeze(1))

    @torch.no_grad()
    def _reset_dead_codes(self, flat: torch.Tensor) -> None:
        dead = self.cluster_size < self.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        picks = _from_first_process(flat[torch.randint(0, flat.shape[0], (n_dead,), device=flat.device)])
        self.embedding.data[dead] = picks
        if self.ema:
            self.embedding_sum[dead] = picks
        self.cluster_size[dead] = 1.0


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def _sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` summed over every process of the job (itself when not distributed)."""
    if _distributed():
        tensor = tensor.contiguous()
        torch.distributed.all_reduce(tensor)
    return tensor


def _from_first_process(tensor: torch.Tensor) -> torch.Tensor:
    """Process 0's `tensor` (same shape on every process); itself when not distributed."""
    if _distributed():
        tensor = tensor.contiguous()
        torch.distributed.broadcast(tensor, src=0)
    return tensor
