"""Audio front end: read anything libsndfile reads, write outputs atomically.

Owns the arrow "file -> mono float32 waveform at the model's rate" and the
reverse "waveform -> file". Every user-facing problem with a clip (missing,
not audio, corrupt, empty, too short, silent) becomes a `VcAppError` with one
sentence that names the file.

Importing this module is cheap (numpy and soundfile): PyTorch is imported by
the functions that make tensors, so `check_audio_file` can refuse a bad input
in a fraction of a second, before the CLI loads PyTorch and the model.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from vc_app.errors import VcAppError
from vc_app.paths import OUTPUT_FORMATS, atomic_write

if TYPE_CHECKING:
    import torch

MIN_SECONDS = 0.3
SILENCE_TOP_DB = 40.0
SILENT_PEAK = 1e-3  # -60 dBFS: a clip whose loudest sample is below this is silence
FULL_SCALE, CLIPPED_RUN = 0.999, 3  # clipping: this many samples in a row at full scale (a flattened peak)
MIN_RATE, MAX_RATE = 8000, 192000
TRIM_FRAME, TRIM_HOP, TRIM_RATE = 1024, 256, 22050  # silence-trimming frames (scaled to other rates)


def _check_path(path: Path) -> None:
    if not path.exists():
        raise VcAppError(f"{path} does not exist.")
    if path.is_dir():
        raise VcAppError(f"{path} is a folder, not an audio file.")
    if path.stat().st_size == 0:
        raise VcAppError(f"{path} is empty (0 bytes).")


def _unreadable(path: Path, err: Exception) -> VcAppError:
    if isinstance(err, sf.LibsndfileError):
        reason = str(err).split(":")[-1].strip().rstrip(".") or "unreadable"
        return VcAppError(f"{path} is not an audio file that can be read ({reason}).")
    return VcAppError(f"{path} is corrupt or not audio ({err}).")


READ_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError)


def audio_info(path: str | os.PathLike) -> sf._SoundFileInfo:
    """Check that `path` is a readable audio file with a supported rate and at least one sample."""
    path = Path(path)
    _check_path(path)
    try:
        info = sf.info(str(path))
    except READ_ERRORS as err:
        raise _unreadable(path, err) from None
    if info.frames == 0:
        raise VcAppError(f"{path} holds no audio samples.")
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise VcAppError(f"{path} has a sample rate of {info.samplerate} Hz; supported rates are "
                         f"{MIN_RATE}-{MAX_RATE} Hz.")
    return info


def read_audio(path: str | os.PathLike, start: int = 0, stop: int | None = None, *,
               info: sf._SoundFileInfo | None = None) -> tuple[np.ndarray, int]:
    """Read a file (or frames [start, stop) of it) as float32 with its own rate and channels.

    Args:
        info: the file's `audio_info`, when the caller has it (the header is then not checked again).
    Returns:
        (samples (N, C) float32 in [-1, 1], sample rate).
    """
    path = Path(path)
    if info is None:
        audio_info(path)
    try:
        data, rate = sf.read(str(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except READ_ERRORS as err:
        raise _unreadable(path, err) from None
    if data.shape[0] == 0 and start == 0:
        raise VcAppError(f"{path} holds no audio samples.")
    if not np.isfinite(data).all():
        raise VcAppError(f"{path} contains NaN or infinite samples.")
    return data, int(rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(N, C) -> (N,) by averaging channels."""
    return samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]


def sound_bounds(samples: np.ndarray, rate: int = TRIM_RATE, top_db: float = SILENCE_TOP_DB) -> tuple[int, int]:
    """[start, end) of the sound in `samples` (N,): from the first to the last frame within `top_db` of the
    loudest frame; (0, 0) for all-zero audio.

    The same rule as `librosa.effects.trim(frame_length=1024, hop_length=256)` (centred frames, RMS), with
    the frames scaled to `rate` so they last as long as at 22 050 Hz; numpy only, so it costs no import.
    """
    frame = max(4, round(TRIM_FRAME * rate / TRIM_RATE))
    hop = max(1, frame * TRIM_HOP // TRIM_FRAME)
    padded = np.pad(np.asarray(samples, dtype=np.float32), frame // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, frame)[::hop]
    power = np.mean(np.square(frames, dtype=np.float32), axis=1)
    loud = np.flatnonzero(10 * np.log10(np.maximum(power, 1e-10)) > 10 * np.log10(max(power.max(), 1e-10)) - top_db)
    if loud.size == 0:
        return 0, 0
    return int(loud[0]) * hop, min(len(samples), (int(loud[-1]) + 1) * hop)


def check_sound(peak: float, seconds: float, name: str) -> None:
    """The one rule for audio that cannot be converted: silent (its loudest sample under `SILENT_PEAK`, -60 dBFS),
    or with under `MIN_SECONDS` of sound (from the first to the last frame within `SILENCE_TOP_DB` of the
    loudest, `sound_bounds`). `name` as messages say it: "source clip a.wav"."""
    if peak < SILENT_PEAK:
        raise VcAppError(f"The {name} is silent.")
    if seconds < MIN_SECONDS:
        raise VcAppError(f"The {name} has {seconds:.2f} s of sound; at least {MIN_SECONDS} s is needed.")


def clips(samples: np.ndarray) -> bool:
    """The one rule for clipping: `CLIPPED_RUN` consecutive samples at `FULL_SCALE` or above, the flat top a
    saturated converter or an over-driven gain leaves. A single sample touching full scale (a limiter's peak,
    a normalised file) is not clipping. samples: (N,) float in [-1, 1]."""
    top = np.abs(np.asarray(samples, dtype=np.float32).reshape(-1)) >= FULL_SCALE
    if top.sum() < CLIPPED_RUN:
        return False
    run = np.convolve(top.astype(np.int32), np.ones(CLIPPED_RUN, np.int32), mode="valid")
    return bool(run.max() >= CLIPPED_RUN)


def check_audio_file(path: str | os.PathLike, role: str = "input") -> sf._SoundFileInfo:
    """Refuse, without PyTorch, a clip that cannot be converted: missing, a folder, empty, not audio, an
    unsupported rate, NaN samples, or failing `check_sound` at the file's own rate. Reads the whole file once.

    Args:
        role: "source" or "target", used in messages ("The source clip a.wav is silent.").
    Returns:
        the file's soundfile info.
    """
    path = Path(path)
    info = audio_info(path)
    block = info.samplerate * 60  # a minute at a time: long files stay flat in memory
    peak, first, last = 0.0, None, 0
    for start in range(0, info.frames, block):
        data, rate = read_audio(path, start, min(start + block, info.frames), info=info)
        mono = to_mono(data)
        block_peak = float(np.abs(mono).max(initial=0.0))
        peak = max(peak, block_peak)
        a, b = sound_bounds(mono, rate) if block_peak >= SILENT_PEAK else (0, 0)
        if b > a:
            first = start + a if first is None else first
            last = start + b
    check_sound(peak, (last - first) / info.samplerate if first is not None else 0.0, f"{role} clip {path.name}")
    return info


def resample(wav: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling (torchaudio). wav: (..., N) -> (..., N')."""
    if orig_rate == new_rate:
        return wav
    import torchaudio.functional as AF

    return AF.resample(wav, orig_rate, new_rate)


def load_audio(path: str | os.PathLike, sample_rate: int) -> torch.Tensor:
    """Read a clip as a mono float32 waveform at `sample_rate` (level untouched).

    Returns:
        wav: (N,) float32.
    """
    return AudioStream(path, sample_rate).load()


def peak_normalize(wav: torch.Tensor, peak: float = 0.95) -> torch.Tensor:
    """Scale so the loudest sample is `peak`. wav: (N,)."""
    top = wav.abs().max()
    return wav if top <= 0 else wav * (peak / top)


def trim_silence(wav: torch.Tensor, top_db: float = SILENCE_TOP_DB) -> torch.Tensor:
    """Drop leading and trailing silence (quieter than peak - top_db; see `sound_bounds`). wav: (N,) at 22 050 Hz."""
    start, end = sound_bounds(wav.detach().cpu().numpy(), TRIM_RATE, top_db)
    return wav[start:end]


def prepare_clip(path: str | os.PathLike, sample_rate: int, role: str, *, trim: bool) -> torch.Tensor:
    """Load, check and peak-normalise one clip for analysis.

    Args:
        role: "source" or "target", used in error messages.
        trim: drop leading/trailing silence (targets: yes; the source keeps its timing).
    Returns:
        wav: (N,) float32, peak 0.95.
    """
    wav = load_audio(path, sample_rate)
    return check_clip(wav, sample_rate, f"{role} clip {Path(path).name}", trim=trim)


def check_clip(wav: torch.Tensor, sample_rate: int, name: str, *, trim: bool) -> torch.Tensor:
    """Refuse audio that fails `check_sound`; peak-normalise (and trim) the rest. wav: (N,)."""
    peak = float(wav.abs().max()) if wav.numel() else 0.0
    speech = trim_silence(wav) if peak >= SILENT_PEAK else wav[:0]
    check_sound(peak, speech.numel() / sample_rate, name)
    return peak_normalize(speech if trim else wav)


class AudioStream:
    """Block-wise access to a (long) file as mono float32 at `sample_rate`, so memory stays flat.

    Blocks are read with a margin on a grid aligned to the resampler's period, so a block equals the
    same stretch of a whole-file resampling.
    """

    MARGIN = 512  # output samples read beyond each side of a block

    def __init__(self, path: str | os.PathLike, sample_rate: int, *, info: sf._SoundFileInfo | None = None):
        """Open `path` (its header read and checked here, unless `info` from `audio_info` or
        `check_audio_file` is given)."""
        self.path, self.sample_rate = Path(path), sample_rate
        self.info = info = info or audio_info(self.path)
        self.orig_rate, self.frames = info.samplerate, info.frames
        g = math.gcd(self.orig_rate, sample_rate)
        self.period_in, self.period_out = self.orig_rate // g, sample_rate // g
        self.num_samples = -(-self.frames * sample_rate // self.orig_rate)

    def read(self, start: int, length: int) -> torch.Tensor:
        """Samples [start, start + length) at the model rate, (length,), zero-padded past the end."""
        import torch
        import torch.nn.functional as F

        m0 = max(0, (start - self.MARGIN) // self.period_out)
        m1 = -(-(start + length + self.MARGIN) // self.period_out)
        data, _ = read_audio(self.path, m0 * self.period_in, min(m1 * self.period_in, self.frames), info=self.info)
        wav = resample(torch.from_numpy(np.ascontiguousarray(to_mono(data))), self.orig_rate, self.sample_rate)
        offset = start - m0 * self.period_out
        block = wav[offset:offset + length]
        return F.pad(block, (0, length - block.numel())) if block.numel() < length else block

    def load(self) -> torch.Tensor:
        """The whole file at `sample_rate`, mono float32, level untouched: (N,)."""
        import torch

        samples, rate = read_audio(self.path, info=self.info)
        wav = torch.from_numpy(np.ascontiguousarray(to_mono(samples)))
        return resample(wav, rate, self.sample_rate).contiguous()

    def blocks(self, size: int):
        """Yield consecutive (size,) blocks covering the whole file (the last one shorter)."""
        for start in range(0, self.num_samples, size):
            yield self.read(start, min(size, self.num_samples - start))

    def level(self, top_db: float = SILENCE_TOP_DB, frame: int = 1024) -> tuple[float, float, float]:
        """(peak, active RMS, seconds from the first to the last frame within top_db of the loudest), in one pass."""
        import torch

        peak, energies = 0.0, []
        for block in self.blocks(frame * 1024):
            peak = max(peak, float(block.abs().max()))
            usable = block[: block.numel() // frame * frame] if block.numel() >= frame else block
            energies.append(usable.reshape(-1, usable.numel() if usable.numel() < frame else frame).pow(2).mean(1))
        energy = torch.cat(energies)
        keep = energy >= energy.max() * 10 ** (-top_db / 10)
        loud = keep.nonzero().flatten()
        return peak, float(energy[keep].mean().sqrt()), float(loud[-1] - loud[0] + 1) * frame / self.sample_rate


def active_rms(wav: torch.Tensor, top_db: float = SILENCE_TOP_DB, frame: int = 1024) -> float:
    """RMS over the frames within `top_db` of the loudest frame. wav: (N,)."""
    if wav.numel() < frame:
        return float(wav.pow(2).mean().sqrt()) if wav.numel() else 0.0
    frames = wav[: wav.numel() // frame * frame].reshape(-1, frame)
    energy = frames.pow(2).mean(dim=1)
    keep = energy >= energy.max() * 10 ** (-top_db / 10)
    return float(energy[keep].mean().sqrt())


def match_loudness(wav: torch.Tensor, target_rms: float, peak_limit: float = 0.99) -> torch.Tensor:
    """Scale `wav` (N,) so its active RMS is `target_rms`, never past `peak_limit`."""
    rms = active_rms(wav)
    if rms <= 0 or target_rms <= 0:
        return wav
    out = wav * (target_rms / rms)
    top = float(out.abs().max())
    return out * (peak_limit / top) if top > peak_limit else out


def write_audio(path: str | os.PathLike, wav: torch.Tensor | np.ndarray, sample_rate: int,
                *, overwrite: bool = False, fmt: str | None = None) -> Path:
    """Write mono audio atomically: a temp file in the same folder, fsync, rename.

    The path is checked once, at the edge that took it (`paths.check_output_path`, before the model loads);
    here an existing file is still never replaced without `overwrite`, and a missing folder is one sentence.

    Args:
        wav: (N,) float in [-1, 1].
        fmt: "WAV", "FLAC" or "OGG"; by default from the file extension.
    """
    path = Path(path)
    fmt = fmt or OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise VcAppError(f"Cannot write {path.name}: use a .wav, .flac or .ogg file name.")
    data = wav.detach().cpu().numpy() if hasattr(wav, "detach") else np.asarray(wav)  # a tensor, or numpy
    data = np.clip(data.astype(np.float32), -1.0, 1.0)
    subtype = "PCM_16" if fmt in ("WAV", "FLAC") else None
    return atomic_write(path, lambda tmp: sf.write(str(tmp), data, sample_rate, format=fmt, subtype=subtype),
                        fsync=True, overwrite=overwrite)
