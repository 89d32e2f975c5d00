"""Sampling levers on a trained checkpoint: guidance weight and interval, step spacing.

Run:  .venv/bin/python benchmarks/recipe/sweep.py CHECKPOINT NAME SETTING... [--seeds S]

Each SETTING is JSON, e.g. ``{"w": 0.3}``, ``{"spacing": "quadratic"}``,
``{"t_min": 100}``, ``{"w": 1.0, "interval": [100, 700]}``. Defaults are the course's:
w = RECOMMENDED_W at every step, DDIM (eta = 0), 50 evenly spaced steps.
- "quadratic" spacing puts the steps at t_i = 1 + (T - 1) (i / (S - 1))^2, dense near
  t = 0 where the background is finished (Song et al. 2021 used it for CIFAR-10).
- "t_min" ends the chain early, as lesson 06's ``sample(..., t_min)`` does: the steps
  spread from T down to t_min, and the sample is the x0_pred made at t_min.
- "interval" applies guidance only at steps with lo <= t <= hi and the conditional
  prediction alone elsewhere (Kynkäänniemi et al. 2024), so the doubled evaluations are
  spent only where guidance helps.
Every setting draws 100 digits of each class per sampling seed (default 0 and 1) and is
scored as quality.py scores a checkpoint: accuracy, worst class, Fréchet distance to the
1,000 held-out digits beside its floor, background haze, seconds per 100 digits.
Writes benchmarks/results/recipe/sweep_NAME.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from quality import frechet_floor_heldout

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson05_training import load_trained, use_bf16
from diffusion_lessons.lesson06_sampling import (
    digit_labels,
    reverse_step,
    sampling_timesteps,
)
from diffusion_lessons.lesson07_classifier import (
    background_haze,
    classifier_report,
    feature_stats,
    frechet_distance,
    load_classifier,
)
from diffusion_lessons.lesson09_guidance import RECOMMENDED_W, GuidedModel

ROOT = Path(__file__).resolve().parents[2]


def timesteps(T: int, steps: int, spacing: str, t_min: int = 1) -> list[int]:
    """The sampler's steps from T down to t_min: even (lesson 06's ``sample``) or
    quadratic.
    """
    if spacing == "even":  # as lesson 06's sample(..., t_min) spreads them
        return [t + t_min - 1 for t in sampling_timesteps(T - t_min + 1, steps)]
    n = T - t_min
    ts = {round(t_min + n * (i / (steps - 1)) ** 2) for i in range(steps)}
    return sorted(ts, reverse=True)


@torch.no_grad()
def draw(model, schedule, labels, ts, generator, eta=0.0, w_at=None) -> torch.Tensor:
    """DDIM over the given steps: lesson 06's ``sample`` with the steps as an argument
    (the network under bf16 autocast where that is fast, the update in float32)."""
    cfg = model.config
    xt = torch.randn(
        (len(labels), cfg.in_channels, cfg.image_size, cfg.image_size),
        generator=generator,
    )  # x_T ~ N(0, I)
    bf16 = use_bf16("auto", torch.device("cpu"))
    for t, s in zip(ts, ts[1:] + [0]):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            m = model if w_at is None else GuidedModel(model, w_at(t))
            eps = m(xt, torch.full((len(labels),), t), labels).float()
        xt, _ = reverse_step(xt, eps, t, s, schedule, eta, True, generator)
    return xt.clamp(-1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("name")
    parser.add_argument("settings", nargs="+", type=json.loads)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, schedule, _ = load_trained(args.checkpoint)
    classifier = load_classifier()
    held_x, _ = load_digits("mnist-5k", "test")  # (1000, 1, 28, 28)
    train_x, _ = load_digits("mnist-5k", "train")
    labels = digit_labels("0123456789", 100)
    reference = feature_stats(classifier, held_x)
    floor, n = frechet_floor_heldout(classifier, train_x, reference, len(labels))
    out = {"checkpoint": args.checkpoint, "floor": floor, "floor_n": n, "rows": []}
    path = ROOT / "benchmarks" / "results" / "recipe" / f"sweep_{args.name}.json"
    for setting in args.settings:
        w = setting.get("w", RECOMMENDED_W)
        steps = setting.get("steps", 50)
        spacing = setting.get("spacing", "even")
        eta = setting.get("eta", 0.0)
        ts = timesteps(schedule.T, steps, spacing, setting.get("t_min", 1))
        lo, hi = setting.get("interval", [0, schedule.T])

        def w_at(t, w=w, lo=lo, hi=hi):
            return w if lo <= t <= hi else 0.0

        for seed in args.seeds:
            g = torch.Generator().manual_seed(seed)
            start = time.perf_counter()
            x = draw(model, schedule, labels, ts, g, eta, w_at)
            seconds = time.perf_counter() - start
            rep = classifier_report(classifier, x, labels)
            row = {
                "setting": setting,
                "seed": seed,
                "n": len(labels),
                "accuracy": rep["accuracy"],
                "per_class": rep["per_class"],
                "fd": frechet_distance(*feature_stats(classifier, x), *reference),
                "haze": background_haze(x),
                "seconds_per_100": seconds * 100 / len(labels),
            }
            out["rows"].append(row)
            path.write_text(json.dumps(out, indent=1))
            print(
                f"{json.dumps(setting):40} seed {seed}: acc {row['accuracy']:.1%} "
                f"worst {min(row['per_class']):.0%} FD/floor {row['fd'] / floor:.2f} "
                f"haze {row['haze']['above']:.2%} ({row['seconds_per_100']:.1f} s/100)",
                flush=True,
            )


if __name__ == "__main__":
    main()
