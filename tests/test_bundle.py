"""Bundles: strict, versioned, pickle-safe; hub ids resolve through huggingface_hub offline."""

import json
import pickle
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from vc_app.bundle import load_bundle, save_bundle
from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.models import AdaINVC

from conftest import make_bundle, tiny_model_config


def test_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    model = AdaINVC(tiny_model_config()).eval()
    model.set_mel_stats(torch.full((80,), -5.0), torch.full((80,), 2.0))
    save_bundle(model, MelConfig(), tmp_path / "b", training={"steps": 7})
    assert {p.name for p in (tmp_path / "b").iterdir()} == {"model.safetensors", "config.json", "README.md"}
    bundle = load_bundle(tmp_path / "b")
    mel = torch.randn(1, 80, 40)
    with torch.no_grad():
        assert torch.allclose(model.convert(mel, model.speaker(mel)),
                              bundle.model.convert(mel, bundle.model.speaker(mel)))
    assert bundle.config["training"] == {"steps": 7} and bundle.mel == MelConfig()


def test_half_precision_bundle_loads_as_float32(tmp_path):
    model = AdaINVC(tiny_model_config())
    save_bundle(model, MelConfig(), tmp_path / "h", half=True)
    assert all(t.dtype == torch.float16 for t in load_file(str(tmp_path / "h" / "model.safetensors")).values()
               if t.is_floating_point())
    loaded = load_bundle(tmp_path / "h").model
    assert next(loaded.parameters()).dtype == torch.float32


def test_missing_and_unexpected_keys_are_named(tmp_path):
    folder = make_bundle(tmp_path / "b")
    state = load_file(str(folder / "model.safetensors"))
    state.pop("decoder.out_conv.bias")
    state["extra.weight"] = torch.zeros(1)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(VcAppError, match=r"missing keys decoder\.out_conv\.bias; unexpected keys extra\.weight"):
        load_bundle(folder)


def test_shape_mismatch_is_named(tmp_path):
    folder = make_bundle(tmp_path / "b")
    config = json.loads((folder / "config.json").read_text())
    config["model"]["c_h"] = 24
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(VcAppError, match="has shape"):
        load_bundle(folder)


def test_format_version_is_checked(tmp_path):
    folder = make_bundle(tmp_path / "b")
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(VcAppError, match="format_version 99"):
        load_bundle(folder)


def test_not_a_bundle(tmp_path):
    with pytest.raises(VcAppError, match="no config.json"):
        load_bundle(tmp_path)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file if unpickled


def test_malicious_pickle_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pt"
    with open(ckpt, "wb") as handle:
        pickle.dump({"model": _Exploit(str(marker)), "config": {}}, handle)
    with pytest.raises(VcAppError, match="weights_only=True"):
        load_bundle(ckpt)
    assert not marker.exists()


def test_plain_tensor_pickle_loads(tmp_path):
    folder = make_bundle(tmp_path / "b")
    config = json.loads((folder / "config.json").read_text())
    state = load_file(str(folder / "model.safetensors"))
    torch.save({"config": config, "model": state}, tmp_path / "ok.pt")
    assert isinstance(load_bundle(tmp_path / "ok.pt").model, AdaINVC)


def _hub_cache(cache, repo_id, files_from):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for f in files_from.iterdir():
        shutil.copy(f, snap / f.name)


def test_hub_id_resolves_from_the_cache_offline(tmp_path, monkeypatch):
    _hub_cache(tmp_path / "hub", "someone/tiny-vc", make_bundle(tmp_path / "b"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    assert isinstance(load_bundle("someone/tiny-vc").model, AdaINVC)
    with pytest.raises(VcAppError, match="not in the local cache"):
        load_bundle("someone/not-downloaded")


def test_bundle_files_are_readable_like_any_new_file(tmp_path):
    """Every file of a saved bundle gets a fresh file's permissions (the user's umask), not a writer's 0600:
    a bundle exported for others to load must be readable by them."""
    from vc_app.config import ModelConfig

    probe = tmp_path / "probe"
    probe.write_bytes(b"")
    fresh = probe.stat().st_mode & 0o777
    folder = save_bundle(AdaINVC(ModelConfig(c_h=8, c_speaker=8, c_bank=8)), MelConfig(), tmp_path / "b")
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
        name: fresh for name in ("model.safetensors", "config.json", "README.md")}
