"""The generator HiFi-GAN and BigVGAN share: transposed-conv upsampling + multi-receptive-field fusion.

HiFi-GAN (Kong et al. 2020) turns a mel into a waveform with a stack of
transposed convolutions (one per upsampling rate, their product = the hop),
each followed by multi-receptive-field fusion (MRF): the mean of residual
blocks with different kernel sizes and dilations. BigVGAN (Lee et al. 2023)
keeps this skeleton and swaps the leaky ReLUs for anti-aliased Snake
activations. Which convolutions and activations to use is passed in, so one
`MRFGenerator` serves both families and both checkpoint key layouts.

Module names follow the upstream checkpoints (`conv_pre`, `ups.N`,
`resblocks.K.convs1.M`, `conv_post`), so their state dicts load strictly.
Convolutions are plain: weight norm is fused into the weights at load time
(`vc_app.vocoders.weights`), once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

# (in_channels, out_channels, kernel_size, dilation, bias) -> a length-preserving conv
ConvFactory = Callable[..., nn.Module]
# (in_channels, out_channels, kernel_size, stride) -> a conv that upsamples by `stride`
UpsampleFactory = Callable[[int, int, int, int], nn.Module]
# channels -> activation module
ActivationFactory = Callable[[int], nn.Module]


@dataclass(frozen=True)
class MRFConfig:
    """Generator sizes, in the field names of the jik876 / BigVGAN `config.json`."""

    n_mels: int
    resblock: str  # "1": two convs per dilation; "2": one
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    conv_post_bias: bool = True

    def __post_init__(self) -> None:
        if self.resblock not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', not {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError("upsample_rates and upsample_kernel_sizes need the same length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError("resblock_kernel_sizes and resblock_dilation_sizes need the same length")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            raise ValueError("upsample_initial_channel must halve evenly at every upsampling")

    @property
    def hop_length(self) -> int:
        """Waveform samples per mel frame: the product of the upsampling rates."""
        return math.prod(self.upsample_rates)


def mrf_config_from_dict(d: dict, **extra) -> MRFConfig:
    """An `MRFConfig` from a jik876/BigVGAN-style dict (`num_mels` defaults to 80, as in jik876's code).

    Raises:
        KeyError: a required field is missing. ValueError/TypeError: a field has a wrong value.
    """
    return MRFConfig(
        n_mels=int(d.get("num_mels", 80)),
        resblock=str(d["resblock"]),
        upsample_rates=tuple(int(u) for u in d["upsample_rates"]),
        upsample_kernel_sizes=tuple(int(k) for k in d["upsample_kernel_sizes"]),
        upsample_initial_channel=int(d["upsample_initial_channel"]),
        resblock_kernel_sizes=tuple(int(k) for k in d["resblock_kernel_sizes"]),
        resblock_dilation_sizes=tuple(tuple(int(x) for x in ds) for ds in d["resblock_dilation_sizes"]),
        **extra,
    )


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding each side that keeps the length of a stride-1 conv (odd kernels)."""
    return dilation * (kernel_size - 1) // 2


def plain_conv(c_in: int, c_out: int, kernel_size: int, dilation: int = 1, bias: bool = True) -> nn.Conv1d:
    """A zero-padded, length-preserving Conv1d (jik876 HiFi-GAN and BigVGAN)."""
    return nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation, padding=same_padding(kernel_size, dilation),
                     bias=bias)


def plain_upsample(c_in: int, c_out: int, kernel_size: int, stride: int) -> nn.ConvTranspose1d:
    """A transposed conv whose output is exactly `stride` times longer (kernel - stride must be even)."""
    return nn.ConvTranspose1d(c_in, c_out, kernel_size, stride, padding=(kernel_size - stride) // 2)


class ResBlock1(nn.Module):
    """Residual block type "1" (HiFi-GAN ResBlock1, BigVGAN AMPBlock1).

    For each dilation d: x = x + conv2(act(conv1_d(act(x)))), conv2 with dilation 1.
    """

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int], conv: ConvFactory,
                 activation: ActivationFactory):
        super().__init__()
        self.convs1 = nn.ModuleList(conv(channels, channels, kernel_size, d) for d in dilations)
        self.convs2 = nn.ModuleList(conv(channels, channels, kernel_size, 1) for _ in dilations)
        self.activations = nn.ModuleList(activation(channels) for _ in range(2 * len(dilations)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, L) -> (B, C, L)."""
        acts = self.activations
        for i, (c1, c2) in enumerate(zip(self.convs1, self.convs2)):
            x = x + c2(acts[2 * i + 1](c1(acts[2 * i](x))))
        return x


class ResBlock2(nn.Module):
    """Residual block type "2" (HiFi-GAN ResBlock2, BigVGAN AMPBlock2): x = x + conv_d(act(x)) per dilation."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int], conv: ConvFactory,
                 activation: ActivationFactory):
        super().__init__()
        self.convs = nn.ModuleList(conv(channels, channels, kernel_size, d) for d in dilations)
        self.activations = nn.ModuleList(activation(channels) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, L) -> (B, C, L)."""
        for conv, act in zip(self.convs, self.activations):
            x = x + conv(act(x))
        return x


class MRFGenerator(nn.Module):
    """mel -> conv_pre -> [stage activation -> upsample -> MRF] per rate -> post activation -> conv_post -> final.

    Args:
        cfg: sizes.
        conv / upsample: factories for the length-preserving and the upsampling convolutions.
        activation: the activation inside residual blocks; post_activation: the one before conv_post.
        stage_activation: applied before each upsampling (HiFi-GAN: leaky ReLU; BigVGAN: none).
        final: bounds the waveform (tanh, or a clamp to [-1, 1]).
    """

    def __init__(self, cfg: MRFConfig, *, conv: ConvFactory, upsample: UpsampleFactory,
                 activation: ActivationFactory, post_activation: ActivationFactory,
                 stage_activation: nn.Module | None = None, final: nn.Module | None = None):
        super().__init__()
        self.cfg = cfg
        self.conv_pre = conv(cfg.n_mels, cfg.upsample_initial_channel, 7, 1)
        self.stage_activation = stage_activation or nn.Identity()
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.ups, self.resblocks = nn.ModuleList(), nn.ModuleList()
        channels = cfg.upsample_initial_channel
        for rate, kernel in zip(cfg.upsample_rates, cfg.upsample_kernel_sizes):
            self.ups.append(upsample(channels, channels // 2, kernel, rate))
            channels //= 2
            for k, dilations in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(block(channels, k, dilations, conv, activation))
        self.activation_post = post_activation(channels)
        self.conv_post = conv(channels, 1, 7, 1, bias=cfg.conv_post_bias)
        self.final = final or nn.Tanh()

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, T) -> wav (B, 1, T * hop_length) in [-1, 1]."""
        n = len(self.cfg.resblock_kernel_sizes)
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(self.stage_activation(x))
            fused = self.resblocks[i * n](x)
            for block in self.resblocks[i * n + 1:(i + 1) * n]:
                fused = fused + block(x)
            x = fused / n
        return self.final(self.conv_post(self.activation_post(x)))
