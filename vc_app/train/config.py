"""Training configuration: dataclasses with the defaults, read from YAML (safe loader) plus overrides.

Loss terms are named once here (`LossConfig.weights`); the same names appear
in the logs, TensorBoard and checkpoints.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vc_app.config import MelConfig, ModelConfig, mel_config_from_dict, model_config_from_dict, to_dict
from vc_app.errors import VcAppError


@dataclass
class DataConfig:
    train_features: str = ""       # packed feature cache of the training split
    valid_features: str = ""       # packed feature cache of the validation split ("" = none)
    segment_frames: int = 128
    batch_size: int = 32
    num_workers: int = 0
    warp_range: tuple[float, float] = (1.0, 1.0)  # voice augmentation: frequency warp factor range (1, 1 = off)
    gain_db: float = 0.0                           # random gain, +/- dB (0 = off)
    pseudo_speakers: int = 0                       # voices per real speaker, each a fixed warp + tilt (0 = a fresh
                                                   # warp per segment)
    tilt_db: float = 0.0                           # pseudo-speaker spectral tilt range, +/- dB at the top band
    content_warp_range: tuple[float, float] = (1.0, 1.0)  # information perturbation of the content input (1, 1 = off)
    speaker_segment: str = "same"                  # "other": the speaker encoder reads another clip of the same voice
    speaker_noise_db: tuple[float, float] = (0.0, 0.0)  # the speaker encoder's input alone gets a noise floor drawn in
                                                   # this range, dB under its loudest frame (0, 0 = off)
    speaker_noise_tilt_db: float = 12.0            # that floor's spectral tilt, drawn within +/- this at the top band
    sampler: str = "clips"                         # "clips": every clip once an epoch; "speakers": each batch draws
                                                   # speakers uniformly, then one clip of each (speaker-balanced)
    corpus_weights: dict[str, float] = field(default_factory=dict)  # with sampler speakers: each batch slot draws
                                                   # a corpus by weight (unlisted corpora weigh 1), then a speaker

    def __post_init__(self) -> None:
        if self.speaker_segment not in ("same", "other"):
            raise ValueError(f"data.speaker_segment must be same or other, not {self.speaker_segment!r}")
        if self.sampler not in ("clips", "speakers"):
            raise ValueError(f"data.sampler must be clips or speakers, not {self.sampler!r}")
        if self.corpus_weights and self.sampler != "speakers":
            raise ValueError("data.corpus_weights needs data.sampler: speakers")
        if any(w < 0 for w in self.corpus_weights.values()):
            raise ValueError("data.corpus_weights must not be negative")
        for name in ("warp_range", "content_warp_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"data.{name} must be two positive factors, low <= high, not {[low, high]}")
        if self.pseudo_speakers < 0:
            raise ValueError("data.pseudo_speakers must be 0 or more")
        low, high = self.speaker_noise_db
        if not low <= high <= 0:
            raise ValueError(f"data.speaker_noise_db must be two levels in dB, low <= high <= 0, not {[low, high]}")
        if self.speaker_noise_tilt_db < 0:
            raise ValueError("data.speaker_noise_tilt_db must be 0 or more")


@dataclass
class OptimConfig:
    lr: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    amsgrad: bool = True
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    lr_schedule: str = "constant"  # constant | cosine: lr falls to lr * lr_final_ratio over this run's max_steps
    lr_final_ratio: float = 0.1
    schedule_steps: int = 0        # > 0: the cosine spans these *total* steps from schedule_start instead, so the
    schedule_start: int = 0        # legs of a relay (each --init-from the last) follow one curve
    warmup_steps: int = 0          # both players' rates ramp up linearly over this run's first steps (fresh optimisers)

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"optim.lr_schedule must be constant or cosine, not {self.lr_schedule!r}")
        if not 0 <= self.lr_final_ratio <= 1:
            raise ValueError(f"optim.lr_final_ratio must be between 0 and 1, not {self.lr_final_ratio}")
        if min(self.schedule_steps, self.schedule_start, self.warmup_steps) < 0:
            raise ValueError("optim.schedule_steps, schedule_start and warmup_steps must be 0 or more")


@dataclass
class LossConfig:
    weights: dict[str, float] = field(default_factory=lambda: {"rec": 10.0, "kl": 1.0})
    kl_anneal_steps: int = 20000     # kl weight ramps linearly from 0 to weights["kl"]
    adv_ramp_steps: int = 10000      # adv weight ramps linearly from 0 to weights["adv"]
    gan_ramp_steps: int = 1000       # gan and fm weights ramp from 0 over this run's steps after the discriminator's
                                     # warm-up (a fresh discriminator first learns to tell real from generated)
    spk_cons_frames: str = "converted"  # the frames spk_cons reads the conversion's voice on: "converted" (those
                                        # within 40 dB of its own loudest, as a target clip is read) or "source"
                                        # (where the content's source speaks: pauses carry no voice to pull)
    spk_id_ramp_steps: int = 1000    # spk_id ramps from 0 over this run's first steps while its SpeakerIdentifier
                                     # is fresh (a random classifier's gradient would only shake the speaker encoder)
    spk_id_lr_ratio: float = 1.0     # the SpeakerIdentifier's learning rate as a multiple of the model's (a fresh
                                     # linear classifier over hundreds of voices learns slowly at the model's rate)
    pause_rise_only: bool = True     # the pause term counts only a rise above the source's pauses (false: any
                                     # departure, up or down, so a conversion keeps its source's pause level)
    pause_per_clip: bool = False     # the pause term reads each clip's mean over its pause frames (the evaluation's
                                     # pause level), not each frame's: the frames of a pause may differ among them

    def __post_init__(self) -> None:
        if self.spk_id_lr_ratio <= 0:
            raise ValueError(f"loss.spk_id_lr_ratio must be above 0, not {self.spk_id_lr_ratio}")
        if self.spk_cons_frames not in ("converted", "source"):
            raise ValueError(f"loss.spk_cons_frames must be converted or source, not {self.spk_cons_frames!r}")


@dataclass
class AdversaryConfig:
    enabled: bool = False
    c_h: int = 256
    n_layers: int = 3
    lr: float = 5e-4


@dataclass
class DiscriminatorConfig:
    """The mel discriminator (`vc_app.models.MelDiscriminator`) and its own optimiser; its terms on the decoder
    are "gan" (fool it) and "fm" (feature matching) in `loss.weights`."""

    enabled: bool = False
    c_h: int = 16
    n_layers: int = 4
    norm: str = "spectral"          # spectral | weight | none
    objective: str = "lsgan"        # lsgan (least squares) | hinge
    speaker: bool = False           # conditioned on the speaker vector (projection); real mels paired with another
                                    # voice's vector count as generated
    conversions: bool = False       # also judge each clip converted to the next clip's voice (gan term only)
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.9)
    warmup_steps: int = 0           # this run's first steps train the discriminator alone (a fresh one only)
    loss_floor: float = 0.0         # a batch on which the discriminator's loss is below this leaves it as it is:
                                    # it cannot run away from the decoder (0: always updated)
    r1: float = 0.0                 # gamma of the R1 penalty (Mescheder et al. 2018) on real mels: gamma / 2 times
                                    # the squared norm of the gradient of each clip's mean patch score, which
                                    # keeps the discriminator smooth where the data is (0: off)
    r1_every: int = 1               # compute it on every N-th step only (N a divisor of run.log_every shows it
                                    # in the log), weighted by N (lazy regularisation,
                                    # StyleGAN2): the double backward pass costs about as much as the update

    def __post_init__(self) -> None:
        if self.loss_floor < 0:
            raise ValueError("discriminator.loss_floor must be 0 or more")
        if self.r1 < 0 or self.r1_every < 1:
            raise ValueError("discriminator.r1 must be 0 or more and discriminator.r1_every 1 or more")
        if self.norm not in ("spectral", "weight", "none"):
            raise ValueError(f"discriminator.norm must be spectral, weight or none, not {self.norm!r}")
        if self.objective not in ("lsgan", "hinge"):
            raise ValueError(f"discriminator.objective must be lsgan or hinge, not {self.objective!r}")


@dataclass
class RunConfig:
    max_steps: int = 100000
    log_every: int = 50
    valid_every: int = 1000
    save_every: int = 1000
    keep_last: int = 3
    sample_every: int = 2000
    amp: str = "auto"  # auto (bf16 where native: AVX512-BF16/AMX CPUs, CUDA) | none | bf16 | fp16 (GPU only)
    threads: int = 0   # torch CPU threads (0 = torch default)
    init_from: str = ""  # a bundle (folder or hub id) whose weights start a fresh run; "" = random init
    term_grads_every: int = 0  # > 0: every N-th step also logs each weighted term's gradient norm over the
                               # model's weights ("grad_norm_rec", "grad_norm_gan", ...; one more backward per term)

    def __post_init__(self) -> None:
        if self.amp not in ("auto", "none", "bf16", "fp16"):
            raise ValueError(f"run.amp must be auto, none, bf16 or fp16, not {self.amp!r}")
        if min(self.log_every, self.valid_every, self.save_every, self.keep_last) < 1:
            raise ValueError("run.log_every, valid_every, save_every and keep_last must be at least 1")
        if self.term_grads_every < 0:
            raise ValueError("run.term_grads_every must be 0 (off) or more")


@dataclass
class TrainConfig:
    seed: int = 1234
    mel: MelConfig = field(default_factory=MelConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    adversary: AdversaryConfig = field(default_factory=AdversaryConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    run: RunConfig = field(default_factory=RunConfig)


SECTIONS = {"data": DataConfig, "optim": OptimConfig, "loss": LossConfig, "adversary": AdversaryConfig,
            "discriminator": DiscriminatorConfig, "run": RunConfig}


def config_to_dict(cfg: TrainConfig) -> dict:
    return to_dict(cfg)


def config_from_dict(d: dict) -> TrainConfig:
    """A TrainConfig from a (partial) nested dict; unknown keys are an error naming them."""
    unknown = set(d) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise VcAppError(f"Unknown config section(s): {', '.join(sorted(unknown))}.")
    kwargs: dict[str, Any] = {}
    try:
        if "seed" in d:
            kwargs["seed"] = int(d["seed"])
        if "mel" in d:
            kwargs["mel"] = mel_config_from_dict(d["mel"])
        if "model" in d:
            kwargs["model"] = model_config_from_dict(d["model"])
        for name, cls in SECTIONS.items():
            if name in d:
                kwargs[name] = _section(cls, d[name] or {}, name)
        return TrainConfig(**kwargs)
    except (TypeError, ValueError) as err:
        raise VcAppError(f"Invalid training config: {err}.") from None


def _section(cls: type, values: dict, name: str):
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(names)
    if unknown:
        raise VcAppError(f"Unknown key(s) in config section {name!r}: {', '.join(sorted(unknown))}.")
    values = {k: _coerce(str(names[k].type), v, f"{name}.{k}") for k, v in values.items()}
    for key in ("weights", "corpus_weights"):  # {name: weight} maps: YAML may give ints or numeric strings
        if key in values:
            values[key] = _weights(values[key], f"{name}.{key}")
    return cls(**values)


def _weights(value: Any, key: str) -> dict[str, float]:
    """{name: weight} as floats; YAML reads `{a:1}` (no space after the colon) as the key 'a:1' with no value."""
    try:
        if not isinstance(value, dict):
            raise TypeError
        return {str(k): float(v) for k, v in value.items()}
    except (TypeError, ValueError):
        raise VcAppError(f"{key} must map names to numbers, like {{a: 1, b: 0.5}} (a space after each colon), "
                         f"not {value!r}.") from None


def _coerce(kind: str, value: Any, key: str) -> Any:
    """`value` as the field type `kind` says: YAML reads 1e-4 (no dot) as a string, lists for tuples."""
    if isinstance(value, list) and kind.startswith("tuple"):
        return tuple(_coerce(kind[6:-1].split(",")[0].strip(), v, key) for v in value)
    try:
        if kind == "float" and isinstance(value, (str, int)) and not isinstance(value, bool):
            return float(value)
        if kind == "int" and isinstance(value, str):
            return int(value)
    except ValueError:
        raise VcAppError(f"{key} must be a number, not {value!r}.") from None
    return value


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config (or the defaults when `path` is None) and apply `section.key=value` overrides."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise VcAppError(f"Config file {path} does not exist.")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise VcAppError(f"{path} is not valid YAML ({str(err).splitlines()[0]}).") from None
    return config_from_dict(apply_overrides(data, overrides))


def apply_overrides(data: dict, overrides: list[str] | None) -> dict:
    """`data` (a nested dict read from YAML) with each `a.b.c=value` set, the value read as YAML; returns it."""
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise VcAppError(f"Override {item!r} must look like section.key=value.")
        *parents, last = key.strip().split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(raw)
    return data
