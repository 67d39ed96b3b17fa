"""`vc-app convert` end to end, and every kind of bad input: one sentence, non-zero exit, nothing overwritten."""

import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from conftest import run_cli, synthetic_speech


def test_help_is_fast_and_lists_convert():
    start = time.perf_counter()
    done = run_cli("--help")
    assert done.returncode == 0 and "convert" in done.stdout
    assert time.perf_counter() - start < 5  # no torch import for --help


def test_convert_end_to_end(tiny_bundle, speech_clips, tmp_path):
    out = tmp_path / "out.wav"
    done = run_cli("convert", "--source", str(speech_clips["source"]), "--target", str(speech_clips["target"]),
                   "--target", str(speech_clips["target2"]), "--output", str(out), "--checkpoint", str(tiny_bundle),
                   "--vocoder", "griffinlim:4", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    info = sf.info(str(out))
    assert info.samplerate == 22050
    assert abs(info.frames - sf.info(str(speech_clips["source"])).frames) <= 1
    assert np.isfinite(sf.read(str(out))[0]).all()


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "text.wav").write_text("definitely not audio\n" * 20)
    (root / "empty.wav").write_bytes(b"")
    good = synthetic_speech(1.0, 22050)
    sf.write(str(root / "ok.wav"), good, 22050)
    (root / "corrupt.wav").write_bytes((root / "ok.wav").read_bytes()[:30])
    short = np.zeros(22050, np.float32)
    short[:2000] = good[:2000]
    sf.write(str(root / "short.wav"), short, 22050)
    sf.write(str(root / "silent.wav"), np.zeros(22050, np.float32), 22050)
    return root


@pytest.mark.parametrize("source,target,message", [
    ("missing.wav", "ok.wav", "does not exist"),
    ("text.wav", "ok.wav", "not an audio file"),
    ("empty.wav", "ok.wav", "is empty"),
    ("corrupt.wav", "ok.wav", "not an audio file"),
    ("short.wav", "ok.wav", "at least 0.3 s"),
    ("ok.wav", "silent.wav", "is silent"),
])
def test_bad_input_gives_one_sentence(tiny_bundle, bad_inputs, tmp_path, source, target, message):
    out = tmp_path / "out.wav"
    done = run_cli("convert", "--source", str(bad_inputs / source), "--target", str(bad_inputs / target),
                   "--output", str(out), "--checkpoint", str(tiny_bundle), "--vocoder", "griffinlim:2")
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_output_rules(tiny_bundle, bad_inputs, tmp_path):
    ok = str(bad_inputs / "ok.wav")
    common = ["--checkpoint", str(tiny_bundle), "--vocoder", "griffinlim:2"]
    before = (bad_inputs / "ok.wav").read_bytes()
    same = run_cli("convert", "--source", ok, "--target", ok, "--output", ok, "--overwrite", *common)
    assert same.returncode != 0 and "one of the inputs" in same.stderr
    assert (bad_inputs / "ok.wav").read_bytes() == before
    existing = tmp_path / "exists.wav"
    existing.write_bytes(b"keep me")
    kept = run_cli("convert", "--source", ok, "--target", ok, "--output", str(existing), *common)
    assert kept.returncode != 0 and "--overwrite" in kept.stderr and existing.read_bytes() == b"keep me"
    replaced = run_cli("convert", "--source", ok, "--target", ok, "--output", str(existing), "--overwrite", *common)
    assert replaced.returncode == 0, replaced.stderr and existing.read_bytes() != b"keep me"
    nowhere = run_cli("convert", "--source", ok, "--target", ok, "--output", str(tmp_path / "no" / "x.wav"), *common)
    assert nowhere.returncode != 0 and "does not exist" in nowhere.stderr
    # /sys refuses new files even for root: an unwritable output folder
    denied = run_cli("convert", "--source", ok, "--target", ok, "--output", "/sys/vc_app_test.wav", *common)
    assert denied.returncode != 0 and "Cannot write" in denied.stderr and "Traceback" not in denied.stderr


def test_bad_output_is_refused_before_pytorch_loads(bad_inputs, tmp_path):
    """A bad --output costs a fraction of a second: it is refused before torch (or the model) is imported."""
    ok = str(bad_inputs / "ok.wav")
    existing = tmp_path / "exists.wav"
    existing.write_bytes(b"keep me")
    code = ("import sys; from vc_app.cli import main; "
            "rc = main(['convert', '--source', sys.argv[1], '--target', sys.argv[1], '--output', sys.argv[2]]); "
            "print(rc, 'torch' in sys.modules)")
    for output, message in [(existing, "--overwrite"), (tmp_path / "no" / "x.wav", "does not exist"),
                            (tmp_path / "x.mp3", ".wav, .flac or .ogg"), (ok, "one of the inputs")]:
        done = subprocess.run([sys.executable, "-c", code, ok, str(output)], capture_output=True, text=True)
        assert done.stdout.split() == ["1", "False"], (output, done.stdout, done.stderr)
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.wav"]  # the write probe left nothing


def test_missing_checkpoint_and_bad_vocoder(bad_inputs, tmp_path, tiny_bundle):
    ok = str(bad_inputs / "ok.wav")
    nockpt = run_cli("convert", "--source", ok, "--target", ok, "--output", str(tmp_path / "o.wav"),
                     "--checkpoint", str(tmp_path / "nothing-here"))
    assert nockpt.returncode != 0 and "Traceback" not in nockpt.stderr
    badvoc = run_cli("convert", "--source", ok, "--target", ok, "--output", str(tmp_path / "o.wav"),
                     "--checkpoint", str(tiny_bundle), "--vocoder", "nonsense")
    assert badvoc.returncode != 0 and "Unknown vocoder" in badvoc.stderr
