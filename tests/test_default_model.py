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
    """Every bundle in checkpoints/ (the default, and the others the UI lists) loads strictly and carries its card,
    and docs/models.md, the one list of models, links that card. Numbers live in the card only."""
    assert_complete_small_and_documented(REPO / "checkpoints" / name)
    assert f"(../checkpoints/{name}/README.md)" in (REPO / "docs" / "models.md").read_text()


def test_the_wheel_ships_the_default_bundle():
    """pyproject.toml's data-files entry names the bundle vc_app.bundle uses by default, so a new default is
    `DEFAULT_BUNDLE` and that entry, nothing else."""
    from vc_app.bundle import DEFAULT_BUNDLE

    entry = f'"share/vc-app/checkpoints/{DEFAULT_BUNDLE}" = ["checkpoints/{DEFAULT_BUNDLE}/*"]'
    assert entry in (REPO / "pyproject.toml").read_text()


def readme_first_conversion() -> list[str]:
    """The first `vc-app convert` of the README's *Convert a clip* section: the examples' pair, no options."""
    from test_docs import commands

    section = (REPO / "README.md").read_text().split("\n## Convert a clip\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return next(c for c in commands(block) if c[:2] == ["vc-app", "convert"])


def test_cli_uses_the_shipped_model_by_default(default_bundle, tmp_path):
    """The README's first conversion, as written (its relative paths from the checkout): no --checkpoint, no
    --vocoder, no download; an example source (real speech) in an example target's voice through the default
    vocoder, the packaged HiFi-GAN universal, at the source's length."""
    args = readme_first_conversion()[1:]
    source, target, output = (args[args.index(flag) + 1] for flag in ("--source", "--target", "--output"))
    assert sorted(args[1::2]) == ["--output", "--source", "--target"] and source.startswith("vc_app/examples/")
    out = tmp_path / output
    args[args.index("--output") + 1] = str(out)
    done = run_cli(*args, "--device", "cpu",  # run_cli works in the checkout
                   env={k: v for k, v in os.environ.items() if k != "VC_APP_CHECKPOINT"} | {"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert "Griffin-Lim instead" not in done.stderr  # the default vocoder was there, offline
    wav, rate = sf.read(str(out))
    src = sf.info(str(REPO / source))
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
        converted = converter.convert(EXAMPLES / source, converter.voice([EXAMPLES / target]))
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
    from vc_app.bundle import DEFAULT_BUNDLE

    shipped = {p.name for p in (REPO / "checkpoints" / DEFAULT_BUNDLE).iterdir()}
    data = {n.split(".data/data/", 1)[1] for n in names if ".data/data/" in n}
    assert {f"share/vc-app/checkpoints/{DEFAULT_BUNDLE}/{name}" for name in shipped} <= data
