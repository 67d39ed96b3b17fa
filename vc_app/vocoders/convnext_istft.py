"""A Vocos-style generator: ConvNeXt blocks at the mel frame rate, then an inverse STFT.

HiFi-GAN upsamples a mel 256-fold with convolutions and spends most of its
arithmetic at the sample rate. Vocos (Siuzdak 2023) stays at the frame rate:
a stack of ConvNeXt blocks (Liu et al. 2022: depthwise conv, LayerNorm, an
inverted-bottleneck MLP, a learned per-channel layer scale) turns each mel
frame into one STFT frame (log-magnitude and phase per bin), and an inverse
STFT (inverse real FFT, window, overlap-add) makes the waveform. The
convolutions cost ~20x less per second of audio than HiFi-GAN V1's
(docs/vocoders.md, *The fast vocoder*).

Frames line up with our mel recipe (`vc_app.mel`): STFT frame t is centred
at sample t * hop + hop / 2, exactly where the mel frame t was analysed, and
the output has T * hop samples.

Every size comes from `ConvNeXtISTFTConfig`; module names (`embed`,
`blocks.N.dwconv`, `head.out`) are the keys of the safetensors bundle.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ConvNeXtISTFTConfig:
    """Sizes of the generator, and the STFT its head inverts (n_fft and hop must be the mel recipe's)."""

    n_mels: int = 80
    dim: int = 384  # channels of the ConvNeXt stack
    intermediate_dim: int = 1152  # hidden width of each block's MLP (the inverted bottleneck)
    layers: int = 8  # ConvNeXt blocks
    kernel_size: int = 7  # depthwise conv of each block, and the embedding conv (odd)
    n_fft: int = 1024  # the inverse STFT's frame (= window) length
    hop_length: int = 256
    max_log_magnitude: float = math.log(100.0)  # magnitudes are exp(min(x, this)): no overflow early in training

    def __post_init__(self) -> None:
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, not {self.kernel_size}")
        if min(self.n_mels, self.dim, self.intermediate_dim, self.layers, self.hop_length) < 1:
            raise ValueError("n_mels, dim, intermediate_dim, layers and hop_length must be positive")
        if self.n_fft % self.hop_length or (self.n_fft - self.hop_length) % 2:
            raise ValueError(f"n_fft {self.n_fft} must be a multiple of the hop {self.hop_length}, with an even "
                             f"difference")

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    @property
    def receptive_frames(self) -> int:
        """Mel frames on each side that can change one output sample: the embedding conv and every block's
        depthwise conv reach kernel_size // 2 frames each, and the overlap-add sums the windows of
        ceil(n_fft / 2 / hop) frames on each side."""
        return (self.kernel_size // 2) * (self.layers + 1) + math.ceil(self.n_fft / 2 / self.hop_length)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ConvNeXtISTFTConfig:
        """The config from its JSON fields; an unknown field raises TypeError naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TypeError(f"unknown field {unknown[0]!r}")
        values: dict = {k: (float(v) if k == "max_log_magnitude" else int(v)) for k, v in d.items()}
        return cls(**values)


class ConvNeXtBlock(nn.Module):
    """x + gamma * MLP(LayerNorm(depthwise_conv(x))), the MLP dim -> intermediate_dim -> dim with GELU."""

    def __init__(self, dim: int, intermediate_dim: int, kernel_size: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, intermediate_dim)
        self.pwconv2 = nn.Linear(intermediate_dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, dim, T) -> (B, dim, T)."""
        y = self.norm(self.dwconv(x).transpose(1, 2))  # (B, T, dim): LayerNorm and the MLP act per frame
        y = self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + (self.gamma * y).transpose(1, 2)


class InverseSTFT(nn.Module):
    """STFT frames -> waveform: inverse real FFT, Hann window, overlap-add, divided by the summed squared
    window; frame t centred at sample t * hop + hop / 2 (our mel frames' centres).

    The overlap-add cuts each frame into n_fft / hop slices of one hop and adds slice i of frame t at hop
    t + i: n_fft / hop additions of (B, T, hop) arrays, several times faster here than `F.fold`.
    """

    def __init__(self, n_fft: int, hop_length: int):
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length
        self.window: torch.Tensor
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """frames: (B, T, n_fft) -> (B, (T - 1) * hop + n_fft), frame t added from sample t * hop."""
        batch, count, _ = frames.shape
        slices = self.n_fft // self.hop_length
        parts = frames.reshape(batch, count, slices, self.hop_length)
        out = frames.new_zeros(batch, count + slices - 1, self.hop_length)
        for i in range(slices):
            out[:, i:i + count] += parts[:, :, i]
        return out.reshape(batch, -1)

    def forward(self, spectrum: torch.Tensor) -> torch.Tensor:
        """spectrum: complex (B, T, n_fft // 2 + 1) -> wav (B, 1, T * hop)."""
        count = spectrum.shape[1]
        frames = torch.fft.irfft(spectrum, n=self.n_fft, dim=-1) * self.window  # (B, T, n_fft)
        wav = self.overlap_add(frames)
        envelope = self.overlap_add(self.window.pow(2).expand(1, count, -1))[0]
        # frame t spans [t*hop, t*hop + n_fft) here, centred at t*hop + n_fft/2: our sample s is wav[s + pad]
        pad = (self.n_fft - self.hop_length) // 2
        keep = slice(pad, pad + count * self.hop_length)
        return (wav[:, keep] / envelope[keep].clamp(min=1e-11)).unsqueeze(1)


class ISTFTHead(nn.Module):
    """Each frame's features -> log-magnitude and phase of every STFT bin -> (real, imag)."""

    def __init__(self, dim: int, n_bins: int, max_log_magnitude: float):
        super().__init__()
        self.out = nn.Linear(dim, 2 * n_bins)
        self.max_log_magnitude = max_log_magnitude

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, dim) -> spectrum (B, 2 * n_bins, T): the real parts, then the imaginary parts."""
        log_magnitude, phase = self.out(x).transpose(1, 2).chunk(2, dim=1)
        magnitude = torch.exp(log_magnitude.clamp(max=self.max_log_magnitude))
        return torch.cat([magnitude * torch.cos(phase), magnitude * torch.sin(phase)], dim=1)


class ConvNeXtISTFTGenerator(nn.Module):
    """mel -> embedding conv -> LayerNorm -> ConvNeXt blocks -> LayerNorm -> STFT head -> inverse STFT -> wav.

    `spectrum` is everything up to the STFT frames (what ONNX Runtime runs); `forward` adds the inverse STFT.
    """

    def __init__(self, cfg: ConvNeXtISTFTConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Conv1d(cfg.n_mels, cfg.dim, cfg.kernel_size, padding=cfg.kernel_size // 2)
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.blocks = nn.ModuleList(ConvNeXtBlock(cfg.dim, cfg.intermediate_dim, cfg.kernel_size, 1.0 / cfg.layers)
                                    for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = ISTFTHead(cfg.dim, cfg.n_bins, cfg.max_log_magnitude)
        self.istft = InverseSTFT(cfg.n_fft, cfg.hop_length)
        self.apply(_init_weights)

    def spectrum(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, T) natural-log mel -> STFT frames (B, 2 * (n_fft // 2 + 1), T), real then imag."""
        x = self.norm(self.embed(mel).transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x.transpose(1, 2)))

    def synthesize(self, spectrum: torch.Tensor) -> torch.Tensor:
        """spectrum: (B, 2 * n_bins, T) from `spectrum` -> wav (B, 1, T * hop), clamped to [-1, 1]."""
        real, imag = spectrum.float().transpose(1, 2).chunk(2, dim=-1)  # (B, T, n_bins) each
        return self.istft(torch.complex(real, imag)).clamp(-1.0, 1.0)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        """mel: (B, n_mels, T) -> wav (B, 1, T * hop) in [-1, 1]."""
        return self.synthesize(self.spectrum(mel))


def _init_weights(module: nn.Module) -> None:
    """Truncated-normal (std 0.02) weights and zero biases for convs and linears, as ConvNeXt and Vocos."""
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
