"""Distilling the fast vocoder: teacher labels (resumable shards, real and converted mels), a few training steps
that lower the loss on a fixed batch, an exact resume, and the export to a bundle `fast:FOLDER` loads."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.mel import mel_spectrogram
from vc_app.train import vocoder as distill
from vc_app.train.vocoder_labels import LabelPack, label_features
from vc_app.vocoders import load_vocoder

from conftest import synthetic_speech

TINY = ["generator.dim=32", "generator.intermediate_dim=64", "generator.layers=2", "batch_size=4",
        "segment_frames=16", "log_every=1", "valid_every=2", "save_every=2", "sample_every=2", "valid_clips=2",
        "amp=none", "lr=2e-3", "schedule_steps=4"]


def write_feature_pack(folder, speakers=("a", "b", "c"), clips=2, seconds=0.8):
    """A packed feature cache as the recipes' features stage writes it (mels.npy, index.csv, stats.json)."""
    folder.mkdir(parents=True)
    mels, rows, offset = [], [], 0
    for s, speaker in enumerate(speakers):
        for c in range(clips):
            wav = torch.from_numpy(synthetic_speech(seconds, 22050, f0=100 + 40 * s, seed=c)).float()
            mel = mel_spectrogram(wav, MelConfig()).numpy()
            mels.append(mel)
            rows.append({"utt_id": f"{speaker}_{c}", "speaker": speaker, "offset": offset, "frames": mel.shape[1]})
            offset += mel.shape[1]
    all_mels = np.concatenate(mels, axis=1).astype(np.float32)
    np.save(folder / "mels.npy", all_mels)
    with open(folder / "index.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["utt_id", "speaker", "offset", "frames"])
        writer.writeheader()
        writer.writerows(rows)
    (folder / "stats.json").write_text(json.dumps({"mean": all_mels.mean(1).tolist(), "std": all_mels.std(1).tolist()}))
    return folder


@pytest.fixture(scope="module")
def labels(tmp_path_factory, tiny_bundle):
    root = tmp_path_factory.mktemp("labels")
    feats = write_feature_pack(root / "feats")
    out = label_features(feats, root / "labels", teacher="griffinlim:2", checkpoint=str(tiny_bundle),
                         max_frames=40, shard_clips=4, log=lambda *_: None)
    return out


def test_labels_hold_real_and_converted_mels_with_the_teachers_waveform(labels, tiny_bundle):
    pack = LabelPack.open(labels, 256)
    assert sorted(p.name for p in labels.iterdir()) == ["shard-00000.npz", "shard-00001.npz"]
    assert len(pack) == 12 and pack.converted.sum() == 6 and (pack.frames <= 40).all()
    with np.load(labels / "shard-00000.npz") as shard:
        names = list(shard["names"])
    assert names[0] == "a_0" and names[1].startswith("a_0>") and names[1][4:] in ("b", "c")  # another speaker
    mel, wav = pack.clip(0)
    teacher = load_vocoder("griffinlim:2", MelConfig())(mel[None])[0]
    assert wav.shape == (mel.shape[-1] * 256,) and (wav - teacher).abs().max() < 2 / 32767
    # resumable: a finished shard is kept, a missing one is made again, the same
    before = (labels / "shard-00000.npz").stat().st_mtime_ns
    again = np.load(labels / "shard-00001.npz")["mels"]
    (labels / "shard-00001.npz").unlink()
    label_features(labels.parent / "feats", labels, teacher="griffinlim:2", checkpoint=str(tiny_bundle),
                   max_frames=40, shard_clips=4, log=lambda *_: None)
    assert (labels / "shard-00000.npz").stat().st_mtime_ns == before
    assert np.array_equal(np.load(labels / "shard-00001.npz")["mels"], again)


def test_training_lowers_the_loss_on_a_fixed_batch(labels):
    cfg = distill.load_config(None, [*TINY, "lr_schedule=constant"])
    state = distill.build_state(cfg)
    pack = LabelPack.open(labels, 256)
    mel, wav = pack.batch(4, 16, seed=0, step=0)
    mel_cfg = MelConfig()
    first = distill.train_step(state, mel, wav, cfg, mel_cfg)["loss"]
    for _ in range(15):
        last = distill.train_step(state, mel, wav, cfg, mel_cfg)["loss"]
    assert last < 0.8 * first


def test_a_run_resumes_exactly_and_exports_a_bundle_fast_loads(labels, tmp_path):
    straight = distill.train(distill.load_config(None, [*TINY, "max_steps=4"]), labels, tmp_path / "a",
                             valid=labels, log=lambda *_: None)
    distill.train(distill.load_config(None, [*TINY, "max_steps=2"]), labels, tmp_path / "b", valid=labels,
                  log=lambda *_: None)
    with pytest.raises(VcAppError, match="--resume"):
        distill.train(distill.load_config(None, [*TINY, "max_steps=4"]), labels, tmp_path / "b", log=print)
    resumed = distill.train(distill.load_config(None, [*TINY, "max_steps=4"]), labels, tmp_path / "b",
                            valid=labels, resume=True, log=lambda *_: None)
    assert resumed.step == straight.step == 4
    for (name, a), b in zip(straight.generator.state_dict().items(), resumed.generator.state_dict().values()):
        assert torch.equal(a, b), name
    assert (tmp_path / "a" / "tensorboard").is_dir() and (tmp_path / "a" / "metrics.jsonl").is_file()
    bundle = distill.export(tmp_path / "a", tmp_path / "bundle", heldout=labels)
    card = (bundle / "README.md").read_text()
    assert "4 steps on 12 labelled clips" in card and "hifigan:universal" in card and "Copy-synthesis" in card
    vocoder = load_vocoder(f"fast:{bundle}", MelConfig())
    assert torch.equal(vocoder.generator.embed.weight, straight.generator.embed.weight)


def test_a_wrong_config_is_one_sentence():
    with pytest.raises(VcAppError, match="unknown key 'max_step'"):
        distill.load_config(None, ["max_step=3"])
    with pytest.raises(VcAppError, match="Unknown loss term 'gan'"):
        distill.load_config(None, ["loss_weights={gan: 1}"])


@pytest.mark.slow
def test_the_smoke_line_of_the_recipe_runs_every_stage_and_keeps_held_out_speakers_out(tmp_path):
    """The quick smoke line of recipes/vocoder/run.sh --help, as a user pastes it, into a scratch folder."""
    import os
    import subprocess

    from conftest import REPO

    script = REPO / "recipes" / "vocoder" / "run.sh"
    lines = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True).stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Quick smoke run")) + 2
    command = [lines[start]]
    while command[-1].endswith("\\"):
        start += 1
        command.append(lines[start])
    line = "\n".join(command).replace("/tmp/vc-vocoder-smoke", str(tmp_path))
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", str(REPO))}
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    for stage in range(6):
        assert f"stage {stage}:" in done.stdout
    held_out = set(json.loads((tmp_path / "data" / "split.json").read_text())["unseen"])
    assert len(held_out) == 2
    for split in ("train", "valid"):
        names = [str(n) for p in (tmp_path / "exp" / "labels" / split).glob("*.npz") for n in np.load(p)["names"]]
        speakers = {part.rsplit("_", 1)[0] for n in names for part in n.split(">")[:1]} | {
            n.split(">")[1] for n in names if ">" in n}
        assert speakers and not speakers & held_out
    vocoder = load_vocoder(f"fast:{tmp_path / 'exp' / 'fast' / 'bundle'}", MelConfig())
    assert vocoder.generator.cfg.dim == 32
