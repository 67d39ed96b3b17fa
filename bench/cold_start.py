"""How long a new user waits: cold `vc-app convert`, bad inputs, a finished batch resumed, the web UI's first
conversion. Every number is the wall time of a fresh process, as a user sees it.

    python bench/cold_start.py [--vocoder SPEC ...] [--repeats 3] [--no-ui] [--cpus 0,1]

Targets (2 CPU cores): `vc-app convert` of a 3 s clip <= 8 s cold; a bad input that needs no model refused
in < 1 s; a batch resume with nothing to do < 2 s; the UI's first conversion after start <= 2x a warm one.
The breakdown of a cold convert (interpreter start, imports, model + vocoder load, compute, exit) comes from
the same CLI path with its two library calls timed. Since the machine may be shared, `python -c "import
torch"` is timed in the same run as a baseline: the part of a cold start no change here can remove.
Vocoders: Griffin-Lim and the default (when it differs and its weights are available), or those given;
each with PyTorch's default threads (one per core) and with --threads 1 (quicker on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Runs the real CLI in a fresh interpreter, timing its two library calls from outside the library.
PROBE = """
import json, sys, time
marks = {"start": time.time()}
import vc_app.cli, vc_app.converter
marks["imported"] = time.time()
C = vc_app.converter.VoiceConverter
load, voice, convert = C.from_specs.__func__, C.voice, C.convert
def timed_load(cls, *a, **k):
    marks["load_start"] = time.time(); out = load(cls, *a, **k); marks["loaded"] = time.time(); return out
def timed_voice(self, *a, **k):  # the target's analysis starts the compute
    marks["convert_start"] = time.time(); return voice(self, *a, **k)
def timed_convert(self, *a, **k):
    out = convert(self, *a, **k); marks["converted"] = time.time(); return out
C.from_specs, C.voice, C.convert = classmethod(timed_load), timed_voice, timed_convert
rc = vc_app.cli.main(sys.argv[2:])
marks["done"] = time.time()
open(sys.argv[1], "w").write(json.dumps([rc, marks]))
"""


def wall(cmd: list[str], *, env: dict | None = None, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    """Seconds from spawning `cmd` to its exit, and its result."""
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(REPO))
    seconds = time.perf_counter() - start
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])}... failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done


def median(fn, repeats: int) -> float:
    return statistics.median(fn() for _ in range(repeats))


def make_clips(folder: Path) -> tuple[Path, Path]:
    """A 3.0 s source and a target from the shipped example clips (real TTS speech)."""
    import numpy as np
    import soundfile as sf

    from vc_app.examples import example_pairs

    source, target, _ = example_pairs()[0]
    data, rate = sf.read(str(source), dtype="float32")
    data = np.tile(data, -(-3 * rate // len(data)))[:3 * rate]
    sf.write(str(folder / "source_3s.wav"), data, rate)
    return folder / "source_3s.wav", Path(target)


def cold_convert(python: list[str], env: dict, source: Path, target: Path, vocoder: str, out: Path,
                 repeats: int, extra: list[str]) -> dict:
    """Median wall of a plain `vc-app convert`, and the median breakdown of the same command."""
    args = ["convert", "--source", str(source), "--target", str(target), "--output", str(out), "--overwrite",
            "--vocoder", vocoder, *extra]
    plain = median(lambda: wall([*python, "-m", "vc_app", *args], env=env)[0], repeats)
    parts = []
    for _ in range(repeats):
        marks_file = out.with_suffix(".json")
        start = time.time()
        wall([*python, "-c", PROBE, str(marks_file), *args], env=env)
        end = time.time()
        _, m = json.loads(marks_file.read_text())
        parts.append({"interpreter start": m["start"] - start,
                      "imports (PyTorch and vc_app)": m["imported"] - m["start"],
                      "input checks": m["load_start"] - m["imported"],
                      "model + vocoder load": m["loaded"] - m["load_start"],
                      "compute (read, convert, write)": m["converted"] - m["convert_start"],
                      "exit": end - m["done"]})
    return {"wall": plain, "parts": {k: statistics.median(p[k] for p in parts) for k in parts[0]}}


def bad_inputs(python: list[str], env: dict, folder: Path, target: Path) -> dict[str, float]:
    import numpy as np
    import soundfile as sf

    (folder / "empty.wav").write_bytes(b"")
    (folder / "text.wav").write_text("not audio\n" * 50)
    (folder / "a_folder.wav").mkdir(exist_ok=True)
    short = np.zeros(22050, np.float32)
    short[:2000] = 0.5 * np.sin(np.arange(2000) / 5)
    sf.write(str(folder / "short.wav"), short, 22050)
    sf.write(str(folder / "silent.wav"), np.zeros(44100, np.float32), 22050)
    cases = {"missing": "missing.wav", "empty": "empty.wav", "not audio": "text.wav", "a folder": "a_folder.wav",
             "too short": "short.wav", "silent": "silent.wav"}
    times = {}
    for what, name in cases.items():
        seconds, done = wall([*python, "-m", "vc_app", "convert", "--source", str(folder / name), "--target",
                              str(target), "--output", str(folder / "never.wav")], env=env, check=False)
        if done.returncode != 1 or len(done.stderr.strip().splitlines()) != 1:
            raise SystemExit(f"bad input {what}: expected one sentence and exit 1, got {done.stderr!r}")
        times[what] = seconds
    return times


def batch_resume(python: list[str], env: dict, folder: Path, source: Path, target: Path, vocoder: str) -> dict:
    inputs, out = folder / "batch_in", folder / "batch_out"
    inputs.mkdir()
    for i in range(5):
        shutil.copy(source, inputs / f"clip{i}.wav")
    args = [*python, "-m", "vc_app", "batch", str(inputs), "--target", str(target), "--output", str(out),
            "--vocoder", vocoder]
    first, _ = wall(args, env=env)
    again, done = wall(args, env=env)
    assert "0 converted, 5 skipped, 0 failed" in done.stdout, done.stdout
    return {"first run (5 clips)": first, "resume, nothing to do": again}


def ui_first_vs_warm(python: list[str], env: dict, source: Path, target: Path, vocoder: str, repeats: int) -> dict:
    try:
        from gradio_client import Client, handle_file
    except ImportError:
        return {"skipped": "gradio_client is not installed (pip install -e '.[test]')"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    start = time.perf_counter()
    proc = subprocess.Popen([*python, str(REPO / "app.py"), "--port", str(port), "--vocoder", vocoder],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=str(REPO))
    url = f"http://127.0.0.1:{port}/"
    try:
        for line in proc.stdout:  # ready when it says so (after its warm-up), not when the port first answers
            if "Running on local URL" in line:
                break
        else:
            raise SystemExit("app.py did not start")
        ready = time.perf_counter() - start
        times = []
        for _ in range(1 + repeats):  # a fresh client each time, as each visitor: only the server warms up
            client = Client(url, verbose=False)
            t = time.perf_counter()
            client.predict(handle_file(str(source)), handle_file(str(target)), api_name="/convert")
            times.append(time.perf_counter() - t)
            client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    warm = statistics.median(times[1:])
    return {"start until ready": ready, "first conversion": times[0], "warm conversion (median)": warm,
            "first / warm": times[0] / warm}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vocoder", action="append", help="vocoder spec to measure (repeatable; default: "
                        "griffinlim and the default vocoder when its weights are available)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per cold-start number (median; default 3)")
    parser.add_argument("--no-ui", dest="ui", action="store_false", help="skip the web UI measurement")
    parser.add_argument("--cpus", help="run every process on these CPUs only (taskset -c LIST), e.g. 0,1")
    return parser


def main() -> None:
    from vc_app.vocoders import DEFAULT_VOCODER, vocoder_availability

    args = get_parser().parse_args()

    python = [sys.executable]
    if args.cpus:
        python = ["taskset", "-c", args.cpus, sys.executable]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    vocoders = []
    for spec in args.vocoder or ["griffinlim", DEFAULT_VOCODER]:
        usable, why = vocoder_availability(spec)
        if spec in vocoders:
            continue
        if usable:
            vocoders.append(spec)
        else:
            print(f"{spec}: not measured ({why.rstrip('.')})")
    cores = len(os.sched_getaffinity(0)) if not args.cpus else len(args.cpus.split(","))
    print(f"{cores} CPU cores (1-minute load average before the run: {os.getloadavg()[0]:.1f}); medians of "
          f"{args.repeats} runs; wall seconds of fresh processes\n")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        source, target = make_clips(folder)
        baseline = median(lambda: wall([*python, "-c", "import torch"], env=env)[0], args.repeats)
        interpreter = median(lambda: wall([*python, "-c", "pass"], env=env)[0], args.repeats)
        helps = median(lambda: wall([*python, "-m", "vc_app", "--help"], env=env)[0], args.repeats)
        print(f"baseline: python -c 'import torch' {baseline:.2f} s; python -c pass {interpreter:.2f} s; "
              f"vc-app --help {helps:.2f} s\n")

        for spec in vocoders:
            # PyTorch's default (one thread per core), and one thread: far quicker when other work shares the cores
            for extra in ([], ["--threads", "1"]):
                result = cold_convert(python, env, source, target, spec, folder / "out.wav", args.repeats, extra)
                verdict = "meets" if result["wall"] <= 8 else "misses"
                print(f"vc-app convert, 3 s clip, --vocoder {spec} {' '.join(extra) or '(default threads)'}: "
                      f"{result['wall']:.2f} s cold ({result['wall'] / baseline:.1f}x the torch import; {verdict} "
                      f"the 8 s target)")
                for part, seconds in result["parts"].items():
                    print(f"    {part:<32} {seconds:6.2f} s")
        print()

        times = bad_inputs(python, env, folder, target)
        print(f"bad inputs refused (target < 1 s): worst {max(times.values()):.2f} s "
              f"({max(times.values()) / baseline:.2f}x the torch import)")
        for what, seconds in times.items():
            print(f"    {what:<32} {seconds:6.2f} s")
        print()

        resume = batch_resume(python, env, folder, source, target, vocoders[0])
        print(f"vc-app batch --vocoder {vocoders[0]} (target: resume < 2 s)")
        for what, seconds in resume.items():
            print(f"    {what:<32} {seconds:6.2f} s")
        print()

        if args.ui:
            for spec in vocoders:
                ui = ui_first_vs_warm(python, env, source, target, spec, args.repeats)
                print(f"web UI (app.py --vocoder {spec}), API /convert of the 3 s clip (target: first <= 2x warm)")
                for what, value in ui.items():
                    print(f"    {what:<32} {value:6.2f}" + ("" if what == "first / warm" else " s")
                          if isinstance(value, float) else f"    {what}: {value}")


if __name__ == "__main__":
    from results import recorded  # bench/results.py: every run appends its printout, with the machine

    with recorded(__file__):
        main()
