"""`vc-app batch`: mirrors the tree, records failures, survives SIGKILL, shards, manifests."""

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, run_cli, synthetic_speech

FAST = ["--vocoder", "griffinlim:2", "--device", "cpu", "--quiet"]


def make_corpus(root: Path, n_good: int = 20) -> tuple[list[str], list[str]]:
    """n_good clips in nested folders (wav/flac/ogg, 16-48 kHz, mono/stereo) + 2 corrupt + 1 empty."""
    formats = [("wav", 16000, 1), ("flac", 22050, 2), ("ogg", 44100, 1), ("wav", 48000, 2)]
    good = []
    for i in range(n_good):
        ext, rate, channels = formats[i % len(formats)]
        rel = Path(f"spk{i % 3}") / (f"sub{i % 2}" if i % 5 else "") / f"clip{i:02d}.{ext}"
        wav = synthetic_speech(1.0 + 0.1 * (i % 4), rate, f0=100 + 7 * i, seed=i)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / rel), np.stack([wav] * channels, 1) if channels > 1 else wav, rate)
        good.append(rel.as_posix())
    (root / "spk0" / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (root / "spk1" / "notaudio.flac").write_text("hello, I am text\n" * 50)
    (root / "spk2" / "empty.ogg").write_bytes(b"")
    return good, ["spk0/broken.wav", "spk1/notaudio.flac", "spk2/empty.ogg"]


def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def outputs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*.wav")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "in"
    good, bad = make_corpus(root)
    target = root.parent / "voice.wav"
    sf.write(str(target), synthetic_speech(2.0, 22050, f0=210, seed=99), 22050)
    return root, good, bad, target


@pytest.mark.slow
def test_folder_mirrors_tree_and_lists_exactly_the_bad_files(corpus, tiny_bundle, tmp_path):
    root, good, bad, target = corpus
    before = digest(root)
    out = tmp_path / "out"
    done = run_cli("batch", str(root), "--target", str(target), "--output", str(out), "--checkpoint",
                   str(tiny_bundle), "--workers", "1", *FAST)
    assert done.returncode == 1, done.stderr
    assert f"{len(good)} converted, 0 skipped, 3 failed" in done.stdout
    assert outputs(out) == {str(Path(g).with_suffix(".wav").as_posix()) for g in good}
    for g in good[:4]:
        info = sf.info(str(out / Path(g).with_suffix(".wav")))
        assert info.samplerate == 22050 and info.channels == 1
    lines = (out / "failures.csv").read_text().splitlines()
    assert lines[0] == "line,source,output,reason" and len(lines) == 4
    failed = {Path(line.split(",")[1]).relative_to(root).as_posix(): line for line in lines[1:]}
    assert set(failed) == set(bad)
    assert all(line.split(",")[2] == Path(name).with_suffix(".wav").as_posix() for name, line in failed.items())
    assert "is empty" in failed["spk2/empty.ogg"] and "not an audio file" in failed["spk1/notaudio.flac"]
    assert digest(root) == before  # inputs untouched, nothing written inside INPUT_DIR
    again = run_cli("batch", str(root), "--target", str(target), "--output", str(out), "--checkpoint",
                    str(tiny_bundle), "--workers", "0", *FAST)
    assert f"0 converted, {len(good)} skipped, 3 failed" in again.stdout


@pytest.mark.slow
def test_killed_run_resumes_and_converts_each_file_once(corpus, tiny_bundle, tmp_path):
    root, good, _, target = corpus
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vc_app", "batch", str(root), "--target", str(target), "--output", str(out),
           "--checkpoint", str(tiny_bundle), "--workers", "0", "--vocoder", "griffinlim:64", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    deadline = time.time() + 120
    while time.time() < deadline and len(outputs(out) if out.exists() else ()) < 3:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = {name: (out / name).stat().st_mtime_ns for name in outputs(out)}
    assert 3 <= len(first) < len(good), "the run should have been killed midway"
    for name in first:  # whatever survived under a final name is a complete file
        assert sf.info(str(out / name)).frames > 0
    done = run_cli("batch", str(root), "--target", str(target), "--output", str(out), "--checkpoint",
                   str(tiny_bundle), "--workers", "0", *FAST)
    assert f"{len(good) - len(first)} converted, {len(first)} skipped, 3 failed" in done.stdout
    assert len(outputs(out)) == len(good)
    assert all((out / name).stat().st_mtime_ns == mtime for name, mtime in first.items())
    assert not list(out.rglob("*.part"))


def test_shards_cover_every_file_exactly_once(corpus, tiny_bundle, tmp_path):
    from vc_app.batch import plan_folder, shard

    root, good, bad, target = corpus
    jobs = plan_folder(root, [target], tmp_path / "out")
    parts = [shard(jobs, i, 3) for i in range(3)]
    names = [j.name for part in parts for j in part]
    assert sorted(names) == sorted(good + bad) and len(set(names)) == len(names)
    again = [[j.name for j in shard(plan_folder(root, [target], tmp_path / "o2"), i, 3)] for i in range(3)]
    assert all(parts) and again == [[j.name for j in part] for part in parts]  # deterministic


@pytest.mark.slow
def test_two_shard_processes_together_convert_everything(corpus, tiny_bundle, tmp_path):
    root, good, _, target = corpus
    out = tmp_path / "out"
    args = ["batch", str(root), "--target", str(target), "--output", str(out), "--checkpoint", str(tiny_bundle),
            "--workers", "0", *FAST]
    a, b = run_cli(*args, "--shard", "0/2"), run_cli(*args, "--shard", "1/2")
    counts = [int(r.stdout.split(" converted")[0].split()[-1]) for r in (a, b)]
    assert sum(counts) == len(good) and min(counts) > 0
    assert outputs(out) == {str(Path(g).with_suffix(".wav").as_posix()) for g in good}
    assert (out / "failures.shard-0-of-2.csv").exists() or (out / "failures.shard-1-of-2.csv").exists()


@pytest.mark.slow
def test_manifest_with_two_targets(tiny_bundle, tmp_path):
    src = tmp_path / "src.wav"
    sf.write(str(src), synthetic_speech(1.5, 22050, seed=1), 22050)
    low, high = tmp_path / "low.wav", tmp_path / "high.flac"
    sf.write(str(low), synthetic_speech(2.0, 22050, f0=90, seed=2), 22050)
    sf.write(str(high), synthetic_speech(2.0, 16000, f0=250, seed=3), 16000)
    manifest = tmp_path / "pairs.csv"
    manifest.write_text("source,target,output\nsrc.wav,low.wav,as_low.wav\nsrc.wav,high.flac;low.wav,mixed.flac\n"
                        "src.wav,high.flac,\n")
    out = tmp_path / "out"
    done = run_cli("batch", "--manifest", str(manifest), "--output", str(out), "--checkpoint", str(tiny_bundle),
                   "--format", "flac", "--workers", "0", *FAST)
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == ["as_low.wav", "mixed.flac", "src_as_high.flac"]
    a, _ = sf.read(str(out / "as_low.wav"))
    b, _ = sf.read(str(out / "src_as_high.flac"))
    assert a.shape == b.shape and not np.allclose(a, b, atol=1e-3)


@pytest.mark.parametrize("where", ["same", "inside"])
def test_output_folder_must_be_outside_the_input(corpus, tiny_bundle, where):
    root, _, _, target = corpus
    out = root if where == "same" else root / "converted"
    done = run_cli("batch", str(root), "--target", str(target), "--output", str(out), "--checkpoint",
                   str(tiny_bundle), *FAST)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "input folder" in done.stderr
    assert not (root / "converted").exists()


def test_usage_errors_are_one_sentence(corpus, tiny_bundle, tmp_path):
    root, _, _, target = corpus
    both = run_cli("batch", str(root), "--manifest", "x.csv", "--output", str(tmp_path / "o"), *FAST)
    assert both.returncode != 0 and "either INPUT_DIR" in both.stderr
    shard_bad = run_cli("batch", str(root), "--target", str(target), "--output", str(tmp_path / "o"),
                        "--shard", "2/2", *FAST)
    assert shard_bad.returncode != 0 and "--shard" in shard_bad.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = run_cli("batch", str(empty), "--target", str(target), "--output", str(tmp_path / "o"), *FAST)
    assert none.returncode != 0 and "No audio files" in none.stderr


def test_model_batches_match_one_by_one_conversion_in_length(corpus, tiny_bundle, tmp_path):
    """--batch-size N (GPU batching) converts every good clip, each at its own length, and lists the bad."""
    from vc_app.batch import plan_folder, run_batch
    from vc_app.converter import VoiceConverter

    root, good, bad, target = corpus
    converter = VoiceConverter.from_specs(str(tiny_bundle), "griffinlim:2", device="cpu")
    jobs = plan_folder(root, [target], tmp_path / "out")
    result = run_batch(lambda: converter, jobs, tmp_path / "out", workers=0, batch_size=4, progress=False)
    assert (result.converted, result.failed) == (len(good), len(bad))
    for g in good:
        src = sf.info(str(root / g))
        out = sf.info(str(tmp_path / "out" / Path(g).with_suffix(".wav")))
        assert abs(out.frames - round(src.frames * 22050 / src.samplerate)) <= 1
