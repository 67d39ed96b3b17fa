"""Building blocks shared by the AdaIN-VC encoders and decoder.

Each block is written once: the conv bank and the residual conv block serve
both encoders; `AdaIN` is the decoder's conditioning mechanism, named after
the paper (Huang & Belongie 2017; Chou et al. 2019).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def activation(name: str) -> nn.Module:
    """'relu' or 'lrelu' (slope 0.2)."""
    if name == "relu":
        return nn.ReLU()
    if name == "lrelu":
        return nn.LeakyReLU(0.2)
    raise ValueError(f"unknown activation {name!r}")


class SameConv1d(nn.Conv1d):
    """A 1-D convolution that pads its input so the output keeps ceil(T / stride) steps.

    Padding is reflective (no artificial edges in spectra); inputs too short to
    reflect fall back to edge replication.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, C_in, T) -> (B, C_out, ceil(T/stride))
        k = self.kernel_size[0]
        left, right = k // 2, (k - 1) // 2
        if left or right:
            mode = "reflect" if x.shape[-1] > max(left, right) else "replicate"
            x = same_dtype_pad(x, (left, right), mode)
        return super().forward(x)


def same_dtype_pad(x: torch.Tensor, pad: tuple[int, int], mode: str) -> torch.Tensor:
    """`F.pad` that keeps x's dtype under autocast.

    CPU autocast widens reflection padding to float32; the convolution after it narrows the copy back
    to bfloat16. Padding only copies values, so keeping the dtype gives the same numbers with two full
    copies of the activation fewer per convolution (forward and backward).
    """
    with torch.autocast(x.device.type, enabled=False):
        return F.pad(x, pad, mode=mode)


class InstanceNorm(nn.InstanceNorm1d):
    """Instance normalisation over time, no affine: zero mean, unit variance per channel.

    This is what strips utterance-level (speaker) statistics from the content path. Given `active` frames,
    the mean and variance are those of the active frames alone, and every frame is normalised by them
    (`ModelConfig.norm_stats`): silence then cannot pull the statistics towards itself.
    """

    def __init__(self, channels: int):
        super().__init__(channels, affine=False, track_running_stats=False)

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None,
                running: RunningStats | None = None) -> torch.Tensor:
        """x: (B, C, T); active: None (statistics over every frame) or (B, 1, T0) bool at a resolution
        T0 >= T, pooled to T by `frames_at`; running: a stream's statistics carried over from its earlier
        windows (`RunningStats`) -> (B, C, T)."""
        if running is not None:
            return running.normalize(x, None if active is None else frames_at(active, x.shape[-1]), self.eps)
        if active is None:
            return super().forward(x)
        return active_instance_norm(x, frames_at(active, x.shape[-1]), self.eps)


class RunningStats:
    """The statistics over time of every instance norm, carried from window to window of a stream.

    Offline, each norm takes its mean and variance over the whole clip. A stream converts each block again
    in a window of about 1.6 s (`StreamingConverter`), whose own statistics follow the few words in it: they
    renormalise every window, and the words come out less clear (issue "Live conversion": WER +43 % relative
    against offline). Instead each norm keeps a running average of its windows' per-channel mean and mean
    square and normalises by that: cumulative over the stream's first `frames` frames, then exponential
    with that time constant, so the statistics settle like the whole clip's but still follow a voice or a
    room that changes.

    A window weighs by how full it is (`start`) times its share of active steps, so the short windows at the
    stream's start and pauses (for a model with `norm_stats: active`) count for little; a window with fewer
    than `MIN_ACTIVE_STEPS` active steps leaves the averages as they are. Norms are told apart by the order
    a forward pass calls them in. Not thread-safe: one per stream.

    Args:
        frames: the time constant in frames (> 0).
        block_frames: the frames each new window adds to what the stream has heard.
        window_frames: the frames of a full window (context + block + look-ahead).
    """

    def __init__(self, frames: int, block_frames: int, window_frames: int):
        if min(frames, block_frames, window_frames) <= 0:
            raise ValueError("running statistics need a positive time constant, block and window")
        self.floor = min(1.0, block_frames / frames)  # the exponential average's weight of one full window
        self.window_frames = window_frames
        self.reset()

    def reset(self) -> None:
        """Forget every window: the next pass starts a new stream."""
        self.slots: list[list[torch.Tensor]] = []  # per norm, in call order: mean, mean square, weight (B, ., 1)
        self.calls, self.fullness = 0, 1.0

    def start(self, frames: int) -> None:
        """A forward pass over the stream's next window of `frames` frames begins (its first norm is next)."""
        self.calls, self.fullness = 0, min(1.0, frames / self.window_frames)

    def normalize(self, x: torch.Tensor, active: torch.Tensor | None, eps: float) -> torch.Tensor:
        """Fold this window's statistics into the norm's running ones and normalise x by them.

        x: (B, C, T); active: None or (B, 1, T) bool -> (B, C, T) in x's dtype (computed in float32).
        """
        with torch.autocast(x.device.type, enabled=False):
            h = x.float()
            w = torch.ones_like(h[:, :1]) if active is None else active.to(h.dtype)
            count = w.sum(-1, keepdim=True)  # (B, 1, 1)
            mean = (h * w).sum(-1, keepdim=True) / count.clamp_min(1)
            square = (h * h * w).sum(-1, keepdim=True) / count.clamp_min(1)
            weight = torch.where(count >= MIN_ACTIVE_STEPS, count / h.shape[-1] * self.fullness, 0.0)
            if self.calls == len(self.slots):
                self.slots.append([mean, square, weight])
            else:
                slot = self.slots[self.calls]
                total = slot[2] + weight
                # until a window has counted, each window is normalised by its own statistics (as offline)
                a = torch.where(total > 0, torch.maximum(weight / total.clamp_min(1e-12), weight * self.floor), 1.0)
                slot[:] = [slot[0] + a * (mean - slot[0]), slot[1] + a * (square - slot[1]), total]
            mean, square, _ = self.slots[self.calls]
            self.calls += 1
            return ((h - mean) * torch.rsqrt((square - mean ** 2).clamp_min(0) + eps)).to(x.dtype)


def active_instance_norm(x: torch.Tensor, active: torch.Tensor, eps: float) -> torch.Tensor:
    """Normalise x (B, C, T) by the mean and (biased) variance of its active frames, active: (B, 1, T) bool.

    A clip with fewer than `MIN_ACTIVE_STEPS` active steps is normalised over all of its steps: the variance
    of one or two steps is about 0, and dividing every other step by its root blows them up (a 128-frame
    training segment with 7 active frames, a single step at the decoder's coarsest resolution, turned the
    output infinite). Computed in float32 (the sums over time lose too much in bfloat16); returned in x's
    dtype.
    """
    with torch.autocast(x.device.type, enabled=False):
        h = x.float()
        w = enough_active(active.to(h.dtype))
        count = w.sum(-1, keepdim=True)
        mean = (h * w).sum(-1, keepdim=True) / count
        var = ((h - mean).pow(2) * w).sum(-1, keepdim=True) / count
        return ((h - mean) * torch.rsqrt(var + eps)).to(x.dtype)


def frames_at(active: torch.Tensor, steps: int) -> torch.Tensor:
    """A frame mask (B, 1, T0) at `steps` <= T0 time steps -> (B, 1, steps) bool.

    Step i covers frames [i * f, (i + 1) * f), f = ceil(T0 / steps) (frames past T0 are inactive); it is active
    when any frame it covers is. The model's paths subsample by whole factors of a padded length, so each
    step covers exactly the frames it was computed from.
    """
    frames = active.shape[-1]
    if steps == frames:
        return active
    if steps > frames:
        raise ValueError(f"a mask of {frames} frames cannot cover {steps} steps")
    factor = -(-frames // steps)
    padded = F.pad(active.float(), (0, factor * steps - frames))
    return F.max_pool1d(padded, factor) > 0


def active_mean(h: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    """The mean over time of h (B, C, T): of every step, or of the active ones (`frames_at`) -> (B, C)."""
    if active is None:
        return h.mean(dim=-1)
    w = enough_active(frames_at(active, h.shape[-1]).to(h.dtype))
    return (h * w).sum(-1) / w.sum(-1)


MIN_ACTIVE_STEPS = 4  # fewer active steps than this: statistics over every step (`active_instance_norm`)


def enough_active(w: torch.Tensor) -> torch.Tensor:
    """Frame weights (B, 1, T), 1 on active steps, or 1 everywhere for a clip with under `MIN_ACTIVE_STEPS`."""
    return torch.where(w.sum(-1, keepdim=True) >= MIN_ACTIVE_STEPS, w, torch.ones_like(w))


class AdaIN(nn.Module):
    """Adaptive instance normalisation: AdaIN(x, s) = gamma(s) * IN(x) + beta(s).

    The speaker vector can only set each channel's mean (beta) and standard
    deviation (gamma) over time; it cannot add time-varying content. With `active` frames the mean and
    deviation set are those of the active frames (`InstanceNorm`).
    """

    def __init__(self, channels: int, c_cond: int):
        super().__init__()
        self.norm = InstanceNorm(channels)
        self.affine = nn.Linear(c_cond, 2 * channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, active: torch.Tensor | None = None,
                running: RunningStats | None = None) -> torch.Tensor:
        """x: (B, C, T), cond: (B, c_cond), active: None or (B, 1, T0 >= T) bool, running: a stream's
        `RunningStats` -> (B, C, T)."""
        gamma, beta = self.style(cond)
        return gamma.unsqueeze(-1) * self.norm(x, active, running) + beta.unsqueeze(-1)

    def style(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-channel (gamma, beta), each (B, C), predicted from cond (B, c_cond)."""
        beta, gamma = self.affine(cond).chunk(2, dim=-1)
        return gamma, beta


class ConvBank(nn.Module):
    """Convolutions of widths bank_scale..bank_size in parallel, concatenated with the input."""

    def __init__(self, c_in: int, c_bank: int, bank_size: int, bank_scale: int, act: str):
        super().__init__()
        self.convs = nn.ModuleList(
            SameConv1d(c_in, c_bank, kernel_size=k) for k in range(bank_scale, bank_size + 1, bank_scale)
        )
        self.act = activation(act)
        self.out_channels = c_bank * len(self.convs) + c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, c_in, T) -> (B, out_channels, T)."""
        bank = [self.act(conv(x)) for conv in self.convs]
        # Under autocast the bank is bfloat16: join x in that dtype, as the next convolution would read it,
        # rather than widening the whole concatenation to float32 and narrowing it again.
        return torch.cat(bank + [x.to(bank[0].dtype)], dim=1)


class ConvBlock(nn.Module):
    """Two convolutions with a residual path; the second may subsample by `stride`.

    With `norm` the block instance-normalises after each convolution (content
    encoder); without it the statistics are kept (speaker encoder).
    """

    def __init__(self, channels: int, kernel_size: int, stride: int, act: str, dropout: float, norm: bool):
        super().__init__()
        self.conv1 = SameConv1d(channels, channels, kernel_size)
        self.conv2 = SameConv1d(channels, channels, kernel_size, stride=stride)
        self.norm = InstanceNorm(channels) if norm else nn.Identity()
        self.act = activation(act)
        self.dropout = nn.Dropout(dropout)
        self.stride = stride

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None,
                running: RunningStats | None = None) -> torch.Tensor:
        """x: (B, C, T), active: None or (B, 1, T0 >= T) bool frames for the norms, running: a stream's
        `RunningStats` -> (B, C, ceil(T / stride))."""
        y = self.dropout(self.act(self._norm(self.conv1(x), active, running)))
        y = self.dropout(self.act(self._norm(self.conv2(y), active, running)))
        if self.stride > 1:
            x = F.avg_pool1d(x, kernel_size=self.stride, ceil_mode=True)
        return x + y

    def _norm(self, y: torch.Tensor, active: torch.Tensor | None, running: RunningStats | None) -> torch.Tensor:
        return self.norm(y, active, running) if isinstance(self.norm, InstanceNorm) else y


class DenseBlock(nn.Module):
    """Two linear layers with a residual path."""

    def __init__(self, channels: int, act: str, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(channels, channels)
        self.linear2 = nn.Linear(channels, channels)
        self.act = activation(act)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C) -> (B, C)."""
        y = self.dropout(self.act(self.linear1(x)))
        y = self.dropout(self.act(self.linear2(y)))
        return x + y


def pixel_shuffle_1d(x: torch.Tensor, factor: int) -> torch.Tensor:
    """(B, C * factor, T) -> (B, C, T * factor): channels become time steps."""
    b, c, t = x.shape
    return x.reshape(b, c // factor, factor, t).permute(0, 1, 3, 2).reshape(b, c // factor, t * factor)
