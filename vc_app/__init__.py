"""vc_app: one-shot any-to-any voice conversion (AdaIN-VC).

The front door, a few verbs (the README's *Python* section shows them at work):

    import vc_app

    vc_app.convert("my_words.wav", "their_voice.wav", "converted.wav")   # one call: load, convert, write
    converter = vc_app.VoiceConverter.from_specs()                      # load once, convert many
    alice = converter.voice(["alice1.wav", "alice2.wav"], name="alice")  # a `Voice`; .save("alice.voice")
    wav = converter.convert("my_words.wav", alice)                      # (N,) float32 at 22 050 Hz
    mix = vc_app.blend([alice, vc_app.Voice.load("bob.voice")], [0.7, 0.3])

`load_bundle` (a model with its mel recipe) and `load_vocoder` (mel -> waveform) are the two halves a
`VoiceConverter` is made of. Importing the package is cheap: each name is imported on first use
(PEP 562), so `import vc_app` loads neither PyTorch nor Gradio. ARCHITECTURE.md maps the code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "convert": "vc_app.converter",
    "VoiceConverter": "vc_app.converter",
    "load_bundle": "vc_app.bundle",
    "Bundle": "vc_app.bundle",
    "load_vocoder": "vc_app.vocoders",
    "Voice": "vc_app.voice",
    "blend": "vc_app.voice",
    "VcAppError": "vc_app.errors",
}

__all__ = ["Bundle", "VcAppError", "Voice", "VoiceConverter", "blend", "convert", "load_bundle",
           "load_vocoder"]  # = sorted(_EXPORTS)

if TYPE_CHECKING:
    from vc_app.bundle import Bundle, load_bundle
    from vc_app.converter import VoiceConverter, convert
    from vc_app.errors import VcAppError
    from vc_app.vocoders import load_vocoder
    from vc_app.voice import Voice, blend


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vc_app' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
