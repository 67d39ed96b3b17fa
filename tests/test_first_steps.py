"""A new user's first commands: bad inputs refused at once (before PyTorch loads), a finished batch resumed
without the model, symlinked folders followed, `--debug` anywhere, `--threads`, progress on a terminal."""

from __future__ import annotations

import csv
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import REPO, run_cli, synthetic_speech

FAST = ["--vocoder", "griffinlim:2", "--device", "cpu"]


def run_in_process(args: list[str]) -> tuple[int, bool, str, str]:
    """`vc-app ARGS` through `vc_app.cli.main` in a fresh interpreter: (exit code, torch imported?, stdout, stderr)."""
    code = ("import json, sys; from vc_app.cli import main; rc = main(json.loads(sys.argv[1])); "
            "print(json.dumps([rc, 'torch' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True,
                          cwd=str(REPO), env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    *out, last = done.stdout.strip().splitlines() or [""]
    rc, torch_loaded = json.loads(last)
    return rc, torch_loaded, "\n".join(out), done.stderr


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    good = synthetic_speech(1.5, 22050)
    sf.write(str(root / "ok.wav"), good, 22050)
    (root / "text.wav").write_text("not audio\n" * 20)
    (root / "empty.wav").write_bytes(b"")
    short = np.zeros(22050, np.float32)
    short[:2000] = good[:2000]
    sf.write(str(root / "short.flac"), short, 22050)
    sf.write(str(root / "silent.ogg"), np.zeros(44100, np.float32), 44100)
    (root / "folder.wav").mkdir()
    return root


def test_bad_inputs_are_refused_before_pytorch_loads(clips, tmp_path):
    """Each needs no model: one sentence from numpy and soundfile alone, in a fraction of a second."""
    cases = {"missing.wav": "does not exist", "folder.wav": "is a folder", "empty.wav": "is empty",
             "text.wav": "not an audio file", "short.flac": "at least 0.3 s is needed", "silent.ogg": "is silent"}
    code = ("import json, sys; from vc_app.cli import main\n"
            "cases, ok, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
            "for bad in cases:\n"
            "    for args in (['--source', bad, '--target', ok], ['--source', ok, '--target', bad]):\n"
            "        print(main(['convert', *args, '--output', out]), file=sys.stderr)\n"
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, json.dumps([str(clips / name) for name in cases]),
                           str(clips / "ok.wav"), str(tmp_path / "out.wav")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.stdout.strip() == "False", done.stderr  # PyTorch was never imported
    lines = done.stderr.strip().splitlines()
    assert lines[1::2] == ["1"] * 2 * len(cases), done.stderr
    messages = lines[0::2]
    for i, (name, message) in enumerate(cases.items()):
        as_source, as_target = messages[2 * i], messages[2 * i + 1]
        assert message in as_source and message in as_target and name in as_source, (name, as_source, as_target)
    assert "vc-app: error: The target clip silent.ogg is silent." in messages
    assert not (tmp_path / "out.wav").exists()


def test_debug_works_after_the_command_too(clips, tmp_path):
    args = ["--source", str(clips / "missing.wav"), "--target", str(clips / "ok.wav"), "--output",
            str(tmp_path / "o.wav")]
    plain = run_cli("convert", *args)
    assert plain.returncode == 1 and len(plain.stderr.strip().splitlines()) == 1
    for debug in (["--debug", "convert", *args], ["convert", *args, "--debug"]):
        done = run_cli(*debug)
        assert done.returncode == 1 and "Traceback" in done.stderr and "missing.wav does not exist" in done.stderr


def test_threads_option(clips, tiny_bundle, tmp_path):
    """--threads is applied; beyond the cores there are it is lowered to them with one notice (100 000 crashed
    PyTorch, 10 000 took minutes instead of seconds)."""
    from vc_app.devices import usable_cores

    ok = str(clips / "ok.wav")
    refused = run_cli("convert", "--source", ok, "--target", ok, "--output", str(tmp_path / "o.wav"), "--threads", "0")
    assert refused.returncode == 1 and "--threads must be at least 1" in refused.stderr
    code = ("import sys; from vc_app.cli import main; import torch; "
            "rc = main(sys.argv[1:]); print(rc, torch.get_num_threads())")
    (tmp_path / "in").mkdir()
    sf.write(str(tmp_path / "in" / "a.wav"), synthetic_speech(1.0, 16000), 16000)
    cores = usable_cores()
    for command, threads, expected in (
            (["convert", "--source", ok, "--target", ok, "--output", str(tmp_path / "o.wav")], "100000", cores),
            (["batch", str(tmp_path / "in"), "--target", ok, "--output", str(tmp_path / "b"), "--quiet"], "1", 1)):
        done = subprocess.run([sys.executable, "-c", code, *command, "--threads", threads, "--checkpoint",
                               str(tiny_bundle), *FAST], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
        assert done.stdout.split()[-2:] == ["0", str(expected)], done.stderr
        notice = (f"vc-app: notice: --threads 100000 is more than the {cores} CPU cores this process may use; "
                  f"using {cores}.")
        assert done.stderr.splitlines() == ([notice] if threads == "100000" else []), done.stderr


def test_default_threads_leave_busy_cores_to_other_work(monkeypatch):
    """Without --threads, PyTorch gets the cores other work is not keeping busy (on a busy 2-core machine its own
    default, two threads, converted 3-7x slower than one), never more than its own choice."""
    import torch

    from vc_app import devices
    from vc_app.commands.options import apply_threads

    def machine(cores: int, load: float) -> None:
        monkeypatch.setattr(devices.os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
        monkeypatch.setattr(devices.os, "getloadavg", lambda: (load, load, load))

    for cores, load, torch_default, expected in ((2, 2.1, 2, 1), (2, 1.0, 2, 1), (2, 0.1, 2, 2), (8, 3.0, 8, 5),
                                                 (16, 0.0, 8, 8), (4, 9.0, 4, 1)):
        machine(cores, load)
        assert devices.default_threads(torch_default) == expected, (cores, load, torch_default)
    before = torch.get_num_threads()
    try:
        machine(2, 2.0)
        assert apply_threads(None) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_output_folders_and_unwritable_places_get_a_true_sentence_before_pytorch(clips, tmp_path):
    """An existing folder is refused with or without --overwrite (which cannot help, so it is not suggested);
    a file where a folder should be, and a folder that accepts no files, are named as such."""
    ok = str(clips / "ok.wav")
    (tmp_path / "outdir").mkdir()
    (tmp_path / "full.wav").write_bytes(b"keep me")
    cases = [([str(tmp_path / "outdir")], f"The output {tmp_path / 'outdir'} is a folder; give a file name"),
             ([str(tmp_path / "outdir"), "--overwrite"], "is a folder; give a file name"),
             ([str(tmp_path / "full.wav" / "x.wav")], f"{tmp_path / 'full.wav'} is a file, not a folder."),
             ([str(tmp_path / "full.wav" / "a" / "x.wav")], f"{tmp_path / 'full.wav'} is a file, not a folder."),
             ([str(tmp_path / "none" / "x.wav")], f"the folder {tmp_path / 'none'} does not exist."),
             (["/proc/vc_app_test.wav"], "Cannot write in /proc: it is a special folder that accepts no new files.")]
    for output, message in cases:
        rc, torch_loaded, _, stderr = run_in_process(["convert", "--source", ok, "--target", ok, "--output", *output])
        assert (rc, torch_loaded) == (1, False), (output, stderr)
        assert message in stderr and len(stderr.strip().splitlines()) == 1, (output, stderr)
        assert "--overwrite" not in stderr and "No such file" not in stderr, (output, stderr)
    assert (tmp_path / "full.wav").read_bytes() == b"keep me" and not any((tmp_path / "outdir").iterdir())


def test_a_checkpoint_of_random_bytes_gets_a_whole_sentence(clips, tmp_path):
    """Not torch's paragraph cut off mid-word ("Re-running `torch.)."): what the file is, and the reason."""
    from vc_app.errors import VcAppError
    from vc_app.state_dicts import torch_load_plain

    noise = np.random.default_rng(0).bytes(4096)
    (tmp_path / "random.pt").write_bytes(noise)
    ok = str(clips / "ok.wav")
    done = run_cli("convert", "--source", ok, "--target", ok, "--output", str(tmp_path / "o.wav"), "--checkpoint",
                   str(tmp_path / "random.pt"), *FAST)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.strip() == (f"vc-app: error: Cannot load {tmp_path / 'random.pt'}: it is not a PyTorch "
                                   "checkpoint (torch.save writes a zip archive or a pickle, and this is neither).")
    for seed in range(8):  # a pickle's first bytes, then garbage: torch's weights-only refusal, or another error
        (tmp_path / "damaged.pt").write_bytes(b"\x80\x02" + np.random.default_rng(seed).bytes(4096))
        with pytest.raises(VcAppError) as refused:
            torch_load_plain(tmp_path / "damaged.pt")
        sentence = str(refused.value)
        assert sentence.startswith(f"Cannot load {tmp_path / 'damaged.pt'}: it is damaged, or holds more than")
        assert sentence.endswith(").") and "Re-running" not in sentence and "\n" not in sentence, sentence


@pytest.mark.slow
def test_voice_names_with_or_without_the_suffix(clips, tiny_bundle, tmp_path):
    """`voice create alice.voice` makes alice.voice (not alice.voice.voice); `voice show alice` finds it in the
    voices folder; a voice in neither place is one sentence pointing to `vc-app voice list`."""
    voices = tmp_path / "voices"
    env = {"VC_APP_VOICES_DIR": str(voices)}
    made = run_cli("voice", "create", "alice.voice", "--target", str(clips / "ok.wav"), "--checkpoint",
                   str(tiny_bundle), "--device", "cpu", env=env)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in voices.iterdir()) == ["alice.voice"]
    for name in ("alice", "alice.voice"):
        shown = run_cli("voice", "show", name, env=env)
        assert shown.returncode == 0 and f"file: {voices / 'alice.voice'}" in " ".join(shown.stdout.split()), shown
    missing = run_cli("voice", "show", "bob", env=env)
    assert missing.returncode == 1 and missing.stderr.strip() == (
        f"vc-app: error: There is no voice file bob here or in the voices folder {voices}; vc-app voice list shows "
        "the voices there.")


@pytest.mark.slow
def test_manifest_failures_name_line_source_and_output_and_resume_without_the_model(clips, tiny_bundle, tmp_path):
    """failures.csv names each failed row (a source used in two rows stays unambiguous) with the paths the
    manifest gave; a resume whose remaining rows are known failures (a missing target) loads no model."""
    work = tmp_path / "work"
    (work / "in").mkdir(parents=True)
    sf.write(str(work / "in" / "a.wav"), synthetic_speech(1.0, 22050, seed=5), 22050)
    manifest = work / "pairs.csv"
    manifest.write_text("source,target,output\n"
                        f"in/a.wav,{clips / 'ok.wav'},good.wav\n"
                        "in/a.wav,gone.wav,bad.wav\n"
                        "in/missing.wav,in/a.wav,\n")
    out = tmp_path / "out"
    args = ["batch", "--manifest", str(manifest), "--output", str(out), "--checkpoint", str(tiny_bundle), *FAST]
    first = run_cli(*args, "--quiet")
    assert first.returncode == 1 and "1 converted, 0 skipped, 2 failed" in first.stdout, first.stderr
    with open(out / "failures.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["line", "source", "output", "reason"]
    assert [row[:3] for row in rows[1:]] == [["3", "in/a.wav", "bad.wav"], ["4", "in/missing.wav", "missing_as_a.wav"]]
    assert "gone.wav does not exist" in rows[1][3] and "missing.wav does not exist" in rows[2][3]
    rc, torch_loaded, stdout, stderr = run_in_process([*args, "--quiet"])
    assert (rc, torch_loaded) == (1, False), stderr
    assert "0 converted, 1 skipped, 2 failed" in stdout
    with open(out / "failures.csv", newline="") as handle:
        again = list(csv.reader(handle))
    assert [row[:3] for row in again] == [row[:3] for row in rows] and "gone.wav does not exist" in again[1][3]


@pytest.fixture
def linked_corpus(tmp_path) -> tuple[Path, Path]:
    """INPUT_DIR with one real clip, a symlinked folder of two more (one flac), a link loop, a broken link
    and a silent clip; and a target clip."""
    elsewhere, root = tmp_path / "elsewhere", tmp_path / "in"
    elsewhere.mkdir()
    (root / "real").mkdir(parents=True)
    sf.write(str(root / "real" / "a.wav"), synthetic_speech(1.0, 22050, seed=1), 22050)
    sf.write(str(elsewhere / "b.wav"), synthetic_speech(1.2, 16000, seed=2), 16000)
    sf.write(str(elsewhere / "c.flac"), synthetic_speech(1.1, 44100, seed=3), 44100)
    sf.write(str(root / "real" / "silent.wav"), np.zeros(22050, np.float32), 22050)
    os.symlink(elsewhere, root / "linked", target_is_directory=True)
    os.symlink(root, root / "real" / "loop", target_is_directory=True)
    os.symlink(tmp_path / "gone.wav", root / "real" / "gone.wav")
    target = tmp_path / "voice.wav"
    sf.write(str(target), synthetic_speech(2.0, 22050, f0=210, seed=9), 22050)
    return root, target


@pytest.mark.slow
def test_batch_follows_symlinked_folders_writes_ogg_and_resumes_without_the_model(linked_corpus, tiny_bundle,
                                                                                    tmp_path):
    root, target = linked_corpus
    out = tmp_path / "out"
    args = ["batch", str(root), "--target", str(target), "--output", str(out), "--format", "ogg",
            "--checkpoint", str(tiny_bundle), *FAST]
    first = run_cli(*args, "--quiet")
    assert first.returncode == 1, first.stderr  # the silent clip fails; everything else is converted
    assert "3 converted, 0 skipped, 1 failed" in first.stdout
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.ogg"))
    assert written == ["linked/b.ogg", "linked/c.ogg", "real/a.ogg"]
    assert all(sf.info(str(out / name)).format == "OGG" for name in written)
    warnings = [line for line in first.stderr.splitlines() if line.startswith("vc-app: warning:")]
    assert warnings == [f"vc-app: warning: skipped {root / 'real' / 'gone.wav'}: a broken link",
                        f"vc-app: warning: skipped {root / 'real' / 'loop'}: a link back to a folder above it"]

    # resuming: the outputs are there and the one clip left is silent, so no model (nor PyTorch) is needed,
    # and no progress bar is drawn (progress is on: no --quiet)
    rc, torch_loaded, stdout, stderr = run_in_process(args)
    assert (rc, torch_loaded) == (1, False), stderr
    assert "0 converted, 3 skipped, 1 failed" in stdout
    assert stderr.splitlines() == warnings
    assert "silent.wav is silent" in (out / "failures.csv").read_text()
    (root / "real" / "silent.wav").unlink()
    rc, torch_loaded, stdout, stderr = run_in_process(args)
    assert (rc, torch_loaded, stderr.splitlines()) == (0, False, warnings)
    assert "0 converted, 3 skipped, 0 failed" in stdout and not (out / "failures.csv").exists()


@pytest.mark.slow
def test_long_convert_shows_chunks_and_eta_on_a_terminal_only(tiny_bundle, tmp_path):
    source = tmp_path / "long.wav"
    sf.write(str(source), synthetic_speech(45.0, 16000, seed=4), 16000)  # three 20 s chunks
    target = tmp_path / "voice.wav"
    sf.write(str(target), synthetic_speech(2.0, 22050, f0=210, seed=9), 22050)
    args = [sys.executable, "-m", "vc_app", "convert", "--source", str(source), "--target", str(target),
            "--checkpoint", str(tiny_bundle), *FAST]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    piped = subprocess.run([*args, "--output", str(tmp_path / "a.wav")], capture_output=True, text=True, env=env,
                           timeout=300)
    assert piped.returncode == 0 and piped.stderr == ""  # quiet when stderr is not a terminal
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100-column terminal
    proc = subprocess.Popen([*args, "--output", str(tmp_path / "b.wav")], stdout=subprocess.DEVNULL,
                            stderr=follower, env=env)
    os.close(follower)
    shown = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the process closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert proc.wait(timeout=300) == 0
    text = shown.decode(errors="replace")
    assert "3/3" in text and "chunk" in text and "converting 0.8 min" in text, text
    assert sf.info(str(tmp_path / "b.wav")).frames == sf.info(str(tmp_path / "a.wav")).frames
