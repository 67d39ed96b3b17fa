"""Paired comparison of two `vc-app evaluate` runs on the same pairs: is B better than A?

    python recipes/common/compare_runs.py A/per_pair.csv B/per_pair.csv [--resamples 5000] [--seed 0]

Pairs are matched on (source, target); a pair that failed in either run is left out and counted. For the
similarity margin (similarity to the target minus to the source, Resemblyzer) and DNSMOS P.808 it prints
the mean of B - A per pair with a 95 % bootstrap interval (and for the pause and tail levels, dB, where both
runs measured them: clips with too few pause or tail frames have none), and for "closer to the target" the pairs each
run gets right and an exact McNemar test on those only one of them gets right. Short runs are judged on
the same pairs because a difference of 0.01 in margin is far below the spread between pairs (about 0.05).
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np


def read_rows(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """{(source, target): row} of a per_pair.csv, leaving out pairs that failed."""
    with open(path, newline="") as handle:
        return {(r["source"], r["target"]): r for r in csv.DictReader(handle) if not r.get("error")}


def bootstrap_interval(diff: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """95 % percentile interval of the mean of `diff` (n,) over `resamples` resamples with replacement."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p: the discordant pairs as a fair coin's tosses."""
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def compare(a: dict, b: dict, resamples: int = 5000, seed: int = 0) -> dict:
    """Per-pair differences B - A on the pairs both runs converted."""
    keys = sorted(set(a) & set(b))
    if not keys:
        raise SystemExit("The two runs share no pair (matched on source and target).")
    out: dict = {"pairs": len(keys), "left_out": len(set(a) ^ set(b))}
    margin = {name: np.array([float(r[k]["sim_to_target"]) - float(r[k]["sim_to_source"]) for k in keys])
              for name, r in (("a", a), ("b", b))}
    out["margin_a"], out["margin_b"] = float(margin["a"].mean()), float(margin["b"].mean())
    out["margin_diff"] = float((margin["b"] - margin["a"]).mean())
    out["margin_ci"] = bootstrap_interval(margin["b"] - margin["a"], resamples, seed)
    closer_a = np.array([a[k]["closer_to_target"] == "1" for k in keys])
    closer_b = np.array([b[k]["closer_to_target"] == "1" for k in keys])
    out.update(closer_a=int(closer_a.sum()), closer_b=int(closer_b.sum()),
               only_a=int((closer_a & ~closer_b).sum()), only_b=int((closer_b & ~closer_a).sum()))
    out["mcnemar_p"] = mcnemar_p(out["only_a"], out["only_b"])
    for column, name in (("dnsmos_p808", "dnsmos"), ("pause_level", "pause"), ("tail_level", "tail")):
        both = [k for k in keys if _number(a[k].get(column)) and _number(b[k].get(column))]
        if both:
            diff = np.array([float(b[k][column]) - float(a[k][column]) for k in both])
            out.update({f"{name}_diff": float(diff.mean()), f"{name}_ci": bootstrap_interval(diff, resamples, seed),
                        f"{name}_pairs": len(both)})
    return out


def _number(text: str | None) -> bool:
    """Whether a per_pair.csv cell holds a measured number (not empty, not nan)."""
    return bool(text) and not math.isnan(float(text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path, help="per_pair.csv of run A (the baseline)")
    parser.add_argument("b", type=Path, help="per_pair.csv of run B")
    parser.add_argument("--resamples", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in (args.a, args.b):
        if not path.is_file():
            print(f"error: {path} does not exist.", file=sys.stderr)
            return 1
    r = compare(read_rows(args.a), read_rows(args.b), args.resamples, args.seed)
    low, high = r["margin_ci"]
    print(f"{r['pairs']} pairs ({r['left_out']} left out): margin {r['margin_a']:.4f} -> {r['margin_b']:.4f}, "
          f"B - A {r['margin_diff']:+.4f} (95 % CI {low:+.4f} to {high:+.4f}); closer {r['closer_a']} -> "
          f"{r['closer_b']} (only A {r['only_a']}, only B {r['only_b']}, McNemar p {r['mcnemar_p']:.2f})"
          + (f"; DNSMOS B - A {r['dnsmos_diff']:+.3f} (95 % CI {r['dnsmos_ci'][0]:+.3f} to {r['dnsmos_ci'][1]:+.3f})"
             if "dnsmos_diff" in r else "")
          + "".join(f"; {label} B - A {r[name + '_diff']:+.1f} dB (95 % CI {r[name + '_ci'][0]:+.1f} to "
                    f"{r[name + '_ci'][1]:+.1f}, {r[name + '_pairs']} pairs)"
                    for name, label in (("pause", "pause level"), ("tail", "tail level")) if name + "_diff" in r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
