"""Training speed on CPU: steps/s, frames/s and the share of step time spent waiting for data.

The default model (official AdaIN-VC sizes) trains on a synthetic packed feature cache, exactly as
the recipes' stage 3 does (the loader only slices a memory-mapped array). Two data settings are
timed: plain segments, and the folder recipe's augmentation (frequency warp + gain), which does
more work per sample. Target: data wait < 5 % of step time.

    python bench/train_speed.py [--batch 32] [--steps 20] [--threads 2] [--pause-pattern "vc-app train"]

--pause-pattern stops (SIGSTOP) other processes whose command line matches, for the duration of
the measurement, and always resumes them (SIGCONT), also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


@contextmanager
def paused(pattern: str):
    """SIGSTOP the processes matching `pattern` (not this one) and SIGCONT them on the way out."""
    pids = []
    if pattern:
        found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
        mine = _ancestry()
        pids = [int(p) for p in found if int(p) not in mine]
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}

    def resume_and_exit(signum, frame):
        raise SystemExit(128 + signum)

    for sig in previous:
        signal.signal(sig, resume_and_exit)
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        if pids:
            print(f"paused {len(pids)} process(es) matching {pattern!r}: {pids}")
            time.sleep(1.0)  # let the CPU settle
        yield
    finally:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if pids:
            print(f"resumed {pids}")
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ancestry() -> set[int]:
    """This process and its parents (their command lines may contain the pattern too)."""
    pids, pid = {os.getpid()}, os.getppid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def synthetic_cache(folder: Path, n_utts: int = 240, n_mels: int = 80, seed: int = 0) -> Path:
    """A packed cache of speech-like log-mels (smooth in time and frequency), 24 speakers, 2-6 s each."""
    from vc_app.config import MelConfig
    from vc_app.corpus import Utterance
    from vc_app.features import pack_features

    rng = np.random.default_rng(seed)
    (folder / "utts").mkdir(parents=True, exist_ok=True)
    utts = []
    for i in range(n_utts):
        frames = int(rng.integers(170, 520))
        noise = rng.standard_normal((n_mels, frames)).astype(np.float32)
        kernel = np.ones(5, np.float32) / 5
        smooth = np.apply_along_axis(lambda row: np.convolve(row, kernel, mode="same"), 1, noise)
        mel = (smooth * 2.0 - 6.0 + np.linspace(1, -3, n_mels, dtype=np.float32)[:, None]).astype(np.float32)
        np.save(folder / "utts" / f"u{i:04d}.npy", mel)
        utts.append(Utterance(f"u{i:04d}", f"spk{i % 24:02d}", ""))
    return pack_features(utts, folder, MelConfig())


def measure(cache: Path, *, batch: int, steps: int, augment: bool, warmup: int = 3) -> dict[str, float]:
    """Time `steps` training steps of the default model (after `warmup`) on `cache`."""
    import torch

    from vc_app.features import FeatureCache
    from vc_app.train.config import load_config
    from vc_app.train.data import SegmentDataset, StepLoader
    from vc_app.train.engine import Dist, build_state, train_step

    overrides = [f"data.train_features={cache}", f"data.batch_size={batch}"]
    if augment:
        overrides += ["data.warp_range=[0.85,1.18]", "data.gain_db=3.0"]
    cfg = load_config(None, overrides)
    features = FeatureCache.open(cache)
    state = build_state(cfg, features, Dist())
    loader = StepLoader(SegmentDataset(features, cfg.data, cfg.mel, cfg.seed), batch, seed=cfg.seed)
    batches = loader.batches(0)
    wait = busy = 0.0
    for i in range(warmup + steps):
        start = time.perf_counter()
        batch_ = next(batches)
        got = time.perf_counter()
        train_step(state, batch_)
        done = time.perf_counter()
        if i >= warmup:
            wait, busy = wait + (got - start), busy + (done - got)
    total = wait + busy
    frames = steps * batch * cfg.data.segment_frames
    params = sum(p.numel() for p in state.core.parameters())
    return {"steps_per_s": steps / total, "frames_per_s": frames / total, "data_wait": wait / total,
            "s_per_1k_steps": 1000 * total / steps, "params": params, "threads": torch.get_num_threads()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--pause-pattern", default="", help="pause matching processes while measuring")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cache = synthetic_cache(Path(tmp) / "cache")
        with paused(args.pause_pattern):
            rows = {name: measure(cache, batch=args.batch, steps=args.steps, augment=augment)
                    for name, augment in (("plain segments", False), ("warp + gain augmentation", True))}
    first = next(iter(rows.values()))
    print(f"\ndefault AdaIN-VC ({first['params'] / 1e6:.2f} M parameters), batch {args.batch} x 128 frames, "
          f"{first['threads']} CPU threads, {args.steps} timed steps, features cached\n")
    print("| data | steps/s | frames/s | s per 1k steps | data wait | target |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['steps_per_s']:.3f} | {r['frames_per_s']:.0f} | {r['s_per_1k_steps']:.0f} | "
              f"{100 * r['data_wait']:.2f} % | < 5 % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
