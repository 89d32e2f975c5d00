"""Sampling levers on a trained checkpoint: guidance weight and interval, step spacing.

Run:  .venv/bin/python benchmarks/recipe/sweep.py CHECKPOINT NAME SETTING... [--seeds S]

Each SETTING is JSON, e.g. ``{"w": 0.3}``, ``{"spacing": "quadratic"}``,
``{"sampler": "dpm++2m", "steps": 20}``,
``{"t_min": 100}``, ``{"w": 1.0, "interval": [100, 700]}``. Defaults: w = PROTOCOL_W
(0.5, quality.py) at every step, DDIM (eta = 0), 50 evenly spaced steps down to t = 1,
the textbook chain (the baseline of the committed results; the course's sampler now
ends at T / 10).
- "quadratic" spacing puts the steps at t_i = 1 + (T - 1) (i / (S - 1))^2, dense near
  t = 0 where the background is finished (Song et al. 2021 used it for CIFAR-10).
- "t_min" ends the chain early, as lesson 06's ``sample(..., t_min)`` does: the steps
  spread from T down to t_min, and the sample is the x0_pred made at t_min.
- "sampler": "dpm++2m" takes lesson 06's DPM-Solver++(2M) steps instead of DDIM's
  (chapter 10, section 10.8).
- "interval" applies guidance only at steps with lo <= t <= hi and the conditional
  prediction alone elsewhere (Kynkäänniemi et al. 2024), so the doubled evaluations are
  spent only where guidance helps.
Every setting samples with lesson 06's ``sample`` and draws 100 digits of each class per
sampling seed (default 0 and 1) and is
scored as quality.py scores a checkpoint: accuracy, worst class, Fréchet distance to the
1,000 held-out digits beside its floor, background haze, seconds per 100 digits.
Writes benchmarks/results/recipe/sweep_NAME.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from unittest import mock

import torch
from attention import loading
from quality import PROTOCOL_W, frechet_floor_heldout

import diffusion_lessons.lesson06_sampling as l6
from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson05_training import load_trained
from diffusion_lessons.lesson07_classifier import (
    background_haze,
    classifier_report,
    feature_stats,
    frechet_distance,
    load_classifier,
)
from diffusion_lessons.lesson09_guidance import GuidedModel

ROOT = Path(__file__).resolve().parents[2]


def quadratic_timesteps(T: int, steps: int) -> list[int]:
    """Chapter 06's exercise 5: t_i = 1 + (T - 1) (i / (S - 1))^2, from T down to 1."""
    ts = {round(1 + (T - 1) * (i / max(1, steps - 1)) ** 2) for i in range(steps)}
    return sorted(ts, reverse=True)


class GuidedInterval(GuidedModel):
    """Eq. 9.1 at the steps with lo <= t <= hi, the conditional prediction elsewhere."""

    def __init__(self, model, w: float, lo: int, hi: int):
        super().__init__(model, w)
        self.lo, self.hi = lo, hi

    def forward(self, xt, t, labels):
        if self.lo <= int(t[0]) <= self.hi:
            return super().forward(xt, t, labels)
        return self.model(xt, t, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("name")
    parser.add_argument("settings", nargs="+", type=json.loads)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    torch.set_num_threads(2)
    with loading(args.checkpoint):  # lesson 04's U-Net, or attention.py's
        model, schedule, _ = load_trained(args.checkpoint)
    classifier = load_classifier()
    held_x, _ = load_digits("mnist-5k", "test")  # (1000, 1, 28, 28)
    train_x, _ = load_digits("mnist-5k", "train")
    labels = l6.digit_labels("0123456789", 100)
    reference = feature_stats(classifier, held_x)
    floor, n = frechet_floor_heldout(classifier, train_x, reference, len(labels))
    out = {"checkpoint": args.checkpoint, "floor": floor, "floor_n": n, "rows": []}
    path = ROOT / "benchmarks" / "results" / "recipe" / f"sweep_{args.name}.json"
    for setting in args.settings:
        lo, hi = setting.get("interval", [0, schedule.T])
        guided = GuidedInterval(model, setting.get("w", PROTOCOL_W), lo, hi)
        spacing = setting.get("spacing", "even")
        kwargs = {
            "sampler": setting.get("sampler", "ddim"),
            "steps": setting.get("steps", 50),
            "eta": setting.get("eta", 0.0),
            "t_min": setting.get("t_min", 1),
        }
        for seed in args.seeds:
            g = torch.Generator().manual_seed(seed)
            start = time.perf_counter()
            if spacing == "quadratic":  # lesson 06's sampler with exercise 5's steps
                with mock.patch.object(l6, "sampling_timesteps", quadratic_timesteps):
                    x = l6.sample(guided, schedule, labels, generator=g, **kwargs)
            else:
                x = l6.sample(guided, schedule, labels, generator=g, **kwargs)
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
