"""Target voices as a user writes them: clips of one speaker, one .voice file, or a blend of such parts.

`--target a.wav --target b.flac`, a CSV cell `a.wav;b.flac` and `--target alice.voice` name one target;
`--mix SPEC[:WEIGHT]` names a part of a blend, where SPEC is a voice file or clips separated by ';'
(`alice.voice:0.7`, `'bob1.wav;bob2.flac:0.3'`; weight 1 when omitted). This module is the one place
that tells a voice file from a clip (by its `.voice` suffix): `check_target_file` refuses a bad one
before the model loads, `load_target` and `load_mix` turn what was written into the `Voice` every
conversion takes.

Torch-free: the CLI parses and checks targets before PyTorch loads.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vc_app.errors import VcAppError
from vc_app.voice import VOICE_SUFFIX, Voice, blend, check_weight, read_voice_file
from vc_app.voice_library import find_voice

Analyse = Callable[[list], Voice]  # clips of one speaker -> their voice (`VoiceConverter.voice`)


def is_voice_path(target: object) -> bool:
    """Whether a target argument names a voice file (by its .voice extension)."""
    return isinstance(target, (str, os.PathLike)) and str(target).lower().endswith(VOICE_SUFFIX)


def check_target_file(target: str | os.PathLike) -> None:
    """Fail fast, before PyTorch and the model load, on a target that is neither a usable clip (readable, not
    silent, not too short) nor a readable voice file."""
    if is_voice_path(target):
        read_voice_file(find_voice(target))
    else:
        from vc_app.audio import check_audio_file  # numpy and soundfile only

        check_audio_file(target, "target")


def load_target(targets: Sequence[str | os.PathLike], analyse: Analyse) -> Voice:
    """The voice `targets` names: one voice file (read; a bare `NAME.voice` is also looked for in the voices
    folder), or clips of one speaker, handed to `analyse`."""
    if not any(is_voice_path(t) for t in targets):
        return analyse(list(targets))
    if len(targets) > 1:
        raise VcAppError("A target is either audio clips or one voice file, not several voices or a voice "
                         "with clips; to combine voices, blend them (--mix).")
    return Voice.load(find_voice(targets[0]))


@dataclass(frozen=True)
class MixPart:
    """One part of a blend: a voice file or a set of clips (`targets`) and its weight."""

    targets: tuple[str, ...]
    weight: float


def parse_mix(text: str) -> MixPart:
    """`SPEC[:WEIGHT]` -> MixPart; SPEC is a voice file or clips separated by ';' (weight 1 when omitted).

    'alice.voice:0.7' -> (alice.voice,) 0.7; 'b1.wav;b2.flac:0.3' -> (b1.wav, b2.flac) 0.3. A path
    that exists as written is never split at a ':'.
    """
    spec, weight = text.strip(), 1.0
    head, colon, tail = spec.rpartition(":")
    if colon and not Path(spec).exists():
        try:
            weight, spec = float(tail), head
        except ValueError:
            pass  # a ':' inside a file name, no weight
    targets = tuple(t.strip() for t in spec.split(";") if t.strip())
    if not targets:
        raise VcAppError(f"--mix {text!r} names no voice file or clips; write FILE[:WEIGHT].")
    check_weight(weight)
    return MixPart(targets, weight)


def load_mix(parts: Sequence[MixPart], analyse: Analyse, *, name: str | None = None) -> Voice:
    """The blend of the parts' voices (`vc_app.voice.blend`), each part read as `load_target` reads a target."""
    return blend([load_target(p.targets, analyse) for p in parts], [p.weight for p in parts], name=name)
