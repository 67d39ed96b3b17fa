"""Intelligibility: word error rate of CMU PocketSphinx transcripts against the source's text.

Recogniser: PocketSphinx 5 with the US-English acoustic model, language model and dictionary that
ship inside its wheel (offline, deterministic). Audio goes in as one utterance of 16 kHz mono 16-bit
PCM (`process_raw(..., full_utt=True)`, so cepstral mean normalisation uses the whole clip and the
result does not depend on what was decoded before). Text normalisation before scoring (both sides):
lowercase, hyphens become spaces, every character other than a-z, 0-9 and the apostrophe is dropped,
apostrophes at word edges are dropped. Scoring: jiwer word alignment; WER over a set of clips is
(substitutions + deletions + insertions) / reference words, summed over the clips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from vc_app.audio import resample

RECOGNISER_RATE = 16000


def normalize_text(text: str) -> str:
    """'Don't stop -- the well-known STOP!' -> "don't stop the well known stop"."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    words = (w.strip("'") for w in text.split())
    return " ".join(w for w in words if w)


@dataclass(frozen=True)
class WordErrors:
    """Word errors of one transcript: errors = substitutions + deletions + insertions."""

    errors: int
    words: int

    @property
    def wer(self) -> float:
        return self.errors / self.words if self.words else float("nan")


def word_errors(reference: str, hypothesis: str) -> WordErrors:
    """Align normalised words with jiwer. An empty hypothesis scores every reference word as deleted."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return WordErrors(0, 0)
    out = jiwer.process_words(ref, hyp)
    return WordErrors(out.substitutions + out.deletions + out.insertions, len(ref.split()))


def corpus_wer(items: list[WordErrors]) -> float:
    """Summed errors / summed reference words (NaN when there are no reference words)."""
    words = sum(i.words for i in items)
    return sum(i.errors for i in items) / words if words else float("nan")


class Recognizer:
    """A PocketSphinx decoder (built once per run) with its bundled en-us model."""

    def __init__(self):
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=RECOGNISER_RATE, loglevel="FATAL")

    def transcribe(self, wav: torch.Tensor | np.ndarray, sample_rate: int) -> str:
        """wav: (N,) float in [-1, 1] at `sample_rate` -> the recognised words (may be "")."""
        wav16 = resample(torch.as_tensor(wav, dtype=torch.float32).flatten(), sample_rate, RECOGNISER_RATE)
        pcm = (wav16.clamp(-1.0, 1.0) * 32767.0).round().to(torch.int16).numpy().tobytes()
        self.decoder.start_utt()
        self.decoder.process_raw(pcm, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr.strip() if hyp is not None else ""
