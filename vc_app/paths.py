"""Small path helpers shared by everything that writes files."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

TEMP_SUFFIX = ".part"


def temp_path_for(path: str | os.PathLike) -> Path:
    """A unique hidden temp name beside `path` (same folder, so a rename onto `path` is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{TEMP_SUFFIX}")
