"""Where the background haze comes from: the network's last guess, or the path to it.

Run:  .venv/bin/python benchmarks/recipe/haze_source.py LABEL=CHECKPOINT... [--out FILE]

A sample ends with x0_pred made at t_min (lesson 06). Its haze (background pixels above
0.02, lesson 07's ``background_haze``) has two sources:
- the network's precision: even given a true x_t (a held-out digit noised by eq. 1.3),
  its x0_pred (eq. 6.1, clipped) is not exactly black where the digit is;
- the path: a sampled x_t is the end of a chain of the network's own guesses, and may
  carry faint strokes that no real x_t has.
For each checkpoint and each t, this measures both on 1,000 digits (100 per class):
"one step" denoises the 1,000 held-out digits of mnist-5k noised to t (noise seed 0);
"sampled" runs lesson 06's DDIM (its default steps) from x_T to t_min = t (sampling
seed 0). Both use the recommended guidance (lesson 09's ``RECOMMENDED_W``) and the same
clip, so their difference is the path's share. Writes FILE (default
benchmarks/results/recipe/haze_source.md) and its .json twin.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from attention import loading

import diffusion_lessons.lesson06_sampling as l6
from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson01_forward_noise import q_sample
from diffusion_lessons.lesson05_training import load_trained
from diffusion_lessons.lesson07_classifier import background_haze
from diffusion_lessons.lesson09_guidance import RECOMMENDED_W, GuidedModel

ROOT = Path(__file__).resolve().parents[2]
TS = (50, 100, 200)


@torch.no_grad()
def one_step_haze(guided, schedule, x0, labels, t: int) -> float:
    """Haze of x0_pred (eq. 6.1, clipped as the sampler clips) from x0 noised to t."""
    g = torch.Generator().manual_seed(0)
    tt = torch.full((len(x0),), t)
    xt = q_sample(x0, tt, schedule, eps=torch.randn(x0.shape, generator=g))
    _, x0_pred = l6.reverse_step(xt, guided(xt, tt, labels), t, 0, schedule)
    return background_haze(x0_pred)["above"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="LABEL=CHECKPOINT")
    parser.add_argument("--out", default="benchmarks/results/recipe/haze_source.md")
    args = parser.parse_args()
    torch.set_num_threads(2)
    held_x, held_y = load_digits("mnist-5k", "test")  # (1000, 1, 28, 28), (1000,)
    labels = l6.digit_labels("0123456789", 100)
    out = {"w": RECOMMENDED_W, "real": background_haze(held_x)["above"], "rows": []}
    for item in args.checkpoints:
        label, path = item.split("=", 1)
        with loading(ROOT / path):  # lesson 04's U-Net, or attention.py's
            model, schedule, _ = load_trained(ROOT / path)
        guided = GuidedModel(model, RECOMMENDED_W)
        for t in TS:
            x = l6.sample(
                guided,
                schedule,
                labels,
                t_min=t,
                generator=torch.Generator().manual_seed(0),
            )
            row = {
                "label": label,
                "checkpoint": path,
                "t": t,
                "one_step": one_step_haze(guided, schedule, held_x, held_y, t),
                "sampled": background_haze(x)["above"],
            }
            out["rows"].append(row)
            print(
                f"{label} t = {t}: one step {row['one_step']:.3%}, "
                f"sampled {row['sampled']:.3%}",
                flush=True,
            )
    lines = [
        "| model | t | one step from a real x_t | sampled, chain ending at t |"
        " path's share |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in out["rows"]:
        share = 1 - r["one_step"] / r["sampled"] if r["sampled"] else float("nan")
        lines.append(
            f"| {r['label']} | {r['t']} | {r['one_step']:.2%} | {r['sampled']:.2%} "
            f"| {share:.0%} |"
        )
    command = "python benchmarks/recipe/haze_source.py " + " ".join(args.checkpoints)
    lines.append(
        f"\n*Background haze (share of background pixels above 0.02; the 1,000 held-out"
        f" digits themselves: {out['real']:.3%}) of x0_pred made at t, with guidance"
        f" w = {RECOMMENDED_W}: from the held-out digits noised to t (one network"
        f" evaluation), and at the end of lesson 06's DDIM-{l6.DEFAULT_STEPS} chain"
        " stopped at t_min = t; 1,000 digits each, one noise seed. The path's share is"
        f" 1 - one step / sampled. Made by `{command}`.*"
    )
    path = ROOT / args.out
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(out, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
