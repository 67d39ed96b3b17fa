"""Training data: random fixed-length segments sliced from a packed feature cache.

No audio is decoded here. Each sample's randomness (segment offset, voice,
perturbation, gain) comes from a generator seeded by (seed, epoch, index), so
a resumed run sees exactly the batches an uninterrupted run would have seen.

Three augmentations make a few real speakers teach a one-shot model (all in the
log-mel domain, all keep the number of frames, so content and timing are
untouched):

- *voices*: frequency warping (a vocal-tract-length change, `warp_mel`) and a
  spectral tilt (`tilt_mel`). With `pseudo_speakers` = K each real speaker
  becomes K voices, each with its own fixed warp factor and tilt, applied to
  every segment of that voice (voice 0 is the real one); with K = 0 every
  item gets a fresh random warp (the older, per-segment scheme), the same for
  its target and its speaker-encoder input.
- *information perturbation*: `content_warp_range` warps the content encoder's
  input alone, so any timbre the content code carries is the wrong one and the
  decoder must take the voice from the speaker vector.
- *another segment*: with `speaker_segment: other` the speaker encoder reads a
  segment of another clip of the same voice, so the speaker vector can only
  carry what the clips of a voice share.
- *a noise floor on the speaker input* (`speaker_noise_db`, `add_noise_floor`):
  the speaker encoder's input alone gets stationary noise at a random level and
  tilt, so the recording's noise floor seen there no longer predicts the
  target's, and the decoder learns to take the pauses' level from the content.
  Without it a conversion copies the target clip's floor into the source's
  pauses (EXPERIMENTS.md, the long run).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.features import FeatureCache
from vc_app.mel import band_centres
from vc_app.train.config import DataConfig


def tilt_mel(mel: np.ndarray, tilt_db: float, centres: np.ndarray) -> np.ndarray:
    """Add a spectral tilt: 0 dB at 0 Hz rising linearly to `tilt_db` at the top band's centre.

    mel: (n_mels, T) natural-log mel amplitude -> (n_mels, T).
    """
    if tilt_db == 0.0:
        return mel
    slope = (centres / centres[-1]) * (tilt_db / 20 * np.log(10))
    return (mel + slope[:, None]).astype(np.float32)


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


NOISE_FLUCTUATION_SHAPE = 4.0  # a noise band's power per frame ~ Gamma(k, 1/k): mean 1, a mel band's few bins' spread


def add_noise_floor(mel: np.ndarray, level_db: float, tilt_db: float, centres: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """Add stationary noise to a log-mel, in power: the noise's mean band power is `level_db` under the loudest
    frame's, tilted linearly to `tilt_db` at the top band, and fluctuates from frame to frame.

    mel: (n_mels, T) natural-log mel amplitude -> (n_mels, T) float32.
    """
    power = np.exp(2.0 * mel.astype(np.float64))
    reference = power.mean(axis=0).max()  # the loudest frame's mean band power
    profile = 10.0 ** ((centres / centres[-1]) * tilt_db / 10.0)
    band_power = reference * 10.0 ** (level_db / 10.0) * profile / profile.mean()
    fluctuation = rng.gamma(NOISE_FLUCTUATION_SHAPE, 1.0 / NOISE_FLUCTUATION_SHAPE, size=mel.shape)
    return (0.5 * np.log(power + band_power[:, None] * fluctuation)).astype(np.float32)


def log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A warp factor drawn log-uniformly in [low, high] (a factor and its inverse are equally likely).

    An empty range (high <= low) means no warp: 1.0, and `rng` is not advanced.
    """
    if high <= low:
        return 1.0
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


class SegmentDataset(Dataset):
    """Item i: a random `segment_frames` slice of utterance i (utterances shorter than that are skipped).

    An item may be asked for as `i` (in the current epoch, `set_epoch`) or as `(epoch, i)`, which is
    how `StepLoader` asks, so that loader worker processes need no shared epoch counter.

    Returns:
        (mel, content_mel, speaker_mel, speaker index): the reconstruction target, the content encoder's input
        and the speaker encoder's input, each (n_mels, segment_frames) float32 (the same tensor when no
        perturbation or other segment is configured; all three are `mel` without augmentation).
    """

    def __init__(self, cache: FeatureCache, cfg: DataConfig, mel_cfg: MelConfig, seed: int, augment: bool = True):
        self.cache, self.cfg, self.seed, self.augment = cache, cfg, seed, augment
        self.items = np.flatnonzero(cache.frames >= cfg.segment_frames)
        if len(self.items) == 0:
            raise VcAppError(f"No utterance is at least {cfg.segment_frames} frames long; lower data.segment_frames.")
        self.speaker_names = sorted(set(cache.speakers))
        self.speaker_index = {s: i for i, s in enumerate(self.speaker_names)}
        self.centres = band_centres(mel_cfg)
        self.by_speaker: dict[int, list[int]] = {}
        self.corpus_of: dict[int, str] = {}  # speaker index -> its corpus (a speaker's first clip decides)
        for position, utt in enumerate(self.items):
            speaker = self.speaker_index[cache.speakers[utt]]
            self.by_speaker.setdefault(speaker, []).append(position)
            self.corpus_of.setdefault(speaker, cache.corpora[utt])
        self.voices = pseudo_speaker_voices(len(self.speaker_names), cfg, seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        epoch, i = key if isinstance(key, tuple) else (self.epoch, key)
        utt = int(self.items[i])
        rng = np.random.default_rng((self.seed, epoch, utt))
        mel = self._segment(utt, rng)
        speaker = self.speaker_index[self.cache.speakers[utt]]
        content = speaker_mel = None
        if self.augment:
            voice = self._voice(speaker, rng)
            mel = self._gain(self._apply_voice(mel, voice), rng)
            content = self._perturb(mel, rng)
            if self.cfg.speaker_segment == "other":
                others = self.by_speaker[speaker]
                other = int(self.items[others[int(rng.integers(0, len(others)))]])
                speaker_mel = self._gain(self._apply_voice(self._segment(other, rng), voice), rng)
            if self.cfg.speaker_noise_db != (0.0, 0.0):  # drawn last: the other draws stay a run's without it
                speaker_mel = self._noise_floor(mel if speaker_mel is None else speaker_mel, rng)
        mel_t = torch.from_numpy(mel)
        return (mel_t, mel_t if content is None else torch.from_numpy(content),
                mel_t if speaker_mel is None else torch.from_numpy(speaker_mel), speaker)

    def _segment(self, utt: int, rng: np.random.Generator) -> np.ndarray:
        """A random `segment_frames` slice of utterance `utt`, (n_mels, segment_frames) float32."""
        frames = int(self.cache.frames[utt])
        start = int(rng.integers(0, frames - self.cfg.segment_frames + 1))
        return np.array(self.cache.utterance(utt)[:, start:start + self.cfg.segment_frames], dtype=np.float32)

    def _voice(self, speaker: int, rng: np.random.Generator) -> tuple[float, float]:
        """(warp factor, tilt dB) of this item's voice, applied alike to the target and the speaker input.

        A pseudo-speaker of `speaker`, or without pseudo-speakers a fresh warp in `cfg.warp_range` (no tilt).
        """
        if self.cfg.pseudo_speakers > 0:
            return self.voices[speaker][int(rng.integers(0, self.cfg.pseudo_speakers))]
        return log_uniform(rng, *self.cfg.warp_range), 0.0

    def _apply_voice(self, mel: np.ndarray, voice: tuple[float, float]) -> np.ndarray:
        factor, tilt = voice
        return tilt_mel(warp_mel(mel, factor, self.centres), tilt, self.centres)

    def _gain(self, mel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.cfg.gain_db > 0:
            mel = mel + np.float32(rng.uniform(-self.cfg.gain_db, self.cfg.gain_db) / 20 * np.log(10))
        return mel

    def _noise_floor(self, mel: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The speaker encoder's input `mel` (n_mels, T) with a noise floor at a level drawn in `speaker_noise_db`
        and a tilt within +/- `speaker_noise_tilt_db`."""
        low, high = self.cfg.speaker_noise_db
        tilt = self.cfg.speaker_noise_tilt_db
        return add_noise_floor(mel, rng.uniform(low, high), rng.uniform(-tilt, tilt), self.centres, rng)

    def _perturb(self, mel: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
        """The content encoder's input: `mel` warped by a random factor (information perturbation), or None."""
        low, high = self.cfg.content_warp_range
        if high <= low:
            return None
        return warp_mel(mel, log_uniform(rng, low, high), self.centres)


def pseudo_speaker_voices(n_speakers: int, cfg: DataConfig, seed: int) -> list[list[tuple[float, float]]]:
    """Each real speaker's `cfg.pseudo_speakers` voices as (warp factor, tilt dB); voice 0 is the real one.

    Factors are log-uniform in `cfg.warp_range`, tilts uniform in +/- `cfg.tilt_db`, fixed by `seed`.
    """
    low, high = cfg.warp_range
    out = []
    for speaker in range(n_speakers):
        rng = np.random.default_rng((seed, 7919, speaker))
        voices = [(1.0, 0.0)]
        for _ in range(1, cfg.pseudo_speakers):
            factor = log_uniform(rng, low, high)
            voices.append((factor, float(rng.uniform(-cfg.tilt_db, cfg.tilt_db))))
        out.append(voices)
    return out


@dataclass
class Batch:
    """One training batch: mel, content_mel, speaker_mel (B, n_mels, T) raw log-mels; speaker (B,) indices.

    `mel` is the reconstruction target; the content and speaker encoders read `content_mel` and
    `speaker_mel` (equal to `mel` unless the data config perturbs or re-draws them).
    """

    mel: torch.Tensor
    content_mel: torch.Tensor
    speaker_mel: torch.Tensor
    speaker: torch.Tensor

    @classmethod
    def collated(cls, items) -> Batch:
        """From a DataLoader's collated (mel, content_mel, speaker_mel, speaker)."""
        return cls(*items)

    def to(self, device: torch.device) -> Batch:
        return Batch(self.mel.to(device, non_blocking=True), self.content_mel.to(device, non_blocking=True),
                     self.speaker_mel.to(device, non_blocking=True), self.speaker.to(device, non_blocking=True))


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


class SpeakerBatches(Sampler):
    """Speaker-balanced batches of (key, index) items, forever, from step `start_step`.

    Each batch draws `batch_size` speakers uniformly (without replacement when there are enough), then one
    clip of each uniformly: a speaker with one clip weighs as much as one with a hundred, so a corpus of
    many short-clip speakers does not drown a corpus of few long-recorded ones (or the reverse). With
    `corpus_weights` each slot first draws a corpus by its weight, then one of its speakers: how much of
    each batch a recording set supplies is then a choice, not a consequence of its speaker count.

    A batch depends only on (seed, step, rank), so a resumed run, or the next leg of a relay keyed on the
    total step, draws exactly the batches an unbroken run would have drawn. The item key is unique per
    step and slot, so the same clip drawn twice gets different segments.

    Args:
        by_speaker: {speaker index: dataset positions of its clips}.
        corpus_of: {speaker index: corpus name}; needed with `corpus_weights`.
        corpus_weights: {corpus: weight}; unlisted corpora weigh 1, a name not among the corpora is an error.
    """

    def __init__(self, by_speaker: dict[int, list[int]], batch_size: int, start_step: int, *, seed: int = 0,
                 rank: int = 0, corpus_of: dict[int, str] | None = None,
                 corpus_weights: dict[str, float] | None = None):
        self.speakers = sorted(by_speaker)
        self.clips = [np.asarray(by_speaker[s]) for s in self.speakers]
        self.batch_size, self.start_step, self.seed, self.rank = batch_size, start_step, seed, rank
        self.groups: list[np.ndarray] = []
        self.weights = np.ones(0)
        if corpus_weights:
            corpus_of = corpus_of or {}
            names = sorted({corpus_of[s] for s in self.speakers})
            if names == [""]:
                raise VcAppError("data.corpus_weights needs the corpus of each clip, and these training features "
                                 "were packed before stage 0 recorded it: re-run the recipe's stages 0-2.")
            unknown = sorted(set(corpus_weights) - set(names))
            if unknown:
                raise VcAppError(f"data.corpus_weights names {', '.join(unknown)}, not a corpus of the training "
                                 f"data ({', '.join(names)}).")
            weights = np.array([corpus_weights.get(name, 1.0) for name in names])
            if weights.sum() <= 0:
                raise VcAppError("data.corpus_weights leaves no corpus with a positive weight.")
            self.groups = [np.array([i for i, s in enumerate(self.speakers) if corpus_of[s] == name])
                           for name in names]
            self.weights = weights / weights.sum()

    def batch(self, step: int) -> list[tuple[int, int]]:
        """The (key, dataset position) items of global step `step`."""
        rng = np.random.default_rng((self.seed, 104729, step, self.rank))
        if self.groups:
            corpora = rng.choice(len(self.groups), size=self.batch_size, p=self.weights)
            chosen = [self.groups[c][rng.integers(0, len(self.groups[c]))] for c in corpora]
        else:
            replace = self.batch_size > len(self.speakers)
            chosen = list(rng.choice(len(self.speakers), size=self.batch_size, replace=replace))
        return [(step * self.batch_size + slot, int(self.clips[s][rng.integers(0, len(self.clips[s]))]))
                for slot, s in enumerate(chosen)]

    def __iter__(self):
        step = self.start_step
        while True:
            yield self.batch(step)
            step += 1


class StepLoader:
    """Endless batches, resumable at any global step: every clip once an epoch (a DistributedSampler's
    shuffles) or, with `speaker_balanced`, `SpeakerBatches`.

    One DataLoader serves the whole run, so worker processes (num_workers > 0) start once.

    Args:
        world, rank: this process's place in the job (1, 0 when not distributed).
        batch_size: the per-process batch.
        speaker_balanced: draw speakers, then clips (`data.sampler: speakers`).
        corpus_weights: with `speaker_balanced`, draw a corpus by weight first (`data.corpus_weights`).
    """

    def __init__(self, dataset: SegmentDataset, batch_size: int, *, world: int = 1, rank: int = 0, seed: int = 0,
                 num_workers: int = 0, pin_memory: bool = False, speaker_balanced: bool = False,
                 corpus_weights: dict[str, float] | None = None):
        self.dataset, self.rank, self.speaker_balanced = dataset, rank, speaker_balanced
        self.corpus_weights = corpus_weights
        self.sampler: DistributedSampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True,
                                                              seed=seed, drop_last=True)
        self.batch_size, self.num_workers, self.pin_memory, self.seed = batch_size, num_workers, pin_memory, seed
        self.steps_per_epoch = max(1, len(self.sampler) // batch_size)
        if len(self.sampler) < batch_size:
            raise VcAppError(f"Only {len(self.sampler)} training segments per process; lower data.batch_size "
                             f"(now {batch_size}).")

    def batches(self, start_step: int):
        """Yield `Batch`es forever, beginning with global step `start_step`."""
        batches: Sampler = (SpeakerBatches(self.dataset.by_speaker, self.batch_size, start_step, seed=self.seed,
                                           rank=self.rank, corpus_of=self.dataset.corpus_of,
                                           corpus_weights=self.corpus_weights) if self.speaker_balanced else
                            StepBatches(self.sampler, self.batch_size, self.steps_per_epoch, start_step))
        # Its own generator: a DataLoader otherwise draws its worker seed from the global RNG, so a run
        # resumed at step k would draw at a different point of the RNG stream than an uninterrupted one.
        loader = DataLoader(self.dataset, batch_sampler=batches,
                            num_workers=self.num_workers, pin_memory=self.pin_memory,
                            generator=torch.Generator().manual_seed(self.seed))
        for items in loader:
            yield Batch.collated(items)
