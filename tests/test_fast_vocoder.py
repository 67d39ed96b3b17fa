"""The `fast` vocoder: a ConvNeXt + inverse-STFT generator in a bundle folder (config.json, model.safetensors,
README.md). Tiny random generators are saved in the real layout and loaded through `load_vocoder`, as users do."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from vc_app.config import MelConfig
from vc_app.errors import VcAppError
from vc_app.vocoders import fast, load_vocoder, vocoder_availability, vocoder_choices
from vc_app.vocoders.convnext_istft import ConvNeXtISTFTConfig, ConvNeXtISTFTGenerator
from vc_app.vocoders.neural import NeuralVocoder

from conftest import assert_joins_leave_no_seam, run_cli, speech_mel, synthetic_speech

TINY = ConvNeXtISTFTConfig(dim=32, intermediate_dim=64, layers=2)


def write_tiny(folder, cfg: ConvNeXtISTFTConfig = TINY, seed: int = 0):
    torch.manual_seed(seed)
    return fast.save_fast_vocoder(ConvNeXtISTFTGenerator(cfg), MelConfig(), folder, training={"steps": 0})


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """ONNX exports go to a fresh user cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_a_bundle_folder_loads_strictly_and_runs_under_onnx_runtime_like_pytorch(tmp_path, own_cache):
    folder = write_tiny(tmp_path / "fast")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["generator"]["dim"] == 32 and config["mel"]["hop_length"] == 256
    vocoder = load_vocoder(f"fast:{folder}", MelConfig())
    assert vocoder.name == f"fast:{folder}" and vocoder.backend == "onnxruntime"
    torch.manual_seed(0)
    saved = ConvNeXtISTFTGenerator(TINY)
    assert torch.equal(vocoder.generator.blocks[1].pwconv1.weight, saved.blocks[1].pwconv1.weight)
    mel = speech_mel(1.0)
    wav = vocoder(mel)
    assert wav.shape == (1, mel.shape[-1] * 256) and wav.abs().max() <= 1.0 and wav.std() > 0
    in_torch = fast.load(folder, MelConfig(), name="fast", onnx=False)(mel)
    assert (wav - in_torch).abs().max() < 1e-4
    assert vocoder_availability(f"fast:{folder}") == (True, "")


def test_the_inverse_stft_puts_frames_where_our_mel_frames_are():
    """Our framing (reflect pad (n_fft - hop) / 2, STFT without centring) inverts to the same samples."""
    wav = torch.from_numpy(synthetic_speech(0.5, 22050)).float()[None]
    padded = torch.nn.functional.pad(wav[:, None], (384, 384), mode="reflect")[:, 0]
    spec = torch.stft(padded, 1024, 256, 1024, torch.hann_window(1024), center=False, return_complex=True)
    back = ConvNeXtISTFTGenerator(TINY).istft(spec.transpose(1, 2))[:, 0]
    assert back.shape[-1] == spec.shape[-1] * 256
    assert (back - wav[:, : back.shape[-1]]).abs().max() < 1e-5


def test_the_shipped_name_says_when_it_is_not_trained_and_loads_when_it_is(tmp_path, monkeypatch):
    monkeypatch.setattr(fast, "default_folder", lambda: tmp_path / "vocoder-fast")
    with pytest.raises(VcAppError, match="not trained yet.*fast:FOLDER"):
        load_vocoder("fast", MelConfig())
    assert vocoder_availability("fast") == (False, "not trained yet")
    assert ("fast", False, "not trained yet") in vocoder_choices()  # the UI menu offers it, marked unavailable
    write_tiny(tmp_path / "vocoder-fast")
    assert load_vocoder("fast", MelConfig(), device="cpu").name == "fast"
    assert vocoder_availability("fast") == (True, "")


@pytest.mark.parametrize("damage, message", [
    ("no weights", "lacks model.safetensors"),
    ("no config", "lacks config.json"),
    ("damaged weights", "damaged or not a safetensors file"),
    ("bad json", "is not valid JSON"),
    ("other mel", r"another mel recipe \(fmax 11025 Hz where ours is 8000 Hz\)"),
    ("other sizes", "do not fit its config.*shape"),
    ("unknown size", "invalid.*unknown field 'depth'"),
    ("not a folder", "is not a folder"),
])
def test_a_bad_folder_is_one_sentence(tmp_path, damage, message):
    folder = write_tiny(tmp_path / "fast")
    config = json.loads((folder / "config.json").read_text())
    if damage == "no weights":
        (folder / "model.safetensors").unlink()
    elif damage == "no config":
        (folder / "config.json").unlink()
    elif damage == "damaged weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "bad json":
        (folder / "config.json").write_text("{not json")
    elif damage in ("other mel", "other sizes", "unknown size"):
        if damage == "other mel":
            config["mel"]["f_max"] = 11025.0
        elif damage == "other sizes":
            config["generator"]["dim"] = 48
        else:
            config["generator"]["depth"] = 3
        (folder / "config.json").write_text(json.dumps(config))
    else:
        folder = tmp_path / "nowhere"
    with pytest.raises(VcAppError, match=message) as raised:
        load_vocoder(f"fast:{folder}", MelConfig())
    assert "\n" not in str(raised.value)


def test_windowed_vocoding_matches_one_pass_and_leaves_no_seam(tmp_path):
    """Windows of 96 frames with the context the config gives: equal to one pass, joins included (-40 dB)."""
    folder = write_tiny(tmp_path / "fast", ConvNeXtISTFTConfig(dim=32, intermediate_dim=64, layers=4))
    vocoder = fast.load(folder, MelConfig(), name="fast", onnx=False)
    mel = speech_mel(4.0)  # 345 frames: three joins
    whole = vocoder(mel)[0]
    windowed = NeuralVocoder(vocoder.generator, name="windows", mel=MelConfig(), chunk_frames=96,
                             context_frames=vocoder.context_frames)(mel)[0]
    assert_joins_leave_no_seam(whole, windowed, (96, 192, 288))


def test_the_cli_names_it_and_vocodes_with_a_folder(tmp_path):
    assert "fast" in run_cli("convert", "--help").stdout
    folder = write_tiny(tmp_path / "fast")
    clip = tmp_path / "clip.wav"
    sf.write(str(clip), synthetic_speech(1.3, 22050), 22050)
    out = tmp_path / "resynth.wav"
    done = run_cli("vocode", "--input", str(clip), "--vocoder", f"fast:{folder}", "--output", str(out),
                   "--device", "cpu", env={"XDG_CACHE_HOME": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert sf.info(str(out)).frames == sf.info(str(clip)).frames


def test_a_shipped_fast_vocoder_is_not_offered_as_a_model(tmp_path, monkeypatch):
    from vc_app import bundle
    from vc_app.config import ModelConfig
    from vc_app.models import AdaINVC

    write_tiny(tmp_path / "vocoder-fast")
    bundle.save_bundle(AdaINVC(ModelConfig()), MelConfig(), tmp_path / "model")
    monkeypatch.setattr(bundle, "checkpoints_dir", lambda: tmp_path)
    assert bundle.list_local_bundles() == [tmp_path / "model"]
