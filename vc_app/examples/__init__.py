"""Ready-made example pairs for the web UI: short clips of real recorded speech.

The clips are excerpts of two freely licensed corpora, credited in `CREDITS` and shown next to the
examples: CMU ARCTIC (Kominek & Black, Carnegie Mellon University; free use, modification and
redistribution with its copyright notice) and the CSTR VCTK Corpus (Yamagishi et al., University of
Edinburgh; CC BY 4.0). `python -m vc_app.examples.make_examples --speech DIR` rebuilds them from those
recordings. They are 22 050 Hz mono 16-bit FLAC, a few seconds each, shipped as package data. No
speaker here was among the default model's training speakers: p226, p227, p228 and clb are its
cross-corpus held-out set (its numbers on them are in its model card).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent

CREDITS = ("Example clips: CMU ARCTIC (Kominek & Black, Carnegie Mellon University) and the CSTR VCTK Corpus "
           "(Yamagishi et al., University of Edinburgh, CC BY 4.0): real recorded speech.")


@dataclass(frozen=True)
class Clip:
    """One example clip: its file name, the recordings it is made of (joined with a short pause) and their text."""

    name: str
    recordings: tuple[str, ...]  # paths relative to the speech folder (`make_examples --speech`)
    text: str

    @property
    def path(self) -> Path:
        return EXAMPLES_DIR / self.name


# Sources say one sentence; targets say two (more target speech gives a steadier speaker vector).
CLIPS = (
    Clip("vctk_p226_source.flac", ("vctk_sample/wav48/p226/p226_002.wav",),
         "Ask her to bring these things with her from the store."),
    Clip("arctic_clb_source.flac", ("arctic/clb/arctic_a0003.flac",),
         "For the twentieth time that evening the two men shook hands."),
    Clip("vctk_p228_source.flac", ("vctk_sample/wav48/p228/p228_004.wav",),
         "We also need a small plastic snake and a big toy frog for the kids."),
    Clip("arctic_slt_target.flac", ("arctic/slt/arctic_a0001.flac", "arctic/slt/arctic_a0004.flac"),
         "Author of the danger trail, Philip Steels, etc. Lord, but I'm glad to see you again, Phil."),
    Clip("vctk_p227_target.flac", ("vctk_sample/wav48/p227/p227_001.wav", "vctk_sample/wav48/p227/p227_002.wav"),
         "Please call Stella. Ask her to bring these things with her from the store."),
    Clip("vctk_p226_target.flac", ("vctk_sample/wav48/p226/p226_001.wav", "vctk_sample/wav48/p226/p226_004.wav"),
         "Please call Stella. We also need a small plastic snake and a big toy frog for the kids."),
)

# (source clip, target clip, what the pair shows)
PAIRS = (
    ("vctk_p226_source.flac", "arctic_slt_target.flac", "English male (VCTK p226) → US female (CMU ARCTIC slt)"),
    ("arctic_clb_source.flac", "vctk_p227_target.flac", "US female (CMU ARCTIC clb) → English male (VCTK p227)"),
    ("vctk_p228_source.flac", "vctk_p226_target.flac", "English female (VCTK p228) → English male (VCTK p226)"),
)


def example_pairs() -> list[tuple[Path, Path, str]]:
    """The example pairs whose clips exist: (source path, target path, description)."""
    pairs = [(EXAMPLES_DIR / s, EXAMPLES_DIR / t, what) for s, t, what in PAIRS]
    return [p for p in pairs if p[0].is_file() and p[1].is_file()]
