"""BigVGAN (Lee et al. 2023, NVIDIA): HiFi-GAN's generator with anti-aliased periodic activations.

Each activation is Snake, x + sin^2(a x) / a (Ziyin et al. 2020), or SnakeBeta,
x + sin^2(a x) / b, with per-channel a and b (stored as logs when
`snake_logscale`). It runs at twice the sample rate: upsample 2x with a
Kaiser-windowed sinc low-pass, apply, low-pass and downsample 2x, so the
harmonics it creates do not alias. Version 2 drops the final tanh (a clamp
instead) and the bias of `conv_post`; `config.json` says which.

Files: `config.json` + `bigvgan_generator.pt` ({"generator": state dict}),
with weight-norm pairs or already fused weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.vocoders.generator import MRFConfig, MRFGenerator, mrf_config_from_dict, plain_conv
from vc_app.vocoders.neural import NeuralVocoder, TrainedMel, check_mel, read_config_json, trained_mel_from_json
from vc_app.vocoders.weights import load_generator, read_state_dict

CONFIG, WEIGHTS = "config.json", "bigvgan_generator.pt"
FILTER_TAPS = 12


class Snake(nn.Module):
    """Snake(x) = x + sin^2(alpha x) / alpha, per channel. x: (B, C, L) -> (B, C, L)."""

    def __init__(self, channels: int, logscale: bool = True):
        super().__init__()
        self.logscale = logscale
        self.alpha = nn.Parameter(torch.zeros(channels) if logscale else torch.ones(channels))

    def _scale(self, p: torch.Tensor) -> torch.Tensor:
        return (p.exp() if self.logscale else p)[None, :, None]

    def _magnitude(self, alpha: torch.Tensor) -> torch.Tensor:
        return alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self._scale(self.alpha)
        return torch.addcmul(x, torch.sin(x * alpha).square(), 1.0 / (self._magnitude(alpha) + 1e-9))


class SnakeBeta(Snake):
    """SnakeBeta(x) = x + sin^2(alpha x) / beta: frequency and magnitude learned apart."""

    def __init__(self, channels: int, logscale: bool = True):
        super().__init__(channels, logscale)
        self.beta = nn.Parameter(torch.zeros(channels) if logscale else torch.ones(channels))

    def _magnitude(self, alpha: torch.Tensor) -> torch.Tensor:
        return self._scale(self.beta)


def kaiser_sinc_filter(cutoff: float, half_width: float, taps: int) -> torch.Tensor:
    """A low-pass FIR filter: sinc at `cutoff` (cycles/sample) under a Kaiser window, summing to 1. -> (1, 1, taps).

    The Kaiser beta follows Kaiser's formula for the attenuation a transition band of
    `half_width` allows (as in julius / alias-free-torch, which BigVGAN's weights were trained with).
    """
    half = taps // 2
    attenuation = 2.285 * (half - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        beta = 0.1102 * (attenuation - 8.7)
    elif attenuation >= 21.0:
        beta = 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    else:
        beta = 0.0
    window = torch.kaiser_window(taps, periodic=False, beta=beta)
    time = torch.arange(-half, half) + 0.5 if taps % 2 == 0 else torch.arange(taps) - half
    response = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return (response / response.sum()).view(1, 1, taps)


class UpSample1d(nn.Module):
    """Upsample by `ratio` with a windowed-sinc interpolation filter. x: (B, C, L) -> (B, C, ratio * L)."""

    filter: torch.Tensor  # a buffer: the low-pass taps

    def __init__(self, ratio: int = 2, taps: int = FILTER_TAPS):
        super().__init__()
        self.ratio = ratio
        self.pad = taps // ratio - 1
        self.crop_left = self.pad * ratio + (taps - ratio) // 2
        self.crop_right = self.pad * ratio + (taps - ratio + 1) // 2
        self.register_buffer("filter", kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, taps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        taps = (self.ratio * self.filter).expand(channels, -1, -1)  # the gain folded into 12 taps, not L samples
        x = F.conv_transpose1d(x, taps, stride=self.ratio, groups=channels)
        return x[..., self.crop_left:x.shape[-1] - self.crop_right]


class LowPassFilter1d(nn.Module):
    """Low-pass (replicate-padded) then keep every `stride`-th sample. x: (B, C, L) -> (B, C, L / stride)."""

    filter: torch.Tensor  # a buffer: the low-pass taps

    def __init__(self, cutoff: float, half_width: float, stride: int, taps: int = FILTER_TAPS):
        super().__init__()
        self.stride = stride
        self.pad_left, self.pad_right = taps // 2 - int(taps % 2 == 0), taps // 2
        self.register_buffer("filter", kaiser_sinc_filter(cutoff, half_width, taps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad_left, self.pad_right), mode="replicate")
        return F.conv1d(x, self.filter.expand(x.shape[1], -1, -1), stride=self.stride, groups=x.shape[1])


class DownSample1d(nn.Module):
    """Downsample by `ratio` behind an anti-aliasing low-pass."""

    def __init__(self, ratio: int = 2, taps: int = FILTER_TAPS):
        super().__init__()
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, ratio, taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lowpass(x)


class AntiAliasedActivation(nn.Module):
    """upsample 2x -> activation -> low-pass + downsample 2x (BigVGAN's `Activation1d`). (B, C, L) -> (B, C, L)."""

    def __init__(self, act: nn.Module):
        super().__init__()
        self.act = act
        self.upsample = UpSample1d()
        self.downsample = DownSample1d()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.act(self.upsample(x)))


@dataclass(frozen=True)
class BigVGANConfig:
    """Generator sizes plus BigVGAN's options, from `config.json`."""

    mrf: MRFConfig
    activation: str = "snakebeta"  # or "snake"
    snake_logscale: bool = True
    use_tanh_at_final: bool = True


def read_config(path: Path, origin: str) -> tuple[BigVGANConfig, TrainedMel]:
    """Generator config and training mel recipe from a BigVGAN `config.json` (a bad one: `read_config_json`)."""
    cfg, d = read_config_json(path, origin, lambda d: BigVGANConfig(
        mrf=mrf_config_from_dict(d, conv_post_bias=bool(d.get("use_bias_at_final", True))),
        activation=str(d.get("activation", "snakebeta")), snake_logscale=bool(d.get("snake_logscale", True)),
        use_tanh_at_final=bool(d.get("use_tanh_at_final", True))))
    if cfg.activation not in ("snake", "snakebeta"):
        raise VcAppError(f"The config.json of {origin} names activation {cfg.activation!r}; BigVGAN uses "
                         f"'snake' or 'snakebeta'.")
    return cfg, trained_mel_from_json(d, cfg.mrf.hop_length, cfg.mrf.n_mels)


def build_generator(cfg: BigVGANConfig) -> MRFGenerator:
    """A randomly initialised BigVGAN generator with the upstream key layout."""
    snake = SnakeBeta if cfg.activation == "snakebeta" else Snake

    def activation(channels: int) -> nn.Module:
        return AntiAliasedActivation(snake(channels, cfg.snake_logscale))

    def upsample(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Module:
        # stored as `ups.N.0`: upstream wraps each upsampler in a list
        return nn.Sequential(nn.ConvTranspose1d(c_in, c_out, kernel, stride, padding=(kernel - stride) // 2))

    final = nn.Tanh() if cfg.use_tanh_at_final else nn.Hardtanh(-1.0, 1.0)
    return MRFGenerator(cfg.mrf, conv=plain_conv, upsample=upsample, activation=activation,
                        post_activation=activation, final=final)


def load(files: dict[str, Path], mel: MelConfig, *, name: str, device: str = "cpu") -> NeuralVocoder:
    """A BigVGAN vocoder from its `config` and `weights` files, checked against our mel recipe `mel`."""
    cfg, trained = read_config(files["config"], name)
    check_mel(trained, mel, name)
    generator = load_generator(build_generator(cfg), read_state_dict(files["weights"], key="generator"), name)
    return NeuralVocoder(generator, name=name, mel=mel, device=device)
