"""Ready-made example pairs for the web UI: short clips spoken by espeak-ng and flite voices.

The clips are made by the project itself (`python -m vc_app.examples.make_examples` regenerates
them) from Harvard sentences (IEEE 1969), so they carry no licence beyond the project's own. They
are 22 050 Hz mono 16-bit FLAC, a few seconds each, shipped as package data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Clip:
    """One example clip: its file name, the TTS voice ("espeak:VOICE" or "flite:VOICE") and its text."""

    name: str
    voice: str
    text: str

    @property
    def path(self) -> Path:
        return EXAMPLES_DIR / self.name


# Sources say one sentence; targets say two (more target speech gives a steadier speaker vector).
CLIPS = (
    Clip("awb_canoe.flac", "flite:awb", "The birch canoe slid on the smooth planks."),
    Clip("slt_lemons.flac", "flite:slt", "The juice of lemons makes fine punch."),
    Clip("espeak_us_truck.flac", "espeak:en-us+m3", "The box was thrown beside the parked truck."),
    Clip("slt_target.flac", "flite:slt",
         "Glue the sheet to the dark blue background. It's easy to tell the depth of a well."),
    Clip("rms_target.flac", "flite:rms",
         "These days a chicken leg is a rare dish. Rice is often served in round bowls."),
    Clip("espeak_f3_target.flac", "espeak:en+f3",
         "The hogs were fed chopped corn and garbage. Four hours of steady work faced us."),
)

# (source clip, target clip, what the pair shows)
PAIRS = (
    ("awb_canoe.flac", "slt_target.flac", "Scottish male (flite awb) → US female (flite slt)"),
    ("slt_lemons.flac", "rms_target.flac", "US female (flite slt) → US male (flite rms)"),
    ("espeak_us_truck.flac", "espeak_f3_target.flac", "espeak-ng male → espeak-ng female"),
)


def example_pairs() -> list[tuple[Path, Path, str]]:
    """The example pairs whose clips exist: (source path, target path, description)."""
    pairs = [(EXAMPLES_DIR / s, EXAMPLES_DIR / t, what) for s, t, what in PAIRS]
    return [p for p in pairs if p[0].is_file() and p[1].is_file()]
