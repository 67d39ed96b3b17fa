"""bench/train_speed.py --recipe: a training config's step beside the same step without its costly parts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent


def bench_module():
    spec = importlib.util.spec_from_file_location("_bench_train_speed", REPO / "bench" / "train_speed.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_recipe_parts_are_the_long_runs_step_without_each_part(tmp_path, capsys):
    bench = bench_module()
    cache = bench.synthetic_cache(tmp_path / "cache", n_utts=24)
    # the long run's recipe (the pause term on) with the speaker-consistency term on too (as from 29 310 to 39 569)
    recipe = yaml.safe_load((REPO / "recipes" / "folder" / "conf" / "adain_relay.yaml").read_text())
    recipe["loss"]["weights"]["spk_cons"] = 5.0
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump(recipe))
    steps = bench.recipe_steps(str(config), cache, batch=4)
    full, no_conversion, plain = steps.values()
    cfg = full.state.cfg
    assert cfg.loss.weights["spk_cons"] > 0 and cfg.loss.weights["pause"] > 0
    assert cfg.discriminator.enabled and cfg.discriminator.r1 > 0
    assert no_conversion.state.cfg.loss.weights["spk_cons"] == no_conversion.state.cfg.loss.weights["pause"] == 0
    assert no_conversion.state.cfg.discriminator.enabled
    assert plain.state.discriminator is None and plain.state.cfg.loss.weights["pause"] == 0
    metrics = [step() for step in steps.values()]
    # the steady state of the run: the game and the conversion terms are on from the first timed step
    assert metrics[0]["weight_gan"] == cfg.loss.weights["gan"] and "disc" in metrics[0]
    assert "spk_cons" in metrics[0] and "pause" in metrics[0]
    assert "spk_cons" not in metrics[1] and "pause" not in metrics[1] and "disc" in metrics[1]
    assert "disc" not in metrics[2] and "gan" not in metrics[2]
    speed = {name: [rate] * 3 for name, rate in zip(steps, (1.0, 1.5, 2.0))}
    bench.recipe_report(steps, speed, batch=4, threads=2)
    out = capsys.readouterr().out
    assert "| the recipe's step | 1.00 | 1.00 1.00 1.00 | 2.0 | 100% |" in out
    assert "| without the conversion terms | 1.50 | 1.50 1.50 1.50 | 3.0 | 67% |" in out
    assert "the conversion (for spk_cons and pause) costs 333 ms of each step (33% of the recipe's step time)" in out
    assert "the discriminator costs 167 ms of each step (17% of the recipe's step time)" in out
