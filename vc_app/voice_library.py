"""The voices folder: voices kept by name (`NAME.voice`), where it is, which names are safe, what it holds.

The CLI (`vc-app voice`, a bare `alice.voice` argument) and the web UI's Voices panel share one folder:
$VC_APP_VOICES_DIR, else the per-user data folder. The file format itself is `vc_app.voice`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any

from vc_app.errors import VcAppError
from vc_app.voice import VOICE_SUFFIX, Voice, read_voice_file

VOICES_ENV = "VC_APP_VOICES_DIR"
MAX_NAME_LENGTH = 64
_NAME = re.compile(r"^\w[\w .'()+-]*$")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


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


def find_voice(target: str | os.PathLike) -> Path:
    """The file a `.voice` argument names: the path as given, or a bare file name (`alice.voice`) that
    does not exist here found in the voices folder (`default_voices_dir()`)."""
    path = Path(target).expanduser()
    if not path.exists() and path.parent == Path("."):
        saved = default_voices_dir() / path.name
        if saved.is_file():
            return saved
    return path
