"""Pause level and tail level: how much sound an output puts where its source is silent.

Both compare an output (a copy-synthesis, a self-reconstruction, a conversion) with its source, frame by
frame, on the project's mel (`vc_app.mel.mel_spectrogram`): a frame's level is the mean power of its mel
bands in dB, relative to the clip's loudest frame, floored at -80 dB (`frame_levels`). Each clip is measured
against its own loudest frame, so the output's gain does not matter. The two clips have the same length
(every rung of the evaluation keeps the source's length).

- **Pause level**: on the frames where the source is at least 40 dB below its loudest frame, the output's
  mean level minus the source's mean level (dB). A clip with fewer than 10 such frames has no pauses to
  speak of: NaN, left out of the means and counted.
- **Tail level**: on the 300 ms after the source's last frame above -40 dB, the output's mean level minus
  the source's mean level (dB): a burst or a noise floor after the last word. A clip with fewer than 10
  frames after its last loud one (ends on speech): NaN, left out and counted.

+0 dB means as silent as the source; +9 dB, a noise floor 9 dB above the source's.
"""

from __future__ import annotations

import math

import torch

from vc_app.config import MelConfig
from vc_app.mel import mel_spectrogram

FLOOR_DB = -80.0  # frame levels below this (relative to the loudest frame) count as this
PAUSE_BELOW_DB = 40.0  # a source frame this far below its loudest frame is a pause
LOUD_DB = -40.0  # the tail starts after the source's last frame above this
TAIL_SECONDS = 0.3
MIN_FRAMES = 10  # fewer pause (or tail) frames: the clip is left out


def frame_levels(wav: torch.Tensor, cfg: MelConfig) -> torch.Tensor:
    """Each mel frame's level: wav (N,) -> (T,) dB, T = N // hop_length.

    The mean over mel bands of the band's power (the square of the mel amplitude), in dB, relative to the
    loudest frame and floored at `FLOOR_DB`: 0 for the loudest frame, -80 for silence.
    """
    log_mel = mel_spectrogram(wav.float().flatten().cpu(), cfg)  # (n_mels, T), natural log of amplitude
    power_db = 10.0 * torch.log10(torch.exp(2.0 * log_mel.double()).mean(dim=0))
    return (power_db - power_db.max()).clamp(min=FLOOR_DB)


def pause_level(source: torch.Tensor, output: torch.Tensor, cfg: MelConfig) -> float:
    """Pause level (dB) of `output` against `source`, both (N,) at cfg.sample_rate; NaN with < 10 pause frames.

    On the frames where the source is >= 40 dB below its loudest frame: the output's mean frame level minus the
    source's (each relative to its own loudest frame, floored at -80 dB).
    """
    src, out = _aligned_levels(source, output, cfg)
    pauses = src <= -PAUSE_BELOW_DB
    if int(pauses.sum()) < MIN_FRAMES:
        return math.nan
    return float(out[pauses].mean() - src[pauses].mean())


def tail_level(source: torch.Tensor, output: torch.Tensor, cfg: MelConfig) -> float:
    """Tail level (dB) of `output` against `source`, both (N,) at cfg.sample_rate; NaN with < 10 tail frames.

    On the 300 ms of frames after the source's last frame above -40 dB (fewer where the clip ends sooner): the
    output's mean frame level minus the source's (each relative to its own loudest frame, floored at -80 dB).
    """
    src, out = _aligned_levels(source, output, cfg)
    last_loud = int(torch.nonzero(src > LOUD_DB).max())  # the loudest frame (0 dB) is always loud
    span = slice(last_loud + 1, last_loud + 1 + round(TAIL_SECONDS * cfg.sample_rate / cfg.hop_length))
    if src[span].numel() < MIN_FRAMES:
        return math.nan
    return float(out[span].mean() - src[span].mean())


def _aligned_levels(source: torch.Tensor, output: torch.Tensor, cfg: MelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame levels (T,) of both clips, cut to the shorter (the rungs keep the source's length; a vocoder may
    round it to whole frames)."""
    src, out = frame_levels(source, cfg), frame_levels(output, cfg)
    n = min(src.numel(), out.numel())
    return src[:n], out[:n]
