"""Small path helpers shared by everything that writes files.

Torch-free on purpose: the CLI checks an output path with these before it
imports the model, so a bad `--output` is refused in a fraction of a second.
"""

from __future__ import annotations

import csv
import errno
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from vc_app.errors import VcAppError

TEMP_SUFFIX = ".part"
OUTPUT_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}


def temp_path_for(path: str | os.PathLike) -> Path:
    """A unique hidden temp name beside `path` (same folder, so a rename onto `path` is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")


def atomic_write(path: str | os.PathLike, write: Callable[[Path], object], *, fsync: bool = False,
                 overwrite: bool = True) -> Path:
    """Write `path` atomically: `write(tmp)` fills a temp file beside it, which is then renamed onto `path`.

    The one way vc_app writes a file a user or a later stage reads: a reader sees the old file or the whole
    new one, never a part, and the temp file is removed on any error (Ctrl-C included).

    Args:
        write: fills the temp file it is given (a fresh empty file; write it by path or open it).
        fsync: flush the temp file to disk before the rename (outputs a killed job must not lose).
        overwrite: False: never replace a file that exists, even one that appeared while writing.
    Raises:
        VcAppError: the folder refuses a new file, or (without `overwrite`) `path` exists.
    """
    path = Path(path)
    tmp, handle = open_temp_beside(path)
    handle.close()
    mode = tmp.stat().st_mode  # a fresh file's, under the user's umask; some writers replace the file as 0600
    try:
        write(tmp)
        if tmp.stat().st_mode != mode:
            tmp.chmod(mode & 0o7777)
        if fsync:
            with open(tmp, "rb+") as written:
                os.fsync(written.fileno())
        _publish(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping | Sequence], *,
              lineterminator: str = "\r\n") -> Path:
    """Write a CSV with a header row atomically (UTF-8); each row is a dict keyed by `columns`
    (missing keys are empty) or a sequence in their order."""

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator=lineterminator)
            writer.writerow(columns)
            for row in rows:
                writer.writerow([row.get(c, "") for c in columns] if isinstance(row, Mapping) else row)

    return atomic_write(path, write)


def _publish(tmp: Path, path: Path, overwrite: bool) -> None:
    """Move the finished temp file onto `path`; without `overwrite`, never over a file that appeared meanwhile."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # atomic, and refuses an existing name
    except FileExistsError:
        raise VcAppError(f"{path} already exists; pass --overwrite to replace it.") from None
    except OSError:  # a file system without hard links
        if path.exists():
            raise VcAppError(f"{path} already exists; pass --overwrite to replace it.") from None
        os.replace(tmp, path)


def open_temp_beside(path: Path) -> tuple[Path, BinaryIO]:
    """Create and open (binary, exclusive) a fresh temp file beside `path`; one sentence if the folder refuses."""
    tmp = temp_path_for(path)
    try:
        return tmp, open(tmp, "xb")
    except OSError as err:
        raise VcAppError(f"Cannot write in {path.parent}: {_why_not_writable(path.parent, err)}.") from None


def _why_not_writable(folder: Path, err: OSError) -> str:
    """Why `folder` refused a new file, in words (the OS's own words when there are none better)."""
    if not folder.is_dir():
        return "the folder does not exist" if not folder.exists() else "it is a file, not a folder"
    if err.errno in (errno.EACCES, errno.EPERM):
        return "you have no permission to create files there"
    if err.errno == errno.EROFS:
        return "it is on a read-only file system"
    if err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return "the disk is full"
    if err.errno == errno.ENOENT:  # the folder exists, yet "no such file": /proc, /sys and the like
        return "it is a special folder that accepts no new files"
    return (err.strerror or type(err).__name__).lower()


def _missing_folder(folder: Path) -> str:
    """Why `folder`, which is not a folder, cannot hold the output: the first part of it that is a file, or
    that it does not exist."""
    for part in (folder, *folder.parents):
        if part.exists():
            if not part.is_dir():
                return f"{part} is a file, not a folder"
            break
    return f"the folder {folder} does not exist"


def check_output_path(path: str | os.PathLike, *, inputs: Iterable[str | os.PathLike] = (),
                      overwrite: bool = False, fmt: str | None = None, try_write: bool = False) -> str:
    """Refuse an audio output path that must not or cannot be written; return its soundfile format.

    Refused, each with one sentence: a path equal to one of `inputs`, an existing folder, an existing file
    without `overwrite`, an extension other than .wav/.flac/.ogg (unless `fmt` is given), a missing folder
    (or a file where a folder should be), and with `try_write` a folder that refuses a new file (probed with
    a temp file, removed at once).
    """
    path = Path(path)
    if any(path.resolve() == Path(p).resolve() for p in inputs):
        raise VcAppError(f"The output {path} is one of the inputs; choose another output path.")
    if path.is_dir():  # --overwrite cannot help: a folder is never replaced
        example = path / ("out.voice" if fmt == "voice" else "out.wav")
        raise VcAppError(f"The output {path} is a folder; give a file name, such as {example}.")
    if path.exists() and not overwrite:
        raise VcAppError(f"{path} already exists; pass --overwrite to replace it.")
    fmt = fmt or OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise VcAppError(f"Cannot write {path.name}: use a .wav, .flac or .ogg file name.")
    if not path.parent.is_dir():
        raise VcAppError(f"Cannot write {path}: {_missing_folder(path.parent)}.")
    if try_write:
        tmp, handle = open_temp_beside(path)
        handle.close()
        tmp.unlink(missing_ok=True)
    return fmt
