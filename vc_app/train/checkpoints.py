"""Where training checkpoints live (no torch import: the recipes' shell stages use it).

An experiment folder holds `checkpoints/step-NNNNNNNN/`, each a bundle plus `train_state.pt`;
a folder without `train_state.pt` is unfinished (or a hidden temp folder) and never used.
"""

from __future__ import annotations

import os
from pathlib import Path

from vc_app.errors import VcAppError

STATE_FILE = "train_state.pt"
DISCRIMINATOR_FILE = "discriminator.safetensors"  # the mel discriminator's weights, beside a checkpoint's model
IDENTIFIER_FILE = "speaker_identifier.safetensors"  # the SpeakerIdentifier's (the spk_id term), beside it too
CKPT_PREFIX = "step-"


def checkpoint_dirs(folder: str | os.PathLike) -> list[Path]:
    """Finished checkpoint folders under `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob(f"{CKPT_PREFIX}*") if (p / STATE_FILE).is_file()),
                  key=lambda p: int(p.name[len(CKPT_PREFIX):]))


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """An experiment folder (one with `checkpoints/`) -> its newest finished checkpoint; anything else as is."""
    path = Path(path)
    if not (path / "checkpoints").is_dir():
        return path
    found = checkpoint_dirs(path / "checkpoints")
    if not found:
        raise VcAppError(f"{path} has no finished checkpoint yet (run the training stage first).")
    return found[-1]
