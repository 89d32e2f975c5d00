"""One recipe lever: train the ``small`` recipe with some settings changed, then
measure the result with benchmarks/recipe/quality.py.

Run:  .venv/bin/python benchmarks/recipe/lever.py NAME '{"steps": 1800}' \
          [--seed 0] [--per-digit 50] [--sampling-seed 0]

Trains into runs/recipe/NAME (mnist-5k, 2 threads, no snapshots) and writes
benchmarks/results/recipe/NAME.json: the overrides, the training seconds and steps, the
mean loss of the last 200 steps and of every block of 100 steps, and quality.py's
numbers (``--per-digit`` digits of each class, sampling seed 0 unless
``--sampling-seed``). Budgets are given in steps; the step counts that match a
wall-clock budget come from benchmarks/recipe/throughput.py on an idle machine, so a
busy machine makes a run slower but not different.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
from pathlib import Path

import torch
from attention import loading, use_attention
from noise_levels import P_MEAN, P_STD
from quality import measure

from diffusion_lessons.lesson04_unet import UNetConfig
from diffusion_lessons.lesson05_training import PRESETS, train

ROOT = Path(__file__).resolve().parents[2]
#: what every lever changes: the ``small`` preset as it was when the ablation began,
#: predicting eps with t ~ U{1..T} (the preset predicts v and draws higher noise levels
#: since those levers paid: '{"prediction": "v", "noise_levels": {"p_mean": 0.4,
#: "p_std": 1.4}}')
BASE = dataclasses.replace(PRESETS["small"], prediction="eps", noise_levels=None)


def config(overrides: dict, seed: int = 0):
    overrides = dict(overrides)
    overrides.pop("attention", None)  # not a TrainConfig field: attention.py
    overrides["noise_levels"] = levels(overrides.get("noise_levels"))
    if "model" in overrides:
        model = {**dataclasses.asdict(BASE.model), **overrides["model"]}
        overrides["model"] = UNetConfig(**model)
    return dataclasses.replace(
        BASE,
        dataset="mnist-5k",
        threads=2,
        seed=seed,
        checkpoint_every=10**6,
        sample_every=10**6,
        **overrides,
    )


def levels(value) -> tuple[float, float] | None:
    """``TrainConfig.noise_levels`` for what "noise_levels" asks: None (uniform t),
    "edm", or {"p_mean": ..., "p_std": ...}; anything else stops with one line."""
    if value is None:
        return None
    if value == "edm":
        return (P_MEAN, P_STD)
    if (
        isinstance(value, dict)
        and set(value) == {"p_mean", "p_std"}
        and all(
            isinstance(v, (int, float)) and math.isfinite(v) for v in value.values()
        )
        and value["p_std"] > 0
    ):
        return (value["p_mean"], value["p_std"])
    raise SystemExit(
        'lever.py: "noise_levels" must be "edm" or {"p_mean": -0.4, "p_std": 1.4} '
        f"(p_std > 0; noise_levels.py); got {value!r}."
    )


def loss_curve(losses: list[float], every: int = 100) -> list[float]:
    """Mean training loss of each block of ``every`` steps (for the loss figures)."""
    return [
        sum(losses[i : i + every]) / len(losses[i : i + every])
        for i in range(0, len(losses), every)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument(
        "overrides",
        help='JSON object of TrainConfig fields (and "attention": true, attention.py; '
        '"noise_levels": "edm" or {"p_mean": ..., "p_std": ...}: eq. 5.8 of lesson 05)',
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-digit", type=int, default=50)
    parser.add_argument(
        "--sampling-seed", type=int, default=0, help="seed of the scored samples"
    )
    parser.add_argument(
        "--from-run",
        help="score this finished run folder instead of training (made by the CLI "
        "with the same settings)",
    )
    args = parser.parse_args()
    overrides = json.loads(args.overrides)
    if args.from_run:
        run = Path(args.from_run)
        r = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    else:
        cfg = config(overrides, args.seed)
        run = ROOT / "runs" / "recipe" / args.name
        with contextlib.ExitStack() as levers:  # attention.py
            if overrides.get("attention"):
                levers.enter_context(use_attention())
            r = train(cfg, run, overwrite=True, progress=False)
    torch.set_num_threads(2)
    with loading(run / "checkpoint.pt"):
        q = measure(
            run / "checkpoint.pt", seed=args.sampling_seed, per_digit=args.per_digit
        )
    result = {
        "name": args.name,
        "overrides": overrides,
        "train_seed": args.seed,
        "sampling_seed": args.sampling_seed,
        "run": str(run),
        "steps": r["step"],
        "seconds": r["seconds"],
        "loss_last200": sum(r["losses"][-200:]) / len(r["losses"][-200:]),
        "loss_curve": loss_curve(r["losses"]),
        **q,
    }
    out = ROOT / "benchmarks" / "results" / "recipe" / f"{args.name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(
        f"{args.name}: {r['step']} steps in {r['seconds'] / 60:.1f} min; "
        f"w0 {q['w0']['accuracy']:.1%}, guided {q['guided']['accuracy']:.1%} "
        f"(worst {min(q['guided']['per_class']):.1%}), FD {q['guided']['fd']:.1f} / "
        f"floor {q['floor']:.1f}, haze {q['guided']['haze']['above']:.2%}",
        flush=True,
    )


if __name__ == "__main__":
    main()
