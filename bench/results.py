"""Where bench results live: each bench appends what it printed to `bench/results/<bench>.md`.

A speed number means little without the machine it came from, and a number copied into prose goes stale
when the next run differs. So a bench's printout is the record: every successful run appends one section
to its own results file, headed by the date, the CPU, its core count, the load before the run and the
PyTorch version, followed by the command and its output verbatim. Documentation links to these files
instead of repeating their numbers.

`VC_APP_BENCH_RESULTS=DIR` writes the files into DIR instead; `VC_APP_BENCH_RESULTS=off` writes nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import platform
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ENV = "VC_APP_BENCH_RESULTS"


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux) and its widest vector or bf16 instructions."""
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    name = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info:
        name += f" (family {info['cpu family']} model {info.get('model', '?')})"
    flags = set(info.get("flags", "").split())
    best = next((flag for flag in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if flag in flags), None)
    return name + (f", up to {best}" if best else "")


def load_average() -> str:
    return f"1-minute load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "load unknown"


def machine(load: str) -> str:
    """One line naming the machine a run was on, with the load measured before the run."""
    torch = sys.modules.get("torch")
    return (f"{cpu_name()}, {os.cpu_count()} cores, {load} before the run, {platform.system()}, "
            f"Python {platform.python_version()}" + (f", PyTorch {torch.__version__}" if torch is not None else ""))


class _Tee(io.TextIOBase):
    """Writes to the terminal and keeps a copy."""

    def __init__(self, stream) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def repo_relative(text: str) -> str:
    """`text` with this checkout's absolute path written relative to it: a results file names no machine's folders."""
    return text.replace(f"{RESULTS.parent.parent.resolve()}/", "")


@contextlib.contextmanager
def recorded(script: str) -> Iterator[None]:
    """Run a bench's `main` inside this: its stdout is shown as usual and, if it finishes without an error,
    appended to `bench/results/<script's name>.md` under a heading that names the machine."""
    where = os.environ.get(ENV, str(RESULTS))
    load = load_average()  # before the bench's own work raises it
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        yield
    if where.lower() == "off":
        return
    name = Path(script).stem
    path = Path(where) / f"{name}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = shlex.join(["python", f"bench/{Path(script).name}", *sys.argv[1:]])
    header = ("" if path.exists() else
              f"# bench/{Path(script).name}: results\n\nNewest run last; each run appends itself.\n")
    with path.open("a") as out:
        out.write(f"{header}\n## {when}\n\nMachine: {machine(load)}.\n\n`{command}`\n\n```\n"
                  f"{repo_relative(tee.copy.getvalue().rstrip())}\n```\n")
    print(f"(results appended to {path})", file=sys.stderr)
