"""The training engine: one `TrainState`, short step functions, no globals.

Single process (`vc-app train`) and distributed (`torchrun ... -m vc_app.train`)
run the same code: under torchrun the model is wrapped in
DistributedDataParallel (NCCL on GPU, gloo on CPU), each rank reads its own
share through a DistributedSampler, and rank 0 alone logs and saves.

Objective (AdaIN-VC): loss = sum(weight[k] * term[k]) over the named terms
  rec          L1 between the reconstruction and the (scaled) input mel
  kl           KL of the content posterior to N(0, I) (bottleneck "vae"), weight annealed from 0
  vq_commit    VQ commitment (bottleneck "vq"); vq_codebook too when the codebook is not EMA-updated
  adv          pushes the SpeakerClassifier's posterior on the content code to uniform (adversary on),
               weight ramped from 0; the classifier itself is trained in alternation (its loss: "cls")
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from vc_app.bundle import save_bundle
from vc_app.errors import VcAppError
from vc_app.features import FeatureCache
from vc_app.models import AdaINVC, SpeakerClassifier
from vc_app.train.config import TrainConfig, config_to_dict
from vc_app.train.data import SegmentDataset, StepLoader

STATE_FILE = "train_state.pt"
CKPT_PREFIX = "step-"


class TrainingDiverged(VcAppError):
    """A loss term became NaN or infinite."""


@dataclass
class Dist:
    world: int = 1
    rank: int = 0
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class TrainState:
    cfg: TrainConfig
    model: torch.nn.Module            # AdaINVC, or DDP around it
    optimizer: torch.optim.Optimizer
    classifier: torch.nn.Module | None = None
    cls_optimizer: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None
    speakers: list[str] = field(default_factory=list)
    step: int = 0

    @property
    def core(self) -> AdaINVC:
        """The AdaINVC without its DDP wrapper."""
        return getattr(self.model, "module", self.model)


# -- set-up -------------------------------------------------------------------------
def setup_distributed() -> Dist:
    """Read torchrun's environment; start the process group when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(world, rank, local_rank, device)


def build_state(cfg: TrainConfig, cache: FeatureCache, dist: Dist) -> TrainState:
    """Model (with the training data's mel statistics), optimisers, optional adversary, AMP scaler."""
    torch.manual_seed(cfg.seed)
    model = AdaINVC(cfg.model)
    model.set_mel_stats(torch.from_numpy(cache.mean), torch.from_numpy(cache.std))
    model.to(dist.device)
    speakers = sorted(set(cache.speakers))
    classifier = cls_opt = None
    if cfg.adversary.enabled:
        classifier = SpeakerClassifier(cfg.model.c_content, cfg.adversary.c_h, len(speakers),
                                       n_layers=cfg.adversary.n_layers).to(dist.device)
        cls_opt = torch.optim.Adam(classifier.parameters(), lr=cfg.adversary.lr)
    if dist.world > 1:
        ids = [dist.local_rank] if dist.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if classifier is not None:
            classifier = torch.nn.parallel.DistributedDataParallel(classifier, device_ids=ids)
    o = cfg.optim
    optimizer = torch.optim.Adam(model.parameters(), lr=o.lr, betas=tuple(o.betas), amsgrad=o.amsgrad,
                                 weight_decay=o.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if cfg.run.amp == "fp16" and dist.device.type == "cuda" else None
    _check_loss_weights(cfg)
    return TrainState(cfg, model, optimizer, classifier, cls_opt, scaler, speakers)


def expected_terms(cfg: TrainConfig) -> list[str]:
    """The loss terms this configuration computes."""
    terms = ["rec"]
    if cfg.model.bottleneck == "vae":
        terms.append("kl")
    if cfg.model.bottleneck == "vq":
        terms.append("vq_commit")
        if not cfg.model.vq.ema:
            terms.append("vq_codebook")
    if cfg.adversary.enabled:
        terms.append("adv")
    return terms


def _check_loss_weights(cfg: TrainConfig) -> None:
    missing = [t for t in expected_terms(cfg) if t not in cfg.loss.weights]
    if missing:
        raise VcAppError(f"loss.weights has no weight for the term(s) {', '.join(missing)}.")


# -- one step -------------------------------------------------------------------------
def term_weights(cfg: TrainConfig, step: int) -> dict[str, float]:
    """Each term's weight at `step`, with the kl annealing and the adv ramp applied."""
    weights = {t: cfg.loss.weights[t] for t in expected_terms(cfg)}
    if "kl" in weights:
        weights["kl"] *= min(1.0, (step + 1) / max(1, cfg.loss.kl_anneal_steps))
    if "adv" in weights:
        weights["adv"] *= min(1.0, (step + 1) / max(1, cfg.loss.adv_ramp_steps))
    return weights


def loss_terms(state: TrainState, mel: torch.Tensor, speaker: torch.Tensor) -> tuple[dict, dict]:
    """Forward pass -> ({term: tensor}, {metric: float}). mel: (B, n_mels, T) raw; speaker: (B,)."""
    out = state.model(mel)
    terms = {"rec": F.l1_loss(out.recon, state.core.scale(mel))}
    metrics: dict[str, float] = {}
    if out.log_var is not None:
        terms["kl"] = 0.5 * torch.mean(torch.exp(out.log_var) + out.mean ** 2 - 1 - out.log_var)
    if out.vq is not None:
        terms["vq_commit"] = out.vq.commitment
        if not state.cfg.model.vq.ema:
            terms["vq_codebook"] = out.vq.codebook
        metrics.update(vq_perplexity=float(out.vq.perplexity), vq_usage=float(out.vq.usage))
    if state.classifier is not None:
        metrics.update(classifier_step(state, out.content.detach(), speaker))
        logits = state.classifier(out.content)
        terms["adv"] = -F.log_softmax(logits.float(), dim=-1).mean()  # cross-entropy to the uniform posterior
    return terms, metrics


def classifier_step(state: TrainState, content: torch.Tensor, speaker: torch.Tensor) -> dict[str, float]:
    """One update of the SpeakerClassifier on detached content codes (B, C, T')."""
    logits = state.classifier(content)
    loss = F.cross_entropy(logits.float(), speaker)
    state.cls_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.cls_optimizer.step()
    accuracy = (logits.argmax(-1) == speaker).float().mean()
    return {"cls": float(loss), "cls_acc": float(accuracy)}


def train_step(state: TrainState, mel: torch.Tensor, speaker: torch.Tensor) -> dict[str, float]:
    """One optimisation step of the model; returns every logged number."""
    cfg, device = state.cfg, mel.device
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.run.amp) if device.type == "cuda" else None
    with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
        terms, metrics = loss_terms(state, mel, speaker)
    weights = term_weights(cfg, state.step)
    for name, value in terms.items():
        if not torch.isfinite(value):
            raise TrainingDiverged(f"The loss term {name!r} became {float(value)} at step {state.step}.")
    total = sum(weights[k] * terms[k].float() for k in terms)
    state.optimizer.zero_grad(set_to_none=True)
    if state.scaler is not None:
        state.scaler.scale(total).backward()
        state.scaler.unscale_(state.optimizer)
    else:
        total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.optim.grad_clip)
    if state.scaler is not None:
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        state.optimizer.step()
    state.step += 1
    metrics.update({k: float(v.detach()) for k, v in terms.items()})
    metrics.update({f"weight_{k}": w for k, w in weights.items()},
                   loss=float(total), grad_norm=float(grad_norm), lr=state.optimizer.param_groups[0]["lr"])
    return metrics


@torch.no_grad()
def validate(state: TrainState, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Mean loss terms (and classifier accuracy) over fixed validation batches, in eval mode."""
    model = state.core
    model.eval()
    sums: dict[str, float] = {}
    for mel, speaker in batches:
        out = model(mel)
        vals = {"rec": float(F.l1_loss(out.recon, model.scale(mel)))}
        if out.log_var is not None:
            vals["kl"] = float(0.5 * torch.mean(torch.exp(out.log_var) + out.mean ** 2 - 1 - out.log_var))
        if out.vq is not None:
            vals["vq_perplexity"] = float(out.vq.perplexity)
        if state.classifier is not None:
            known = speaker >= 0
            if known.any():
                logits = getattr(state.classifier, "module", state.classifier)(out.content[known])
                vals["cls_acc"] = float((logits.argmax(-1) == speaker[known]).float().mean())
        for k, v in vals.items():
            sums[k] = sums.get(k, 0.0) + v / len(batches)
    model.train()
    return sums


# -- checkpoints ------------------------------------------------------------------------
def checkpoint_dirs(folder: str | os.PathLike) -> list[Path]:
    """Finished checkpoint folders under `folder`, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.glob(f"{CKPT_PREFIX}*") if (p / STATE_FILE).is_file()),
                  key=lambda p: int(p.name[len(CKPT_PREFIX):]))


def save_checkpoint(state: TrainState, folder: str | os.PathLike, data_summary: dict) -> Path:
    """Write folder/step-N/ (a bundle + train_state.pt) atomically and keep the last `keep_last`."""
    folder = Path(folder)
    final = folder / f"{CKPT_PREFIX}{state.step:08d}"
    tmp = folder / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    training = {"steps": state.step, "config": config_to_dict(state.cfg), "speakers": state.speakers, **data_summary}
    save_bundle(state.core, state.cfg.mel, tmp, training=training)
    extra = {"step": state.step, "optimizer": state.optimizer.state_dict(), "rng_cpu": torch.get_rng_state(),
             "speakers": state.speakers}
    if torch.cuda.is_available():
        extra["rng_cuda"] = torch.cuda.get_rng_state()
    if state.scaler is not None:
        extra["scaler"] = state.scaler.state_dict()
    if state.classifier is not None:
        extra["classifier"] = getattr(state.classifier, "module", state.classifier).state_dict()
        extra["cls_optimizer"] = state.cls_optimizer.state_dict()
    torch.save(extra, tmp / STATE_FILE)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(folder)[:-max(1, state.cfg.run.keep_last)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(state: TrainState, ckpt: Path) -> None:
    """Restore model, optimisers, scaler, RNG and step from a checkpoint folder (weights_only loads)."""
    from safetensors.torch import load_file

    state.core.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)
    extra = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    state.optimizer.load_state_dict(extra["optimizer"])
    torch.set_rng_state(extra["rng_cpu"])
    if "rng_cuda" in extra and torch.cuda.is_available():
        torch.cuda.set_rng_state(extra["rng_cuda"])
    if state.scaler is not None and "scaler" in extra:
        state.scaler.load_state_dict(extra["scaler"])
    if state.classifier is not None:
        if "classifier" not in extra:
            raise VcAppError(f"{ckpt} was trained without the adversary; it cannot resume a run that has one.")
        getattr(state.classifier, "module", state.classifier).load_state_dict(extra["classifier"])
        state.cls_optimizer.load_state_dict(extra["cls_optimizer"])
    state.step = int(extra["step"])


# -- the loop ------------------------------------------------------------------------------
def fixed_batches(dataset: SegmentDataset, batch_size: int, n_batches: int, speakers: list[str]):
    """Deterministic validation batches (epoch 0, no augmentation); unknown speakers get index -1."""
    index = {s: i for i, s in enumerate(speakers)}
    items = list(range(min(len(dataset), batch_size * n_batches)))
    out = []
    for start in range(0, len(items), batch_size):
        chunk = [dataset[i] for i in items[start:start + batch_size]]
        mels = torch.stack([c[0] for c in chunk])
        spk = torch.tensor([index.get(dataset.speaker_names[c[1]], -1) for c in chunk])
        out.append((mels, spk))
    return out


def train(cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False, log=print) -> Path | None:
    """Train until `cfg.run.max_steps`; returns the last checkpoint folder (rank 0) or None.

    Ctrl-C saves a checkpoint before leaving; a NaN/inf loss stops with `TrainingDiverged`, keeping the
    last good checkpoint.
    """
    from vc_app.train.logging import TrainLogger

    dist = setup_distributed()
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    train_cache = FeatureCache.open(cfg.data.train_features)
    state = build_state(cfg, train_cache, dist)
    if resume and checkpoint_dirs(ckpt_dir):
        load_checkpoint(state, checkpoint_dirs(ckpt_dir)[-1])
    dataset = SegmentDataset(train_cache, cfg.data, cfg.mel, cfg.seed)
    loader = StepLoader(dataset, cfg.data.batch_size, world=dist.world, rank=dist.rank, seed=cfg.seed,
                        num_workers=cfg.data.num_workers, pin_memory=dist.device.type == "cuda")
    valid = _valid_batches(cfg, state) if dist.is_main else []
    summary = {"train_utterances": len(train_cache.utt_ids), "train_frames": int(train_cache.frames.sum()),
               "train_speakers": len(state.speakers)}
    logger = TrainLogger(out_dir, enabled=dist.is_main, log=log)
    if dist.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=2))
    last = None
    try:
        last = _loop(state, loader, valid, logger, ckpt_dir, summary, dist)
    except KeyboardInterrupt:
        if dist.is_main:
            last = save_checkpoint(state, ckpt_dir, summary)
            log(f"interrupted: saved {last}")
        raise
    finally:
        logger.close()
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return last


def _valid_batches(cfg: TrainConfig, state: TrainState):
    if not cfg.data.valid_features:
        return []
    cache = FeatureCache.open(cfg.data.valid_features)
    dataset = SegmentDataset(cache, cfg.data, cfg.mel, cfg.seed, augment=False)
    return [(m.to(next(state.core.parameters()).device), s) for m, s in
            fixed_batches(dataset, cfg.data.batch_size, 4, state.speakers)]


def _loop(state, loader, valid, logger, ckpt_dir, summary, dist) -> Path | None:
    cfg, last = state.cfg, None
    run = cfg.run
    state.model.train()
    batches = loader.batches(state.step)
    wait = busy = 0.0
    since = 0
    tick = time.perf_counter()
    while state.step < run.max_steps:
        mel, speaker = next(batches)
        got = time.perf_counter()
        mel, speaker = mel.to(dist.device, non_blocking=True), speaker.to(dist.device, non_blocking=True)
        try:
            metrics = train_step(state, mel, speaker)
        except TrainingDiverged as err:
            good = checkpoint_dirs(ckpt_dir)
            raise TrainingDiverged(f"{err} Training stopped; the last good checkpoint is "
                                   f"{good[-1] if good else 'none (no checkpoint was saved yet)'}.") from None
        done = time.perf_counter()
        wait, busy, tick, since = wait + (got - tick), busy + (done - got), done, since + 1
        if state.step % run.log_every == 0 or state.step == 1:
            metrics.update(steps_per_s=since / max(wait + busy, 1e-9), data_wait=wait / max(wait + busy, 1e-9))
            logger.scalars("train", metrics, state.step)
            wait = busy = 0.0
            since = 0
        if valid and state.step % run.valid_every == 0:
            logger.scalars("valid", validate(state, valid), state.step)
        if valid and run.sample_every and state.step % run.sample_every == 0:
            logger.sample(state.core, valid, cfg.mel, state.step)
        if dist.is_main and (state.step % run.save_every == 0 or state.step == run.max_steps):
            last = save_checkpoint(state, ckpt_dir, summary)
        tick = time.perf_counter()  # logging, validation and saving are not data wait
    return last
