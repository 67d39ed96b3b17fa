"""AdaIN-VC (Chou, Yeh & Lee 2019): content encoder, speaker encoder, AdaIN decoder.

    source mel -> ContentEncoder (conv bank, InstanceNorm) -> [VAE sample | VQ] -> content (C x T/8)
    target mel -> SpeakerEncoder (conv bank, time average, dense) -> speaker vector
    content + speaker -> Decoder (AdaIN blocks, upsample x8) -> mel

The model works on log-mels from `vc_app.mel.mel_spectrogram`; it scales them
internally with per-band statistics of its training data (`mel_mean`,
`mel_std`, saved with the weights) and returns log-mels in the same units.

Its statistics over time (instance norms, AdaIN, the speaker encoder's average) are taken on every frame, or
with `ModelConfig.norm_stats = "active"` on the frames within `active_db` dB of the input's loudest
(`active_frames`), so that pauses cannot pull them towards silence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vc_app.config import ModelConfig
from vc_app.models.blocks import (
    AdaIN,
    ConvBank,
    ConvBlock,
    DenseBlock,
    InstanceNorm,
    RunningStats,
    SameConv1d,
    activation,
    active_mean,
    pixel_shuffle_1d,
)
from vc_app.models.vq import VectorQuantizer, VQOutput


class ContentEncoder(nn.Module):
    """Mel -> content code; instance normalisation strips utterance-level statistics.

    The input itself is instance-normalised per band first, so a per-band
    constant offset of the log-mel (a fixed spectral tilt or envelope) cannot
    reach the content code at all.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_norm = InstanceNorm(cfg.n_mels)
        self.bank = ConvBank(cfg.n_mels, cfg.c_bank, cfg.bank_size, cfg.bank_scale, cfg.activation)
        self.in_conv = SameConv1d(self.bank.out_channels, cfg.c_h, kernel_size=1)
        self.norm = InstanceNorm(cfg.c_h)
        self.act = activation(cfg.activation)
        self.blocks = nn.ModuleList(
            ConvBlock(cfg.c_h, cfg.kernel_size, stride, cfg.activation, cfg.dropout, norm=True)
            for stride in cfg.subsample
        )
        self.mean = SameConv1d(cfg.c_h, cfg.c_content, kernel_size=1)
        self.log_var = SameConv1d(cfg.c_h, cfg.c_content, kernel_size=1) if cfg.bottleneck == "vae" else None

    def forward(self, mel: torch.Tensor, active: torch.Tensor | None = None, running: RunningStats | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """mel: (B, n_mels, T) scaled, active: None or (B, 1, T) bool (`active_frames`), running: a stream's
        `RunningStats` -> (mean, log_var or None), each (B, c_content, ceil(T / 8))."""
        h = self.act(self.norm(self.in_conv(self.bank(self.input_norm(mel, active, running))), active, running))
        for block in self.blocks:
            h = block(h, active, running)
        return self.mean(h), (self.log_var(h) if self.log_var is not None else None)


class SpeakerEncoder(nn.Module):
    """Mel -> one speaker vector: conv bank, conv blocks, average over time, dense blocks."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.bank = ConvBank(cfg.n_mels, cfg.c_bank, cfg.bank_size, cfg.bank_scale, cfg.activation)
        self.in_conv = SameConv1d(self.bank.out_channels, cfg.c_h, kernel_size=1)
        self.act = activation(cfg.activation)
        self.conv_blocks = nn.ModuleList(
            ConvBlock(cfg.c_h, cfg.kernel_size, stride, cfg.activation, cfg.dropout, norm=False)
            for stride in cfg.subsample
        )
        self.dense_blocks = nn.ModuleList(DenseBlock(cfg.c_h, cfg.activation, cfg.dropout)
                                          for _ in range(cfg.n_dense_blocks))
        self.out = nn.Linear(cfg.c_h, cfg.c_speaker)

    def forward(self, mel: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        """mel: (B, n_mels, T) scaled, active: None (average every frame) or (B, 1, T0) bool frames to average,
        T0 >= T padded with inactive frames to a whole number of `frames_per_code` -> (B, c_speaker)."""
        h = self.act(self.in_conv(self.bank(mel)))
        for block in self.conv_blocks:
            h = block(h)
        h = active_mean(h, active)
        for block in self.dense_blocks:
            h = block(h)
        return self.out(h)


class DecoderBlock(nn.Module):
    """conv -> AdaIN -> act -> conv (x upsample channels) -> pixel shuffle -> AdaIN -> act, residual."""

    def __init__(self, c_h: int, c_cond: int, kernel_size: int, upsample: int, act: str, dropout: float):
        super().__init__()
        self.conv1 = SameConv1d(c_h, c_h, kernel_size)
        self.adain1 = AdaIN(c_h, c_cond)
        self.conv2 = SameConv1d(c_h, c_h * upsample, kernel_size)
        self.adain2 = AdaIN(c_h, c_cond)
        self.act = activation(act)
        self.dropout = nn.Dropout(dropout)
        self.upsample = upsample

    def forward(self, x: torch.Tensor, speaker: torch.Tensor, active: torch.Tensor | None = None,
                running: RunningStats | None = None) -> torch.Tensor:
        """x: (B, c_h, T), speaker: (B, c_cond), active: None or (B, 1, T0 >= T * upsample) bool frames for the
        AdaIN statistics, running: a stream's `RunningStats` -> (B, c_h, T * upsample)."""
        y = self.dropout(self.act(self.adain1(self.conv1(x), speaker, active, running)))
        y = self.conv2(y)
        if self.upsample > 1:
            y = pixel_shuffle_1d(y, self.upsample)
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        y = self.dropout(self.act(self.adain2(y, speaker, active, running)))
        return x + y


class Decoder(nn.Module):
    """Content code + speaker vector -> mel, every block conditioned through `AdaIN`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.in_conv = SameConv1d(cfg.c_content, cfg.c_h, kernel_size=1)
        self.norm = InstanceNorm(cfg.c_h)
        self.act = activation(cfg.activation)
        self.blocks = nn.ModuleList(
            DecoderBlock(cfg.c_h, cfg.c_speaker, cfg.kernel_size, up, cfg.activation, cfg.dropout)
            for up in cfg.upsample
        )
        self.out_conv = SameConv1d(cfg.c_h, cfg.n_mels, kernel_size=1)

    def forward(self, content: torch.Tensor, speaker: torch.Tensor, active: torch.Tensor | None = None,
                running: RunningStats | None = None) -> torch.Tensor:
        """content: (B, c_content, T'), speaker: (B, c_speaker), active: None or (B, 1, T' * 8) bool
        (`active_frames` of the content's source), running: a stream's `RunningStats`
        -> (B, n_mels, T' * 8) scaled."""
        h = self.act(self.norm(self.in_conv(content), active, running))
        for block in self.blocks:
            h = block(h, speaker, active, running)
        return self.out_conv(h)


@dataclass
class AdaINVCOutput:
    """One training forward pass. recon: (B, n_mels, T) scaled; mean/log_var/content: (B, C, T/8);
    speaker: (B, c_speaker); vq: the quantiser's report when the VQ bottleneck is on; converted: with
    `consistency` or `conversions`, each clip converted to the voice of the next clip in the batch
    (`speaker.roll(1, 0)`), (B, n_mels, T) scaled; converted_speaker: with `consistency`, the speaker vectors
    (B, c_speaker) the speaker encoder reads back from `converted`."""

    recon: torch.Tensor
    mean: torch.Tensor
    log_var: torch.Tensor | None
    content: torch.Tensor
    speaker: torch.Tensor
    vq: VQOutput | None
    converted_speaker: torch.Tensor | None = None
    converted: torch.Tensor | None = None


class AdaINVC(nn.Module):
    """The whole voice-conversion model. Public methods take and return raw log-mels."""

    mel_mean: torch.Tensor  # (n_mels,) buffers: the training data's per-band statistics
    mel_std: torch.Tensor

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.content_encoder = ContentEncoder(cfg)
        self.speaker_encoder = SpeakerEncoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantizer = (VectorQuantizer(cfg.vq.codebook_size, cfg.c_content, ema=cfg.vq.ema,
                                          decay=cfg.vq.ema_decay, dead_code_threshold=cfg.vq.dead_code_threshold)
                          if cfg.bottleneck == "vq" else None)
        self.register_buffer("mel_mean", torch.zeros(cfg.n_mels))
        self.register_buffer("mel_std", torch.ones(cfg.n_mels))

    # -- scaling ---------------------------------------------------------------
    def set_mel_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-band statistics of the training data, each (n_mels,)."""
        self.mel_mean.copy_(mean)
        self.mel_std.copy_(std.clamp(min=1e-3))

    def scale(self, mel: torch.Tensor) -> torch.Tensor:
        """Raw log-mel (B, n_mels, T) -> standardised."""
        return (mel - self.mel_mean[:, None]) / self.mel_std[:, None]

    def unscale(self, mel: torch.Tensor) -> torch.Tensor:
        """Standardised (B, n_mels, T) -> raw log-mel."""
        return mel * self.mel_std[:, None] + self.mel_mean[:, None]

    # -- the frames the statistics are taken on -------------------------------
    def _padded_frames(self, frames: int) -> int:
        """`_pad`'s length for a clip of `frames` frames: a whole number (at least 2) of content steps."""
        step = self.cfg.frames_per_code
        return max(-(-frames // step), 2) * step

    def _pad(self, mel: torch.Tensor) -> torch.Tensor:
        """Pad (B, n_mels, T) at the end to a whole number (at least 2) of content steps."""
        extra = self._padded_frames(mel.shape[-1]) - mel.shape[-1]
        return F.pad(mel, (0, extra), mode="replicate") if extra else mel

    def active_frames(self, mel: torch.Tensor) -> torch.Tensor | None:
        """The frames the statistics over time are taken on (`ModelConfig.norm_stats`).

        mel: (B, n_mels, T) raw -> None with ``"all"`` (every frame), or with ``"active"`` (B, 1, T_pad) bool:
        True where the frame's level (`frame_levels_db`) is within `active_db` dB of the clip's loudest frame;
        the `_pad` frames after the clip (T_pad = `_padded_frames(T)`) are inactive.
        """
        if self.cfg.norm_stats == "all":
            return None
        active = (frame_levels_db(mel) > -self.cfg.active_db).unsqueeze(1)
        padding = active.new_zeros(*active.shape[:2], self._padded_frames(mel.shape[-1]) - mel.shape[-1])
        return torch.cat([active, padding], dim=-1)

    # -- the three arrows ----------------------------------------------------
    def content(self, mel: torch.Tensor) -> torch.Tensor:
        """Deterministic content code. mel: (B, n_mels, T) raw -> (B, c_content, ceil(T / 8))."""
        return self._content(mel, self.active_frames(mel))

    def _content(self, mel: torch.Tensor, active: torch.Tensor | None, running: RunningStats | None = None
                 ) -> torch.Tensor:
        """`content` with the clip's `active_frames` given: mel (B, n_mels, T) raw, active None or (B, 1, T_pad);
        running: a stream's `RunningStats`."""
        mean, _ = self.content_encoder(self.scale(self._pad(mel)), active, running)
        return self.guide(self.quantizer(mean).quantized if self.quantizer is not None else mean)

    def guide(self, z: torch.Tensor) -> torch.Tensor:
        """Activation guidance (AGAIN-VC) on a content code z (B, C, T'): sigmoid(alpha * z), or z when off."""
        alpha = self.cfg.content_guidance
        return torch.sigmoid(alpha * z) if alpha > 0 else z

    def speaker(self, mel: torch.Tensor) -> torch.Tensor:
        """Speaker vector. mel: (B, n_mels, T) raw -> (B, c_speaker)."""
        return self.speaker_encoder(self.scale(mel), self.active_frames(mel))

    def speaker_from_clips(self, mels: list[torch.Tensor]) -> torch.Tensor:
        """Mean speaker vector of several clips of one speaker. mels: each (n_mels, T_i) -> (c_speaker,)."""
        if not mels:
            raise ValueError("at least one target clip is needed")
        return torch.stack([self.speaker(m.unsqueeze(0))[0] for m in mels]).mean(dim=0)

    def decode(self, content: torch.Tensor, speaker: torch.Tensor, n_frames: int,
               active: torch.Tensor | None = None, running: RunningStats | None = None) -> torch.Tensor:
        """content: (B, c_content, T'), speaker: (B, c_speaker), active: the `active_frames` (B, 1, T' * 8) of the
        content's source (None: statistics over every frame), running: a stream's `RunningStats`
        -> raw log-mel (B, n_mels, n_frames)."""
        return self.unscale(self.decoder(content, speaker, active, running))[..., :n_frames]

    def convert(self, source: torch.Tensor, speaker: torch.Tensor, running: RunningStats | None = None
                ) -> torch.Tensor:
        """source: (B, n_mels, T) raw, speaker: (B, c_speaker) -> converted raw log-mel (B, n_mels, T).

        running: a stream's statistics over time (`RunningStats`): this source is the stream's next window,
        and the norms take their statistics from it and the windows before (None: from this source alone).
        """
        active = self.active_frames(source)
        if running is not None:
            running.start(source.shape[-1])
        return self.decode(self._content(source, active, running), speaker, source.shape[-1], active, running)

    # -- training ----------------------------------------------------------------
    def forward(self, mel: torch.Tensor, content_mel: torch.Tensor | None = None,
                speaker_mel: torch.Tensor | None = None, consistency: bool = False,
                conversions: bool = False, consistency_frames: str = "converted") -> AdaINVCOutput:
        """Self-reconstruction for training; recon is in scaled units.

        Args:
            mel: (B, n_mels, T) raw, the clip to rebuild.
            content_mel: (B, n_mels, T) raw input of the content encoder (default `mel`), e.g. a perturbed `mel`.
            speaker_mel: (B, n_mels, T_s) raw input of the speaker encoder (default `mel`), e.g. another clip
                of the same voice.
            consistency: also convert each clip to the next clip's voice and read its speaker vector back
                with the speaker encoder's weights detached (the speaker-consistency term trains the content
                encoder and decoder only).
            conversions: also convert each clip to the next clip's voice (for a discriminator to judge).
            consistency_frames: which frames of the conversion its voice is read on: "converted" (its own active
                frames, as a target clip is read) or "source" (the content source's active frames).
        """
        n_frames = mel.shape[-1]
        content_mel = mel if content_mel is None else content_mel
        speaker_mel = mel if speaker_mel is None else speaker_mel
        active = self.active_frames(content_mel)  # the decoder's statistics follow the content's frames
        mean, log_var = self.content_encoder(self.scale(self._pad(content_mel)), active)
        speaker = self.speaker_encoder(self.scale(speaker_mel), self.active_frames(speaker_mel))
        vq = None
        if self.quantizer is not None:
            vq = self.quantizer(mean)
            content = vq.quantized
        elif log_var is not None and self.training:
            content = mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)
        else:
            content = mean
        content = self.guide(content)
        recon = self.decoder(content, speaker, active)[..., :n_frames]
        converted = converted_speaker = None
        if consistency or conversions:
            converted = self.decoder(content, speaker.roll(1, 0), active)[..., :n_frames]
        if consistency and converted is not None:
            frozen = {name: p.detach() for name, p in self.speaker_encoder.named_parameters()}
            if consistency_frames == "source":  # where the source speaks: the pauses carry no voice to pull
                read_back = active
            else:  # as a target clip is read
                read_back = self.active_frames(self.unscale(converted.detach()))
            converted_speaker = torch.func.functional_call(self.speaker_encoder, frozen, (converted, read_back))
        return AdaINVCOutput(recon, mean, log_var, content, speaker, vq, converted_speaker, converted)


def frame_levels_db(mel: torch.Tensor) -> torch.Tensor:
    """Each frame's level: mel (B, n_mels, T) raw log-mel (natural log of amplitude) -> (B, T) dB.

    The mean over bands of the band's power, in dB relative to the clip's loudest frame (0 there, negative
    elsewhere): `vc_app.evaluate.levels.frame_levels` on a mel already made, without its -80 dB floor.
    """
    log_power = torch.logsumexp(2.0 * mel.float(), dim=1) - math.log(mel.shape[1])  # (B, T), natural log
    level = 10.0 / math.log(10.0) * log_power
    return level - level.amax(dim=-1, keepdim=True)
