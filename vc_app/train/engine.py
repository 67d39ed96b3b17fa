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
  spk_id       (when its weight is > 0) cross-entropy of a SpeakerIdentifier telling the training voices apart
               from the speaker encoder's vector, trained with the model: the speaker encoder learns to separate
               voices from real segments only; ramped from 0 over this run's first steps while it is fresh (a
               relay leg takes the last leg's from its folder, as it takes the discriminator)
  spk_cons     speaker consistency (when its weight is > 0): each clip is converted to the next clip's
               voice; 1 - cosine between that voice's speaker vector and the one the (detached) speaker
               encoder reads back from the conversion, both taken from the batch's mean speaker vector
  pause        (when its weight is > 0) each clip is converted to the next clip's voice; on the frames where the
               clip pauses (>= 40 dB under its loudest), how far the conversion's level rises above the clip's, each
               relative to its own loudest frame (`vc_app.evaluate.levels`' pause level, hinged at 0, per 10 dB;
               with loss.pause_rise_only false, its absolute value: a fall counts as much as a rise; with
               loss.pause_per_clip, of each clip's mean over its pause frames instead of each frame's)
  gan          (discriminator on) the MelDiscriminator's verdict on the decoder's mels, pushed towards "real"
               (least squares or hinge); the discriminator itself trains in alternation (its loss: "disc")
  fm           (discriminator on) feature matching: L1 between the discriminator's hidden features of the
               reconstruction and of the real mel; gan and fm ramp in after the discriminator's warm-up;
               with discriminator.r1 the discriminator's own loss adds the R1 penalty on real mels ("r1")
The names are the keys of `loss.weights` in the config, of metrics.jsonl and of TensorBoard.

On CPUs with native bfloat16 (AVX512-BF16 or AMX) and on CUDA, `run.amp: auto` (the default) computes
the forward and backward passes in bfloat16 autocast with float32 weights and optimiser: the same
convolutions in half the bytes, which such hardware computes faster than float32 (bench/train_speed.py
measures by how much; its runs are in bench/results/train_speed.md); `run.amp: none` keeps float32 throughout.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
import torch.nn.functional as F

from vc_app.bundle import save_bundle
from vc_app.config import to_dict
from vc_app.errors import VcAppError
from vc_app.evaluate.levels import FLOOR_DB, PAUSE_BELOW_DB
from vc_app.features import FeatureCache
from vc_app.models import AdaINVC, MelDiscriminator, SpeakerClassifier, SpeakerIdentifier
from vc_app.models.adain_vc import AdaINVCOutput, frame_levels_db
from vc_app.train.checkpoints import CKPT_PREFIX, DISCRIMINATOR_FILE, IDENTIFIER_FILE, STATE_FILE, checkpoint_dirs
from vc_app.train.config import TrainConfig, config_to_dict
from vc_app.train.data import Batch, SegmentDataset, StepLoader


class TrainingDiverged(VcAppError):
    """A loss term (or the gradient) became NaN or infinite."""


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
    classifier: torch.nn.Module | None = None   # SpeakerClassifier, or DDP around it
    cls_optimizer: torch.optim.Optimizer | None = None
    scaler: torch.amp.GradScaler | None = None
    discriminator: torch.nn.Module | None = None  # MelDiscriminator, or DDP around it
    disc_optimizer: torch.optim.Optimizer | None = None
    speakers: list[str] = field(default_factory=list)
    identifier: torch.nn.Module | None = None   # SpeakerIdentifier (the spk_id term), or DDP around it
    id_optimizer: torch.optim.Optimizer | None = None
    step: int = 0
    origin: dict = field(default_factory=dict)  # init_from_bundle's record when the run started from a bundle

    @property
    def total_step(self) -> int:
        """Steps the weights have been trained for: this run's, plus the bundle's when it started from one.
        The kl and adv schedules follow it, so a run that continues a bundle does not restart them."""
        return self.step + self.origin.get("init_steps", 0)

    @property
    def core(self) -> AdaINVC:
        """The AdaINVC without its DDP wrapper."""
        return cast(AdaINVC, unwrap(self.model))


@dataclass
class TrainResult:
    """What `train` leaves behind: the final state (every rank) and the last checkpoint (rank 0, else None)."""

    state: TrainState
    checkpoint: Path | None


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return getattr(module, "module", module)


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
    """Model (with the training data's mel statistics), optimisers, optional adversary, AMP scaler.

    Every rank builds the same initial weights (seed), then reseeds with seed + rank so that the
    VAE noise differs between ranks.
    """
    _check_loss_weights(cfg)
    torch.manual_seed(cfg.seed)
    core = AdaINVC(cfg.model)
    core.set_mel_stats(torch.from_numpy(cache.mean), torch.from_numpy(cache.std))
    origin = init_from_bundle(core, cfg) if cfg.run.init_from else {}
    model: torch.nn.Module = core.to(dist.device)
    speakers = sorted(set(cache.speakers))
    classifier: torch.nn.Module | None = None
    cls_opt: torch.optim.Optimizer | None = None
    if cfg.adversary.enabled:
        classifier = SpeakerClassifier(cfg.model.c_content, cfg.adversary.c_h, len(speakers),
                                       n_layers=cfg.adversary.n_layers).to(dist.device)
        cls_opt = torch.optim.Adam(classifier.parameters(), lr=cfg.adversary.lr)
    discriminator: torch.nn.Module | None = None
    disc_opt: torch.optim.Optimizer | None = None
    if cfg.discriminator.enabled:
        d = cfg.discriminator
        discriminator = MelDiscriminator(d.c_h, d.n_layers, cfg.model.c_speaker if d.speaker else 0, d.norm)
        if cfg.run.init_from:
            origin.update(init_discriminator(discriminator, cfg.run.init_from))
        discriminator = discriminator.to(dist.device)
        disc_opt = torch.optim.Adam(discriminator.parameters(), lr=d.lr, betas=(d.betas[0], d.betas[1]))
    identifier: torch.nn.Module | None = None
    id_opt: torch.optim.Optimizer | None = None
    if "spk_id" in expected_terms(cfg):
        identifier = SpeakerIdentifier(cfg.model.c_speaker, len(speakers))
        if cfg.run.init_from:
            origin.update(init_identifier(identifier, cfg.run.init_from, speakers))
        identifier = identifier.to(dist.device)
        id_opt = torch.optim.Adam(identifier.parameters(), lr=cfg.optim.lr * cfg.loss.spk_id_lr_ratio,
                                  betas=(cfg.optim.betas[0], cfg.optim.betas[1]))
    if dist.world > 1:
        ids = [dist.local_rank] if dist.device.type == "cuda" else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
        if identifier is not None:
            identifier = torch.nn.parallel.DistributedDataParallel(identifier, device_ids=ids)
        if classifier is not None:
            classifier = torch.nn.parallel.DistributedDataParallel(classifier, device_ids=ids)
        if discriminator is not None:
            discriminator = torch.nn.parallel.DistributedDataParallel(discriminator, device_ids=ids)
    o = cfg.optim
    # The fused kernel does the whole update in one pass (about 4 % of a CPU step saved); same arithmetic.
    optimizer = torch.optim.Adam(model.parameters(), lr=o.lr, betas=(o.betas[0], o.betas[1]), amsgrad=o.amsgrad,
                                 weight_decay=o.weight_decay, fused=dist.device.type in ("cpu", "cuda"))
    scaler = torch.amp.GradScaler("cuda") if cfg.run.amp == "fp16" and dist.device.type == "cuda" else None
    torch.manual_seed(cfg.seed + dist.rank)
    return TrainState(cfg, model, optimizer, classifier, cls_opt, scaler, discriminator, disc_opt, speakers,
                      identifier, id_opt, origin=origin)


def init_discriminator(discriminator: MelDiscriminator, spec: str) -> dict:
    """Load `spec`/discriminator.safetensors (a relay folder, or a checkpoint: the last leg's opponent) into
    `discriminator` strictly, when `spec` is a folder that has one; a fresh discriminator otherwise.
    An opponent that did not see the speaker vector may start one that does (`discriminator.speaker`): its
    projection starts at zero, so the first scores are the loaded opponent's and the conditioning is learnt.

    Returns:
        what to record in the training summary (nothing for a fresh discriminator).
    """
    path = Path(spec) / DISCRIMINATOR_FILE
    if not path.is_file():
        return {}
    fill: dict[str, torch.Tensor] = {}
    if discriminator.project is not None:
        fill["project.weight"] = torch.zeros_like(discriminator.project.weight)
    _load_player(discriminator, path, "discriminator", fill)
    return {"discriminator_from": str(path)}


def _load_player(module: torch.nn.Module, path: Path, what: str,
                 fill: dict[str, torch.Tensor] | None = None) -> None:
    """Load the safetensors file `path` (float16 in a relay folder) into `module` strictly, as float32; a file
    that does not fit is one sentence naming `what` it should have been. `fill`: tensors for the keys the file
    may lack (taken only where it does)."""
    from safetensors.torch import load_file

    state = {k: v.float() for k, v in load_file(str(path)).items()}
    state = {**(fill or {}), **state}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise VcAppError(f"{path} does not fit the configured {what} ({str(err).splitlines()[0]}).") from None


def init_identifier(identifier: SpeakerIdentifier, spec: str, speakers: list[str]) -> dict:
    """Load `spec`/speaker_identifier.safetensors (a relay folder, or a checkpoint) into `identifier` when `spec`
    has one and was trained on the same voices in the same order (its training record's "speakers"); a fresh
    identifier otherwise (another set of voices is another classifier).

    Returns:
        what to record in the training summary (nothing for a fresh identifier).
    """
    path = Path(spec) / IDENTIFIER_FILE
    if not path.is_file():
        return {}
    record = json.loads((Path(spec) / "config.json").read_text()).get("training", {})
    if record.get("speakers") != speakers:
        return {}
    _load_player(identifier, path, "speaker identifier")
    return {"identifier_from": str(path)}


WEIGHTLESS_MODEL_KEYS = ("norm_stats", "active_db")  # a run may start from weights trained with other values


def init_from_bundle(model: AdaINVC, cfg: TrainConfig) -> dict:
    """Load the weights of the bundle `cfg.run.init_from` into `model` (strictly), mel statistics included.

    The bundle's model and mel configs must equal the run's, except for the options that change what the
    weights compute on but not the weights (`WEIGHTLESS_MODEL_KEYS`: which frames the statistics over time are
    taken on); any other difference is refused naming it. Only the weights are taken: the optimiser, step and
    schedules start fresh.

    Returns:
        what to record in the run's training summary: the bundle and the steps it had been trained for.
    """
    from vc_app.bundle import load_bundle

    spec = cfg.run.init_from
    bundle = load_bundle(spec)
    ours = {"model": config_to_dict(cfg)["model"], "mel": config_to_dict(cfg)["mel"]}
    theirs = {"model": to_dict(bundle.model.cfg), "mel": to_dict(bundle.mel)}
    differences = [f"{section}.{key} is {theirs[section][key]!r} there, {ours[section][key]!r} here"
                   for section in ours for key in ours[section] if ours[section][key] != theirs[section][key]
                   and not (section == "model" and key in WEIGHTLESS_MODEL_KEYS)]
    if differences:
        raise VcAppError(f"run.init_from {spec} does not fit this run's config: {'; '.join(differences)}.")
    model.load_state_dict({k: v.float() for k, v in bundle.model.state_dict().items()}, strict=True)
    training = bundle.training
    return {"init_from": str(spec), "init_steps": int(training.get("total_steps", training.get("steps", 0)) or 0)}


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
    if cfg.loss.weights.get("spk_cons", 0) > 0:
        terms.append("spk_cons")
    if cfg.loss.weights.get("spk_id", 0) > 0:
        terms.append("spk_id")
    if cfg.loss.weights.get("pause", 0) > 0:
        terms.append("pause")
    if cfg.discriminator.enabled:
        terms += ["gan", "fm"]
    return terms


def _check_loss_weights(cfg: TrainConfig) -> None:
    missing = [t for t in expected_terms(cfg) if t not in cfg.loss.weights]
    if missing:
        raise VcAppError(f"loss.weights has no weight for the term(s) {', '.join(missing)}.")


# -- one step -------------------------------------------------------------------------
def term_weights(cfg: TrainConfig, step: int, run_step: int | None = None,
                 id_step: int | None = None) -> dict[str, float]:
    """Each term's weight at total step `step`, with the kl annealing and the adv ramp applied, the gan and fm
    ramp at this run's step `run_step` (their full weight when None), and the spk_id ramp at this run's step
    `id_step` (its full weight when None)."""
    weights = {t: cfg.loss.weights[t] for t in expected_terms(cfg)}
    if "kl" in weights:
        weights["kl"] *= min(1.0, (step + 1) / max(1, cfg.loss.kl_anneal_steps))
    if "adv" in weights:
        weights["adv"] *= min(1.0, (step + 1) / max(1, cfg.loss.adv_ramp_steps))
    if run_step is not None:
        after = run_step + 1 - cfg.discriminator.warmup_steps
        ramp = min(1.0, max(0.0, after / max(1, cfg.loss.gan_ramp_steps)))
        for term in ("gan", "fm"):
            if term in weights:
                weights[term] *= ramp
    if id_step is not None and "spk_id" in weights:
        weights["spk_id"] *= min(1.0, (id_step + 1) / max(1, cfg.loss.spk_id_ramp_steps))
    return weights


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bfloat16 natively: CUDA with bf16 support, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype `run.amp` gives on `device`, or None for float32.

    auto: bfloat16 where it is native (`native_bf16`); bf16: bfloat16 on CUDA, and on CPUs with native
    support; fp16: CUDA only.
    """
    amp = cfg.run.amp
    if amp in ("auto", "bf16"):
        return torch.bfloat16 if native_bf16(device) else None
    if amp == "fp16" and device.type == "cuda":
        return torch.float16
    return None


def autocast(cfg: TrainConfig, device: torch.device):
    """The autocast context of `amp_dtype`; a no-op context for float32."""
    dtype = amp_dtype(cfg, device)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def loss_terms(model: AdaINVC, out: AdaINVCOutput, mel: torch.Tensor, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The model's named loss terms (all but "adv") for one forward pass. mel: (B, n_mels, T) raw."""
    terms = {"rec": F.l1_loss(out.recon.float(), model.scale(mel))}
    if out.log_var is not None:
        mean, log_var = out.mean.float(), out.log_var.float()
        terms["kl"] = 0.5 * torch.mean(torch.exp(log_var) + mean ** 2 - 1 - log_var)
    if out.vq is not None:
        terms["vq_commit"] = out.vq.commitment
        if not cfg.model.vq.ema:
            terms["vq_codebook"] = out.vq.codebook
    if out.converted_speaker is not None:
        # Speaker vectors of real voices share a large common part (their cosines are all near 1): compare
        # them as offsets from the batch's average voice, so the term measures the direction towards the target.
        average = out.speaker.detach().float().mean(dim=0)
        wanted = out.speaker.roll(1, 0).detach().float() - average
        got = out.converted_speaker.float() - average
        terms["spk_cons"] = (1 - F.cosine_similarity(got, wanted, dim=-1)).mean()
    if out.converted is not None and cfg.loss.weights.get("pause", 0) > 0:
        rise, pauses = pause_rise_db(model, out.converted, mel)
        frames = pauses.sum(dim=-1)
        if cfg.loss.pause_per_clip:  # each clip's mean over its pause frames, as the evaluation averages
            rise, frames = (rise.sum(dim=-1) / frames.clamp(min=1))[frames > 0], (frames > 0).sum()
        rise = F.relu(rise) if cfg.loss.pause_rise_only else rise.abs()
        terms["pause"] = rise.sum() / frames.sum().clamp(min=1) / 10
    return terms


def pause_rise_db(model: AdaINVC, converted: torch.Tensor, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How much louder a conversion is than its source where the source pauses: converted (B, n_mels, T) scaled,
    mel (B, n_mels, T) raw source -> ((B, T) dB, the conversion's frame level minus the source's (each relative to
    its own loudest frame, floored at `FLOOR_DB`) on the source's pause frames, 0 elsewhere; (B, T) bool, those
    frames: at least `PAUSE_BELOW_DB` under the source's loudest)."""
    source = frame_levels_db(mel.float())
    pauses = source <= -PAUSE_BELOW_DB
    output = frame_levels_db(model.unscale(converted.float())).clamp(min=FLOOR_DB)
    return (output - source.clamp(min=FLOOR_DB)) * pauses, pauses


def bottleneck_metrics(out: AdaINVCOutput) -> dict[str, float]:
    """Codebook perplexity and usage (share of codes used in the batch) when the VQ bottleneck is on."""
    if out.vq is None:
        return {}
    return {"vq_perplexity": float(out.vq.perplexity), "vq_usage": float(out.vq.usage)}


def adversarial_term(classifier: torch.nn.Module, content: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the SpeakerClassifier's posterior on `content` (B, C, T') to the uniform one.

    The classifier's weights are used detached: this term trains only the encoder (to fool the
    classifier), and no DDP gradient hook of the classifier fires for it.
    """
    module = unwrap(classifier)
    params = {name: p.detach() for name, p in module.named_parameters()}
    logits = torch.func.functional_call(module, params, (content,))
    return -F.log_softmax(logits.float(), dim=-1).mean()


def identification_term(identifier: torch.nn.Module, speaker: torch.Tensor,
                        labels: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The spk_id term: cross-entropy of the SpeakerIdentifier's logits on the speaker vectors (B, c_speaker), in
    float32, against the training-voice indices `labels` (B,); and the share it gets right."""
    logits = identifier(speaker.float())
    return F.cross_entropy(logits, labels), float((logits.argmax(-1) == labels).float().mean())


def classifier_step(state: TrainState, content: torch.Tensor, speaker: torch.Tensor) -> dict[str, float]:
    """One float32 update of the SpeakerClassifier on detached content codes (B, C, T'); speaker: (B,)."""
    assert state.classifier is not None and state.cls_optimizer is not None, "the adversary is off"
    logits = state.classifier(content.detach().float())
    loss = F.cross_entropy(logits, speaker)
    state.cls_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    state.cls_optimizer.step()
    accuracy = (logits.argmax(-1) == speaker).float().mean()
    return {"cls": float(loss.detach()), "cls_acc": float(accuracy)}


def judged_mels(state: TrainState, out: AdaINVCOutput, mel: torch.Tensor):
    """What the discriminator sees: (real, generated), lists of (mel (B, n_mels, T) scaled, speaker vector
    (B, c_speaker) detached, or None when it is unconditioned). The reconstruction comes first among the
    generated; then, with `discriminator.conversions`, each clip converted to the next clip's voice."""
    cfg = state.cfg.discriminator
    voice = out.speaker.detach().float() if cfg.speaker else None
    other = voice.roll(1, 0) if voice is not None else None
    real = [(state.core.scale(mel), voice)]
    generated = [(out.recon, voice)]
    if cfg.conversions and out.converted is not None:
        generated.append((out.converted, other))
    return real, generated


def _scores_loss(scores: torch.Tensor, real: bool, objective: str) -> torch.Tensor:
    """The discriminator's loss on patch scores that should read real (or generated)."""
    scores = scores.float()
    if objective == "hinge":
        return F.relu(1 - scores).mean() if real else F.relu(1 + scores).mean()
    return ((scores - 1) ** 2).mean() if real else (scores ** 2).mean()


def discriminator_step(state: TrainState, real: list, generated: list) -> dict[str, float]:
    """One update of the MelDiscriminator on detached mels (`judged_mels`): real ones should score real,
    generated ones (and, when it is conditioned, real mels paired with another clip's voice) generated.
    A batch on which its loss is already below `discriminator.loss_floor` leaves it as it is (logged as
    "disc_skipped" 1): a discriminator that wins by too much stops learning until the decoder catches up."""
    assert state.discriminator is not None and state.disc_optimizer is not None, "the discriminator is off"
    cfg = state.cfg
    objective = cfg.discriminator.objective
    judged = real + [(m.detach(), s) for m, s in generated]
    if cfg.discriminator.speaker:
        judged += [(m, s.roll(1, 0)) for m, s in real]
    with autocast(cfg, real[0][0].device):  # one pass over all of them: larger convolutions run faster
        mels = torch.cat([m for m, _ in judged])
        voices = torch.cat([s for _, s in judged]) if cfg.discriminator.speaker else None
        scores = list(state.discriminator(mels, voices)[0].split([m.shape[0] for m, _ in judged]))
    real_scores, fake_scores = scores[:len(real)], scores[len(real):]
    loss_real = sum(_scores_loss(s, True, objective) for s in real_scores) / len(real_scores)
    loss_fake = sum(_scores_loss(s, False, objective) for s in fake_scores) / len(fake_scores)
    loss = cast(torch.Tensor, loss_real + loss_fake)
    _check_finite({"disc": loss}, state.step + 1)
    state.disc_optimizer.zero_grad(set_to_none=True)
    skipped = cfg.discriminator.loss_floor > 0 and _mean_over_ranks(loss) < cfg.discriminator.loss_floor
    metrics: dict[str, float] = {}
    if not skipped:
        update = loss
        if cfg.discriminator.r1 > 0 and (state.step + 1) % cfg.discriminator.r1_every == 0:  # 1-based: logged
            r1 = r1_penalty(state, real)
            metrics["r1"] = float(r1.detach())
            update = loss + cfg.discriminator.r1 / 2 * cfg.discriminator.r1_every * r1
        update.backward()
        _set_lr(state.disc_optimizer, cfg.discriminator.lr * warmup_factor(cfg, state.step))
        state.disc_optimizer.step()
    metrics.update({"disc": float(loss.detach()), "d_real": float(real_scores[0].float().mean().detach()),
                    "d_fake": float(fake_scores[0].float().mean().detach())})
    if cfg.discriminator.loss_floor > 0:
        metrics["disc_skipped"] = float(skipped)
    return metrics


def r1_penalty(state: TrainState, real: list) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): the squared norm of the gradient of each real clip's mean patch score with
    respect to its mel, averaged over clips (`judged_mels`' real list). A discriminator whose score changes fast
    where the data is hands the decoder gradients that swamp its L1 term (measured on the long run: EXPERIMENTS.md);
    the penalty keeps it smooth there. Its graph is kept for the discriminator's backward pass."""
    assert state.discriminator is not None, "the discriminator is off"
    module = unwrap(state.discriminator)  # a second pass through a DDP wrapper would be its second forward
    penalties = []
    for mel, voice in real:
        mel = mel.detach().requires_grad_(True)
        with autocast(state.cfg, mel.device):
            scores = module(mel, voice)[0]
        grad, = torch.autograd.grad(scores.float().mean(dim=(1, 2, 3)).sum(), mel, create_graph=True)
        penalties.append(grad.float().pow(2).sum(dim=(1, 2)).mean())
    return cast(torch.Tensor, sum(penalties) / len(penalties))


def _mean_over_ranks(value: torch.Tensor) -> float:
    """A scalar's mean over every process of the run (itself alone without torch.distributed), so that
    every rank takes the same decision on it."""
    value = value.detach().float().clone()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(value)
        value /= torch.distributed.get_world_size()
    return float(value)


def generator_terms(state: TrainState, real: list, generated: list) -> dict[str, torch.Tensor]:
    """The decoder's terms against the discriminator (its weights frozen for this pass): "gan" (every generated
    mel judged real) and "fm" (L1 between the hidden features of the reconstruction and of the real mel)."""
    assert state.discriminator is not None, "the discriminator is off"
    module = unwrap(state.discriminator)
    objective = state.cfg.discriminator.objective
    params = list(module.parameters())
    for p in params:
        p.requires_grad_(False)
    try:
        with torch.no_grad():
            _, real_features = module(*real[0])
        judged = [module(m, s) for m, s in generated]
    finally:
        for p in params:
            p.requires_grad_(True)
    gan = sum((-scores.float().mean() if objective == "hinge" else ((scores.float() - 1) ** 2).mean())
              for scores, _ in judged) / len(judged)
    fake_features = judged[0][1]
    fm = sum(F.l1_loss(f.float(), r.float()) for f, r in zip(fake_features, real_features)) / len(real_features)
    return {"gan": cast(torch.Tensor, gan), "fm": cast(torch.Tensor, fm)}


def _check_finite(values: dict[str, torch.Tensor], step: int) -> None:
    """Raise naming the first non-finite term; `step` is the (1-based) step being computed, as in the logs."""
    for name, value in values.items():
        if not torch.isfinite(value):
            raise TrainingDiverged(f"The loss term {name!r} became {float(value.detach())} at step {step}.")


def train_step(state: TrainState, batch: Batch) -> dict[str, float]:
    """One optimisation step (classifier first when the adversary is on); returns every logged number."""
    cfg = state.cfg
    mel, speaker = batch.mel, batch.speaker
    consistency = cfg.loss.weights.get("spk_cons", 0) > 0
    judged = state.discriminator is not None and cfg.discriminator.conversions
    conversions = judged or cfg.loss.weights.get("pause", 0) > 0  # the discriminator or the pause term reads them
    with autocast(cfg, mel.device):
        out = state.model(mel, batch.content_mel, batch.speaker_mel, consistency=consistency, conversions=conversions,
                          consistency_frames=cfg.loss.spk_cons_frames)
        terms = loss_terms(state.core, out, mel, cfg)
    metrics = bottleneck_metrics(out)
    if state.classifier is not None:
        metrics.update(classifier_step(state, out.content, speaker))
        with autocast(cfg, mel.device):
            terms["adv"] = adversarial_term(state.classifier, out.content)
    if state.discriminator is not None:
        real, generated = judged_mels(state, out, mel)
        metrics.update(discriminator_step(state, real, generated))
        with autocast(cfg, mel.device):
            terms.update(generator_terms(state, real, generated))
    if state.identifier is not None:
        terms["spk_id"], metrics["spk_id_acc"] = identification_term(state.identifier, out.speaker, speaker)
    _check_finite(terms, state.step + 1)
    weights = term_weights(cfg, state.total_step, gan_ramp_step(state), identifier_ramp_step(state))
    weighted = {k: weights[k] * terms[k].float() for k in terms}
    total = cast(torch.Tensor, sum(weighted.values()))
    every = cfg.run.term_grads_every
    if every and (state.step + 1) % every == 0:
        metrics.update(term_gradient_norms(state, weighted))
    state.optimizer.zero_grad(set_to_none=True)
    if state.id_optimizer is not None:
        state.id_optimizer.zero_grad(set_to_none=True)
    if state.scaler is not None:
        state.scaler.scale(total).backward()
        state.scaler.unscale_(state.optimizer)
    else:
        total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.optim.grad_clip)
    lr = scheduled_lr(cfg, state.step, state.total_step)
    _set_lr(state.optimizer, lr)
    if state.id_optimizer is not None:  # its gradient comes from the same backward pass, unclipped
        _set_lr(state.id_optimizer, lr * cfg.loss.spk_id_lr_ratio)
    if state.scaler is not None:
        state.scaler.step(state.optimizer)  # skips the update when fp16 gradients overflowed
        if state.id_optimizer is not None:
            state.scaler.step(state.id_optimizer)
        state.scaler.update()
    elif not torch.isfinite(grad_norm):
        raise TrainingDiverged(f"The gradient norm became {float(grad_norm)} at step {state.step + 1} "
                               f"(loss terms {', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())}).")
    else:
        state.optimizer.step()
        if state.id_optimizer is not None:
            state.id_optimizer.step()
    state.step += 1
    metrics.update({k: float(v.detach()) for k, v in terms.items()})
    metrics.update({f"weight_{k}": w for k, w in weights.items()},
                   loss=float(total.detach()), grad_norm=float(grad_norm), lr=state.optimizer.param_groups[0]["lr"])
    return metrics


def term_gradient_norms(state: TrainState, weighted: dict[str, torch.Tensor]) -> dict[str, float]:
    """The norm of each weighted term's own gradient over the model's weights ("grad_norm_<term>"), before
    clipping: which term steers the step. `optim.grad_clip` scales the sum, so a term whose gradient is
    ten times the others' takes nearly all of each clipped step. One more backward pass per term; the
    graph is kept for the step's own. With fp16 the terms are scaled as the step's loss is, then unscaled."""
    params = [p for p in state.model.parameters() if p.requires_grad]
    scale = state.scaler.get_scale() if state.scaler is not None else 1.0
    norms = {}
    for name, term in weighted.items():
        if not term.requires_grad:
            continue
        grads = torch.autograd.grad(term * scale, params, retain_graph=True, allow_unused=True)
        squares = sum((g.float() ** 2).sum() for g in grads if g is not None)
        norms[f"grad_norm_{name}"] = float(torch.sqrt(torch.as_tensor(squares))) / scale
    return norms


def frame_alternation(mel: torch.Tensor) -> torch.Tensor:
    """How far each frame departs from the mean of its two neighbours: mel (B, n_mels, T) raw log-mel -> (B,)
    mean absolute departure (natural log units). Speech moves smoothly from frame to frame. A decoder pulled
    towards a voice by the speaker-consistency term, on conversions that nothing else judges, learnt to write
    patterns that alternate frame by frame (EXPERIMENTS.md, The long run); no L1 distance sees them."""
    return (mel[..., 1:-1] - 0.5 * (mel[..., :-2] + mel[..., 2:])).abs().float().mean(dim=(1, 2))


@torch.no_grad()
def validate(state: TrainState, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, float]:
    """Mean loss terms, weighted total and classifier accuracy over fixed validation batches, in eval mode;
    and the frame alternation (`frame_alternation`) of the reconstructions and of the conversions (each clip to
    the next clip's voice) as ratios to the real mels' ("alternation_rec", "alternation_conv": 1 reads as
    smooth as speech), and how far the conversions rise above their sources in the sources' pauses
    ("pause_conv", dB, `pause_rise_db` over every pause frame of the batches)."""
    model, cfg = state.core, state.cfg
    weights = term_weights(cfg, max(0, state.total_step - 1))
    model.eval()
    sums: dict[str, float] = {}
    for mel, speaker in batches:
        out = model(mel, conversions=True)
        terms = loss_terms(model, out, mel, cfg)
        vals = {**bottleneck_metrics(out), **{k: float(v) for k, v in terms.items()}}
        assert out.converted is not None
        real = frame_alternation(mel).mean()
        vals["alternation_rec"] = float(frame_alternation(model.unscale(out.recon)).mean() / real)
        vals["alternation_conv"] = float(frame_alternation(model.unscale(out.converted)).mean() / real)
        rise, pauses = pause_rise_db(model, out.converted, mel)
        vals["pause_conv"] = float(rise.sum() / pauses.sum().clamp(min=1))
        known = speaker >= 0
        if state.identifier is not None and known.any():
            term, accuracy = identification_term(unwrap(state.identifier), out.speaker[known], speaker[known])
            vals["spk_id"], vals["spk_id_acc"] = float(term), accuracy
        if state.classifier is not None:
            vals["adv"] = float(adversarial_term(state.classifier, out.content))
            if known.any():
                logits = unwrap(state.classifier)(out.content[known])
                vals["cls_acc"] = float((logits.argmax(-1) == speaker[known]).float().mean())
        vals["loss"] = sum(weights[k] * vals[k] for k in weights if k in vals)
        for k, v in vals.items():
            sums[k] = sums.get(k, 0.0) + v / len(batches)
    model.train()
    return sums


# -- checkpoints ------------------------------------------------------------------------
def rng_state() -> dict[str, torch.Tensor]:
    """This process's torch RNG states (CPU, and CUDA when present)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def gather_rng_states(dist: Dist) -> list[dict[str, torch.Tensor]]:
    """Every rank's RNG state, in rank order (a collective: every rank must call it)."""
    if dist.world == 1:
        return [rng_state()]
    states: list = [None] * dist.world
    torch.distributed.all_gather_object(states, rng_state())
    return [{k: v.cpu() for k, v in s.items()} for s in states]


def save_checkpoint(state: TrainState, folder: str | os.PathLike, data_summary: dict,
                    rng: list[dict[str, torch.Tensor]] | None = None) -> Path:
    """Write folder/step-N/ (a bundle + train_state.pt) atomically and keep the last `keep_last`.

    With the discriminator on, the folder also holds its weights as `discriminator.safetensors`, so that a later
    run can start from the folder with both players (`run.init_from`, a relay's next leg).

    Args:
        rng: every rank's RNG state (`gather_rng_states`); this process's alone when None.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    final = folder / f"{CKPT_PREFIX}{state.step:08d}"
    tmp = folder / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    training = {"steps": state.step, "total_steps": state.origin.get("init_steps", 0) + state.step,
                "config": config_to_dict(state.cfg), "speakers": state.speakers, **state.origin, **data_summary}
    save_bundle(state.core, state.cfg.mel, tmp, training=training)
    extra = {"step": state.step, "optimizer": state.optimizer.state_dict(), "rng": rng or [rng_state()],
             "speakers": state.speakers, "origin": dict(state.origin)}
    if state.scaler is not None:
        extra["scaler"] = state.scaler.state_dict()
    if state.classifier is not None and state.cls_optimizer is not None:
        extra["classifier"] = unwrap(state.classifier).state_dict()
        extra["cls_optimizer"] = state.cls_optimizer.state_dict()
    if state.identifier is not None and state.id_optimizer is not None:
        identifier = unwrap(state.identifier).state_dict()
        extra["identifier"], extra["id_optimizer"] = identifier, state.id_optimizer.state_dict()
        save_file({k: v.contiguous() for k, v in identifier.items()}, str(tmp / IDENTIFIER_FILE))
    if state.discriminator is not None and state.disc_optimizer is not None:
        opponent = unwrap(state.discriminator).state_dict()
        extra["discriminator"], extra["disc_optimizer"] = opponent, state.disc_optimizer.state_dict()
        save_file({k: v.contiguous() for k, v in opponent.items()}, str(tmp / DISCRIMINATOR_FILE))
    torch.save(extra, tmp / STATE_FILE)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(folder)[:-max(1, state.cfg.run.keep_last)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(state: TrainState, ckpt: Path, rank: int = 0) -> None:
    """Restore model, optimisers, scaler, this rank's RNG and the step from a checkpoint (weights_only loads).

    The learning rates stay those of the config, so `--set optim.lr=...` applies to a resumed run.
    """
    from safetensors.torch import load_file

    try:
        state.core.load_state_dict(load_file(str(ckpt / "model.safetensors")), strict=True)
    except RuntimeError as err:
        raise VcAppError(f"{ckpt} does not fit the configured model ({str(err).splitlines()[0]}); "
                         "resume with the config it was trained with.") from None
    extra = torch.load(ckpt / STATE_FILE, map_location="cpu", weights_only=True)
    if extra.get("speakers", state.speakers) != state.speakers:
        raise VcAppError(f"{ckpt} was trained on another set of speakers than data.train_features holds; "
                         "resume with the features it was trained on.")
    state.optimizer.load_state_dict(extra["optimizer"])
    _set_lr(state.optimizer, state.cfg.optim.lr)
    legacy = {"cpu": extra.get("rng_cpu"), "cuda": extra.get("rng_cuda")}  # checkpoints from before per-rank RNG
    rngs = extra.get("rng") or [{k: v for k, v in legacy.items() if v is not None}]
    own = rngs[rank] if rank < len(rngs) else rngs[0]
    torch.set_rng_state(own["cpu"])
    if "cuda" in own and torch.cuda.is_available():
        torch.cuda.set_rng_state(own["cuda"])
    if state.scaler is not None and "scaler" in extra:
        state.scaler.load_state_dict(extra["scaler"])
    opponents = [("the adversary", state.classifier, state.cls_optimizer, "classifier", "cls_optimizer",
                  state.cfg.adversary.lr),
                 ("the discriminator", state.discriminator, state.disc_optimizer, "discriminator", "disc_optimizer",
                  state.cfg.discriminator.lr),
                 ("the speaker identifier (spk_id)", state.identifier, state.id_optimizer, "identifier",
                  "id_optimizer", state.cfg.optim.lr * state.cfg.loss.spk_id_lr_ratio)]
    for what, module, optimizer, key, optimizer_key, lr in opponents:
        if module is None or optimizer is None:
            continue
        if key not in extra:
            raise VcAppError(f"{ckpt} was trained without {what}; it cannot resume a run that has one.")
        unwrap(module).load_state_dict(extra[key])
        optimizer.load_state_dict(extra[optimizer_key])
        _set_lr(optimizer, lr)
    state.step = int(extra["step"])
    # where the run started (its bundle's total steps) is the checkpoint's, not what run.init_from names now: a
    # relay folder is replaced at the end of every leg, and a leg resumed after that must keep its total step
    state.origin = dict(extra["origin"]) if "origin" in extra else _recorded_origin(ckpt)


def _recorded_origin(ckpt: Path) -> dict:
    """A checkpoint from before train_state.pt kept the origin: its bundle's training record has it."""
    record = json.loads((ckpt / "config.json").read_text()).get("training", {})
    return {k: record[k] for k in ("init_from", "init_steps", "discriminator_from", "identifier_from") if k in record}


def scheduled_lr(cfg: TrainConfig, step: int, total_step: int | None = None) -> float:
    """The learning rate of this run's step `step` (0-based; `total_step` counts the bundle's steps too).

    `optim.lr` throughout (constant), or a half-cosine from `optim.lr` down to `lr * lr_final_ratio`
    (cosine): over this run's `run.max_steps` by default, so a run continued with `run.init_from` decays over
    its own length; or, with `optim.schedule_steps`, over that many *total* steps from `optim.schedule_start`,
    so the legs of a relay (each continuing the last leg's weights) follow one curve instead of restarting it.
    `optim.warmup_steps` ramps the rate up over this run's first steps: a relay leg starts a fresh optimiser,
    whose first steps would otherwise move the weights with unconditioned moment estimates.
    """
    o = cfg.optim
    lr = o.lr
    if o.lr_schedule == "cosine":
        if o.schedule_steps > 0:
            done = (step if total_step is None else total_step) - o.schedule_start
            progress = min(max(done / o.schedule_steps, 0.0), 1.0)
        else:
            progress = min(max(step / max(cfg.run.max_steps, 1), 0.0), 1.0)
        lr = o.lr * (o.lr_final_ratio + (1 - o.lr_final_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    return lr * warmup_factor(cfg, step)


def warmup_factor(cfg: TrainConfig, step: int) -> float:
    """How far this run's step `step` (0-based) is through `optim.warmup_steps`: 1.0 after them. Both players'
    fresh optimisers follow it (the discriminator's rate is `discriminator.lr` times this)."""
    warmup = cfg.optim.warmup_steps
    return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0


def gan_ramp_step(state: TrainState) -> int | None:
    """The run step that the discriminator's warm-up and the gan/fm ramp count from (`term_weights`), or None
    when the game goes on: a relay leg whose discriminator came from the last leg starts with both terms at
    their full weight, its two optimisers re-warming together, as an unbroken run would have gone on."""
    return None if state.origin.get("discriminator_from") else state.step


def identifier_ramp_step(state: TrainState) -> int | None:
    """The run step the spk_id ramp counts from (`term_weights`), or None (full weight) when the SpeakerIdentifier
    came from the last leg's folder, as `gan_ramp_step` does for the discriminator."""
    return None if state.origin.get("identifier_from") else state.step


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


# -- the loop ------------------------------------------------------------------------------
class StopRequest:
    """Remembers SIGINT/SIGTERM so the loop finishes its step, saves and leaves.

    Signals arriving together (a terminal's Ctrl-C and torchrun forwarding it) count once; a Ctrl-C
    pressed again more than 3 s later aborts at once, without saving.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: int | None = None
        self.since = 0.0
        self._previous: dict = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.received is None:
            self.received, self.since = signum, time.monotonic()
        elif signum == signal.SIGINT and time.monotonic() - self.since > 3:
            raise KeyboardInterrupt

    def agreed(self, dist: Dist) -> bool:
        """True when any rank was asked to stop (a collective under torchrun)."""
        stop = self.received is not None
        if dist.world > 1:
            flag = torch.tensor([float(stop)], device=dist.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item())
        return stop


def fixed_batches(dataset: SegmentDataset, batch_size: int, n_batches: int, speakers: list[str]):
    """Deterministic validation batches (epoch 0, no augmentation); unknown speakers get index -1."""
    index = {s: i for i, s in enumerate(speakers)}
    items = list(range(min(len(dataset), batch_size * n_batches)))
    out = []
    for start in range(0, len(items), batch_size):
        chunk = [dataset[i] for i in items[start:start + batch_size]]
        mels = torch.stack([c[0] for c in chunk])
        spk = torch.tensor([index.get(dataset.speaker_names[c[-1]], -1) for c in chunk])
        out.append((mels, spk))
    return out


def train(cfg: TrainConfig, out_dir: str | os.PathLike, *, resume: bool = False, log=print) -> TrainResult:
    """Train until `cfg.run.max_steps`.

    Ctrl-C (or SIGTERM) finishes the step, saves a checkpoint and raises KeyboardInterrupt; a NaN/inf
    loss raises `TrainingDiverged` naming the term, keeping the last good checkpoint.
    """
    dist = setup_distributed()
    try:
        with StopRequest() as stop:
            result = _train(cfg, Path(out_dir), resume, log, dist, stop)
        if dist.world > 1:
            # leave together: rank 0 is still writing the last checkpoint, and a rank that tears its gloo
            # group down meanwhile was seen to abort ("terminate called without an active exception")
            torch.distributed.barrier()
        return result
    finally:
        if dist.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _train(cfg: TrainConfig, out_dir: Path, resume: bool, log, dist: Dist, stop: StopRequest) -> TrainResult:
    from vc_app.train.logging import TrainLogger

    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    ckpt_dir = out_dir / "checkpoints"
    train_cache = FeatureCache.open(cfg.data.train_features)
    state = build_state(cfg, train_cache, dist)
    say = log if dist.is_main else (lambda message: None)
    precision = amp_dtype(cfg, dist.device)
    if cfg.run.amp in ("bf16", "fp16") and precision is None:
        say(f"run.amp={cfg.run.amp} is not native on this {dist.device.type}; this run computes in float32.")
    last = checkpoint_dirs(ckpt_dir)[-1] if resume and checkpoint_dirs(ckpt_dir) else None
    if last is not None:
        load_checkpoint(state, last, dist.rank)
        say(f"resumed from {last} at step {state.step}")
    elif resume:
        say(f"no checkpoint in {ckpt_dir} yet: starting at step 0")
    if last is None and state.origin:
        say(f"starting from the weights of {state.origin['init_from']} ({state.origin['init_steps']} steps), "
            "with a fresh optimiser")
    dataset = SegmentDataset(train_cache, cfg.data, cfg.mel, cfg.seed)
    loader = StepLoader(dataset, cfg.data.batch_size, world=dist.world, rank=dist.rank, seed=cfg.seed,
                        num_workers=cfg.data.num_workers, pin_memory=dist.device.type == "cuda",
                        speaker_balanced=cfg.data.sampler == "speakers", corpus_weights=cfg.data.corpus_weights)
    valid = _valid_batches(cfg, state) if dist.is_main else []
    summary = {"train_utterances": len(train_cache.utt_ids), "train_frames": int(train_cache.frames.sum()),
               "train_speakers": len(state.speakers)}
    say(f"training on {summary['train_utterances']} utterances of {summary['train_speakers']} speakers; "
        f"{dist.world} process(es) on {dist.device.type}, batch {cfg.data.batch_size} per process, "
        f"{'float32' if precision is None else str(precision).removeprefix('torch.') + ' autocast'}")
    logger = TrainLogger(out_dir, enabled=dist.is_main, log=log)
    if dist.is_main:
        (out_dir / "config.json").write_text(json.dumps(config_to_dict(cfg), indent=2))
    try:
        last = _loop(state, loader, valid, logger, ckpt_dir, summary, dist, stop) or last
    finally:
        logger.close()
    return TrainResult(state, last if dist.is_main else None)


def _valid_batches(cfg: TrainConfig, state: TrainState):
    if not cfg.data.valid_features:
        return []
    cache = FeatureCache.open(cfg.data.valid_features)
    dataset = SegmentDataset(cache, cfg.data, cfg.mel, cfg.seed, augment=False)
    return [(m.to(next(state.core.parameters()).device), s.to(next(state.core.parameters()).device)) for m, s in
            fixed_batches(dataset, cfg.data.batch_size, 4, state.speakers)]


def _save(state: TrainState, ckpt_dir: Path, summary: dict, dist: Dist) -> Path:
    """A checkpoint of this step: every rank hands in its RNG state, rank 0 writes."""
    rng = gather_rng_states(dist)
    if dist.is_main:
        return save_checkpoint(state, ckpt_dir, summary, rng)
    return ckpt_dir / f"{CKPT_PREFIX}{state.step:08d}"


def _guarded_step(state: TrainState, batch: Batch, ckpt_dir: Path) -> dict[str, float]:
    try:
        return train_step(state, batch)
    except TrainingDiverged as err:
        good = checkpoint_dirs(ckpt_dir)
        raise TrainingDiverged(f"{err} Training stopped; the last good checkpoint is "
                               f"{good[-1] if good else 'none (no checkpoint was saved yet)'}.") from None


def _loop(state, loader, valid, logger, ckpt_dir, summary, dist, stop) -> Path | None:
    cfg, last = state.cfg, None
    run = cfg.run
    state.model.train()
    # keyed on the total step: a run continuing a bundle (--init-from) draws on from where it left off
    batches = loader.batches(state.total_step)
    wait = busy = 0.0
    since = 0
    tick = time.perf_counter()
    while state.step < run.max_steps:
        batch = next(batches)
        got = time.perf_counter()
        metrics = _guarded_step(state, batch.to(dist.device), ckpt_dir)
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
        stopping = stop.agreed(dist)
        if stopping or state.step % run.save_every == 0 or state.step == run.max_steps:
            last = _save(state, ckpt_dir, summary, dist)
        if stopping:
            if dist.is_main:
                logger.log(f"interrupted at step {state.step}: saved {last}")
            raise KeyboardInterrupt
        tick = time.perf_counter()  # logging, validation and saving are not data wait
    return last
