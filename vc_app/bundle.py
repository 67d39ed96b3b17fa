"""Inference bundles: `model.safetensors` + `config.json` + `README.md` (model card).

A bundle is a folder (or a Hugging Face hub repo with the same files). Weights
load strictly: a missing, unexpected or mis-shaped tensor is an error naming
it. `config.json` carries the full resolved config (mel recipe, model sizes,
`format_version`, a training-data summary). Pickles are never trusted: a
`.pt`/`.ckpt` file is read only with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vc_app.config import FORMAT_VERSION, MelConfig, ModelConfig, mel_config_from_dict, model_config_from_dict, to_dict
from vc_app.errors import VcAppError
from vc_app.paths import atomic_write
from vc_app.state_dicts import check_state_dict, torch_load_plain

if TYPE_CHECKING:
    from vc_app.models import AdaINVC

WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
DEFAULT_BUNDLE = "adainvc-speech14"
CHECKPOINT_ENV = "VC_APP_CHECKPOINT"


@dataclass
class Bundle:
    """A loaded model with its mel recipe and the config it was saved with (`config.json`, as a dict).

    Read what the config says through the properties (`training`, `training_steps`, `format_version`) rather
    than by digging into `config`.
    """

    model: AdaINVC  # in eval mode
    mel: MelConfig
    config: dict = field(default_factory=dict)
    source: str = ""  # what it was loaded from: a folder, a .pt file or a hub id

    @property
    def training(self) -> dict:
        """The training summary saved with the weights (config, steps, data); {} when there is none."""
        return self.config.get("training") or {}

    @property
    def training_steps(self) -> int | None:
        """Optimiser steps behind the weights, counting the runs they were started from with `--init-from`
        (None when not recorded)."""
        return self.training.get("total_steps", self.training.get("steps"))

    @property
    def architecture(self) -> str:
        """The model class the weights are for ("AdaINVC")."""
        return self.config.get("architecture", "AdaINVC")

    @property
    def format_version(self) -> int | None:
        """The bundle format the files were written in (`config.FORMAT_VERSION`)."""
        return self.config.get("format_version")

    @property
    def name(self) -> str:
        """The model's short name, as voice files and their errors give it: the folder or file name of a local
        path, a hub id as it is."""
        if not self.source:
            return "an unnamed model"
        return Path(self.source).name if Path(self.source).exists() else self.source


def checkpoints_dir() -> Path:
    """The project's `checkpoints/` folder.

    In a checkout (or an editable install) it sits next to the package; a wheel install
    (`pip install .`, `pip install git+...`) puts the shipped bundles in `<prefix>/share/vc-app/checkpoints`.
    """
    checkout = Path(__file__).resolve().parent.parent / "checkpoints"
    installed = Path(sys.prefix) / "share" / "vc-app" / "checkpoints"
    return installed if not checkout.is_dir() and installed.is_dir() else checkout


def default_checkpoint() -> str:
    """The bundle used when none is named: $VC_APP_CHECKPOINT, else the shipped default."""
    return os.environ.get(CHECKPOINT_ENV) or str(checkpoints_dir() / DEFAULT_BUNDLE)


def list_local_bundles() -> list[Path]:
    """Model bundle folders under `checkpoints/` (those holding config.json and weights; not the fast vocoder's
    folder, whose files have the same names)."""
    root = checkpoints_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / CONFIG).is_file() and (p / WEIGHTS).is_file()
                  and not _is_vocoder_bundle(p))


def _is_vocoder_bundle(folder: Path) -> bool:
    """Whether `folder`'s config.json says it holds a vocoder (`vc_app.vocoders.fast`), not a model."""
    try:
        return json.loads((folder / CONFIG).read_text()).get("format") == "vc_app.vocoder"
    except (OSError, ValueError, AttributeError):
        return False


def save_bundle(model: torch.nn.Module, mel: MelConfig, folder: str | os.PathLike, *, training: dict | None = None,
                card: str | None = None, half: bool = False) -> Path:
    """Write `model` as a bundle folder (replacing the files of an earlier bundle there).

    Args:
        model: an `AdaINVC` (its `cfg` is saved as the model config).
        training: a JSON-ready summary of the data and run (stored in config.json).
        card: the model card's Markdown; a short default is written when None.
        half: store float16 weights (half the size; loaded back as float32).
    """
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    config = {"format_version": FORMAT_VERSION, "architecture": "AdaINVC", "mel": to_dict(mel),
              "model": to_dict(model.cfg), "training": training or {}}
    default_card = f"# AdaIN-VC bundle\n\nWeights for vc_app (format {FORMAT_VERSION}); see config.json.\n"
    return write_bundle_files(folder, state, config, metadata={"format_version": str(FORMAT_VERSION)}, card=card,
                              default_card=default_card)


def write_bundle_files(folder: str | os.PathLike, state: dict[str, torch.Tensor], config: dict, *,
                       metadata: dict[str, str], card: str | None, default_card: str) -> Path:
    """Write WEIGHTS, CONFIG and CARD into `folder` (made if missing), each atomically; without `card`, a card
    already there is kept (else `default_card` is written). Model bundles and fast-vocoder folders share it."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / WEIGHTS, lambda p: save_file(state, str(p), metadata=metadata))
    atomic_write(folder / CONFIG, lambda p: p.write_text(json.dumps(config, indent=2) + "\n"))
    if card is not None or not (folder / CARD).exists():
        atomic_write(folder / CARD, lambda p: p.write_text(card or default_card))
    return folder


def load_bundle(spec: str | os.PathLike, *, device: str | torch.device = "cpu", revision: str | None = None) -> Bundle:
    """Load a bundle folder, a `.pt`/`.ckpt` file, or a hub repo id ("org/name").

    Raises:
        VcAppError: the bundle is missing, unsafe, of another format version, or its weights do not fit.
    """
    path = Path(spec)
    if path.is_file() and path.suffix in PICKLE_SUFFIXES:
        config, state = _read_pickle_checkpoint(path)
    else:
        folder = path if path.is_dir() else _download_bundle(str(spec), revision)
        config, state = _read_folder(folder)
    model = build_model(config, state, origin=str(spec))
    return Bundle(model.to(device).eval(), mel_config_from_dict(config["mel"]), config, str(spec))


def _read_folder(folder: Path) -> tuple[dict, dict]:
    config = _read_config(folder / CONFIG)
    weights = folder / WEIGHTS
    if not weights.is_file():
        pickles = [p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES]
        if pickles:
            return config, _read_pickle_checkpoint(pickles[0], config)[1]
        raise VcAppError(f"{folder} has no {WEIGHTS}.")
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return config, load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise VcAppError(f"{weights} is not a readable safetensors file ({err}).") from None


def _read_config(path: Path) -> dict:
    if not path.is_file():
        raise VcAppError(f"{path.parent} is not a vc_app bundle: it has no {CONFIG}.")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise VcAppError(f"{path} is not valid JSON ({err}).") from None
    _check_config(config, path)
    return config


def _check_config(config: Any, where: Path) -> None:
    if not isinstance(config, dict) or "model" not in config or "mel" not in config:
        raise VcAppError(f"{where} lacks the 'model' and 'mel' sections of a vc_app bundle config.")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise VcAppError(f"{where} has format_version {version!r}; this vc_app reads format_version {FORMAT_VERSION}.")


def _read_pickle_checkpoint(path: Path, config: dict | None = None) -> tuple[dict, dict]:
    """Read a torch checkpoint with weights_only=True: {"config", "model"|"state_dict"} or a bare state dict."""
    obj = torch_load_plain(path)
    if not isinstance(obj, dict):
        raise VcAppError(f"{path} does not hold a state dict.")
    state = obj.get("model", obj.get("state_dict", obj))
    config = obj.get("config", config)
    if config is None:
        config = _read_config(path.parent / CONFIG)
    _check_config(config, path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VcAppError(f"{path} does not hold a state dict of tensors.")
    return config, state


def build_model(config: dict, state: dict[str, torch.Tensor], origin: str = "the checkpoint") -> AdaINVC:
    """An `AdaINVC` from a bundle config, with `state` loaded strictly (errors name the keys)."""
    from vc_app.models import AdaINVC

    try:
        model_cfg: ModelConfig = model_config_from_dict(config["model"])
    except (TypeError, ValueError) as err:
        raise VcAppError(f"The model config in {origin} is invalid ({err}).") from None
    model = AdaINVC(model_cfg)
    check_state_dict(model.state_dict(), state, f"The weights in {origin} do not fit the model config")
    model.load_state_dict(state, strict=True)
    return model


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's weights: every state-dict entry's name, dtype, shape and bytes, in name order (the
    identity a voice file is checked against)."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _download_bundle(repo_id: str, revision: str | None) -> Path:
    """Fetch a bundle from the Hugging Face hub (or its cache when offline) into a local folder."""
    from vc_app.hub import hub_download, is_hub_repo_id

    if not is_hub_repo_id(repo_id):
        raise VcAppError(f"Checkpoint {repo_id} was not found: give a bundle folder, a .pt file or a hub id "
                         f"such as org/name.")
    config_path = hub_download(repo_id, CONFIG, revision=revision, what="checkpoint")
    hub_download(repo_id, WEIGHTS, revision=revision, what="checkpoint")
    try:
        hub_download(repo_id, CARD, revision=revision, what="checkpoint")
    except VcAppError:
        pass  # the model card is optional
    return config_path.parent
