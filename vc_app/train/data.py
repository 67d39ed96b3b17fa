"""Training data: random fixed-length segments sliced from a packed feature cache.

No audio is decoded here. Each sample's randomness (segment offset, warp,
gain) comes from a generator seeded by (seed, epoch, index), so a resumed run
sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.features import FeatureCache
from vc_app.train.config import DataConfig


def band_centres(mel_cfg: MelConfig) -> np.ndarray:
    """Centre frequency (Hz) of each mel band, (n_mels,)."""
    import librosa

    return librosa.mel_frequencies(mel_cfg.n_mels + 2, fmin=mel_cfg.f_min, fmax=mel_cfg.f_max)[1:-1]


def warp_mel(mel: np.ndarray, factor: float, centres: np.ndarray) -> np.ndarray:
    """Scale the frequency axis by `factor` (vocal-tract-length-like): band k takes the value at f_k / factor.

    mel: (n_mels, T) log-mel -> (n_mels, T). Content (timing) is untouched; the voice changes consistently.
    """
    if factor == 1.0:
        return mel
    source = np.clip(centres / factor, centres[0], centres[-1])
    hi = np.clip(np.searchsorted(centres, source), 1, len(centres) - 1)
    lo = hi - 1
    w = ((source - centres[lo]) / (centres[hi] - centres[lo]))[:, None]
    return ((1 - w) * mel[lo] + w * mel[hi]).astype(np.float32)


class SegmentDataset(Dataset):
    """Item i: a random `segment_frames` slice of utterance i (utterances shorter than that are skipped).

    An item may be asked for as `i` (in the current epoch, `set_epoch`) or as `(epoch, i)`, which is
    how `StepLoader` asks, so that loader worker processes need no shared epoch counter.

    Returns:
        (mel (n_mels, segment_frames) float32, speaker index).
    """

    def __init__(self, cache: FeatureCache, cfg: DataConfig, mel_cfg: MelConfig, seed: int, augment: bool = True):
        self.cache, self.cfg, self.seed, self.augment = cache, cfg, seed, augment
        self.items = np.flatnonzero(cache.frames >= cfg.segment_frames)
        if len(self.items) == 0:
            raise VcAppError(f"No utterance is at least {cfg.segment_frames} frames long; lower data.segment_frames.")
        self.speaker_names = sorted(set(cache.speakers))
        self.speaker_index = {s: i for i, s in enumerate(self.speaker_names)}
        self.centres = band_centres(mel_cfg)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        utt = int(self.items[i])
        rng = np.random.default_rng((self.seed, epoch, utt))
        frames = int(self.cache.frames[utt])
        start = int(rng.integers(0, frames - self.cfg.segment_frames + 1))
        mel = np.array(self.cache.utterance(utt)[:, start:start + self.cfg.segment_frames], dtype=np.float32)
        if self.augment:
            mel = self._augment(mel, rng)
        return torch.from_numpy(mel), self.speaker_index[self.cache.speakers[utt]]

    def _augment(self, mel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        low, high = self.cfg.warp_range
        if high > low:
            mel = warp_mel(mel, float(np.exp(rng.uniform(np.log(low), np.log(high)))), self.centres)
        if self.cfg.gain_db > 0:
            mel = mel + np.float32(rng.uniform(-self.cfg.gain_db, self.cfg.gain_db) / 20 * np.log(10))
        return mel


class StepBatches(Sampler):
    """Batches of (epoch, index) keys, forever, from a DistributedSampler's epochs, starting at a global step."""

    def __init__(self, sampler: DistributedSampler, batch_size: int, steps_per_epoch: int, start_step: int):
        self.sampler, self.batch_size, self.steps_per_epoch = sampler, batch_size, steps_per_epoch
        self.start_step = start_step

    def __iter__(self):
        epoch, skip = divmod(self.start_step, self.steps_per_epoch)
        while True:
            self.sampler.set_epoch(epoch)
            order = list(self.sampler)
            for b in range(skip, self.steps_per_epoch):
                yield [(epoch, i) for i in order[b * self.batch_size:(b + 1) * self.batch_size]]
            epoch, skip = epoch + 1, 0


class StepLoader:
    """Endless batches from a DistributedSampler, resumable at any global step.

    One DataLoader serves the whole run, so worker processes (num_workers > 0) start once.

    Args:
        world, rank: this process's place in the job (1, 0 when not distributed).
        batch_size: the per-process batch.
    """

    def __init__(self, dataset: SegmentDataset, batch_size: int, *, world: int = 1, rank: int = 0, seed: int = 0,
                 num_workers: int = 0, pin_memory: bool = False):
        self.dataset = dataset
        self.sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed,
                                          drop_last=True)
        self.batch_size, self.num_workers, self.pin_memory, self.seed = batch_size, num_workers, pin_memory, seed
        self.steps_per_epoch = max(1, len(self.sampler) // batch_size)
        if len(self.sampler) < batch_size:
            raise VcAppError(f"Only {len(self.sampler)} training segments per process; lower data.batch_size "
                             f"(now {batch_size}).")

    def batches(self, start_step: int):
        """Yield (mel (B, n_mels, T), speaker (B,)) forever, beginning with global step `start_step`."""
        # Its own generator: a DataLoader otherwise draws its worker seed from the global RNG, so a run
        # resumed at step k would draw at a different point of the RNG stream than an uninterrupted one.
        loader = DataLoader(self.dataset, batch_sampler=StepBatches(self.sampler, self.batch_size,
                                                                    self.steps_per_epoch, start_step),
                            num_workers=self.num_workers, pin_memory=self.pin_memory,
                            generator=torch.Generator().manual_seed(self.seed))
        yield from loader
