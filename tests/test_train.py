"""The training engine on a tiny model and a tiny real-speech feature cache (CPU).

Resume continues exactly where an uninterrupted run would be; a diverging run stops naming the
term and keeps its last good checkpoint; torchrun + DDP (gloo) keeps every rank identical and
writes one checkpoint set; Ctrl-C saves; every loss term is logged under its config name.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO, run_cli, tiny_train_overrides


def quiet(message: str) -> None:
    pass


@pytest.fixture(scope="module")
def tiny_features(voice_corpus, tmp_path_factory) -> dict[str, Path]:
    """Packed train / valid caches of the six synthetic speakers (4 + 1 clips each)."""
    from vc_app.config import MelConfig
    from vc_app.corpus import Utterance
    from vc_app.features import extract_features, pack_features

    root = tmp_path_factory.mktemp("feats")
    utts = [Utterance(path.stem, speaker, str(path), text) for speaker, clips in voice_corpus.items()
            for path, text in clips]
    assert not extract_features(utts, root / "all", MelConfig(), workers=1, progress=False)
    caches = {}
    for name, chosen in (("train", [u for u in utts if not u.utt_id.endswith("_005")]),
                         ("valid", [u for u in utts if u.utt_id.endswith("_005")])):
        (root / name).mkdir()
        (root / name / "utts").symlink_to(root / "all" / "utts")
        caches[name] = pack_features(chosen, root / name, MelConfig())
    return caches


def config(features: dict[str, Path], **values):
    from vc_app.train.config import load_config

    return load_config(None, tiny_train_overrides(data__train_features=features["train"],
                                                  data__valid_features=features["valid"], **values))


def train_rows(out: Path, split: str = "train") -> dict[int, dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows if r["split"] == split}


ADVERSARIAL = {"adversary__enabled": "true", "loss__weights": "{rec: 10, kl: 1, adv: 0.1}", "loss__adv_ramp_steps": 4}


@pytest.fixture
def restore_threads():
    """`train` sets torch's (process-wide) thread count from run.threads; give the next test its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("threads", [1, 2], ids=["one thread", "two threads"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_features, tmp_path, threads, restore_threads):
    from vc_app.train.engine import train

    # Augmentation, VAE noise and the adversary all draw randomness: resume must restore all of it.
    run = dict(run__max_steps=8, run__save_every=4, data__warp_range="[0.9, 1.1]", data__gain_db=3,
               run__threads=threads, **ADVERSARIAL)
    full = train(config(tiny_features, **run), tmp_path / "full", log=quiet)
    first = train(config(tiny_features, **{**run, "run__max_steps": 4}), tmp_path / "split", log=quiet)
    assert first.state.step == 4 and first.checkpoint.name == "step-00000004"
    resumed = train(config(tiny_features, **run), tmp_path / "split", resume=True, log=quiet)

    assert resumed.state.step == full.state.step == 8
    a, b = train_rows(tmp_path / "full"), train_rows(tmp_path / "split")
    assert sorted(b) == list(range(1, 9))  # the resumed run logged steps 5..8, not 1..4 again
    for step in range(5, 9):
        assert b[step]["loss"] == a[step]["loss"], f"step {step}"
        assert b[step]["cls_acc"] == a[step]["cls_acc"]
    for name in ("optimizer", "cls_optimizer"):
        want, got = getattr(full.state, name).state_dict(), getattr(resumed.state, name).state_dict()
        assert want["param_groups"] == got["param_groups"]
        for key, slots in want["state"].items():
            for slot, value in slots.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(got["state"][key][slot])), (name, slot)
    for (name, p), q in zip(full.state.core.state_dict().items(), resumed.state.core.state_dict().values()):
        assert torch.equal(p, q), name


def test_diverging_learning_rate_stops_naming_the_cause_and_keeps_the_last_good_checkpoint(tiny_features, tmp_path):
    from vc_app.bundle import load_bundle
    from vc_app.train.checkpoints import checkpoint_dirs
    from vc_app.train.engine import TrainingDiverged, train

    train(config(tiny_features, run__max_steps=4, run__save_every=2), tmp_path, log=quiet)
    with pytest.raises(TrainingDiverged) as caught:
        train(config(tiny_features, run__max_steps=20, run__save_every=2, optim__lr=1e30), tmp_path, resume=True,
              log=quiet)
    message = str(caught.value)
    assert "became" in message and ("loss term '" in message or "gradient norm" in message)
    assert message.endswith(f"the last good checkpoint is {tmp_path / 'checkpoints' / 'step-00000004'}.")
    assert [p.name for p in checkpoint_dirs(tmp_path / "checkpoints")] == ["step-00000002", "step-00000004"]
    weights = load_bundle(tmp_path / "checkpoints" / "step-00000004").model.state_dict()
    assert all(torch.isfinite(w).all() for w in weights.values())


@pytest.mark.slow
def test_poisoned_batch_stops_the_cli_with_one_sentence(tiny_features, tmp_path):
    poisoned = tmp_path / "poisoned"
    shutil.copytree(tiny_features["train"], poisoned, symlinks=True)
    mels = np.load(poisoned / "mels.npy")
    np.save(poisoned / "mels.npy", np.full_like(mels, np.nan))
    from vc_app.train.engine import train

    out = tmp_path / "exp"
    train(config(tiny_features, run__max_steps=2, run__save_every=2), out, log=quiet)
    overrides = tiny_train_overrides(data__train_features=poisoned, data__valid_features="", run__max_steps=6)
    done = run_cli("train", "--out", str(out), "--resume", *[a for s in overrides for a in ("--set", s)])
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("vc-app: error: The loss term 'rec' became nan at step 3.")
    assert error.endswith(f"the last good checkpoint is {out / 'checkpoints' / 'step-00000002'}.")
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]


def test_every_loss_term_reaches_tensorboard_under_its_config_name(tiny_features, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from vc_app.train.engine import expected_terms, train

    cfg = config(tiny_features, run__max_steps=4, run__valid_every=4, run__sample_every=4, **ADVERSARIAL)
    train(cfg, tmp_path, log=quiet)
    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    terms = expected_terms(cfg)
    assert set(terms) == set(cfg.loss.weights) == {"rec", "kl", "adv"}
    for name in [*terms, "loss", "lr", "grad_norm", "steps_per_s", "data_wait", "cls", "cls_acc"]:
        assert f"train/{name}" in tags, name
    for name in [*terms, "loss", "cls_acc", "alternation_rec", "alternation_conv"]:
        assert f"valid/{name}" in tags, name
    assert {"sample/source_mel", "sample/converted_mel"} <= set(events.Tags()["images"])
    assert "sample/converted" in events.Tags()["audio"]
    assert train_rows(tmp_path)[4].keys() >= set(terms)


def test_frame_alternation_sees_frame_by_frame_patterns_not_smooth_change():
    import torch

    from vc_app.train.engine import frame_alternation

    t = torch.arange(50, dtype=torch.float32)
    smooth = (0.1 * t - 5.0).expand(2, 3, 50)  # a ramp: every frame is its neighbours' mean
    alternating = smooth + torch.where(t % 2 == 0, 1.0, -1.0)  # +-1 on every other frame
    assert torch.allclose(frame_alternation(smooth), torch.zeros(2), atol=1e-5)
    assert torch.allclose(frame_alternation(alternating), torch.full((2,), 2.0))


def test_vq_bottleneck_uses_many_codes(tiny_features, tmp_path):
    from vc_app.train.engine import train

    result = train(config(tiny_features, run__max_steps=12, model__bottleneck="vq", model__vq__codebook_size=16,
                          loss__weights="{rec: 10, vq_commit: 1}"), tmp_path, log=quiet)
    rows = train_rows(tmp_path)
    assert all(r["vq_perplexity"] > 1.5 for r in rows.values())
    assert rows[12]["vq_usage"] * 16 > 1
    assert "vq_perplexity" in train_rows(tmp_path, "valid")[10]
    assert result.state.core.quantizer.initialized


def test_training_config_mistakes_are_one_sentence():
    from vc_app.errors import VcAppError
    from vc_app.train.config import load_config

    with pytest.raises(VcAppError, match="run.amp must be auto, none, bf16 or fp16"):
        load_config(None, ["run.amp=fp32"])
    with pytest.raises(VcAppError, match="Unknown key"):
        load_config(None, ["optim.learning_rate=1"])


def test_cosine_schedule_decays_the_logged_lr_to_its_final_ratio_over_the_run(tiny_features, tmp_path):
    from vc_app.errors import VcAppError
    from vc_app.train.config import load_config
    from vc_app.train.engine import train

    train(config(tiny_features, run__max_steps=9, run__log_every=1, run__save_every=9, optim__lr=1e-3,
                 optim__lr_schedule="cosine", optim__lr_final_ratio=0.1), tmp_path / "cos", log=quiet)
    lrs = [train_rows(tmp_path / "cos")[s]["lr"] for s in range(1, 10)]
    assert lrs[0] == pytest.approx(1e-3)  # step 1 uses the full rate
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert lrs[4] == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + np.cos(np.pi * 4 / 9)))
    assert lrs[-1] == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + np.cos(np.pi * 8 / 9)))  # near 1e-4, never below
    train(config(tiny_features, run__max_steps=3, run__log_every=1, run__save_every=3, optim__lr=1e-3),
          tmp_path / "const", log=quiet)
    assert [train_rows(tmp_path / "const")[s]["lr"] for s in (1, 2, 3)] == pytest.approx([1e-3] * 3)
    with pytest.raises(VcAppError, match="optim.lr_schedule must be constant or cosine"):
        load_config(None, ["optim.lr_schedule=linear"])
    with pytest.raises(VcAppError, match="optim.lr_final_ratio must be between 0 and 1"):
        load_config(None, ["optim.lr_final_ratio=2"])


def test_bf16_on_a_cpu_without_native_bf16_says_it_trains_in_float32(tiny_features, tmp_path, monkeypatch):
    from vc_app.train import engine

    monkeypatch.setattr(engine, "native_bf16", lambda device: False)
    said = []
    engine.train(config(tiny_features, run__max_steps=1, run__amp="bf16"), tmp_path, log=said.append)
    assert any("run.amp=bf16 is not native on this cpu; this run computes in float32" in line for line in said)
    assert any(line.endswith("float32") for line in said if line.startswith("training on"))
    assert np.isfinite(train_rows(tmp_path)[1]["loss"])


def test_auto_amp_trains_in_bf16_autocast_where_the_cpu_has_it(tiny_features, tmp_path, monkeypatch):
    from vc_app.train import engine

    monkeypatch.setattr(engine, "native_bf16", lambda device: True)
    said = []
    engine.train(config(tiny_features, run__max_steps=2), tmp_path, log=said.append)
    assert any(line.endswith("bfloat16 autocast") for line in said if line.startswith("training on"))
    assert all(np.isfinite(row["loss"]) for row in train_rows(tmp_path).values())


DDP_DRIVER = """
import os, sys
import torch
from safetensors.torch import save_file
from vc_app.train.config import load_config
from vc_app.train.engine import train, unwrap

result = train(load_config(None, sys.argv[2:]), sys.argv[1], log=print)
state = result.state
tensors = {f"model.{k}": v for k, v in state.core.state_dict().items()}
tensors.update({f"classifier.{k}": v for k, v in unwrap(state.classifier).state_dict().items()})
rank = os.environ["RANK"]
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(sys.argv[1], f"rank{rank}.safetensors"))
"""


@pytest.mark.slow
def test_torchrun_ddp_on_cpu_keeps_ranks_identical_and_saves_once(tiny_features, tmp_path):
    from safetensors.torch import load_file

    driver = tmp_path / "driver.py"
    driver.write_text(DDP_DRIVER)
    out = tmp_path / "exp"
    overrides = tiny_train_overrides(data__train_features=tiny_features["train"],
                                     data__valid_features=tiny_features["valid"], data__batch_size=2,
                                     run__max_steps=6, run__save_every=3, run__valid_every=3,
                                     model__bottleneck="vq", model__vq__codebook_size=16,
                                     loss__weights="{rec: 10, vq_commit: 1, adv: 0.1}", adversary__enabled="true")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(driver), str(out), *overrides], capture_output=True, text=True, env=env, timeout=300,
                          cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]

    ranks = [load_file(str(out / f"rank{r}.safetensors")) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert any("quantizer.embedding" in k for k in ranks[0])  # VQ buffers are compared too
    for key in ranks[0]:
        assert torch.equal(ranks[0][key], ranks[1][key]), key
    saved = load_file(str(out / "checkpoints" / "step-00000006" / "model.safetensors"))
    assert all(torch.equal(saved[k], ranks[0][f"model.{k}"]) for k in saved)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000003", "step-00000006"]
    logged = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()
              if '"train"' in line]
    assert logged == list(range(1, 7))  # rank 0 alone logs: each step once
    assert done.stdout.count("training on") == 1


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_before_leaving(tiny_features, tmp_path):
    out = tmp_path / "exp"
    overrides = tiny_train_overrides(data__train_features=tiny_features["train"], data__valid_features="",
                                     run__max_steps=100000, run__save_every=100000)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "vc_app", "train", "--out", str(out),
                             *[a for s in overrides for a in ("--set", s)]], env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(_lines(out / "metrics.jsonl")) < 3:
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    steps = [json.loads(line)["step"] for line in _lines(out / "metrics.jsonl")]
    saved = [p.name for p in (out / "checkpoints").iterdir()]
    assert saved == [f"step-{steps[-1]:08d}"]
    assert f"interrupted at step {steps[-1]}: saved" in stdout
    assert "interrupted" in stderr and "Traceback" not in stderr


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def test_init_from_a_bundle_starts_near_its_loss_with_a_fresh_optimiser(tiny_features, tmp_path):
    from vc_app.bundle import load_bundle
    from vc_app.train.engine import train

    first = train(config(tiny_features, run__max_steps=30, run__save_every=30), tmp_path / "a", log=quiet)
    bundle = first.checkpoint
    trained_loss = np.mean([train_rows(tmp_path / "a")[s]["rec"] for s in range(26, 31)])
    fresh_loss = train_rows(tmp_path / "a")[1]["rec"]
    said = []
    second = train(config(tiny_features, run__max_steps=2, run__save_every=2, run__init_from=str(bundle)),
                   tmp_path / "b", log=said.append)
    assert any(f"starting from the weights of {bundle} (30 steps), with a fresh optimiser" in s for s in said)
    start_loss = train_rows(tmp_path / "b")[1]["rec"]
    assert abs(start_loss - trained_loss) < 0.5 * abs(fresh_loss - trained_loss)
    assert second.state.step == 2 and second.state.optimizer.state_dict()["state"][0]["step"] == 2
    kl_weight = min(1.0, 31 / second.state.cfg.loss.kl_anneal_steps)
    assert train_rows(tmp_path / "b")[1]["weight_kl"] == pytest.approx(kl_weight)
    continued = load_bundle(second.checkpoint)
    training = continued.config["training"]
    assert training["init_from"] == str(bundle) and training["init_steps"] == 30 and training["total_steps"] == 32
    assert continued.training_steps == 32  # what `vc-app evaluate` reports: the weights' whole history
    from vc_app.recipe import model_card
    assert f"- steps: 32 (2 in this run, started from {bundle} at step 30)" in model_card(continued, "x", None)


def test_init_from_a_bundle_of_another_shape_is_refused_naming_the_difference(tiny_features, tmp_path):
    from vc_app.errors import VcAppError
    from vc_app.train.engine import train

    bundle = train(config(tiny_features, run__max_steps=1, run__save_every=1), tmp_path / "a", log=quiet).checkpoint
    with pytest.raises(VcAppError, match=r"does not fit this run's config: model.c_h is 16 there, 24 here\."):
        train(config(tiny_features, run__max_steps=1, model__c_h=24, run__init_from=str(bundle)), tmp_path / "b",
              log=quiet)
    # which frames the statistics are taken on changes no weight: a run may switch it when it starts from a bundle
    switched = train(config(tiny_features, run__max_steps=1, model__norm_stats="active", run__init_from=str(bundle)),
                     tmp_path / "c", log=quiet)
    assert switched.state.core.cfg.norm_stats == "active"


def test_speaker_consistency_and_perturbations_train_and_are_logged(tiny_features, tmp_path):
    from vc_app.train.engine import expected_terms, train

    cfg = config(tiny_features, run__max_steps=3, loss__weights="{rec: 10, kl: 1, spk_cons: 1}",
                 data__content_warp_range="[0.8, 1.25]", data__pseudo_speakers=3, data__warp_range="[0.9, 1.1]",
                 data__tilt_db=3, data__speaker_segment="other", model__content_guidance=0.1)
    assert expected_terms(cfg) == ["rec", "kl", "spk_cons"]
    train(cfg, tmp_path, log=quiet)
    rows = train_rows(tmp_path)
    assert all(0 <= rows[s]["spk_cons"] <= 2 and np.isfinite(rows[s]["loss"]) for s in (1, 2, 3))


def test_speaker_consistency_reads_the_conversion_on_the_frames_asked_for(tiny_features, tmp_path):
    """loss.spk_cons_frames: "converted" reads the conversion's voice on its own active frames (as a target clip
    is read), "source" on the frames where the content's source speaks, so the decoder gains nothing from
    writing a voice into the source's pauses."""
    import torch

    from vc_app.errors import VcAppError
    from vc_app.models import AdaINVC
    from vc_app.train.config import load_config
    from vc_app.train.engine import train

    from conftest import tiny_model_config

    torch.manual_seed(0)
    model = AdaINVC(tiny_model_config(norm_stats="active")).eval()
    mel = torch.randn(3, 80, 64) * 0.5 - 4.0
    mel[..., 24:40] = -11.0  # a pause in every source: more than 40 dB below its speech
    assert not model.active_frames(mel)[..., 24:40].any()
    for frames in ("converted", "source"):
        out = model(mel, consistency=True, consistency_frames=frames)
        raw = model.unscale(out.converted)
        read_on = model.active_frames(mel) if frames == "source" else model.active_frames(raw)
        assert torch.allclose(out.converted_speaker, model.speaker_encoder(out.converted, read_on), atol=1e-5)
    with pytest.raises(VcAppError, match="loss.spk_cons_frames must be converted or source"):
        load_config(None, ["loss.spk_cons_frames=pauses"])
    train(config(tiny_features, run__max_steps=2, loss__weights="{rec: 10, kl: 1, spk_cons: 1}",
                 loss__spk_cons_frames="source", model__norm_stats="active"), tmp_path, log=quiet)
    assert all(0 <= train_rows(tmp_path)[s]["spk_cons"] <= 2 for s in (1, 2))


def test_the_pause_term_measures_a_conversions_rise_in_the_sources_pauses_and_lowers_it(tiny_features, tmp_path,
                                                                                          restore_threads):
    """`pause_rise_db` is the evaluation's pause level frame by frame (the output's level minus the source's on
    the source's pauses, each relative to its loudest frame); the `pause` term hinges it per 10 dB (or takes its
    absolute value, `loss.pause_rise_only` false), frame by frame or per clip (`loss.pause_per_clip`), trains on
    a fixed batch until the conversions' pauses fall, enters the total with its weight, and is logged on
    validation as `pause_conv` whatever its weight."""
    from vc_app.evaluate.levels import FLOOR_DB
    from vc_app.features import FeatureCache
    from vc_app.models import AdaINVC
    from vc_app.models.adain_vc import frame_levels_db
    from vc_app.train.data import SegmentDataset, StepLoader
    from vc_app.train.engine import Dist, build_state, expected_terms, pause_rise_db, train, train_step

    from conftest import tiny_model_config

    model = AdaINVC(tiny_model_config())
    source = torch.zeros(1, 80, 64)
    source[..., 24:40] = -11.0  # a pause, 95 dB under the speech: counted at the -80 dB floor
    output = source.clone()
    output[..., 24:40] = -3.0  # 26 dB under the speech
    rise, pauses = pause_rise_db(model, model.scale(output), source)
    assert torch.equal(pauses[0], torch.arange(64).ge(24) & torch.arange(64).lt(40))
    expected = float(frame_levels_db(output)[0, 30]) - FLOOR_DB
    assert expected == pytest.approx(54, rel=0.01)  # -26 dB against the floor's -80
    assert rise[0, 24:40].tolist() == pytest.approx([expected] * 16, abs=1e-3)
    assert rise[0, :24].abs().max() == 0 and rise[0, 40:].abs().max() == 0

    cfg = config(tiny_features, loss__weights="{rec: 10, kl: 1, pause: 2}", model__norm_stats="active")
    assert expected_terms(cfg) == ["rec", "kl", "pause"]
    cache = FeatureCache.open(tiny_features["train"])
    batch = next(StepLoader(SegmentDataset(cache, cfg.data, cfg.mel, 0), 4, seed=0).batches(0))
    batch.mel[..., 40:80] = batch.content_mel[..., 40:80] = batch.speaker_mel[..., 40:80] = -11.0  # pauses
    state = build_state(cfg, cache, Dist())
    rows = [train_step(state, batch) for _ in range(30)]
    assert rows[0]["pause"] > 0.5 and np.mean([r["pause"] for r in rows[-5:]]) < 0.5 * rows[0]["pause"]
    for row in rows:
        total = 10 * row["rec"] + row["weight_kl"] * row["kl"] + 2 * row["pause"]
        assert row["loss"] == pytest.approx(total, rel=1e-4)
    # counted both ways, a conversion quieter than its source in the pauses costs as much as a louder one
    from vc_app.train.engine import loss_terms

    source = torch.zeros(2, 80, 64)
    source[..., 24:40] = -6.0  # pauses 52 dB under the speech
    out = model.eval()(source, conversions=True)
    quieter = source.clone()
    quieter[..., 24:40] = -8.0  # 69.5 dB under
    out.converted = model.scale(quieter)
    step = 40 / math.log(10)  # 2 nepers: 17.4 dB
    quieter[0, :, 32:40] = -4.0  # the first clip's pause: half 17.4 dB under the source's, half 17.4 dB over
    out.converted = model.scale(quieter)
    # per frame: the 8 louder frames of 32 (hinged) or all 32 (both ways); per clip: the first clip's mean is 0
    for per_clip, rise_only, expected in ((False, True, step / 4), (False, False, step), (True, True, 0.0),
                                          (True, False, step / 2)):
        cfg = config(tiny_features, loss__weights="{rec: 10, kl: 1, pause: 2}", loss__pause_rise_only=rise_only,
                     loss__pause_per_clip=per_clip)
        assert float(loss_terms(model, out, source, cfg)["pause"]) == pytest.approx(expected / 10, abs=1e-3)
    train(config(tiny_features, run__max_steps=2, run__valid_every=2), tmp_path, log=quiet)
    assert np.isfinite(train_rows(tmp_path, "valid")[2]["pause_conv"])


def test_speaker_balanced_sampler_draws_speakers_uniformly_whatever_their_clip_counts():
    """data.sampler=speakers: a speaker with one clip is drawn as often as one with 200 (chi-square, fixed
    seed); within a speaker its clips are drawn uniformly; a batch depends on (seed, step, rank) alone."""
    from scipy.stats import chisquare

    from vc_app.train.data import SpeakerBatches

    counts = [200, 1, 1, 5, 30, 1, 2, 60, 1, 10]  # clips per speaker: as lopsided as more_speech
    by_speaker, position = {}, 0
    for speaker, n in enumerate(counts):
        by_speaker[speaker] = list(range(position, position + n))
        position += n
    owner = {p: s for s, clips in by_speaker.items() for p in clips}
    sampler = SpeakerBatches(by_speaker, batch_size=8, start_step=0, seed=3)
    draws = [item for _, batch in zip(range(2000), sampler) for item in batch]
    speakers = np.bincount([owner[p] for _, p in draws], minlength=len(counts))
    assert chisquare(speakers).pvalue > 0.01, speakers
    assert speakers.min() > 0.9 * len(draws) / len(counts)  # uniform clip sampling would give ~5 draws to a 1-clip one
    big = np.bincount([p for _, p in draws if owner[p] == 0], minlength=200)
    assert chisquare(big).pvalue > 0.01  # the 200-clip speaker's clips are all used, evenly
    for _, batch in zip(range(50), SpeakerBatches(by_speaker, 8, 0, seed=3)):  # 8 <= 10 speakers: no repeats
        assert len({owner[p] for _, p in batch}) == 8
    assert len({key for key, _ in draws}) == len(draws)  # every item its own segment key
    again = SpeakerBatches(by_speaker, 8, start_step=1234, seed=3)
    assert next(iter(again)) == sampler.batch(1234)  # resumable at any step (a relay leg starts mid-stream)
    assert SpeakerBatches(by_speaker, 8, 0, seed=3, rank=1).batch(5) != sampler.batch(5)


def test_speaker_balanced_training_runs_and_resumes_exactly(tiny_features, tmp_path, restore_threads):
    from vc_app.errors import VcAppError
    from vc_app.train.config import load_config
    from vc_app.train.engine import train

    run = dict(run__max_steps=6, run__save_every=3, data__sampler="speakers", data__warp_range="[0.9, 1.1]")
    full = train(config(tiny_features, **run), tmp_path / "full", log=quiet)
    train(config(tiny_features, **{**run, "run__max_steps": 3}), tmp_path / "split", log=quiet)
    resumed = train(config(tiny_features, **run), tmp_path / "split", resume=True, log=quiet)
    for p, q in zip(full.state.core.state_dict().values(), resumed.state.core.state_dict().values()):
        assert torch.equal(p, q)
    with pytest.raises(VcAppError, match="data.sampler must be clips or speakers"):
        load_config(None, ["data.sampler=voices"])
    with pytest.raises(VcAppError, match="data.corpus_weights must map names to numbers"):
        load_config(None, ["data.sampler=speakers", "data.corpus_weights={vcc2018:8}"])
    with pytest.raises(VcAppError, match="data.corpus_weights needs data.sampler: speakers"):
        load_config(None, ["data.corpus_weights={vcc2018: 8}"])


def test_corpus_weights_set_each_corpus_share_of_a_batch_whatever_its_speaker_count():
    """data.corpus_weights: a corpus of 2 speakers weighted 3 fills 3/4 of the slots beside one of 50 speakers
    weighted 1; within a corpus speakers stay uniform; a misspelt corpus is one sentence naming the real ones."""
    from scipy.stats import chisquare

    from vc_app.errors import VcAppError
    from vc_app.train.data import SpeakerBatches

    by_speaker = {s: [s * 3, s * 3 + 1, s * 3 + 2] for s in range(52)}
    corpus_of = {s: "clean" if s < 2 else "many" for s in by_speaker}
    sampler = SpeakerBatches(by_speaker, 16, 0, seed=1, corpus_of=corpus_of, corpus_weights={"clean": 3})
    speakers = [p // 3 for _, batch in zip(range(1000), sampler) for _, p in batch]
    clean = sum(s < 2 for s in speakers) / len(speakers)
    assert abs(clean - 0.75) < 0.02, clean
    assert chisquare(np.bincount([s for s in speakers if s >= 2], minlength=52)[2:]).pvalue > 0.01
    with pytest.raises(VcAppError, match="names clen, not a corpus of the training data \\(clean, many\\)"):
        SpeakerBatches(by_speaker, 16, 0, corpus_of=corpus_of, corpus_weights={"clen": 1})
    with pytest.raises(VcAppError, match="packed before stage 0 recorded it: re-run the recipe's stages 0-2"):
        SpeakerBatches(by_speaker, 16, 0, corpus_of=dict.fromkeys(by_speaker, ""), corpus_weights={"clean": 1})


@pytest.mark.parametrize("sampler", ["clips", "speakers"])
def test_a_relay_of_two_legs_keys_the_schedule_and_the_data_on_the_total_step(tiny_features, tmp_path, monkeypatch,
                                                                              sampler):
    """Leg 2 continues leg 1's weights (--init-from): its lr follows the same cosine over total steps (after a
    re-warm), and it draws the batches an unbroken run would draw at those steps, not leg 1's again; resumed
    half-way after the folder it started from was replaced (a relay folder is, every leg), it keeps its total
    step."""
    from vc_app.train import engine

    seen: dict[str, list[float]] = {}

    def recording(name):
        def step(state, batch, ckpt_dir):
            seen.setdefault(name, []).append(float(batch.mel.sum()))
            return real(state, batch, ckpt_dir)
        return step

    real = engine._guarded_step
    cosine = dict(optim__lr=1e-3, optim__lr_schedule="cosine", optim__schedule_steps=8, data__sampler=sampler)
    monkeypatch.setattr(engine, "_guarded_step", recording("unbroken"))
    engine.train(config(tiny_features, run__max_steps=8, run__save_every=4, **cosine), tmp_path / "one", log=quiet)
    monkeypatch.setattr(engine, "_guarded_step", recording("leg1"))
    leg1 = engine.train(config(tiny_features, run__max_steps=4, run__save_every=4, **cosine), tmp_path / "l1",
                        log=quiet)
    monkeypatch.setattr(engine, "_guarded_step", recording("leg2"))
    leg2 = dict(run__save_every=2, run__init_from=str(leg1.checkpoint), optim__warmup_steps=2, **cosine)
    engine.train(config(tiny_features, run__max_steps=2, **leg2), tmp_path / "l2", log=quiet)
    shutil.rmtree(leg1.checkpoint)  # the folder leg 2 started from now holds a later leg's weights (8 steps)
    shutil.copytree(tmp_path / "one" / "checkpoints" / "step-00000008", leg1.checkpoint)
    engine.train(config(tiny_features, run__max_steps=4, **leg2), tmp_path / "l2", resume=True, log=quiet)
    assert seen["leg1"] == seen["unbroken"][:4]
    assert seen["leg2"] == seen["unbroken"][4:]  # the data order continues, it does not restart
    unbroken = [train_rows(tmp_path / "one")[s]["lr"] for s in range(1, 9)]
    leg2 = [train_rows(tmp_path / "l2")[s]["lr"] for s in range(1, 5)]
    assert leg2[0] == pytest.approx(unbroken[4] / 2) and leg2[1:] == pytest.approx(unbroken[5:])  # re-warm, then on
    assert unbroken[-1] == pytest.approx(1e-4 + 0.9e-3 * 0.5 * (1 + np.cos(np.pi * 7 / 8)))


DISCRIMINATOR = {"discriminator__enabled": "true", "discriminator__c_h": 4, "discriminator__n_layers": 2,
                 "loss__weights": "{rec: 10, kl: 1, gan: 1, fm: 2}", "loss__gan_ramp_steps": 1}


@pytest.mark.parametrize("variant", [{}, {"discriminator__speaker": "true", "discriminator__conversions": "true",
                                          "discriminator__objective": "hinge", "discriminator__norm": "weight"}],
                         ids=["lsgan, spectral norm", "speaker-conditioned, conversions, hinge, weight norm"])
def test_discriminator_and_decoder_both_learn_on_a_fixed_batch_and_the_weight_is_honoured(tiny_features, variant,
                                                                                           restore_threads):
    """On one fixed batch, repeated: the discriminator's loss falls (it learns to tell real from generated) and
    the decoder's gan term moves with it; the terms enter the total with their configured weights."""
    from vc_app.features import FeatureCache
    from vc_app.train.data import SegmentDataset, StepLoader
    from vc_app.train.engine import Dist, build_state, train_step

    cfg = config(tiny_features, **{**DISCRIMINATOR, **variant})
    cache = FeatureCache.open(tiny_features["train"])
    batch = next(StepLoader(SegmentDataset(cache, cfg.data, cfg.mel, 0), 4, seed=0).batches(0))
    state = build_state(cfg, cache, Dist())
    rows = [train_step(state, batch) for _ in range(30)]
    assert np.mean([r["disc"] for r in rows[-5:]]) < np.mean([r["disc"] for r in rows[:5]])
    assert rows[-1]["gan"] != rows[0]["gan"] and rows[-1]["fm"] != rows[0]["fm"]
    assert rows[-1]["d_real"] > rows[-1]["d_fake"]  # it tells them apart
    for row in rows:
        total = 10 * row["rec"] + row["weight_kl"] * row["kl"] + row["gan"] + 2 * row["fm"]
        assert row["loss"] == pytest.approx(total, rel=1e-4)
        assert row["weight_gan"] == 1 and row["weight_fm"] == 2


def test_a_discriminator_below_its_loss_floor_is_left_as_it_is(tiny_features, restore_threads):
    """With `discriminator.loss_floor`, a batch on which the discriminator's loss is already below the floor
    does not update it (logged as disc_skipped); above the floor it learns as before."""
    from vc_app.features import FeatureCache
    from vc_app.train.data import SegmentDataset, StepLoader
    from vc_app.train.engine import Dist, build_state, train_step, unwrap

    cache = FeatureCache.open(tiny_features["train"])
    for floor, skipped in ((100.0, 1.0), (0.001, 0.0)):
        cfg = config(tiny_features, **{**DISCRIMINATOR, "discriminator__loss_floor": floor})
        batch = next(StepLoader(SegmentDataset(cache, cfg.data, cfg.mel, 0), 4, seed=0).batches(0))
        state = build_state(cfg, cache, Dist())
        # its weights (spectral norm's power-iteration vectors move with every forward pass)
        before = {k: v.detach().clone() for k, v in unwrap(state.discriminator).named_parameters()}
        rows = [train_step(state, batch) for _ in range(3)]
        after = dict(unwrap(state.discriminator).named_parameters())
        assert [r["disc_skipped"] for r in rows] == [skipped] * 3
        unchanged = all(torch.equal(before[k], after[k]) for k in before)
        assert unchanged == (skipped == 1.0)


def test_the_r1_penalty_keeps_the_discriminator_smooth_on_real_mels(tiny_features, restore_threads):
    """With `discriminator.r1`, the discriminator's update adds gamma / 2 times the squared gradient norm of its
    score on real mels: after the same steps on one fixed batch that norm is smaller than without it, the
    penalty is logged on the steps it is computed (every `r1_every`-th), and it is absent when off."""
    from vc_app.features import FeatureCache
    from vc_app.train.data import SegmentDataset, StepLoader
    from vc_app.train.engine import Dist, build_state, judged_mels, r1_penalty, train_step

    cache = FeatureCache.open(tiny_features["train"])
    sharpness, logged = {}, {}
    for gamma, every in ((0.0, 1), (300.0, 2)):
        cfg = config(tiny_features, **{**DISCRIMINATOR, "discriminator__norm": "none", "discriminator__r1": gamma,
                                       "discriminator__r1_every": every, "discriminator__lr": 1e-2})
        batch = next(StepLoader(SegmentDataset(cache, cfg.data, cfg.mel, 0), 4, seed=0).batches(0))
        state = build_state(cfg, cache, Dist())
        rows = [train_step(state, batch) for _ in range(20)]
        logged[gamma] = ["r1" in r for r in rows]
        out = state.core(batch.mel)
        sharpness[gamma] = float(r1_penalty(state, judged_mels(state, out, batch.mel)[0]).detach())
    assert logged[0.0] == [False] * 20 and logged[300.0] == [False, True] * 10
    assert sharpness[300.0] < 0.5 * sharpness[0.0], sharpness


def test_each_terms_gradient_norm_is_logged_without_changing_the_step(tiny_features, restore_threads):
    """`run.term_grads_every: N` logs every N-th step each weighted term's own gradient norm ("grad_norm_<term>"):
    the step taken is the same as without it, the norms are those of the weighted terms (doubling a weight
    doubles its norm, the others stay) and together they bound the total gradient's norm (triangle inequality)."""
    from vc_app.features import FeatureCache
    from vc_app.train.data import SegmentDataset, StepLoader
    from vc_app.train.engine import Dist, build_state, train_step

    cache = FeatureCache.open(tiny_features["train"])

    def run(every: int, rec_weight: int, steps: int):
        cfg = config(tiny_features, **{**DISCRIMINATOR, "run__term_grads_every": every,
                                       "loss__weights": f"{{rec: {rec_weight}, kl: 1, gan: 1, fm: 2}}"})
        batch = next(StepLoader(SegmentDataset(cache, cfg.data, cfg.mel, 0), 4, seed=0).batches(0))
        torch.manual_seed(0)
        state = build_state(cfg, cache, Dist())
        return [train_step(state, batch) for _ in range(steps)], state.core.state_dict()

    (off, off_weights), (on, on_weights) = run(0, 10, 2), run(2, 10, 2)
    assert all(torch.equal(off_weights[k], on_weights[k]) for k in off_weights)
    assert not any(k.startswith("grad_norm_") for row in off + on[:1] for k in row)
    assert {"grad_norm_rec", "grad_norm_kl", "grad_norm_gan", "grad_norm_fm"} <= set(on[1])
    assert on[1]["grad_norm"] <= sum(v for k, v in on[1].items() if k.startswith("grad_norm_")) * 1.001
    single, double = run(1, 10, 1)[0][0], run(1, 20, 1)[0][0]
    assert double["grad_norm_rec"] == pytest.approx(2 * single["grad_norm_rec"], rel=1e-3)
    assert double["grad_norm_kl"] == pytest.approx(single["grad_norm_kl"], rel=1e-3)


def test_the_discriminator_warms_up_alone_then_its_terms_ramp_in():
    from vc_app.train.config import load_config
    from vc_app.train.engine import term_weights

    cfg = load_config(None, ["discriminator.enabled=true", "loss.weights={rec: 10, kl: 1, gan: 1, fm: 2}",
                             "discriminator.warmup_steps=3", "loss.gan_ramp_steps=4", "loss.kl_anneal_steps=1"])
    weights = [term_weights(cfg, 1000 + step, step) for step in range(9)]
    assert [w["gan"] for w in weights] == pytest.approx([0, 0, 0, 0.25, 0.5, 0.75, 1, 1, 1])
    assert [w["fm"] for w in weights] == pytest.approx([0, 0, 0, 0.5, 1, 1.5, 2, 2, 2])
    assert all(w["rec"] == 10 and w["kl"] == 1 for w in weights)


def test_a_run_with_the_discriminator_resumes_exactly_and_a_relay_leg_takes_both_players(tiny_features, tmp_path,
                                                                                          restore_threads):
    """Both optimisers and the discriminator are in the checkpoint: a resumed run logs the losses of an
    unbroken one; the checkpoint folder holds the discriminator's weights, which a run started from it loads."""
    from safetensors.torch import load_file

    from vc_app.features import FeatureCache
    from vc_app.train.engine import Dist, build_state, train, unwrap

    run = dict(run__max_steps=6, run__save_every=3, data__warp_range="[0.9, 1.1]", **DISCRIMINATOR,
               discriminator__speaker="true", discriminator__conversions="true")
    train(config(tiny_features, **run), tmp_path / "full", log=quiet)
    first = train(config(tiny_features, **{**run, "run__max_steps": 3}), tmp_path / "split", log=quiet)
    train(config(tiny_features, **run), tmp_path / "split", resume=True, log=quiet)
    a, b = train_rows(tmp_path / "full"), train_rows(tmp_path / "split")
    for step in range(4, 7):
        for key in ("loss", "disc", "gan", "fm", "d_real"):
            assert b[step][key] == a[step][key], (step, key)

    saved = load_file(str(first.checkpoint / "discriminator.safetensors"))
    leg = config(tiny_features, **{**run, "run__init_from": str(first.checkpoint)})
    state = build_state(leg, FeatureCache.open(tiny_features["train"]), Dist())
    loaded = unwrap(state.discriminator).state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert state.origin["discriminator_from"].endswith("discriminator.safetensors")

    # the relay folder: stage 5's export in half precision with both players, from which the next leg starts
    from vc_app.recipe import main as recipe

    relay = tmp_path / "relay"
    assert recipe(["export", "--checkpoint", str(first.checkpoint), "--out", str(relay), "--half",
                   "--with-discriminator"]) == 0
    state = build_state(config(tiny_features, **{**run, "run__init_from": str(relay)}),
                        FeatureCache.open(tiny_features["train"]), Dist())
    loaded = unwrap(state.discriminator).state_dict()
    assert all(torch.equal(saved[k].half().float(), loaded[k]) for k in saved if saved[k].is_floating_point())
    # the next leg goes on with the game: gan and fm at full weight from its first step (no warm-up alone,
    # no ramp), and both fresh optimisers re-warm together over optim.warmup_steps
    leg_run = {**run, "run__max_steps": 2, "run__save_every": 2, "discriminator__warmup_steps": 3,
               "loss__gan_ramp_steps": 4, "optim__warmup_steps": 4, "run__init_from": str(relay)}
    leg_cfg = config(tiny_features, **leg_run)
    leg = train(leg_cfg, tmp_path / "leg", log=quiet)
    rows = train_rows(tmp_path / "leg")
    assert [rows[s]["weight_gan"] for s in (1, 2)] == [1, 1] and rows[1]["gan"] > 0
    assert rows[2]["lr"] == pytest.approx(leg_cfg.optim.lr * 2 / 4)
    extra = torch.load(leg.checkpoint / "train_state.pt", map_location="cpu", weights_only=True)
    assert extra["disc_optimizer"]["param_groups"][0]["lr"] == pytest.approx(leg_cfg.discriminator.lr * 2 / 4)
    # a fresh discriminator still warms up alone first
    fresh_run = {k: v for k, v in leg_run.items() if k != "run__init_from"}
    train(config(tiny_features, **fresh_run), tmp_path / "fresh", log=quiet)
    assert [train_rows(tmp_path / "fresh")[s]["weight_gan"] for s in (1, 2)] == [0, 0]

    no_opponent = train(config(tiny_features, run__max_steps=1, run__save_every=1), tmp_path / "plain",
                        log=quiet).checkpoint
    assert recipe(["export", "--checkpoint", str(no_opponent), "--out", str(tmp_path / "x"),
                   "--with-discriminator"]) != 0


def test_a_checkpoint_without_the_discriminator_cannot_resume_a_run_with_it(tiny_features, tmp_path,
                                                                             restore_threads):
    from vc_app.errors import VcAppError
    from vc_app.train.engine import train

    train(config(tiny_features, run__max_steps=2, run__save_every=2), tmp_path, log=quiet)
    with pytest.raises(VcAppError, match="without the discriminator"):
        train(config(tiny_features, run__max_steps=4, **DISCRIMINATOR), tmp_path, resume=True, log=quiet)


def test_an_opponent_blind_to_the_voice_starts_one_that_sees_it_with_the_same_scores(tmp_path):
    """discriminator.speaker from a relay whose discriminator was unconditioned: everything but the projection
    is loaded, the projection starts at zero (the first scores are the loaded opponent's, for any voice); the
    reverse does not fit and is one sentence."""
    from safetensors.torch import save_file

    from vc_app.errors import VcAppError
    from vc_app.models import MelDiscriminator
    from vc_app.train.checkpoints import DISCRIMINATOR_FILE
    from vc_app.train.engine import init_discriminator

    torch.manual_seed(0)
    blind = MelDiscriminator(8, 3).eval()
    save_file({k: v.half().contiguous() for k, v in blind.state_dict().items()}, str(tmp_path / DISCRIMINATOR_FILE))
    init_discriminator(blind, str(tmp_path))  # the float16 round trip, as the conditioned one gets it
    seeing = MelDiscriminator(8, 3, c_speaker=16).eval()
    assert init_discriminator(seeing, str(tmp_path)) == {"discriminator_from": str(tmp_path / DISCRIMINATOR_FILE)}
    assert seeing.project is not None and not seeing.project.weight.any()
    mel, voice = torch.randn(2, 80, 64), torch.randn(2, 16)
    with torch.no_grad():
        assert torch.equal(seeing(mel, voice)[0], blind(mel)[0])
    save_file({k: v.contiguous() for k, v in seeing.state_dict().items()}, str(tmp_path / DISCRIMINATOR_FILE))
    with pytest.raises(VcAppError, match="does not fit the configured discriminator"):
        init_discriminator(MelDiscriminator(8, 3), str(tmp_path))


def test_the_speaker_identifier_learns_the_training_voices_and_resumes_exactly(tiny_features, tmp_path,
                                                                                 restore_threads):
    """spk_id: on one fixed batch the SpeakerIdentifier's cross-entropy falls and its accuracy rises, its weight
    ramps in over the run's first steps and enters the total as configured; its weights and optimiser are in the
    checkpoint, so a resumed run logs the losses of an unbroken one, and a run started from the checkpoint's
    folder (a relay's next leg) takes the identifier with it."""
    from vc_app.features import FeatureCache
    from vc_app.train.data import SegmentDataset, StepLoader
    from vc_app.train.engine import Dist, build_state, expected_terms, train, train_step

    ident = {"loss__weights": "{rec: 10, kl: 1, spk_id: 0.5}", "loss__spk_id_ramp_steps": 4}
    cfg = config(tiny_features, **ident)
    assert expected_terms(cfg) == ["rec", "kl", "spk_id"]
    cache = FeatureCache.open(tiny_features["train"])
    batch = next(StepLoader(SegmentDataset(cache, cfg.data, cfg.mel, 0), 6, seed=0).batches(0))
    state = build_state(cfg, cache, Dist())
    rows = [train_step(state, batch) for _ in range(30)]
    assert [rows[s]["weight_spk_id"] for s in (0, 1, 3, 10)] == [0.125, 0.25, 0.5, 0.5]
    assert rows[-1]["spk_id"] < 0.5 * rows[0]["spk_id"] and rows[-1]["spk_id_acc"] > rows[0]["spk_id_acc"]
    for row in rows:
        total = 10 * row["rec"] + row["weight_kl"] * row["kl"] + row["weight_spk_id"] * row["spk_id"]
        assert row["loss"] == pytest.approx(total, rel=1e-4)

    run = dict(run__max_steps=6, run__save_every=3, run__valid_every=3, data__warp_range="[0.9, 1.1]", **ident)
    train(config(tiny_features, **run), tmp_path / "full", log=quiet)
    train(config(tiny_features, **{**run, "run__max_steps": 3}), tmp_path / "split", log=quiet)
    train(config(tiny_features, **run), tmp_path / "split", resume=True, log=quiet)
    a, b = train_rows(tmp_path / "full"), train_rows(tmp_path / "split")
    for step in range(4, 7):
        assert (b[step]["loss"], b[step]["spk_id"]) == (a[step]["loss"], a[step]["spk_id"]), step
    assert "spk_id_acc" in train_rows(tmp_path / "full", "valid")[6]

    # a relay leg started from the checkpoint folder keeps the identifier (same voices), at full weight at once
    from safetensors.torch import load_file

    from vc_app.train.engine import unwrap

    ckpt = tmp_path / "full" / "checkpoints" / "step-00000006"
    saved = load_file(str(ckpt / "speaker_identifier.safetensors"))
    leg = {**run, "run__max_steps": 2, "run__init_from": str(ckpt)}
    state = build_state(config(tiny_features, **leg), cache, Dist())
    loaded = unwrap(state.identifier).state_dict()
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[k], loaded[k]) for k in saved)
    train(config(tiny_features, **leg), tmp_path / "leg", log=quiet)
    assert train_rows(tmp_path / "leg")[1]["weight_spk_id"] == 0.5
