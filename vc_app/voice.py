"""Voices: a target speaker kept as a file, reused everywhere, and blended.

In AdaIN-VC a voice is one speaker vector `s`: the mean of the `SpeakerEncoder` outputs over the
target clips (`VoiceConverter.speaker_vector`). Each AdaIN layer of the decoder turns it into
per-channel statistics through one affine map, `(gamma, beta) = W s + b`, so `s` is all the decoder
ever sees of the target. Keeping `s` keeps the voice: converting with a voice file gives exactly the
output of converting with the clips it was made from. A `Voice` is what every conversion takes as its
target (`VoiceConverter.voice(clips)`, `Voice.load(path)`, `blend`).

**Voice file format, version 1.** A safetensors file with the extension `.voice` (a few KB):

Tensors:
    speaker  float32 (c_speaker,)  the speaker vector the decoder is conditioned on.
    dvector  float32 (256,)        optional: the unit-length mean Resemblyzer d-vector of the clips, a
                                   model-independent fingerprint that `vc-app evaluate` and the web UI
                                   measure speaker similarity against (written when the `eval` extra
                                   is installed; blends have none).
Metadata (safetensors' str -> str header):
    format          "vc_app.voice"
    format_version  "1"
    name            the display name
    created_at      ISO 8601 UTC, e.g. "2025-06-01T12:00:00Z"
    model           the model's name (bundle folder name or hub id)
    model_sha256    SHA-256 of the model's weights (`bundle.weights_sha256`): the voice works with this model only
    mel             JSON object: the mel recipe (the `MelConfig` fields)
    clips           JSON list: [{"name": file name, "seconds": seconds analysed}, ...]
    seconds         the clips' total seconds analysed (after trimming leading/trailing silence), e.g. "12.41"
    mix             JSON list, blends only: [{"name": part, "weight": normalised weight}, ...]
    vc_app_version  the vc_app that wrote it

**Blends.** A mix of voices and/or clip sets with weights w_i is the interpolation
`s = sum_i w_i s_i / sum_i w_i` of their speaker vectors (weights non-negative, not all zero).
Because gamma and beta are affine in `s`, every AdaIN layer then imposes exactly the same
interpolation of the parts' per-channel statistics. A part of weight 0 is left out, so a 100/0
blend is the pure voice, bit for bit.

Torch-free at import: the CLI reads and checks voice files before PyTorch loads. The voices folder is
`vc_app.voice_library`; how a target voice is written on the command line and in CSVs, `vc_app.targets`.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vc_app.config import MelConfig, mel_config_from_dict, to_dict
from vc_app.errors import VcAppError
from vc_app.paths import atomic_write

if TYPE_CHECKING:
    import numpy as np
    import torch

VOICE_SUFFIX = ".voice"
VOICE_FORMAT = "vc_app.voice"
VOICE_FORMAT_VERSION = 1
MAX_VOICE_BYTES = 1_000_000  # a voice is a few KB; anything this big is not one
MAX_VECTOR_SIZE = 65536


@dataclass(frozen=True)
class VoiceClip:
    """One target clip a voice was made from: its file name and the seconds analysed."""

    name: str
    seconds: float


@dataclass(frozen=True, eq=False)
class Voice:
    """A kept target voice: the model's speaker vector and what it belongs to.

    Args:
        name: display name.
        vector: (c_speaker,) float32 on the CPU; what the decoder's AdaIN layers are conditioned on.
        model / model_sha256: the model it was made with (name, SHA-256 of its weights).
        mel: that model's mel recipe.
        clips: the clips it was made from (for a blend: every part's clips).
        created_at: ISO 8601 UTC.
        dvector: optional (256,) unit Resemblyzer d-vector of the clips, for measuring similarity.
        mix: for a blend, (part name, normalised weight) of each part.
    """

    name: str
    vector: torch.Tensor
    model: str
    model_sha256: str
    mel: MelConfig
    clips: tuple[VoiceClip, ...] = ()
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    dvector: np.ndarray | None = None
    mix: tuple[tuple[str, float], ...] = ()

    @property
    def seconds(self) -> float:
        """Total seconds of target speech behind the voice."""
        return sum(c.seconds for c in self.clips)

    def require_model(self, model: str, model_sha256: str, mel: MelConfig) -> None:
        """Refuse (one sentence naming both models) when this voice was made with another model."""
        if self.model_sha256 != model_sha256:
            raise VcAppError(f"The voice {self.name!r} was made with the model {self.model} (weights "
                             f"{self.model_sha256[:12]}), not with the model {model} (weights {model_sha256[:12]}) "
                             f"used here; make the voice again with this model from its clips.")
        if self.mel != mel:
            raise VcAppError(f"The voice {self.name!r} was made for the mel recipe {describe_mel(self.mel)}, but the "
                             f"model {model} here uses {describe_mel(mel)}; make the voice again with this model.")

    def metadata(self) -> dict[str, str]:
        """The safetensors header of the voice file (see the module docstring)."""
        meta = {"format": VOICE_FORMAT, "format_version": str(VOICE_FORMAT_VERSION), "name": self.name,
                "created_at": self.created_at, "model": self.model, "model_sha256": self.model_sha256,
                "mel": json.dumps(to_dict(self.mel)),
                "clips": json.dumps([{"name": c.name, "seconds": round(c.seconds, 3)} for c in self.clips]),
                "seconds": f"{self.seconds:.2f}", "vc_app_version": _package_version()}
        if self.mix:
            meta["mix"] = json.dumps([{"name": n, "weight": w} for n, w in self.mix])
        return meta

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write the voice file atomically (temp file, fsync, rename); an existing file needs `overwrite`.

        Raises:
            VcAppError: the name does not end in .voice, the folder is missing or unwritable, or the file
                exists and `overwrite` is False.
        """
        import numpy as np
        from safetensors.numpy import save

        path = Path(path)
        if path.suffix.lower() != VOICE_SUFFIX:
            raise VcAppError(f"Cannot write {path.name}: a voice file's name ends in {VOICE_SUFFIX}.")
        if not path.parent.is_dir():
            raise VcAppError(f"Cannot write {path}: the folder {path.parent} does not exist.")
        if path.exists() and not overwrite:
            raise VcAppError(f"{path} already exists; pass --overwrite to replace it.")
        tensors = {"speaker": np.ascontiguousarray(self.vector.detach().cpu().numpy(), dtype=np.float32)}
        if self.dvector is not None:
            tensors["dvector"] = np.ascontiguousarray(self.dvector, dtype=np.float32)
        data = save(tensors, metadata=self.metadata())
        return atomic_write(path, lambda tmp: tmp.write_bytes(data), fsync=True, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Voice:
        """Read a voice file; a missing, damaged, truncated or foreign file is one `VcAppError` sentence."""
        import torch

        meta, tensors = read_voice_file(path)
        return cls(name=meta["name"], vector=torch.from_numpy(tensors["speaker"].copy()), model=meta["model"],
                   model_sha256=meta["model_sha256"], mel=meta["mel"], clips=meta["clips"],
                   created_at=meta["created_at"], dvector=tensors.get("dvector"), mix=meta["mix"])


def describe_mel(mel: MelConfig) -> str:
    """'22050 Hz, hop 256, 80 mels, 0-8000 Hz'."""
    return f"{mel.sample_rate} Hz, hop {mel.hop_length}, {mel.n_mels} mels, {mel.f_min:g}-{mel.f_max:g} Hz"


# -- reading --------------------------------------------------------------------------------------
def read_voice_file(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and check a voice file without PyTorch: (metadata with parsed values, numpy tensors).

    Raises:
        VcAppError: one sentence naming the file: missing, a folder, too big, not safetensors, truncated,
            not a voice, another format version, or damaged (missing keys, bad JSON, bad vector).
    """
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise VcAppError(f"{path} does not exist.")
    if not path.is_file():
        raise VcAppError(f"{path} is not a file, so not a voice file.")
    size = path.stat().st_size
    if size > MAX_VOICE_BYTES:
        raise VcAppError(f"{path} is not a vc_app voice file: it holds {size / 1e6:.1f} MB, a voice a few KB.")
    raw, tensors = _read_safetensors(path)
    if raw.get("format") != VOICE_FORMAT:
        raise VcAppError(f"{path} is not a vc_app voice file (its header does not say format {VOICE_FORMAT}).")
    if raw.get("format_version") != str(VOICE_FORMAT_VERSION):
        raise VcAppError(f"{path} is a voice file of format version {raw.get('format_version')!r}; this vc_app "
                         f"reads version {VOICE_FORMAT_VERSION}.")
    try:
        meta = _parse_metadata(raw)
    except (KeyError, TypeError, ValueError, AttributeError, VcAppError) as err:
        detail = f"no {err.args[0]!r} entry" if isinstance(err, KeyError) else str(err).rstrip(".")
        raise VcAppError(f"{path} is a damaged voice file ({detail[:160]}).") from None
    speaker = tensors.get("speaker")
    if speaker is None or speaker.dtype != np.float32 or speaker.ndim != 1 or not 0 < speaker.size <= MAX_VECTOR_SIZE:
        raise VcAppError(f"{path} is a damaged voice file (no float32 speaker vector in it).")
    for name, values in tensors.items():
        if not np.isfinite(values).all():
            raise VcAppError(f"{path} is a damaged voice file (its {name} vector holds NaN or infinite values).")
    dvector = tensors.get("dvector")
    if dvector is not None and (dvector.dtype != np.float32 or dvector.ndim != 1):
        raise VcAppError(f"{path} is a damaged voice file (its dvector is not a float32 vector).")
    return meta, tensors


def _read_safetensors(path: Path) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return dict(handle.metadata() or {}), {k: handle.get_tensor(k) for k in handle.keys()}
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError, OverflowError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise VcAppError(f"{path} is not a vc_app voice file, or it is damaged or truncated "
                         f"({reason.removeprefix('Error while deserializing header: ')[:120]}).") from None


def _parse_metadata(raw: dict[str, str]) -> dict[str, Any]:
    sha = raw["model_sha256"]
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise ValueError("its model_sha256 is not a SHA-256")
    mel = mel_config_from_dict(json.loads(raw["mel"]))
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in to_dict(mel).values()):
        raise ValueError("its mel recipe holds values that are not numbers")
    clips = tuple(VoiceClip(str(c["name"]), float(c["seconds"])) for c in json.loads(raw["clips"]))
    mix = tuple((str(p["name"]), float(p["weight"])) for p in json.loads(raw.get("mix", "[]")))
    return {"name": raw["name"], "created_at": raw["created_at"], "model": raw["model"], "model_sha256": sha,
            "mel": mel, "clips": clips, "mix": mix, "vc_app_version": raw.get("vc_app_version", "")}


def _package_version() -> str:
    """The installed vc_app's version ("" when it runs from a source tree that was never installed)."""
    try:
        return importlib.metadata.version("vc-app")
    except importlib.metadata.PackageNotFoundError:
        return ""


# -- blends ---------------------------------------------------------------------------------------
def check_weight(weight: float) -> float:
    if not math.isfinite(weight) or weight < 0:
        raise VcAppError(f"A blend weight must be a non-negative number, not {weight!r}.")
    return weight


def blend_weights(weights: Sequence[float]) -> list[float]:
    """Validate blend weights (finite, non-negative, not all zero) and normalise them to sum to 1."""
    if not weights:
        raise VcAppError("A blend needs at least one voice.")
    for weight in weights:
        check_weight(float(weight))
    total = math.fsum(float(w) for w in weights)
    if total <= 0:
        raise VcAppError("At least one blend weight must be above zero.")
    return [float(w) / total for w in weights]


def blend(voices: Sequence[Voice], weights: Sequence[float], *, name: str | None = None) -> Voice:
    """The weighted interpolation of voices of one model: `s = sum_i w_i s_i` with normalised weights.

    Parts of weight 0 are left out (so a 100/0 blend returns the pure voice's vector exactly).

    Raises:
        VcAppError: bad weights, a different number of voices and weights, or voices of different models.
    """
    if len(voices) != len(weights):
        raise VcAppError(f"A blend needs one weight per voice ({len(voices)} voices, {len(weights)} weights).")
    normalised = blend_weights(weights)
    kept = [(v, w) for v, w in zip(voices, normalised) if w > 0]
    first = kept[0][0]
    for voice, _ in kept[1:]:
        if voice.model_sha256 != first.model_sha256 or voice.mel != first.mel:
            raise VcAppError(f"The voices {first.name!r} and {voice.name!r} were made with different models "
                             f"({first.model} and {voice.model}); only voices of one model can be blended.")
    vector = kept[0][1] * kept[0][0].vector  # sum_i w_i s_i, in the order given (a lone part's weight is 1.0)
    for voice, weight in kept[1:]:
        vector = vector + weight * voice.vector
    mix = tuple((v.name, w) for v, w in kept)
    label = name or (first.name if len(kept) == 1 else " + ".join(f"{100 * w:.0f}% {v.name}" for v, w in kept))
    return Voice(name=label, vector=vector, model=first.model, model_sha256=first.model_sha256, mel=first.mel,
                 clips=tuple(c for v, _ in kept for c in v.clips), mix=mix if len(kept) > 1 else first.mix,
                 dvector=first.dvector if len(kept) == 1 else None)
