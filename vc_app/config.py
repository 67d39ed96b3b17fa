"""Configuration dataclasses: the one place where default sizes live.

`MelConfig` is the project's one mel recipe (ARCHITECTURE.md, *The mel recipe*: the
jik876 HiFi-GAN / NVIDIA BigVGAN mel dialect); `ModelConfig` holds the AdaIN-VC sizes of the official config,
with our 80 mel bands; `StreamConfig` the block, context and look-ahead of live conversion.
Everything else (CLI, training, bundles) reads its
defaults from here, so a default is never declared twice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vc_app.errors import VcAppError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class MelConfig:
    """The one mel recipe (ARCHITECTURE.md, *The mel recipe*), computed by `vc_app.mel.mel_spectrogram`."""

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-5


@dataclass(frozen=True)
class VQConfig:
    """Vector-quantised bottleneck on the content code (VQ-VAE style)."""

    codebook_size: int = 256
    ema_decay: float = 0.99
    ema: bool = True
    dead_code_threshold: float = 1e-3


@dataclass(frozen=True)
class ModelConfig:
    """AdaIN-VC sizes (official config, 80 bands).

    `bottleneck` chooses what sits on the content code: ``"vae"`` (mean and
    log-variance, sampled in training, as the official model), ``"vq"`` (a
    `VectorQuantizer`) or ``"none"`` (the mean alone). `content_guidance` = alpha > 0
    passes the content code through sigmoid(alpha * z), AGAIN-VC's activation
    guidance (Chen et al. 2021): a soft bound on what the code can carry; 0 is off.

    `norm_stats` chooses the frames the model's statistics over time are taken on: ``"all"`` (every frame,
    pauses included, as the official model) or ``"active"`` (only the frames within `active_db` dB of the
    input's loudest frame, the complement of a pause in `vc_app.evaluate.levels`). Those statistics are the
    mean and variance of every instance norm (the content encoder's, and the decoder's inside `AdaIN`) and the
    speaker encoder's average over time, which sets AdaIN's gamma and beta. With ``"all"`` a clip's share
    and depth of silence move them; with ``"active"`` pauses are normalised against speech alone and stay
    far below it (DESIGN.md, *Silent pauses*).
    """

    n_mels: int = 80
    c_h: int = 128
    c_content: int = 128
    c_speaker: int = 128
    kernel_size: int = 5
    bank_size: int = 8
    bank_scale: int = 1
    c_bank: int = 128
    n_conv_blocks: int = 6
    n_dense_blocks: int = 6
    subsample: tuple[int, ...] = (1, 2, 1, 2, 1, 2)
    upsample: tuple[int, ...] = (2, 1, 2, 1, 2, 1)
    activation: str = "relu"
    dropout: float = 0.0
    bottleneck: str = "vae"
    vq: VQConfig = field(default_factory=VQConfig)
    content_guidance: float = 0.0
    norm_stats: str = "all"
    active_db: float = 40.0

    def __post_init__(self) -> None:
        if self.bottleneck not in ("vae", "vq", "none"):
            raise ValueError(f"bottleneck must be 'vae', 'vq' or 'none', not {self.bottleneck!r}")
        if self.content_guidance < 0:
            raise ValueError(f"content_guidance must be 0 (off) or positive, not {self.content_guidance}")
        if self.norm_stats not in ("all", "active"):
            raise ValueError(f"norm_stats must be 'all' or 'active', not {self.norm_stats!r}")
        if self.active_db <= 0:
            raise ValueError(f"active_db must be positive, not {self.active_db}")
        if len(self.subsample) != self.n_conv_blocks or len(self.upsample) != self.n_conv_blocks:
            raise ValueError("subsample and upsample need one entry per conv block")
        down, up = _product(self.subsample), _product(self.upsample)
        if down != up:
            raise ValueError(f"total subsample ({down}) must equal total upsample ({up})")

    @property
    def frames_per_code(self) -> int:
        """Mel frames per content-code step (the product of `subsample`)."""
        return _product(self.subsample)


def _product(values: tuple[int, ...]) -> int:
    out = 1
    for v in values:
        out *= v
    return out


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a (nested) config dataclass."""
    return dataclasses.asdict(cfg)


def mel_config_from_dict(d: dict) -> MelConfig:
    return MelConfig(**_known(MelConfig, d))


def model_config_from_dict(d: dict) -> ModelConfig:
    d = dict(_known(ModelConfig, d))
    for key in ("subsample", "upsample"):
        if key in d:
            d[key] = tuple(d[key])
    if isinstance(d.get("vq"), dict):
        d["vq"] = VQConfig(**_known(VQConfig, d["vq"]))
    return ModelConfig(**d)


def _known(cls: type, d: dict) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    return d


@dataclass(frozen=True)
class StreamConfig:
    """The sizes of live conversion, in mel frames (a frame is hop_length samples: 11.6 ms at 22 050 Hz).

    Attributes:
        block_frames: frames converted per block (8: 92.9 ms).
        context_frames: frames before the block recomputed with it (what the convolutions see behind it).
        stats_frames: the time constant of the norms' running statistics (`RunningStats`): each window's
            statistics over time are averaged with the earlier windows', over the stream's first stats_frames
            frames, then exponentially; 0: each window's own statistics.
        lookahead_frames: frames after the block the model and the vocoder see; they add to the latency.
        vocoder_context_frames: converted frames before the block the vocoder sees.
        crossfade_samples: samples over which a block fades into the next (at most the look-ahead's samples).
        compute_share: how much of a block's duration `LiveEngine` waits for its conversion before dropping
            it (rounded up to a whole `quanta_per_block`); it adds to the latency.
        quanta_per_block: the audio side feeds and reads a block in this many pieces.
    """

    block_frames: int = 8
    context_frames: int = 128
    stats_frames: int = 5000
    lookahead_frames: int = 6
    vocoder_context_frames: int = 8
    crossfade_samples: int = 256
    compute_share: float = 0.75
    quanta_per_block: int = 4

    def check(self, mel: MelConfig) -> None:
        """Refuse sizes that cannot work, in one sentence."""
        if self.block_frames < 1 or min(self.context_frames, self.lookahead_frames, self.stats_frames) < 0:
            raise VcAppError("A live block needs at least one frame, and context, look-ahead and statistics "
                             "frames cannot be negative.")
        if not 0 <= self.crossfade_samples <= min(self.lookahead_frames * mel.hop_length,
                                                  self.block_frames * mel.hop_length):
            raise VcAppError(f"The cross-fade ({self.crossfade_samples} samples) must fit in the look-ahead "
                             f"({self.lookahead_frames} frames) and in a block.")
        if not 0 < self.compute_share <= 4 or self.quanta_per_block < 1 or \
                self.block_frames * mel.hop_length % self.quanta_per_block:
            raise VcAppError("The compute share must be above 0, and a block must split into whole quanta.")
