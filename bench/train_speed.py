"""Training speed on CPU: steps/s of our default step, side by side with the official AdaIN-VC step.

The default model (official AdaIN-VC sizes, 4.89 M parameters) trains on a packed feature cache,
exactly as the recipes' stage 3 does (the loader only slices a memory-mapped array): a synthetic one,
or a real one with --features. Three ways of timing:

  python bench/train_speed.py                       ours: default step (run.amp auto) and the reference
                                                    step (float32: the step before the speed work),
                                                    data-wait share; --augmented adds the default step
                                                    on augmented data
  python bench/train_speed.py --official DIR        + the official step, interleaved in rounds
  python bench/train_speed.py --numerics 200        loss curves: default vs reference step (same seed)
                                                    against reference vs reference (another seed)
  python bench/train_speed.py --recipe CONFIG       a training config's own step (e.g. the long run's
                                                    recipes/folder/conf/adain_relay.yaml) beside the same
                                                    step without its conversion terms (spk_cons, pause)
                                                    and without its discriminator: what each part costs,
                                                    in samples per second per thread

--official DIR is a checkout of github.com/jjery2243542/adaptive_voice_conversion (never vendored
here): its `Solver.ae_step`, unmodified, trains its `AE` built from its config.yaml with our 80 mel
bands, on the same batches as ours. Rounds alternate official / ours (default) / ours (reference),
`--steps` steps each; the medians over rounds and their ratios are printed. Without --official only
ours are timed.

After the rounds it counts one step's floating-point operations (PyTorch's FlopCounterMode) and
times a large float32 matmul: the rate each step reaches, and what share of the matmul rate twice
the official step would need (the step is convolution-bound, so that share says whether 2x is in reach).

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
        smooth = np.apply_along_axis(lambda row, k=kernel: np.convolve(row, k, mode="same"), 1, noise)
        mel = (smooth * 2.0 - 6.0 + np.linspace(1, -3, n_mels, dtype=np.float32)[:, None]).astype(np.float32)
        np.save(folder / "utts" / f"u{i:04d}.npy", mel)
        utts.append(Utterance(f"u{i:04d}", f"spk{i % 24:02d}", ""))
    return pack_features(utts, folder, MelConfig())


class OurStep:
    """Our training step (`vc_app.train.engine.train_step`) on the default model, `amp` = run.amp."""

    def __init__(self, cache: Path, batch: int, amp: str, augment: bool = False, seed: int = 1234,
                 config: str | None = None, changes: tuple[str, ...] = ()):
        from vc_app.features import FeatureCache
        from vc_app.train.config import load_config
        from vc_app.train.data import SegmentDataset, StepLoader
        from vc_app.train.engine import Dist, amp_dtype, build_state

        overrides = [f"data.train_features={cache}", f"data.batch_size={batch}", f"run.amp={amp}", f"seed={seed}"]
        if augment:
            overrides += ["data.warp_range=[0.85,1.18]", "data.gain_db=3.0"]
        cfg = load_config(config, overrides + list(changes))
        features = FeatureCache.open(cache)
        self.state = build_state(cfg, features, Dist())
        self.batches = StepLoader(SegmentDataset(features, cfg.data, cfg.mel, cfg.seed), batch,
                                  seed=cfg.seed).batches(0)
        self.precision = str(amp_dtype(cfg, Dist().device) or "float32").removeprefix("torch.")
        self.params = sum(p.numel() for p in self.state.core.parameters())
        self.wait = self.busy = 0.0

    def __call__(self) -> dict[str, float]:
        from vc_app.train.engine import train_step

        start = time.perf_counter()
        batch = next(self.batches)
        got = time.perf_counter()
        metrics = train_step(self.state, batch)
        self.wait, self.busy = self.wait + got - start, self.busy + time.perf_counter() - got
        return metrics


def official_solver(folder: Path, n_mels: int = 80):
    """The official AdaIN-VC `Solver` (imported from the user's checkout `folder`) with its `AE` and Adam built
    from its config.yaml at `n_mels` bands; no data, no logger."""
    import contextlib
    import io
    import types

    import yaml

    folder = Path(folder)
    if not (folder / "solver.py").is_file() or not (folder / "model.py").is_file():
        raise SystemExit(f"{folder} is not a checkout of jjery2243542/adaptive_voice_conversion "
                         "(no solver.py / model.py).")
    for name in ("tensorboardX", "editdistance"):  # logging-only imports of its utils.py
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.SummaryWriter = lambda *a, **k: None
            sys.modules[name] = stub
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    from solver import Solver  # noqa: E402 - the official code, from the user's checkout

    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["SpeakerEncoder"]["c_in"] = config["ContentEncoder"]["c_in"] = n_mels
    config["Decoder"]["c_out"] = n_mels
    solver = Solver.__new__(Solver)
    solver.config, solver.args = config, argparse.Namespace()
    with contextlib.redirect_stdout(io.StringIO()):
        solver.build_model()
    return solver


class OfficialStep:
    """The official AdaIN-VC `Solver.ae_step` (unmodified, imported from `folder`), on our batches."""

    def __init__(self, folder: Path, batches: OurStep, n_mels: int = 80):
        self.solver = official_solver(folder, n_mels)
        config = self.solver.config
        self.params = sum(p.numel() for p in self.solver.model.parameters())
        self.lambda_kl = config["lambda"]["lambda_kl"] / config["annealing_iters"]
        self.ours = batches
        self.solver.model.train()

    def __call__(self) -> dict:
        return self.solver.ae_step(next(self.ours.batches).mel, self.lambda_kl)


def rounds(steps: dict, n_rounds: int, n_steps: int, warmup: int = 3) -> dict[str, list[float]]:
    """Steps/s of each step function per round; the functions alternate, `n_steps` each per round."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    out: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(n_rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(n_steps):
                step()
            out[name].append(n_steps / (time.perf_counter() - start))
        print("round: " + ", ".join(f"{name} {values[-1]:.2f}" for name, values in out.items()) + " steps/s",
              flush=True)
    return out


REFERENCE = "reference (float32)"

# A recipe's step, then the same step with one part removed at a time. The game starts at once and the per-term
# gradient norms (a diagnostic every N steps) are off, so every timed step is one of the run's steady state.
STEADY = ("discriminator.warmup_steps=0", "loss.gan_ramp_steps=0", "loss.spk_id_ramp_steps=0", "run.term_grads_every=0")
# The conversion terms (spk_cons, pause) share one conversion of the batch, so they are removed together.
NO_CONVERSION = ("loss.weights.spk_cons=0", "loss.weights.pause=0")
RECIPE_PARTS = {
    "the recipe's step": (),
    "without the conversion terms": NO_CONVERSION,
    "without the discriminator and the conversion terms": NO_CONVERSION + ("discriminator.enabled=false",),
}


def recipe_steps(config: str, cache: Path, batch: int) -> dict[str, OurStep]:
    """`config`'s own step (run.amp auto) and the same step without each costly part (`RECIPE_PARTS`)."""
    return {name: OurStep(cache, batch, "auto", config=config, changes=STEADY + changes)
            for name, changes in RECIPE_PARTS.items()}


def recipe_report(steps: dict[str, OurStep], speed: dict[str, list[float]], batch: int, threads: int) -> None:
    """Samples per second per thread of each variant, and what each removed part costs of the recipe's step."""
    median = {name: float(np.median(v)) for name, v in speed.items()}
    full = median["the recipe's step"]
    print("| step | steps/s (median) | rounds | samples/s per thread | time against the recipe's step |")
    print("|---|---|---|---|---|")
    for name, values in speed.items():
        print(f"| {name} | {median[name]:.2f} | {' '.join(f'{v:.2f}' for v in values)} | "
              f"{median[name] * batch / threads:.1f} | {full / median[name]:.0%} |")
    previous = full
    for name, part in zip(list(RECIPE_PARTS)[1:], ("the conversion (for spk_cons and pause)", "the discriminator")):
        cost = 1 / previous - 1 / median[name]
        print(f"{part} costs {1000 * cost:.0f} ms of each step ({cost * full:.0%} of the recipe's step time)")
        previous = median[name]


def step_flops(cache: Path, batch: int) -> float:
    """Floating-point operations of one training step (convolutions and matmuls, forward and backward), counted
    by PyTorch's FlopCounterMode on the reference step (one thread of dispatch, so every op is seen)."""
    from torch.utils.flop_counter import FlopCounterMode

    step = OurStep(cache, batch, "none")
    step()
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


def matmul_rate(repeats: int = 5, n: int = 2048) -> float:
    """FLOP/s of a large float32 matmul in PyTorch on this process's threads (median of `repeats`)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2.0 * n**3 / float(np.median(times))


def numerics(cache: Path, batch: int, n_steps: int) -> None:
    """Mean absolute difference of the first `n_steps` losses: default step vs the reference step (float32:
    the step before any speed work), same seed and data, beside the
    run-to-run noise of the reference step itself (seed 1234 vs 1235)."""
    import torch

    curves = {}
    for name, amp, seed in ((REFERENCE, "none", 1234), ("default", "auto", 1234),
                            (f"{REFERENCE}, seed 1235", "none", 1235)):
        torch.manual_seed(0)
        step = OurStep(cache, batch, amp, seed=seed)
        curves[name] = np.array([step()["loss"] for _ in range(n_steps)])
        print(f"{name}: {step.precision}, mean loss {curves[name].mean():.4f}, last 50 steps "
              f"{curves[name][-50:].mean():.4f}", flush=True)
    ours = np.abs(curves["default"] - curves[REFERENCE]).mean()
    noise = np.abs(curves[f"{REFERENCE}, seed 1235"] - curves[REFERENCE]).mean()
    print(f"\nmean |loss difference| over the first {n_steps} steps (batch {batch}):\n"
          f"  default step vs reference step, same seed and data: {ours:.4f}\n"
          f"  reference step, seed 1234 vs seed 1235 (run-to-run noise): {noise:.4f}\n"
          f"  {'within' if ours <= noise else 'OUTSIDE'} the noise")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round and step kind")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--official", metavar="DIR", help="checkout of jjery2243542/adaptive_voice_conversion")
    parser.add_argument("--features", metavar="DIR", help="a packed feature cache (default: a synthetic one)")
    parser.add_argument("--numerics", type=int, metavar="N", help="compare the first N losses instead of timing")
    parser.add_argument("--pause-pattern", default="", help="pause matching processes while measuring")
    parser.add_argument("--augmented", action="store_true", help="also time the default step on augmented data")
    parser.add_argument("--recipe", metavar="CONFIG", help="time this training config's step and its parts")
    return parser


def main() -> int:
    args = get_parser().parse_args()

    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.features) if args.features else synthetic_cache(Path(tmp) / "cache")
        with paused(args.pause_pattern):
            if args.numerics:
                numerics(cache, args.batch, args.numerics)
                return 0
            if args.recipe:
                recipe = recipe_steps(args.recipe, cache, args.batch)
                speed = rounds(recipe, args.rounds, args.steps)
                full = recipe["the recipe's step"]
                print(f"\n{args.recipe}: batch {args.batch} x {full.state.cfg.data.segment_frames} frames, "
                      f"{torch.get_num_threads()} CPU thread(s), {args.rounds} rounds x {args.steps} steps, "
                      f"interleaved, computing in {full.precision}\n")
                recipe_report(recipe, speed, args.batch, torch.get_num_threads())
                return 0
            steps = {"ours (default)": OurStep(cache, args.batch, "auto"),
                     f"ours {REFERENCE}": OurStep(cache, args.batch, "none")}
            if args.augmented:
                steps["ours (default, augmented data)"] = OurStep(cache, args.batch, "auto", augment=True)
            if args.official:
                steps = {"official ae_step": OfficialStep(Path(args.official), steps[f"ours {REFERENCE}"]), **steps}
            speed = rounds(steps, args.rounds, args.steps)
            work, peak = step_flops(cache, args.batch), matmul_rate()
    ours = steps["ours (default)"]
    print(f"\nbatch {args.batch} x 128 frames, {torch.get_num_threads()} CPU threads, {args.rounds} rounds x "
          f"{args.steps} steps, interleaved; our default step computes in {ours.precision} "
          f"(native bf16 on this CPU: {ours.precision == 'bfloat16'})\n")
    base = "official ae_step" if args.official else f"ours {REFERENCE}"
    print(f"| step | parameters | steps/s (median) | rounds | vs {base} |")
    print("|---|---|---|---|---|")
    median = {name: float(np.median(v)) for name, v in speed.items()}
    for name, values in speed.items():
        print(f"| {name} | {steps[name].params:,} | {median[name]:.2f} | {' '.join(f'{v:.2f}' for v in values)} | "
              f"{median[name] / median[base]:.2f}x |")
    need = 2.0 * median.get("official ae_step", median[f"ours {REFERENCE}"]) * work
    print(f"\none step: {work / 1e9:.1f} GFLOP (convolutions and matmuls, forward and backward); our default step "
          f"runs at {median['ours (default)'] * work / 1e9:.1f} GFLOP/s; a float32 matmul 2048^2 here: "
          f"{peak / 1e9:.1f} GFLOP/s; twice the {base} needs {need / 1e9:.1f} GFLOP/s = {need / peak:.0%} of it")
    total = ours.wait + ours.busy
    print(f"\ndata wait of our default step: {100 * ours.wait / total:.2f} % of its time (target < 5 %)")
    return 0


if __name__ == "__main__":
    from results import recorded  # bench/results.py: every run appends its printout, with the machine

    with recorded(__file__):
        code = main()
    sys.exit(code)
