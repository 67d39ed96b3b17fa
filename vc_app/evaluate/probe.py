"""Disentanglement probes: how much speaker identity a fresh linear classifier finds in a representation.

For each held-out utterance the model gives a time-averaged content code (`model.content`, averaged
over time) and a speaker vector (`model.speaker`). Each speaker's utterances are split in half
(seeded shuffle; the first floor(n/2) train the probe, the rest test it). The probe is
`StandardScaler` + scikit-learn `LogisticRegression` (L2, C = 1, lbfgs, multinomial), fitted on the
training half; its accuracy on the test half is reported next to chance level (the share of the
most frequent speaker in the test half, 1/speakers when balanced). A good model has a speaker
probe far above chance on speaker vectors and near chance on content codes.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
import torch

from vc_app.audio import prepare_clip
from vc_app.mel import mel_spectrogram


@dataclass(frozen=True)
class ProbeResult:
    """Test accuracy of one speaker probe and the chance level it must be compared with."""

    accuracy: float
    chance: float
    n_speakers: int
    n_train: int
    n_test: int

    def to_dict(self) -> dict:
        return asdict(self)


def split_per_speaker(labels: list[str], *, seed: int = 0) -> tuple[list[int], list[int]]:
    """Stratified half split: indices (train, test), floor(n/2) of each speaker's utterances for training.

    Speakers with fewer than two utterances are left out of both halves.
    """
    by_speaker: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_speaker.setdefault(label, []).append(i)
    train, test = [], []
    for speaker in sorted(by_speaker):
        idx = by_speaker[speaker]
        if len(idx) < 2:
            continue
        random.Random(f"{seed}/{speaker}").shuffle(idx)
        half = len(idx) // 2
        train += idx[:half]
        test += idx[half:]
    return train, test


def speaker_probe(features: np.ndarray, labels: list[str], *, seed: int = 0) -> ProbeResult | None:
    """Train a fresh speaker classifier on half of each speaker's vectors, test on the other half.

    Args:
        features: (N, D) one vector per utterance.
        labels: N speaker names.
    Returns:
        The probe's test accuracy and chance level; None when fewer than two speakers have two utterances.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    features = np.asarray(features, dtype=np.float64)
    train, test = split_per_speaker(labels, seed=seed)
    speakers = sorted({labels[i] for i in train})
    if len(speakers) < 2:
        return None
    y = np.array(labels)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    probe.fit(features[train], y[train])
    accuracy = float(np.mean(probe.predict(features[test]) == y[test]))
    _, counts = np.unique(y[test], return_counts=True)
    return ProbeResult(accuracy, float(counts.max() / len(test)), len(speakers), len(train), len(test))


@torch.inference_mode()
def utterance_codes(model, mel_cfg, path: str, device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Time-averaged content code and speaker vector of one clip.

    Args:
        model: an `AdaINVC` in eval mode.
        path: an audio file; it is loaded, peak-normalised and silence-trimmed like a target clip.
    Returns:
        (content (c_content,), speaker (c_speaker,)) float32 arrays.
    Raises:
        VcAppError: the clip is unreadable, silent or too short.
    """
    wav = prepare_clip(path, mel_cfg.sample_rate, "probe", trim=True)
    mel = mel_spectrogram(wav.to(device), mel_cfg).unsqueeze(0)  # (1, n_mels, T)
    content = model.content(mel).mean(dim=-1)[0]  # (c_content, T') -> (c_content,)
    return content.float().cpu().numpy(), model.speaker(mel)[0].float().cpu().numpy()
