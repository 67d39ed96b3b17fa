"""Audio front end: read anything libsndfile reads, write outputs atomically.

Owns the arrow "file -> mono float32 waveform at the model's rate" and the
reverse "waveform -> file". Every user-facing problem with a clip (missing,
not audio, corrupt, empty, too short, silent) becomes a `VcAppError` with one
sentence that names the file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vc_app.errors import VcAppError
from vc_app.paths import temp_path_for

MIN_SECONDS = 0.3
SILENCE_TOP_DB = 40.0
SILENT_PEAK = 1e-3  # -60 dBFS: a clip whose loudest sample is below this is silence
MIN_RATE, MAX_RATE = 8000, 192000
OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a file as float32 with its own rate and channels.

    Returns:
        (samples (N, C) float32 in [-1, 1], sample rate).
    """
    path = Path(path)
    if not path.exists():
        raise VcAppError(f"{path} does not exist.")
    if path.is_dir():
        raise VcAppError(f"{path} is a folder, not an audio file.")
    if path.stat().st_size == 0:
        raise VcAppError(f"{path} is empty (0 bytes).")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except sf.LibsndfileError as err:
        reason = str(err).split(":")[-1].strip().rstrip(".") or "unreadable"
        raise VcAppError(f"{path} is not an audio file that can be read ({reason}).") from None
    except (RuntimeError, ValueError, TypeError, EOFError) as err:
        raise VcAppError(f"{path} is corrupt or not audio ({err}).") from None
    if data.shape[0] == 0:
        raise VcAppError(f"{path} holds no audio samples.")
    if not MIN_RATE <= rate <= MAX_RATE:
        raise VcAppError(f"{path} has a sample rate of {rate} Hz; supported rates are {MIN_RATE}-{MAX_RATE} Hz.")
    if not np.isfinite(data).all():
        raise VcAppError(f"{path} contains NaN or infinite samples.")
    return data, int(rate)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """(N, C) -> (N,) by averaging channels."""
    return samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]


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
    samples, rate = read_audio(path)
    wav = torch.from_numpy(np.ascontiguousarray(to_mono(samples)))
    return resample(wav, rate, sample_rate).contiguous()


def peak_normalize(wav: torch.Tensor, peak: float = 0.95) -> torch.Tensor:
    """Scale so the loudest sample is `peak`. wav: (N,)."""
    top = wav.abs().max()
    return wav if top <= 0 else wav * (peak / top)


def trim_silence(wav: torch.Tensor, top_db: float = SILENCE_TOP_DB) -> torch.Tensor:
    """Drop leading and trailing silence (quieter than peak - top_db). wav: (N,)."""
    import librosa

    _, (start, end) = librosa.effects.trim(wav.numpy(), top_db=top_db, frame_length=1024, hop_length=256)
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
    """Refuse silent or too-short audio; peak-normalise (and trim) the rest. wav: (N,)."""
    if wav.numel() == 0 or float(wav.abs().max()) < SILENT_PEAK:
        raise VcAppError(f"The {name} is silent.")
    speech = trim_silence(wav)
    if speech.numel() < MIN_SECONDS * sample_rate:
        raise VcAppError(
            f"The {name} has {speech.numel() / sample_rate:.2f} s of sound; at least {MIN_SECONDS} s is needed."
        )
    return peak_normalize(speech if trim else wav)


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

    Args:
        wav: (N,) float in [-1, 1].
        fmt: "WAV", "FLAC" or "OGG"; by default from the file extension.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise VcAppError(f"{path} already exists; pass --overwrite to replace it.")
    fmt = fmt or OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise VcAppError(f"Cannot write {path.name}: use a .wav, .flac or .ogg file name.")
    if not path.parent.is_dir():
        raise VcAppError(f"Cannot write {path}: the folder {path.parent} does not exist.")
    data = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    data = np.clip(data.astype(np.float32), -1.0, 1.0)
    subtype = "PCM_16" if fmt in ("WAV", "FLAC") else None
    tmp = temp_path_for(path)
    try:
        handle = open(tmp, "xb")
    except OSError as err:
        raise VcAppError(f"Cannot write to {path.parent} ({err.strerror}).") from None
    try:
        with handle:
            sf.write(handle, data, sample_rate, format=fmt, subtype=subtype)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
