"""Distil the fast vocoder (`vc_app.vocoders.convnext_istft`) from a teacher's labels, resumably.

    python -m vc_app.train.vocoder label  --features FEATS/train --out LABELS/train [--checkpoint BUNDLE]
    python -m vc_app.train.vocoder train  --labels LABELS/train --valid LABELS/valid --out EXP [--resume]
    python -m vc_app.train.vocoder export --exp EXP --out BUNDLE [--heldout LABELS/unseen]

The student sees random segments of labelled mels (`vc_app.train.vocoder_labels`) and learns the teacher's
waveform for them. Loss = sum of weight[name] * term[name] over named terms, the same names in the config,
the logs and TensorBoard: `stft_sc` (spectral convergence) and `stft_logmag` (L1 of log magnitudes), each
averaged over the STFT resolutions of `resolutions`; `mel_l1` (L1 between the log-mels of student and teacher,
our one mel function); `stft_complex` (L1 of the real and imaginary parts at the middle resolution: the
teacher's phase, which distillation can ask for since the two waveforms are aligned; off by default) and
`wave_l1` (off by default). No adversarial term: a deterministic teacher gives an aligned target, and a
discriminator would first have to be shown to help. Never a judge (DNSMOS, Resemblyzer, PocketSphinx).

A checkpoint `EXP/checkpoints/step-NNNNNNNN/` is a fast-vocoder bundle (`vc_app.vocoders.fast`) plus
`train_state.pt` (optimiser, step); batches are drawn from (seed, step) alone, so `--resume` continues the
same run exactly. bf16 autocast where the CPU (AVX512-BF16, AMX) or GPU computes it natively (`amp: auto`).
The MR-STFT loss is written here on `torch.stft` (a dozen lines) rather than taken from auraloss: that
package's last release is from 2023 and it would be one more dependency for those lines.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.train.config import apply_overrides
from vc_app.train.vocoder_labels import LabelPack, label_features
from vc_app.vocoders.convnext_istft import ConvNeXtISTFTConfig, ConvNeXtISTFTGenerator

TERMS = ("stft_sc", "stft_logmag", "mel_l1", "stft_complex", "wave_l1")
CKPT_PREFIX, STATE_FILE = "step-", "train_state.pt"


@dataclass
class DistillConfig:
    """Everything a distillation run needs besides its data; sizes of the student in `generator`."""

    generator: ConvNeXtISTFTConfig = field(default_factory=ConvNeXtISTFTConfig)
    segment_frames: int = 32  # frames per training segment (8192 samples)
    batch_size: int = 16
    lr: float = 5e-4
    lr_schedule: str = "cosine"  # cosine (to lr_final_scale * lr at max_steps) | constant
    lr_final_scale: float = 0.01
    schedule_steps: int = 0  # steps the cosine spans (0: max_steps); set it when a run is split into legs
    betas: tuple[float, float] = (0.8, 0.9)
    weight_decay: float = 0.01
    grad_clip: float = 10.0
    max_steps: int = 200_000
    loss_weights: dict[str, float] = field(default_factory=lambda: {
        "stft_sc": 1.0, "stft_logmag": 1.0, "mel_l1": 1.0, "stft_complex": 0.0, "wave_l1": 0.0})
    resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))  # (n_fft, hop), Hann
    amp: str = "auto"  # auto (bf16 where native) | none | bf16
    seed: int = 0
    threads: int = 0  # torch threads (0: PyTorch's default)
    log_every: int = 50
    valid_every: int = 1000
    save_every: int = 1000
    sample_every: int = 5000  # TensorBoard audio of a fixed validation clip: teacher and student
    valid_clips: int = 16
    valid_max_frames: int = 256

    def __post_init__(self) -> None:
        unknown = sorted(set(self.loss_weights) - set(TERMS))
        if unknown:
            raise VcAppError(f"Unknown loss term {unknown[0]!r}: the terms are {', '.join(TERMS)}.")
        if self.amp not in ("auto", "none", "bf16") or self.lr_schedule not in ("cosine", "constant"):
            raise VcAppError("amp must be auto, none or bf16, and lr_schedule cosine or constant.")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["generator"] = self.generator.to_dict()
        return d


def load_config(path: str | os.PathLike | None, overrides: list[str] | None = None) -> DistillConfig:
    """The config in YAML file `path` (None: the defaults) with `key=value` overrides (`generator.dim=256`).

    Raises:
        VcAppError: unreadable file, an unknown key or a value of the wrong kind (one sentence).
    """
    import yaml

    d: dict = {}
    if path:
        try:
            d = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise VcAppError(f"Cannot read the vocoder config {path} ({str(err).splitlines()[0]}).") from None
    d = apply_overrides(d, overrides)
    try:
        generator = ConvNeXtISTFTConfig.from_dict(d.pop("generator", {}) or {})
        kinds = {f.name: f.type for f in fields(DistillConfig)}  # "int", "float", ... (postponed annotations)
        if set(d) - set(kinds):
            raise TypeError(f"unknown key {sorted(set(d) - set(kinds))[0]!r}")
        for key, kind in kinds.items():
            if key in d and kind in ("int", "float"):
                d[key] = int(d[key]) if kind == "int" else float(d[key])  # YAML reads 2e-3 as a string
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        if "resolutions" in d:
            d["resolutions"] = tuple(tuple(r) for r in d["resolutions"])
        return DistillConfig(generator=generator, **d)
    except (TypeError, ValueError) as err:
        raise VcAppError(f"The vocoder config is invalid ({err}).") from None


# -- losses ---------------------------------------------------------------------------------------------
def stft(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """wav (B, N) -> complex STFT (B, n_fft // 2 + 1, frames), Hann window, centred frames."""
    return torch.stft(wav, n_fft, hop, n_fft, torch.hann_window(n_fft, device=wav.device), return_complex=True)


def loss_terms(student: torch.Tensor, teacher: torch.Tensor, cfg: DistillConfig,
               mel_cfg: MelConfig) -> dict[str, torch.Tensor]:
    """Every term of `TERMS` for waveforms (B, N) float32 (see the module doc)."""
    from vc_app.mel import mel_spectrogram

    sc, logmag = [], []
    for n_fft, hop in cfg.resolutions:
        s, t = stft(student, n_fft, hop).abs().clamp(min=1e-7), stft(teacher, n_fft, hop).abs().clamp(min=1e-7)
        sc.append(torch.linalg.norm(t - s, dim=(1, 2)).div(torch.linalg.norm(t, dim=(1, 2)).clamp(min=1e-7)).mean())
        logmag.append((t.log() - s.log()).abs().mean())
    n_fft, hop = cfg.resolutions[len(cfg.resolutions) // 2]
    difference = stft(student, n_fft, hop) - stft(teacher, n_fft, hop)
    return {"stft_sc": torch.stack(sc).mean(), "stft_logmag": torch.stack(logmag).mean(),
            "mel_l1": (mel_spectrogram(student, mel_cfg) - mel_spectrogram(teacher, mel_cfg)).abs().mean(),
            "stft_complex": torch.view_as_real(difference).abs().mean(), "wave_l1": (student - teacher).abs().mean()}


def total_loss(terms: dict[str, torch.Tensor], cfg: DistillConfig) -> torch.Tensor:
    """sum(weight[name] * term[name]) over the terms with a non-zero weight."""
    return sum((w * terms[k] for k, w in cfg.loss_weights.items() if w), torch.zeros(()))


# -- training -------------------------------------------------------------------------------------------
@dataclass
class DistillState:
    """The student, its optimiser and the number of steps taken."""

    generator: ConvNeXtISTFTGenerator
    optimizer: torch.optim.Optimizer
    step: int = 0


def scheduled_lr(cfg: DistillConfig, step: int) -> float:
    """The learning rate at `step`: constant, or a cosine from lr to lr * lr_final_scale at schedule_steps
    (default max_steps)."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    progress = min(step / max(cfg.schedule_steps or cfg.max_steps, 1), 1.0)
    return cfg.lr * (cfg.lr_final_scale + (1 - cfg.lr_final_scale) * 0.5 * (1 + math.cos(math.pi * progress)))


def amp_dtype(cfg: DistillConfig) -> torch.dtype | None:
    """bfloat16 where the CPU computes it natively (auto) or when asked (bf16); else None (float32)."""
    from vc_app.train.engine import native_bf16

    if cfg.amp == "bf16" or (cfg.amp == "auto" and native_bf16(torch.device("cpu"))):
        return torch.bfloat16
    return None


def train_step(state: DistillState, mel: torch.Tensor, wav: torch.Tensor, cfg: DistillConfig,
               mel_cfg: MelConfig) -> dict[str, float]:
    """One optimiser step on mel (B, n_mels, S) -> the teacher's wav (B, S * hop); returns each term."""
    dtype = amp_dtype(cfg)
    for group in state.optimizer.param_groups:
        group["lr"] = scheduled_lr(cfg, state.step)
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        spectrum = state.generator.spectrum(mel)
    student = state.generator.synthesize(spectrum.float())[:, 0]
    terms = loss_terms(student, wav, cfg, mel_cfg)
    loss = total_loss(terms, cfg)
    if not torch.isfinite(loss):
        raise VcAppError(f"The distillation loss is not finite at step {state.step}: lower the learning rate.")
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(state.generator.parameters(), cfg.grad_clip)
    state.optimizer.step()
    state.step += 1
    return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}, "grad_norm": float(norm),
            "lr": state.optimizer.param_groups[0]["lr"]}


@torch.no_grad()
def evaluate(generator: ConvNeXtISTFTGenerator, pack: LabelPack, cfg: DistillConfig,
             mel_cfg: MelConfig) -> dict[str, float]:
    """Mean of each term over the first `valid_clips` clips of `pack` (each at most `valid_max_frames`)."""
    generator.eval()
    sums: dict[str, float] = {}
    count = min(cfg.valid_clips, len(pack))
    for i in range(count):
        mel, wav = pack.clip(i, 0, min(int(pack.frames[i]), cfg.valid_max_frames))
        terms = loss_terms(generator(mel[None])[:, 0], wav[None], cfg, mel_cfg)
        terms["loss"] = total_loss(terms, cfg)
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) / count
    generator.train()
    return sums


def checkpoint_dirs(exp: Path) -> list[Path]:
    """Finished checkpoints of an experiment, oldest first."""
    found = [p for p in (exp / "checkpoints").glob(f"{CKPT_PREFIX}*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name[len(CKPT_PREFIX):]))


def save_checkpoint(state: DistillState, exp: Path, cfg: DistillConfig, mel_cfg: MelConfig, summary: dict) -> Path:
    """EXP/checkpoints/step-NNNNNNNN/: the bundle, then train_state.pt (its presence marks it finished)."""
    from vc_app.paths import atomic_write
    from vc_app.vocoders.fast import save_fast_vocoder

    folder = exp / "checkpoints" / f"{CKPT_PREFIX}{state.step:08d}"
    training = {"steps": state.step, "config": cfg.to_dict(), **summary}
    save_fast_vocoder(state.generator, mel_cfg, folder, training=training)
    atomic_write(folder / STATE_FILE, lambda p: torch.save({"optimizer": state.optimizer.state_dict(),
                                                            "step": state.step}, p))
    return folder


def build_state(cfg: DistillConfig) -> DistillState:
    torch.manual_seed(cfg.seed)
    generator = ConvNeXtISTFTGenerator(cfg.generator)
    optimizer = torch.optim.AdamW(generator.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    return DistillState(generator, optimizer)


def resume_state(state: DistillState, exp: Path) -> Path | None:
    """Load the newest checkpoint of `exp` into `state` (None when there is none)."""
    from vc_app.state_dicts import torch_load_plain
    from vc_app.vocoders.fast import WEIGHTS, read_weights

    found = checkpoint_dirs(exp)
    if not found:
        return None
    state.generator.load_state_dict(read_weights(found[-1] / WEIGHTS, str(found[-1])), strict=True)
    saved = torch_load_plain(found[-1] / STATE_FILE)
    state.optimizer.load_state_dict(saved["optimizer"])
    state.step = int(saved["step"])
    return found[-1]


def train(cfg: DistillConfig, labels: str | os.PathLike, exp: str | os.PathLike, *,
          valid: str | os.PathLike | None = None, resume: bool = False, log: Callable = print) -> DistillState:
    """Distil until `cfg.max_steps`, logging, validating, sampling and saving on the config's schedule."""
    from vc_app.train.logging import TrainLogger

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    mel_cfg = MelConfig(n_mels=cfg.generator.n_mels, hop_length=cfg.generator.hop_length)
    exp = Path(exp)
    if not resume and checkpoint_dirs(exp):
        raise VcAppError(f"{exp} already holds checkpoints: pass --resume to continue, or another --out.")
    pack = LabelPack.open(labels, mel_cfg.hop_length)
    valid_pack = LabelPack.open(valid, mel_cfg.hop_length) if valid else None
    state = build_state(cfg)
    if resume and (found := resume_state(state, exp)) is not None:
        log(f"resumed from {found} (step {state.step})")
    summary = {"labels": str(labels), "clips": len(pack), "seconds": pack.seconds(mel_cfg.sample_rate)}
    logger = TrainLogger(exp, log=log)
    exp.joinpath("config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    log(f"distilling {sum(p.numel() for p in state.generator.parameters()) / 1e6:.2f} M parameters on "
        f"{len(pack)} clips, amp {amp_dtype(cfg)}, steps {state.step} -> {cfg.max_steps}")
    started, last = time.perf_counter(), state.step
    while state.step < cfg.max_steps:
        mel, wav = pack.batch(cfg.batch_size, cfg.segment_frames, cfg.seed, state.step)
        values = train_step(state, mel, wav, cfg, mel_cfg)
        if state.step % cfg.log_every == 0 or state.step == cfg.max_steps:
            values["steps_per_s"] = (state.step - last) / max(time.perf_counter() - started, 1e-9)
            logger.scalars("train", values, state.step)
            started, last = time.perf_counter(), state.step
        if valid_pack is not None and (state.step % cfg.valid_every == 0 or state.step == cfg.max_steps):
            logger.scalars("valid", evaluate(state.generator, valid_pack, cfg, mel_cfg), state.step)
        if valid_pack is not None and logger.writer is not None and state.step % cfg.sample_every == 0:
            _log_audio(logger.writer, state.generator, valid_pack, mel_cfg, state.step)
        if state.step % cfg.save_every == 0 or state.step == cfg.max_steps:
            save_checkpoint(state, exp, cfg, mel_cfg, summary)
    return state


@torch.no_grad()
def _log_audio(writer, generator: ConvNeXtISTFTGenerator, pack: LabelPack, mel_cfg: MelConfig, step: int) -> None:
    """TensorBoard audio of validation clip 0: the student's, and the teacher's beside it."""
    mel, wav = pack.clip(0)
    generator.eval()
    student = generator(mel[None])[0, 0]
    generator.train()
    writer.add_audio("sample/student", student[None], step, sample_rate=mel_cfg.sample_rate)
    writer.add_audio("sample/teacher", wav[None], step, sample_rate=mel_cfg.sample_rate)


# -- export ---------------------------------------------------------------------------------------------
def export(exp: str | os.PathLike, out: str | os.PathLike, *, heldout: str | os.PathLike | None = None,
           note: str = "") -> Path:
    """The newest checkpoint of `exp` as a fast-vocoder bundle in `out`, with a card: teacher, data, steps,
    validation losses and, with `heldout` labels (held-out speakers' real speech), copy-synthesis distances."""
    from vc_app.vocoders.fast import CONFIG, WEIGHTS, read_config, read_weights, save_fast_vocoder

    exp = Path(exp)
    found = checkpoint_dirs(exp)
    if not found:
        raise VcAppError(f"{exp} has no finished checkpoint yet (run the train stage first).")
    cfg_gen, _, config = read_config(found[-1], str(found[-1]))
    generator = ConvNeXtISTFTGenerator(cfg_gen)
    generator.load_state_dict(read_weights(found[-1] / WEIGHTS, str(found[-1])), strict=True)
    training = dict(config.get("training") or {})
    cfg = load_config(None, [f"{k}={json.dumps(v)}" for k, v in training.get("config", {}).items()
                             if k != "generator"])
    mel_cfg = MelConfig(n_mels=cfg_gen.n_mels, hop_length=cfg_gen.hop_length)
    lines = [f"# Fast vocoder ({exp.name})", "",
             f"A ConvNeXt + inverse-STFT generator ({sum(p.numel() for p in generator.parameters()) / 1e6:.2f} M "
             f"parameters; sizes in {CONFIG}) distilled from the teacher `hifigan:universal` with "
             f"`recipes/vocoder/run.sh`: {training.get('steps')} steps on {training.get('clips')} labelled clips "
             f"({', '.join(f'{k} {v / 3600:.2f} h' for k, v in (training.get('seconds') or {}).items())}).", ""]
    if note:
        lines += [note, ""]
    metrics = exp / "metrics.jsonl"
    if metrics.is_file():
        valid = [json.loads(line) for line in metrics.read_text().splitlines() if '"split": "valid"' in line]
        if valid:
            lines += ["Validation (training speakers' held-back clips, student vs teacher): " + ", ".join(
                f"{k} {v:.4f}" for k, v in valid[-1].items() if k not in ("split", "step")), ""]
    if heldout:
        distances = evaluate(generator, LabelPack.open(heldout, mel_cfg.hop_length), cfg, mel_cfg)
        training["heldout_copy_synthesis"] = distances
        lines += ["Copy-synthesis of held-out speakers' real speech, student vs teacher: " + ", ".join(
            f"{k} {v:.4f}" for k, v in distances.items()), ""]
    return save_fast_vocoder(generator, mel_cfg, out, training=training, card="\n".join(lines))


# -- command line ----------------------------------------------------------------------------------------
def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vc_app.train.vocoder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    label = sub.add_parser("label", help="label a packed feature cache with the teacher's waveforms")
    label.add_argument("--features", required=True, help="a packed feature cache (recipe stage 2)")
    label.add_argument("--out", required=True)
    label.add_argument("--teacher", default="hifigan:universal")
    label.add_argument("--checkpoint", help="AdaIN-VC bundle for converted mels (none: real mels only)")
    label.add_argument("--converted-per-clip", type=int, default=1)
    label.add_argument("--max-frames", type=int, default=512)
    label.add_argument("--shard-clips", type=int, default=64)
    label.add_argument("--seed", type=int, default=0)
    label.add_argument("--device", default="cpu")
    label.add_argument("--threads", type=int, default=0)
    run = sub.add_parser("train", help="distil the student from labels")
    run.add_argument("--labels", required=True)
    run.add_argument("--valid", help="labels for validation losses and TensorBoard audio")
    run.add_argument("--out", required=True, help="experiment folder")
    run.add_argument("--config", help="YAML config (default: DistillConfig's defaults)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. max_steps=10")
    run.add_argument("--resume", action="store_true", help="continue from the newest checkpoint")
    out = sub.add_parser("export", help="the newest checkpoint as a bundle folder with its card")
    out.add_argument("--exp", required=True)
    out.add_argument("--out", required=True)
    out.add_argument("--heldout", help="labels of held-out speakers: copy-synthesis distances in the card")
    out.add_argument("--note", default="")
    return parser


def main(argv: list[str] | None = None) -> int:
    from vc_app.errors import run_entry_point

    args = get_parser().parse_args(argv)
    return run_entry_point("python -m vc_app.train.vocoder", lambda: _run(args))


def _run(args: argparse.Namespace) -> None:
    if args.command == "label":
        if args.threads:
            torch.set_num_threads(args.threads)
        label_features(args.features, args.out, teacher=args.teacher, checkpoint=args.checkpoint,
                       converted_per_clip=args.converted_per_clip, max_frames=args.max_frames,
                       shard_clips=args.shard_clips, seed=args.seed, device=args.device)
    elif args.command == "train":
        train(load_config(args.config, args.set), args.labels, args.out, valid=args.valid, resume=args.resume)
    else:
        print(export(args.exp, args.out, heldout=args.heldout, note=args.note))


if __name__ == "__main__":
    sys.exit(main())
