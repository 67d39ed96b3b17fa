"""Voices: a target speaker kept as a file, reused everywhere, and blended.

In AdaIN-VC a voice is one speaker vector `s`: the mean of the `SpeakerEncoder` outputs over the
target clips (`VoiceConverter.speaker_vector`). Each AdaIN layer of the decoder turns it into
per-channel statistics through one affine map, `(gamma, beta) = W s + b`, so `s` is all the decoder
ever sees of the target. Keeping `s` keeps the voice: converting with a voice file gives exactly the
output of converting with the clips it was made from.

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
    model_sha256    SHA-256 of the model's weights (`weights_sha256`): the voice works with this model only
    mel             JSON object: the mel recipe (the `MelConfig` fields)
    clips           JSON list: [{"name": file name, "seconds": seconds analysed}, ...]
    seconds         the clips' total seconds analysed (after trimming leading/trailing silence), e.g. "12.41"
    mix             JSON list, blends only: [{"name": part, "weight": normalised weight}, ...]
    vc_app_version  the vc_app that wrote it

**Blends.** A mix of voices and/or clip sets with weights w_i is the interpolation
`s = sum_i w_i s_i / sum_i w_i` of their speaker vectors (weights non-negative, not all zero).
Because gamma and beta are affine in `s`, every AdaIN layer then imposes exactly the same
interpolation of the parts' per-channel statistics. A part of weight 0 is left out, so a 100/0
blend is the pure voice, bit for bit. On the command line a part is written `SPEC[:WEIGHT]`, where
SPEC is a voice file or clips separated by ';' (`alice.voice:0.7`, `'bob1.wav;bob2.flac:0.3'`);
weight 1 when omitted.

Torch-free at import: the CLI reads, lists and checks voice files before PyTorch loads.
"""

from __future__ import annotations

import dataclasses
import hashlib
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
VOICES_ENV = "VC_APP_VOICES_DIR"
MAX_VOICE_BYTES = 1_000_000  # a voice is a few KB; anything this big is not one
MAX_NAME_LENGTH = 64
MAX_VECTOR_SIZE = 65536
_NAME = re.compile(r"^\w[\w .'()+-]*$")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


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
        vector: (c_speaker,) float32 on the CPU; pass it as `VoiceConverter.convert(source, speaker=...)`.
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
        from vc_app import __version__

        meta = {"format": VOICE_FORMAT, "format_version": str(VOICE_FORMAT_VERSION), "name": self.name,
                "created_at": self.created_at, "model": self.model, "model_sha256": self.model_sha256,
                "mel": json.dumps(to_dict(self.mel)),
                "clips": json.dumps([{"name": c.name, "seconds": round(c.seconds, 3)} for c in self.clips]),
                "seconds": f"{self.seconds:.2f}", "vc_app_version": __version__}
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


def is_voice_path(target: object) -> bool:
    """Whether a target argument names a voice file (by its .voice extension)."""
    return isinstance(target, (str, os.PathLike)) and str(target).lower().endswith(VOICE_SUFFIX)


def find_voice(target: str | os.PathLike) -> Path:
    """The file a `.voice` argument names: the path as given, or a bare file name (`alice.voice`) that
    does not exist here found in the voices folder (`default_voices_dir()`)."""
    path = Path(target).expanduser()
    if not path.exists() and path.parent == Path("."):
        saved = default_voices_dir() / path.name
        if saved.is_file():
            return saved
    return path


def check_target_file(target: str | os.PathLike) -> None:
    """Fail fast, before PyTorch and the model load, on a target that is neither a usable clip (readable, not
    silent, not too short) nor a readable voice file."""
    if is_voice_path(target):
        read_voice_file(find_voice(target))
    else:
        from vc_app.audio import check_audio_file  # numpy and soundfile only

        check_audio_file(target, "target")


# -- the voices folder ------------------------------------------------------------------------------
def default_voices_dir() -> Path:
    """Where voices are kept: $VC_APP_VOICES_DIR, else the per-user data folder (platformdirs), e.g.
    ~/.local/share/vc-app/voices on Linux ($XDG_DATA_HOME respected), ~/Library/Application
    Support/vc-app/voices on macOS, %LOCALAPPDATA%\\vc-app\\voices on Windows."""
    env = os.environ.get(VOICES_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_path

    return user_data_path("vc-app", appauthor=False) / "voices"


def check_voice_name(name: str | None) -> str:
    """A voice name that is safe as a file name in the voices folder, or one sentence saying why not.

    Allowed: up to 64 letters, digits, spaces and `_ - . ' ( ) +`, starting with a letter or digit; no
    path separators, no NUL or other control characters, no '..', not a reserved device name.
    """
    name = (name or "").strip()
    shown = repr(name[:40] + ("…" if len(name) > 40 else ""))
    if not name:
        raise VcAppError("Give the voice a name.")
    if len(name) > MAX_NAME_LENGTH:
        raise VcAppError(f"A voice name has at most {MAX_NAME_LENGTH} characters; {shown} has {len(name)}.")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise VcAppError(f"The voice name {shown} contains a control character (such as NUL); use a plain name.")
    if "/" in name or "\\" in name or ".." in name or Path(name).is_absolute():
        raise VcAppError(f"The voice name {shown} looks like a path; use a plain name without '/', '\\' or '..'.")
    if not _NAME.match(name) or name.endswith(".") or name.split(".")[0].lower() in _RESERVED:
        raise VcAppError(f"The voice name {shown} is not allowed: start with a letter or digit and use letters, "
                         f"digits, spaces and _ - . ' ( ) + only.")
    return name


class VoiceLibrary:
    """The voices kept in one folder, by name: `NAME.voice`. The folder is made on the first save.

    Args:
        folder: the voices folder (None: `default_voices_dir()`).
    """

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = Path(folder) if folder is not None else default_voices_dir()

    def path(self, name: str) -> Path:
        """The file of the voice called `name` (checked with `check_voice_name`; never outside the folder)."""
        path = self.folder / f"{check_voice_name(name)}{VOICE_SUFFIX}"
        if path.parent != self.folder:
            raise VcAppError(f"The voice name {name!r} is not allowed.")
        return path

    def names(self) -> list[str]:
        """Names of the voice files in the folder, sorted case-insensitively."""
        if not self.folder.is_dir():
            return []
        return sorted((p.stem for p in self.folder.glob(f"*{VOICE_SUFFIX}") if p.is_file()
                       and not p.name.startswith(".")), key=str.casefold)

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def load(self, name: str) -> Voice:
        path = self.path(name)
        if not path.is_file():
            raise VcAppError(f"There is no saved voice called {name!r}.")
        return Voice.load(path)

    def save(self, voice: Voice, name: str, *, overwrite: bool = False) -> Path:
        path = self.path(name)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise VcAppError(f"Cannot keep voices in {self.folder} ({err.strerror or err}).") from None
        return dataclasses.replace(voice, name=name).save(path, overwrite=overwrite)

    def delete(self, name: str) -> None:
        path = self.path(name)
        if not path.is_file():
            raise VcAppError(f"There is no saved voice called {name!r}.")
        path.unlink()


def list_voices(folder: str | os.PathLike) -> list[tuple[Path, dict[str, Any] | str]]:
    """Every `*.voice` file in `folder`: (path, metadata) or (path, the sentence saying why it is unreadable)."""
    found: list[tuple[Path, dict[str, Any] | str]] = []
    for path in sorted(Path(folder).glob(f"*{VOICE_SUFFIX}"), key=lambda p: p.name.casefold()):
        if path.name.startswith("."):
            continue  # a temp file of a save in progress
        try:
            meta, tensors = read_voice_file(path)
            found.append((path, {**meta, "c_speaker": int(tensors["speaker"].size),
                                 "has_dvector": "dvector" in tensors}))
        except VcAppError as err:
            found.append((path, str(err)))
    return found


# -- blends ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MixPart:
    """One part of a blend: a voice file or a set of clips (`targets`) and its weight."""

    targets: tuple[str, ...]
    weight: float

    @property
    def label(self) -> str:
        return "+".join(Path(t).stem if is_voice_path(t) else Path(t).name for t in self.targets)


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
    if len(kept) == 1:
        vector = kept[0][0].vector.clone()
    else:  # sum_i w_i s_i, in the order given
        vector = kept[0][1] * kept[0][0].vector
        for voice, weight in kept[1:]:
            vector = vector + weight * voice.vector
    mix = tuple((v.name, w) for v, w in kept)
    label = name or (first.name if len(kept) == 1 else " + ".join(f"{100 * w:.0f}% {v.name}" for v, w in kept))
    return Voice(name=label, vector=vector, model=first.model, model_sha256=first.model_sha256, mel=first.mel,
                 clips=tuple(c for v, _ in kept for c in v.clips), mix=mix if len(kept) > 1 else first.mix,
                 dvector=first.dvector if len(kept) == 1 else None)


# -- the model a voice belongs to ---------------------------------------------------------------------
def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's weights: every state-dict entry's name, dtype, shape and bytes, in name order."""
    import torch

    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_display_name(source: str) -> str:
    """A bundle's short name: the folder or file name of a local path, a hub id as it is."""
    if not source:
        return "an unnamed model"
    path = Path(source)
    return path.name if path.exists() else source


def attach_dvector(voice: Voice, clips: Sequence[str | os.PathLike], similarity=None) -> Voice:
    """The voice with the Resemblyzer d-vector of its clip files, when the `eval` extra is installed.

    Args:
        clips: the audio files the voice was made from.
        similarity: a `vc_app.evaluate.similarity.SpeakerSimilarity` to reuse (None: one is built).
    Returns:
        the voice with `dvector` set, or unchanged when Resemblyzer is not installed or there are no files.
    """
    import importlib.util

    import numpy as np

    files = [str(c) for c in clips if isinstance(c, (str, os.PathLike))]
    if not files or importlib.util.find_spec("resemblyzer") is None:
        return voice
    if similarity is None:
        import warnings

        from vc_app.evaluate.similarity import SpeakerSimilarity

        with warnings.catch_warnings():  # webrtcvad (via resemblyzer) warns that pkg_resources is deprecated
            warnings.simplefilter("ignore", UserWarning)
            similarity = SpeakerSimilarity("cpu")
    return dataclasses.replace(voice, dvector=np.asarray(similarity.embed_speaker(files), dtype=np.float32))
