"""Speaker similarity: cosine of Resemblyzer d-vectors (GE2E speaker encoder, Wan et al. 2018).

Every clip is embedded the same way: mono at 16 kHz -> `resemblyzer.preprocess_wav` (volume
normalised to -30 dBFS, long silences removed by WebRTC VAD) -> `VoiceEncoder.embed_utterance`
(a unit-length 256-d vector averaged over 1.6 s partial windows). Several clips of one speaker are
combined as the normalised mean of their embeddings (Resemblyzer's `embed_speaker`). A kept voice
carries its clips' d-vector (`attach_dvector`), so it can be measured against without its clips.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from vc_app.audio import load_audio, resample
from vc_app.voice import Voice

EMBED_RATE = 16000
MIN_VOICED_SECONDS = 0.5  # when the VAD leaves less than this, embed the volume-normalised clip untrimmed


class SpeakerSimilarity:
    """A Resemblyzer `VoiceEncoder` (built once, on CPU by default) and the embedding recipe above.

    Args:
        device: where the encoder runs ("cpu" keeps the numbers identical across machines).
    """

    def __init__(self, device: str = "cpu"):
        from resemblyzer import VoiceEncoder

        self.encoder = VoiceEncoder(device=device, verbose=False)
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, wav: torch.Tensor | np.ndarray, sample_rate: int) -> np.ndarray:
        """wav: (N,) float at `sample_rate` -> unit d-vector (256,)."""
        from resemblyzer import preprocess_wav
        from resemblyzer.audio import normalize_volume

        wav = torch.as_tensor(wav, dtype=torch.float32).flatten()
        wav16 = resample(wav, sample_rate, EMBED_RATE).numpy()
        speech = preprocess_wav(wav16, source_sr=EMBED_RATE)
        if speech.size < MIN_VOICED_SECONDS * EMBED_RATE:
            speech = normalize_volume(wav16, -30, increase_only=True)
        return self.encoder.embed_utterance(speech.astype(np.float32))

    def embed_file(self, path: str) -> np.ndarray:
        """The d-vector (256,) of an audio file, computed once per path and run."""
        if path not in self._cache:
            self._cache[path] = self.embed(load_audio(path, EMBED_RATE), EMBED_RATE)
        return self._cache[path]

    def embed_speaker(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """Several clips of one speaker -> the normalised mean d-vector (256,)."""
        mean = np.mean([self.embed_file(str(p)) for p in paths], axis=0)
        return mean / np.linalg.norm(mean)


def attach_dvector(voice: Voice, clips: Sequence[str | os.PathLike], similarity: SpeakerSimilarity | None = None
                   ) -> Voice:
    """The voice with the d-vector of the clip files it was made from, when the `eval` extra is installed.

    Args:
        clips: the audio files the voice was made from.
        similarity: an encoder to reuse (None: one is built, on CPU).
    Returns:
        the voice with `dvector` set, or unchanged when Resemblyzer is not installed or there are no clips.
    """
    if not clips or importlib.util.find_spec("resemblyzer") is None:
        return voice
    if similarity is None:
        with warnings.catch_warnings():  # webrtcvad (via resemblyzer) warns that pkg_resources is deprecated
            warnings.simplefilter("ignore", UserWarning)
            similarity = SpeakerSimilarity("cpu")
    return dataclasses.replace(voice, dvector=np.asarray(similarity.embed_speaker(clips), dtype=np.float32))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors, in [-1, 1]."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
