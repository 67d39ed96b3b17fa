"""The fast vocoder: a ConvNeXt + inverse-STFT generator of our own, in a bundle folder.

`fast` names the shipped folder (`checkpoints/vocoder-fast/`, a wheel: `<prefix>/share/vc-app/checkpoints/`);
`fast:FOLDER` any folder in the same format, e.g. one exported by `recipes/vocoder/run.sh`:

- `config.json`: `format` ("vc_app.vocoder"), `format_version` (1), `architecture` ("ConvNeXtISTFT"), `mel`
  (the `MelConfig` it was trained on), `generator` (the `ConvNeXtISTFTConfig` sizes), `training` (teacher,
  data, steps);
- `model.safetensors`: the generator's weights (float32);
- `README.md`: the card (teacher, data, steps, numbers).

Loading is strict: a folder made for another mel recipe, a missing or damaged file and weights that do not
fit the sizes are each refused with one sentence. On a CPU the generator up to its STFT frames runs under
ONNX Runtime (exported once into the user cache, checked against PyTorch), the inverse FFT in PyTorch.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vc_app.bundle import CONFIG, WEIGHTS, checkpoints_dir, write_bundle_files
from vc_app.config import MelConfig, to_dict
from vc_app.errors import VcAppError
from vc_app.vocoders.convnext_istft import ConvNeXtISTFTConfig, ConvNeXtISTFTGenerator
from vc_app.vocoders.neural import CHUNK_FRAMES, NeuralVocoder, TrainedMel, check_mel, read_config_json

FAMILY = "fast"
FAST_FOLDER = "vocoder-fast"  # under checkpoints/
FORMAT, FORMAT_VERSION, ARCHITECTURE = "vc_app.vocoder", 1, "ConvNeXtISTFT"
CONTEXT_MARGIN = 2  # frames of context beyond the receptive field when long mels are vocoded in windows


def default_folder() -> Path:
    """Where the shipped fast vocoder lives: `checkpoints/vocoder-fast/` beside the default model."""
    return checkpoints_dir() / FAST_FOLDER


def folder_of(argument: str) -> Path:
    """The folder `fast:ARGUMENT` names ('' = the shipped one).

    Raises:
        VcAppError: the shipped one is not there (not trained yet), or ARGUMENT is not a folder.
    """
    if not argument:
        folder = default_folder()
        if not folder.is_dir():
            raise VcAppError(f"The fast vocoder is not trained yet ({folder} does not exist): train one with "
                             f"recipes/vocoder/run.sh and pass its folder as 'fast:FOLDER', or use "
                             f"'hifigan:universal'.")
        return folder
    folder = Path(argument).expanduser()
    if not folder.is_dir():
        raise VcAppError(f"Vocoder fast:{argument}: {folder} is not a folder (it needs {CONFIG} and {WEIGHTS}).")
    return folder


def availability(argument: str) -> tuple[bool, str]:
    """(usable now, why not) for `fast:ARGUMENT`, reading no weights."""
    try:
        folder = folder_of(argument)
    except VcAppError as err:
        return False, "not trained yet" if not argument else str(err)
    missing = [name for name in (CONFIG, WEIGHTS) if not (folder / name).is_file()]
    return (False, f"{folder} lacks {' and '.join(missing)}") if missing else (True, "")


def save_fast_vocoder(generator: ConvNeXtISTFTGenerator, mel: MelConfig, folder: str | os.PathLike, *,
                      training: dict | None = None, card: str | None = None) -> Path:
    """Write `generator` as a fast-vocoder bundle folder (replacing the files of an earlier one there)."""
    state = {k: v.detach().float().cpu().contiguous() for k, v in generator.state_dict().items()}
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "architecture": ARCHITECTURE, "mel": to_dict(mel),
              "generator": generator.cfg.to_dict(), "training": training or {}}
    return write_bundle_files(folder, state, config, metadata={"format": FORMAT}, card=card, default_card=(
        "# Fast vocoder\n\nA ConvNeXt + inverse-STFT generator for vc_app; see config.json.\n"))


def read_config(folder: Path, name: str) -> tuple[ConvNeXtISTFTConfig, TrainedMel, dict]:
    """The generator sizes, the mel recipe it was trained on and the whole config.json of a bundle folder.

    Raises:
        VcAppError: a file is missing, the JSON is invalid, or it is not a fast-vocoder config of this version.
    """
    missing = [n for n in (CONFIG, WEIGHTS) if not (folder / n).is_file()]
    if missing:
        raise VcAppError(f"The vocoder folder {folder} lacks {' and '.join(missing)}; a fast vocoder needs "
                         f"{CONFIG} and {WEIGHTS}.")

    def parse(d: dict) -> tuple[ConvNeXtISTFTConfig, TrainedMel]:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise VcAppError(f"The config.json of {name} is not a fast-vocoder config (its 'format' is not "
                             f"{FORMAT!r}).")
        if d.get("format_version") != FORMAT_VERSION or d.get("architecture") != ARCHITECTURE:
            raise VcAppError(f"{name} is format version {d.get('format_version')} of {d.get('architecture')}, but "
                             f"this vc_app reads version {FORMAT_VERSION} of {ARCHITECTURE}; update vc_app.")
        cfg, m = ConvNeXtISTFTConfig.from_dict(d["generator"]), d["mel"]
        return cfg, TrainedMel(
            sample_rate=int(m["sample_rate"]), hop_length=int(m["hop_length"]), n_mels=int(m["n_mels"]),
            n_fft=int(m["n_fft"]), win_length=int(m["win_length"]), f_min=float(m["f_min"]), f_max=float(m["f_max"]))

    (cfg, trained), d = read_config_json(folder / CONFIG, name, parse)
    if (cfg.n_mels, cfg.hop_length) != (trained.n_mels, trained.hop_length):
        raise VcAppError(f"The config.json of {name} contradicts itself: its generator takes {cfg.n_mels} bands at "
                         f"hop {cfg.hop_length}, its mel has {trained.n_mels} at hop {trained.hop_length}.")
    return cfg, trained, d


def read_weights(path: Path, name: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, float32. Raises VcAppError (one sentence) when it cannot be read."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types, OSError or ValueError
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise VcAppError(f"The weights of {name} ({path}) are damaged or not a safetensors file ({reason}).") from None
    return {k: v.float() for k, v in state.items()}


def load(folder: Path, mel: MelConfig, *, name: str, device: str = "cpu", onnx: bool = True) -> NeuralVocoder:
    """The fast vocoder in `folder`, strictly loaded and checked against our mel recipe `mel`.

    Args:
        onnx: on a CPU, run it under ONNX Runtime when that works here (the output is the same).
    Raises:
        VcAppError: see `read_config`, `read_weights`; another mel recipe; weights that do not fit the sizes.
    """
    from vc_app.state_dicts import check_state_dict

    cfg, trained, _ = read_config(folder, name)
    check_mel(trained, mel, name)
    generator = ConvNeXtISTFTGenerator(cfg)
    state = read_weights(folder / WEIGHTS, name)
    check_state_dict(generator.state_dict(), state, f"The weights in {name} do not fit its config")
    generator.load_state_dict(state, strict=True)
    generator.eval().requires_grad_(False)
    runner = None
    if onnx and str(device) == "cpu":
        from vc_app.vocoders.onnx_cpu import onnx_generator
        from vc_app.vocoders.packaged import file_sha256

        runner = onnx_generator(generator, cfg.n_mels, file_sha256(folder / WEIGHTS),
                                exported=SpectrumPart(generator), finish=generator.synthesize, tag="convnext-istft-")
    return NeuralVocoder(generator, name=name, mel=mel, device=device, chunk_frames=CHUNK_FRAMES,
                         context_frames=cfg.receptive_frames + CONTEXT_MARGIN, runner=runner)


class SpectrumPart(torch.nn.Module):
    """The generator up to its STFT frames (what ONNX can express): mel (B, n_mels, T) -> (B, 2 * n_bins, T)."""

    def __init__(self, generator: ConvNeXtISTFTGenerator):
        super().__init__()
        self.generator = generator

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generator.spectrum(mel)
