#!/usr/bin/env python3
"""Where a conversion's pause floor comes from: pause levels of the model's mels, no vocoder, in seconds.

For each pair of a `vc-app evaluate` pairs file, the pause level (`vc_app.evaluate.levels`: the output's level on
the source's pauses minus the source's, each relative to its loudest frame) of the model's log-mel outputs:

- `self`: the source converted to its own voice (target = the source clip);
- `conversion`: converted to the pair's (first) target clip;
- `target floor D dB`: the same, with a noise floor D dB under the target clip's loudest frame added to the target
  clip's mel alone (`vc_app.train.data.add_noise_floor`, no tilt): if the conversion's pauses rise with it,
  the speaker vector carries the target recording's floor into the source's pauses.

    python recipes/common/pause_probe.py --checkpoint recipes/folder/relay --pairs PAIRS.csv --max-pairs 32

Prints one line per variant: pairs measured and the mean pause level (dB).
"""

from __future__ import annotations

import argparse
import csv
import math

import numpy as np
import torch

from vc_app.audio import load_audio
from vc_app.bundle import load_bundle
from vc_app.evaluate.levels import MIN_FRAMES, PAUSE_BELOW_DB
from vc_app.mel import band_centres, mel_spectrogram
from vc_app.models.adain_vc import frame_levels_db
from vc_app.train.data import add_noise_floor


def mel_pause_level(source: torch.Tensor, output: torch.Tensor) -> float:
    """Pause level (dB) of log-mel `output` against log-mel `source`, both (n_mels, T); NaN with too few pauses."""
    src, out = (frame_levels_db(m[None])[0].clamp(min=-80.0) for m in (source, output))
    pauses = src <= -PAUSE_BELOW_DB
    if int(pauses.sum()) < MIN_FRAMES:
        return math.nan
    return float(out[pauses].mean() - src[pauses].mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a bundle folder or checkpoint")
    parser.add_argument("--pairs", required=True, help="a pairs CSV (source, target; targets joined by |)")
    parser.add_argument("--max-pairs", type=int, default=32, help="the first N pairs")
    parser.add_argument("--floors", type=float, nargs="*", default=[-50.0, -30.0],
                        help="noise floors added to the target clip, dB under its loudest frame")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    bundle = load_bundle(args.checkpoint)
    model, cfg = bundle.model.eval(), bundle.mel
    centres = band_centres(cfg)
    rng = np.random.default_rng(0)

    def mel(path: str) -> torch.Tensor:
        return mel_spectrogram(load_audio(path, cfg.sample_rate), cfg)

    def convert(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return model.convert(source[None], model.speaker(target[None]))[0]

    with open(args.pairs, newline="") as f:
        pairs = list(csv.DictReader(f))[: args.max_pairs]
    levels: dict[str, list[float]] = {}
    with torch.no_grad():
        for pair in pairs:
            source, target = mel(pair["source"]), mel(pair["target"].split("|")[0])
            variants = {"self": convert(source, source), "conversion": convert(source, target)}
            for floor in args.floors:
                noisy = torch.from_numpy(add_noise_floor(target.numpy(), floor, 0.0, centres, rng))
                variants[f"target floor {floor:g} dB"] = convert(source, noisy)
            for name, output in variants.items():
                levels.setdefault(name, []).append(mel_pause_level(source, output))
    for name, values in levels.items():
        v = np.array(values)
        print(f"{name:24s} {int(np.isfinite(v).sum()):3d} pairs  pause level {np.nanmean(v):+6.2f} dB")


if __name__ == "__main__":
    main()
