"""The shipped default model: present, small, documented, and it converts towards the target voice."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, run_cli

EXAMPLES = REPO / "vc_app" / "examples"


@pytest.fixture(scope="module")
def default_bundle() -> Path:
    from vc_app.bundle import CHECKPOINT_ENV, DEFAULT_BUNDLE, checkpoints_dir

    folder = checkpoints_dir() / DEFAULT_BUNDLE
    assert folder == REPO / "checkpoints" / DEFAULT_BUNDLE and CHECKPOINT_ENV not in os.environ
    return folder


def assert_complete_small_and_documented(folder: Path) -> None:
    from vc_app.bundle import load_bundle

    files = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "README.md"} <= files
    assert sum(p.stat().st_size for p in folder.iterdir()) < 50e6
    bundle = load_bundle(folder)  # strict: every tensor present, no extra
    config = json.loads((folder / "config.json").read_text())
    assert config["training"]["steps"] >= 1000 and bundle.mel.n_mels == 80
    card = (folder / "README.md").read_text()
    steps = config["training"].get("total_steps", config["training"]["steps"])  # counting `--init-from` runs
    assert f"steps: {steps}" in card  # the card describes these weights, not other ones
    for measured in ("closer to the target", "WER", "probe", "vc-app evaluate"):
        assert measured in card, measured


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "checkpoints").iterdir() if p.is_dir()))
def test_every_bundle_in_checkpoints_is_complete_small_and_documented(name):
    """Every bundle in checkpoints/ (the default, and the others the UI lists) loads strictly and carries its card."""
    assert_complete_small_and_documented(REPO / "checkpoints" / name)
    assert f"checkpoints/{name}/" in (REPO / "README.md").read_text()  # and the README says what each is for


def test_cli_uses_the_shipped_model_by_default(default_bundle, tmp_path):
    """No --checkpoint, no --vocoder, no download: an example source (real speech) in an example target's voice
    through the default vocoder, the packaged HiFi-GAN universal, at the source's length."""
    out = tmp_path / "converted.wav"
    done = run_cli("convert", "--source", str(EXAMPLES / "vctk_p226_source.flac"), "--target",
                   str(EXAMPLES / "arctic_slt_target.flac"), "--output", str(out), "--device", "cpu",
                   env={k: v for k, v in os.environ.items() if k != "VC_APP_CHECKPOINT"} | {"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert "Griffin-Lim instead" not in done.stderr  # the default vocoder was there, offline
    wav, rate = sf.read(str(out))
    src = sf.info(str(EXAMPLES / "vctk_p226_source.flac"))
    assert rate == 22050 and abs(len(wav) - round(src.frames * 22050 / src.samplerate)) <= 1
    assert np.isfinite(wav).all() and 0.01 < np.abs(wav).max() <= 1.0


def test_conversion_moves_the_voice_towards_the_target(default_bundle):
    """Resemblyzer d-vectors: the converted clip is closer to the target than to the source, and nearer the
    target voice than the source clip itself was."""
    pytest.importorskip("resemblyzer", reason="needs the eval extra")
    from vc_app.converter import VoiceConverter
    from vc_app.evaluate.similarity import SpeakerSimilarity, cosine

    converter = VoiceConverter.from_specs(str(default_bundle), "griffinlim", device="cpu")
    embed = SpeakerSimilarity()
    margins, gains = [], []
    from vc_app.examples import PAIRS

    for source, target, _ in PAIRS[:2]:
        converted = converter.convert(EXAMPLES / source, [EXAMPLES / target])
        e_conv = embed.embed(converted, converter.sample_rate)
        e_src, e_tgt = embed.embed_file(str(EXAMPLES / source)), embed.embed_file(str(EXAMPLES / target))
        margins.append(cosine(e_conv, e_tgt) - cosine(e_conv, e_src))
        gains.append(cosine(e_conv, e_tgt) - cosine(e_src, e_tgt))
    assert min(margins) > 0 and min(gains) > 0, (margins, gains)


def test_wheel_install_finds_the_shipped_model_under_the_prefix(tmp_path, monkeypatch):
    """Without a checkout beside the package, the bundles come from <prefix>/share/vc-app/checkpoints."""
    import vc_app.bundle as bundle

    package = tmp_path / "site-packages" / "vc_app"
    package.mkdir(parents=True)
    installed = tmp_path / "prefix" / "share" / "vc-app" / "checkpoints" / bundle.DEFAULT_BUNDLE
    installed.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (installed / name).write_bytes(b"{}")
    monkeypatch.setattr(bundle, "__file__", str(package / "bundle.py"))
    monkeypatch.setattr(bundle.sys, "prefix", str(tmp_path / "prefix"))
    monkeypatch.delenv(bundle.CHECKPOINT_ENV, raising=False)
    assert bundle.default_checkpoint() == str(installed)
    assert bundle.list_local_bundles() == [installed]


@pytest.mark.slow
def test_wheel_carries_the_shipped_model(tmp_path):
    """`pip install .` (not only `-e`) must give a working default: the wheel holds the bundle's files."""
    import subprocess
    import sys
    import zipfile

    pytest.importorskip("setuptools")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    wheel, = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {p.name for p in (REPO / "checkpoints" / "adainvc-speech14").iterdir()}
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    assert {f"share/vc-app/checkpoints/adainvc-speech14/{name}" for name in shipped} <= data
