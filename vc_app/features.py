"""Feature cache: mels computed once (THE mel function), packed so training only slices arrays.

Layout of a cache folder:
    utts/<utt_id>.npy     one (n_mels, T) float32 array per utterance (written atomically; re-runs skip them)
    mels.npy              all utterances concatenated along time, (n_mels, total_T), memory-mapped by the loader
    index.csv             utt_id, speaker, offset, frames, corpus
    stats.json            per-band mean and std over the packed frames, and the mel config
"""

from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vc_app.config import MelConfig, mel_config_from_dict, to_dict
from vc_app.corpus import Utterance
from vc_app.errors import VcAppError
from vc_app.paths import atomic_write, write_csv


def utterance_mel(path: str, mel_cfg: MelConfig) -> np.ndarray:
    """The training feature of one clip: load, mono, resample, peak-normalise, trim silence, mel.

    Returns:
        (n_mels, T) float32 log-mel.
    """
    import torch

    from vc_app.audio import prepare_clip
    from vc_app.mel import mel_spectrogram

    with torch.inference_mode():
        wav = prepare_clip(path, mel_cfg.sample_rate, "training", trim=True)
        return mel_spectrogram(wav, mel_cfg).numpy().astype(np.float32)


def _extract_one(job: tuple[str, str, dict]) -> tuple[str, str]:
    """Worker: (utt_id, audio path, mel config dict) -> (utt_id, error or '')."""
    import torch

    torch.set_num_threads(1)
    utt_id, path, mel_dict = job
    out = Path(mel_dict.pop("_out"))
    try:
        mel = utterance_mel(path, mel_config_from_dict(mel_dict))
    except VcAppError as err:
        return utt_id, str(err)
    atomic_write(out, lambda tmp: _save_npy(tmp, mel))
    return utt_id, ""


def _save_npy(path: Path, array: np.ndarray) -> None:
    """np.save by handle: by name it would append '.npy' to a temp file's name."""
    with open(path, "wb") as handle:
        np.save(handle, array)


def extract_features(utts: list[Utterance], cache: str | os.PathLike, mel_cfg: MelConfig, *, workers: int = 2,
                     progress: bool = True) -> dict[str, str]:
    """Compute each utterance's mel into `cache/utts/` in worker processes; skip those already there.

    Returns:
        {utt_id: reason} for clips that could not be used (silent, too short, unreadable).
    """
    folder = Path(cache) / "utts"
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(u.utt_id, u.path, {**to_dict(mel_cfg), "_out": str(folder / f"{u.utt_id}.npy")})
            for u in utts if not (folder / f"{u.utt_id}.npy").is_file()]
    failures: dict[str, str] = {}
    if not jobs:
        return failures
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc="features", unit="clip", disable=not progress)
    if workers <= 1:
        results = map(_extract_one, jobs)
        for utt_id, err in results:
            _record(failures, utt_id, err, bar)
    else:
        _preload_front_end()
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for utt_id, err in pool.map(_extract_one, jobs, chunksize=4):
                _record(failures, utt_id, err, bar)
    bar.close()
    return failures


def _preload_front_end() -> None:
    """Import the front end's heavy modules once in the parent: forked workers inherit them (seconds each)."""
    import torchaudio.functional  # noqa: F401

    import vc_app.audio  # noqa: F401
    import vc_app.mel  # noqa: F401


def _record(failures: dict[str, str], utt_id: str, err: str, bar) -> None:
    if err:
        failures[utt_id] = err
    bar.update(1)


def pack_features(utts: list[Utterance], cache: str | os.PathLike, mel_cfg: MelConfig, *,
                  min_frames: int = 1) -> Path:
    """Concatenate the per-utterance mels of `utts` into cache/mels.npy + index.csv + stats.json.

    Streams: one utterance in memory at a time (VCTK packs to several GB). When the cache already
    holds exactly these utterances, nothing is rewritten.
    """
    cache = Path(cache)
    rows, offset = [], 0
    for u in utts:
        path = cache / "utts" / f"{u.utt_id}.npy"
        if not path.is_file():
            continue
        n_mels, frames = np.load(path, mmap_mode="r").shape
        if frames < min_frames:
            continue
        rows.append((u.utt_id, u.speaker, offset, frames, u.corpus))
        offset += frames
    if not rows:
        raise VcAppError(f"No usable features in {cache} (every clip was missing, silent or too short).")
    if _packed_rows(cache) == rows:
        return cache
    total, sq = np.zeros(n_mels), np.zeros(n_mels)

    def write_pack(tmp: Path) -> None:
        packed = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n_mels, offset))
        for utt_id, _, start, frames, _ in rows:
            mel = np.load(cache / "utts" / f"{utt_id}.npy").astype(np.float64)
            packed[:, start:start + frames] = mel
            total[:] += mel.sum(axis=1)
            sq[:] += (mel ** 2).sum(axis=1)
        packed.flush()
        del packed

    (cache / "index.csv").unlink(missing_ok=True)  # an interrupted pack is never taken for a finished one
    atomic_write(cache / "mels.npy", write_pack)
    mean = total / offset
    stats = {"mean": mean.tolist(), "std": np.sqrt(np.maximum(sq / offset - mean ** 2, 0)).tolist(),
             "frames": int(offset), "utterances": len(rows), "speakers": len({r[1] for r in rows}),
             "mel": to_dict(mel_cfg)}
    atomic_write(cache / "stats.json", lambda tmp: tmp.write_text(json.dumps(stats, indent=1)))
    # last: its presence marks a finished pack
    write_csv(cache / "index.csv", ["utt_id", "speaker", "offset", "frames", "corpus"], rows)
    return cache


def _packed_rows(cache: Path) -> list[tuple[str, str, int, int, str]] | None:
    """The index of an existing pack in `cache` (None when there is none)."""
    if not all((cache / name).is_file() for name in ("mels.npy", "index.csv", "stats.json")):
        return None
    with open(cache / "index.csv", newline="") as handle:
        return [(r["utt_id"], r["speaker"], int(r["offset"]), int(r["frames"]), r.get("corpus") or "")
                for r in csv.DictReader(handle)]


@dataclass
class FeatureCache:
    """A packed cache opened for reading: mels (n_mels, total_T) memory-mapped, and its index."""

    mels: np.ndarray
    utt_ids: list[str]
    speakers: list[str]
    offsets: np.ndarray
    frames: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    corpora: list[str]  # each utterance's corpus ("" in a pack written before corpora were recorded)

    @classmethod
    def open(cls, cache: str | os.PathLike) -> FeatureCache:
        cache = Path(cache)
        if not (cache / "mels.npy").is_file() or not (cache / "index.csv").is_file():
            raise VcAppError(f"{cache} is not a packed feature cache (run the features stage first).")
        with open(cache / "index.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        stats = json.loads((cache / "stats.json").read_text())
        return cls(np.load(cache / "mels.npy", mmap_mode="r"), [r["utt_id"] for r in rows],
                   [r["speaker"] for r in rows], np.array([int(r["offset"]) for r in rows]),
                   np.array([int(r["frames"]) for r in rows]), np.asarray(stats["mean"], np.float32),
                   np.asarray(stats["std"], np.float32), [r.get("corpus") or "" for r in rows])

    def utterance(self, i: int) -> np.ndarray:
        """(n_mels, frames_i) view of utterance i."""
        return self.mels[:, self.offsets[i]:self.offsets[i] + self.frames[i]]
