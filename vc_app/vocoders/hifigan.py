"""HiFi-GAN (Kong et al. 2020) in its two public checkpoint formats.

- **jik876** (the authors' code; UNIVERSAL_V1 and hub copies): `config.json` +
  `g_XXXXXXXX` ({"generator": state dict}); zero-padded convs.
- **SpeechBrain** (`speechbrain/tts-hifigan-libritts-22050Hz`): `hyperparams.yaml`
  + `generator.ckpt` (a bare state dict). Every conv sits one level deeper
  (`conv_pre.conv.weight_g`), its "same" convs pad by reflection, and its
  inference replicate-pads the mel by 5 frames each side (trimmed off here).
  It was trained on `center=True` frames: a near-match to our mel that
  `check_mel` compensates with a half-hop delay.

Both: leaky ReLU 0.1 inside, 0.01 before `conv_post`, tanh at the end.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch.nn.functional as F
import yaml
from torch import nn

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.vocoders.generator import (
    MRFConfig,
    MRFGenerator,
    mrf_config_from_dict,
    plain_conv,
    plain_upsample,
    same_padding,
)
from vc_app.vocoders.neural import NeuralVocoder, TrainedMel, check_mel, read_config_json, trained_mel_from_json
from vc_app.vocoders.weights import load_generator, read_state_dict

log = logging.getLogger(__name__)

LRELU_SLOPE = 0.1  # inside the generator
POST_LRELU_SLOPE = 0.01  # before conv_post (torch's default slope, as upstream)
SPEECHBRAIN_PADDING = 5  # frames SpeechBrain's inference pads each side with by default


class SpeechBrainConv(nn.Module):
    """A conv stored under `.conv` (SpeechBrain's key layout); its "same" convs pad by reflection first."""

    def __init__(self, conv: nn.Module, reflect_pad: int = 0):
        super().__init__()
        self.conv, self.reflect_pad = conv, reflect_pad

    def forward(self, x):
        """x: (B, C, L) -> (B, C', L') as the wrapped conv."""
        if self.reflect_pad:
            x = F.pad(x, (self.reflect_pad, self.reflect_pad), mode="reflect")
        return self.conv(x)


def speechbrain_conv(c_in: int, c_out: int, kernel_size: int, dilation: int = 1, bias: bool = True) -> nn.Module:
    return SpeechBrainConv(nn.Conv1d(c_in, c_out, kernel_size, dilation=dilation, bias=bias),
                           same_padding(kernel_size, dilation))


def speechbrain_upsample(c_in: int, c_out: int, kernel_size: int, stride: int) -> nn.Module:
    return SpeechBrainConv(plain_upsample(c_in, c_out, kernel_size, stride))


def build_generator(cfg: MRFConfig, *, speechbrain: bool = False) -> MRFGenerator:
    """A randomly initialised HiFi-GAN generator with the jik876 (or SpeechBrain) key layout."""
    return MRFGenerator(cfg, conv=speechbrain_conv if speechbrain else plain_conv,
                        upsample=speechbrain_upsample if speechbrain else plain_upsample,
                        activation=lambda _: nn.LeakyReLU(LRELU_SLOPE),
                        post_activation=lambda _: nn.LeakyReLU(POST_LRELU_SLOPE),
                        stage_activation=nn.LeakyReLU(LRELU_SLOPE), final=nn.Tanh())


# -- jik876 -------------------------------------------------------------------------
def read_jik876_config(path: Path, origin: str) -> tuple[MRFConfig, TrainedMel]:
    """Generator sizes and training mel recipe from a jik876 `config.json` (a bad one: `read_config_json`)."""
    cfg, d = read_config_json(path, origin, mrf_config_from_dict)
    return cfg, trained_mel_from_json(d, cfg.hop_length, cfg.n_mels)


# -- SpeechBrain ----------------------------------------------------------------------
class _Ref(str):
    """A SpeechBrain `!ref <key>` value, resolved after loading."""


class _SpeechBrainYamlLoader(yaml.SafeLoader):
    """A safe YAML loader that reads SpeechBrain's tags (!new:, !name:, !apply:, !ref, ...) as plain data."""


def _plain_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    value = loader.construct_scalar(node)
    return _Ref(value) if suffix == "ref" else value


_SpeechBrainYamlLoader.add_multi_constructor("!", _plain_tag)

GENERATOR_FIELDS = ("in_channels", "out_channels", "resblock_type", "resblock_dilation_sizes", "resblock_kernel_sizes",
                    "upsample_kernel_sizes", "upsample_initial_channel", "upsample_factors", "inference_padding",
                    "cond_channels", "conv_post_bias")
MEL_FIELDS = {"sample_rate": ("sample_rate",), "n_fft": ("n_fft",), "win_length": ("win_length",),
              "f_min": ("mel_fmin", "f_min", "fmin"), "f_max": ("mel_fmax", "f_max", "fmax"),
              "center": ("center",)}


def _resolve(value, top: dict, depth: int = 0):
    """Replace `!ref <key>` values by the top-level value they name (expressions become None)."""
    if isinstance(value, _Ref):
        match = re.fullmatch(r"\s*<([\w.]+)>\s*", value)
        return _resolve(top.get(match.group(1)), top, depth + 1) if match and depth < 20 else None
    if isinstance(value, dict):
        return {k: _resolve(v, top, depth) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, top, depth) for v in value]
    return value


def _find(d: dict, names: tuple[str, ...]):
    """The first of `names` found in `d` or, depth first, in the mappings it holds (None: nowhere)."""
    for name in names:
        if d.get(name) is not None:
            return d[name]
    for value in d.values():
        if isinstance(value, dict) and (found := _find(value, names)) is not None:
            return found
    return None


def _number(value) -> float | None:
    """A numeric hyperparameter, or None when it is absent or not a plain number (then it is not checked)."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _rate_in_name(text: str) -> int | None:
    """A sample rate written in a repo or folder name: "...-22050Hz" -> 22050, "...-16kHz" -> 16000."""
    match = re.search(r"(\d+(?:\.\d+)?)\s*(k?)hz", text, flags=re.IGNORECASE)
    return None if match is None else round(float(match.group(1)) * (1000 if match.group(2) else 1))


def read_speechbrain_hparams(path: Path, origin: str) -> tuple[MRFConfig, TrainedMel, int]:
    """Generator sizes, training mel recipe and inference padding from a SpeechBrain `hyperparams.yaml`.

    The sample rate comes from the file, else from the repo/folder name ("22050Hz"); the hop is the
    product of the upsampling factors; frames are centred (torchaudio's default) unless it says otherwise.

    Raises:
        VcAppError: unreadable YAML, a missing or invalid field, or a generator we cannot run.
    """
    try:
        top = yaml.load(Path(path).read_text(), Loader=_SpeechBrainYamlLoader)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise VcAppError(f"The hyperparams.yaml of {origin} is not valid YAML ({str(err).splitlines()[0]}).") from None
    if not isinstance(top, dict):
        raise VcAppError(f"The hyperparams.yaml of {origin} is not a mapping of hyperparameters.")
    top = _resolve(top, top)
    generator = top.get("generator") if isinstance(top.get("generator"), dict) else {}
    g = {name: generator.get(name, top.get(name)) for name in GENERATOR_FIELDS}
    try:
        if int(g["cond_channels"] or 0) or int(g["out_channels"] or 1) != 1:
            raise VcAppError(f"{origin} is a conditioned or multi-channel HiFi-GAN, which vc_app cannot run.")
        cfg = mrf_config_from_dict({
            "num_mels": g["in_channels"] or 80, "resblock": g["resblock_type"],
            "upsample_rates": g["upsample_factors"], "upsample_kernel_sizes": g["upsample_kernel_sizes"],
            "upsample_initial_channel": g["upsample_initial_channel"],
            "resblock_kernel_sizes": g["resblock_kernel_sizes"],
            "resblock_dilation_sizes": g["resblock_dilation_sizes"],
        }, conv_post_bias=bool(True if g["conv_post_bias"] is None else g["conv_post_bias"]))
        padding = int(SPEECHBRAIN_PADDING if g["inference_padding"] is None else g["inference_padding"])
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise VcAppError(f"The hyperparams.yaml of {origin} does not describe a HiFi-GAN generator ({err}).") from None
    mel = {key: _find(top, names) for key, names in MEL_FIELDS.items()}
    mel.update({key: _number(mel[key]) for key in ("sample_rate", "n_fft", "win_length", "f_min", "f_max")})
    rate = mel["sample_rate"] or _rate_in_name(origin)
    if rate is None:
        log.warning("The vocoder %s does not state its sample rate; assuming it matches ours.", origin)
    trained = TrainedMel(sample_rate=rate, hop_length=cfg.hop_length, n_mels=cfg.n_mels, n_fft=mel["n_fft"],
                         win_length=mel["win_length"], f_min=mel["f_min"], f_max=mel["f_max"],
                         center=mel["center"] is None or bool(mel["center"]))
    return cfg, trained, padding


# -- loading ----------------------------------------------------------------------------
def load(files: dict[str, Path], mel: MelConfig, *, name: str, layout: str, device: str = "cpu",
         weights_sha256: str | None = None) -> NeuralVocoder:
    """A HiFi-GAN vocoder from its files (`layout` "jik876" or "speechbrain"), checked against our mel recipe.

    Args:
        files: {"config": config.json or hyperparams.yaml, "weights": g_XXXXXXXX or generator.ckpt}.
        weights_sha256: the checked SHA-256 of the weights (packaged vocoders): on CPU the generator then runs
            under ONNX Runtime, exported once into the user cache under that key (`vc_app.vocoders.onnx_cpu`).
    """
    if layout == "speechbrain":
        cfg, trained, padding = read_speechbrain_hparams(files["config"], name)
        state = read_state_dict(files["weights"])
    else:
        (cfg, trained), padding = read_jik876_config(files["config"], name), 0
        state = read_state_dict(files["weights"], key="generator")
    delay = check_mel(trained, mel, name)
    generator = load_generator(build_generator(cfg, speechbrain=layout == "speechbrain"), state, name)
    runner = None
    if weights_sha256 and str(device) == "cpu":
        from vc_app.vocoders.onnx_cpu import onnx_generator

        runner = onnx_generator(generator, cfg.n_mels, weights_sha256)
    return NeuralVocoder(generator, name=name, mel=mel, pad_frames=padding, delay=delay, device=device,
                         runner=runner)
