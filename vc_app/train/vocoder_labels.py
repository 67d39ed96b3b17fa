"""Teacher labels for distilling the fast vocoder: mels and the teacher vocoder's waveform for each, made once.

Inputs are the mels of a packed feature cache (`vc_app.features`, one split of a recipe: held-out speakers are
never in a training split) and, with an AdaIN-VC bundle, the same mels converted to another speaker of that
cache, drawn at random (the vocoder has to voice converted mels, which are smoother than real ones). The
target is what the teacher (`hifigan:universal`) makes of each mel. Labels are written in shards of
`shard_clips` clips, `shard-NNNNN.npz`, each atomically and skipped when present, so labelling resumes
where it stopped; shard k draws its crops and speakers from a generator seeded with (seed, k).

A shard holds `mels` (n_mels, F) float32, `wavs` (F * hop,) int16, `frames` (n,) per clip, `converted` (n,)
bool and `names` (n,) ("utt" or "utt>speaker").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.paths import atomic_write

SHARD_GLOB = "shard-*.npz"


def crop(mel: np.ndarray, max_frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random crop of at most `max_frames` frames of mel (n_mels, T) (the whole mel when shorter)."""
    if mel.shape[-1] <= max_frames:
        return np.ascontiguousarray(mel, dtype=np.float32)
    start = int(rng.integers(0, mel.shape[-1] - max_frames + 1))
    return np.ascontiguousarray(mel[:, start:start + max_frames], dtype=np.float32)


def label_features(features: str | os.PathLike, out: str | os.PathLike, *, teacher: str = "hifigan:universal",
                   checkpoint: str | None = None, converted_per_clip: int = 1, max_frames: int = 512,
                   shard_clips: int = 64, seed: int = 0, device: str = "cpu", log: Callable = print) -> Path:
    """Label every clip of the packed feature cache `features` into shards under `out` (see the module doc).

    Args:
        teacher: the vocoder spec whose waveforms are the targets.
        checkpoint: an AdaIN-VC bundle; each clip is also converted `converted_per_clip` times, each to a random
            other speaker of the cache (None: real mels only).
        max_frames: each clip (and each conversion) is a random crop of at most this many frames.
    Returns:
        `out`.
    """
    from vc_app.bundle import load_bundle
    from vc_app.features import FeatureCache
    from vc_app.vocoders import load_vocoder

    cache = FeatureCache.open(features)
    bundle = load_bundle(checkpoint, device=device) if checkpoint else None
    mel_cfg = bundle.mel if bundle is not None else MelConfig()
    vocoder = load_vocoder(teacher, mel_cfg, device=device)
    clips_of: dict[str, list[int]] = {}
    for i, speaker in enumerate(cache.speakers):
        clips_of.setdefault(speaker, []).append(i)
    speakers = sorted(clips_of)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(cache.utt_ids), shard_clips)
    for shard, start in enumerate(starts):
        path = out / f"shard-{shard:05d}.npz"
        if path.exists():
            continue
        rng = np.random.default_rng([seed, shard])
        items: list[tuple[str, bool, np.ndarray]] = []
        for i in range(start, min(start + shard_clips, len(cache.utt_ids))):
            mel = crop(cache.utterance(i), max_frames, rng)
            items.append((cache.utt_ids[i], False, mel))
            others = [s for s in speakers if s != cache.speakers[i]]
            for _ in range(converted_per_clip if bundle is not None and others else 0):
                target = others[int(rng.integers(len(others)))]
                reference = crop(cache.utterance(clips_of[target][int(rng.integers(len(clips_of[target])))]),
                                 max_frames, rng)
                with torch.inference_mode():
                    model = bundle.model  # type: ignore[union-attr]  # not None in this loop
                    voice = model.speaker_from_clips([torch.from_numpy(reference).to(device)])
                    converted = model.convert(torch.from_numpy(mel)[None].to(device), voice[None])[0]
                items.append((f"{cache.utt_ids[i]}>{target}", True, converted.float().cpu().numpy()))
        _write_shard(path, items, vocoder)
        log(f"labelled shard {shard + 1}/{len(starts)}: {len(items)} clips -> {path}")
    return out


def _write_shard(path: Path, items: list[tuple[str, bool, np.ndarray]], vocoder) -> None:
    """The teacher's waveform of each mel; all of them in one .npz, written atomically."""
    wavs = []
    for _, _, mel in items:
        wav = vocoder(torch.from_numpy(mel)[None])[0].clamp(-1.0, 1.0)
        wavs.append(np.round(wav.cpu().numpy() * 32767.0).astype(np.int16))
    arrays = {"mels": np.concatenate([m for _, _, m in items], axis=1).astype(np.float32),
              "wavs": np.concatenate(wavs), "frames": np.array([m.shape[-1] for _, _, m in items], np.int64),
              "converted": np.array([c for _, c, _ in items], bool), "names": np.array([n for n, _, _ in items])}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)  # type: ignore[arg-type]  # the stub reads **kwds as allow_pickle

    atomic_write(path, write)


@dataclass
class LabelPack:
    """Labelled clips in memory: mels (n_mels, F) float32, wavs (F * hop,) int16, and each clip's place."""

    mels: np.ndarray
    wavs: np.ndarray
    offsets: np.ndarray  # (n,) first frame of each clip
    frames: np.ndarray  # (n,)
    converted: np.ndarray  # (n,) bool
    hop_length: int

    @classmethod
    def open(cls, folder: str | os.PathLike, hop_length: int) -> LabelPack:
        """All shards of `folder`. Raises VcAppError when there are none or one is damaged."""
        paths = sorted(Path(folder).glob(SHARD_GLOB))
        if not paths:
            raise VcAppError(f"{folder} holds no labels ({SHARD_GLOB}): run the label stage first.")
        mels, wavs, frames, converted = [], [], [], []
        for path in paths:
            try:
                with np.load(path) as shard:
                    mels.append(shard["mels"])
                    wavs.append(shard["wavs"])
                    frames.append(shard["frames"])
                    converted.append(shard["converted"])
            except (OSError, ValueError, KeyError) as err:
                raise VcAppError(f"The label shard {path} is damaged ({err}); delete it and label again.") from None
        all_frames = np.concatenate(frames)
        offsets = np.concatenate([[0], np.cumsum(all_frames)[:-1]]).astype(np.int64)
        return cls(np.concatenate(mels, axis=1), np.concatenate(wavs), offsets, all_frames,
                   np.concatenate(converted), hop_length)

    def __len__(self) -> int:
        return len(self.frames)

    def seconds(self, sample_rate: int) -> dict[str, float]:
        """Hours of audio behind the labels: {"real": s, "converted": s}."""
        per_clip = self.frames * self.hop_length / sample_rate
        return {"real": float(per_clip[~self.converted].sum()), "converted": float(per_clip[self.converted].sum())}

    def clip(self, i: int, start: int = 0, frames: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames [start, start + frames) of clip i: mel (n_mels, F) and the teacher's wav (F * hop,) float."""
        frames = int(self.frames[i]) - start if frames is None else frames
        first = int(self.offsets[i]) + start
        mel = torch.from_numpy(np.ascontiguousarray(self.mels[:, first:first + frames]))
        hop = self.hop_length
        wav = torch.from_numpy(self.wavs[first * hop:(first + frames) * hop].astype(np.float32) / 32767.0)
        return mel, wav

    def batch(self, size: int, segment_frames: int, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`size` random segments of `segment_frames` frames, drawn from (seed, step) alone (so a resumed run
        draws the same batches): mel (B, n_mels, S), wav (B, S * hop). Clips are drawn in proportion to the
        segments they hold; clips shorter than a segment are never drawn."""
        room = np.maximum(self.frames - segment_frames + 1, 0).astype(np.float64)
        if room.sum() == 0:
            raise VcAppError(f"No labelled clip is {segment_frames} frames long: label longer crops "
                             f"or train on shorter segments.")
        rng = np.random.default_rng([seed, step])
        clips = rng.choice(len(room), size=size, p=room / room.sum())
        pairs = [self.clip(int(i), int(rng.integers(0, room[i])), segment_frames) for i in clips]
        return torch.stack([m for m, _ in pairs]), torch.stack([w for _, w in pairs])
