"""Seconds to sample 100 digits: what `diffusion-lessons sample` and the tour pay.

Run (on an otherwise idle machine):  .venv/bin/python benchmarks/sampling_speed.py

Each setting draws 100 digits (ten of each class) from checkpoints/small.pt with lesson
06's ``sample`` and its defaults: DDIM in 25 steps, the chain ending at t = T / 10,
the network under bf16 autocast where the CPU has fast bfloat16. Guided settings (lesson
09) run the conditional and the unconditional pass as one batch of 200, so a guided step
costs about two plain ones. Each time is the median of --repeats runs after one
warm-up, at 1 and 2 torch threads. Writes benchmarks/results/sampling_speed.{md,json};
about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from diffusion_lessons.lesson05_training import load_trained
from diffusion_lessons.lesson06_sampling import (
    DEFAULT_STEPS,
    SHIPPED,
    digit_labels,
    sample,
)
from diffusion_lessons.lesson09_guidance import RECOMMENDED_W, GuidedModel

OUT = Path(__file__).resolve().parent / "results" / "sampling_speed.md"
#: (name, guidance w, DDIM steps, precision)
SETTINGS = [
    ("course default", RECOMMENDED_W, DEFAULT_STEPS, "auto"),
    ("no guidance", 0.0, DEFAULT_STEPS, "auto"),
    ("50 steps", RECOMMENDED_W, 50, "auto"),
    ("float32 network", RECOMMENDED_W, DEFAULT_STEPS, "fp32"),
]


def seconds_per_100(model, schedule, w, steps, precision, repeats) -> float:
    """Median wall-clock seconds of one call of ``sample`` for 100 digits."""
    labels = digit_labels("0123456789", 10)  # (100,)
    guided = GuidedModel(model, w)
    times = []
    for i in range(repeats + 1):  # the first run warms up and is not counted
        start = time.perf_counter()
        sample(guided, schedule, labels, steps=steps, precision=precision)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, schedule, _ = load_trained(SHIPPED)
    load_before = os.getloadavg()[0]
    rows, measured = [], []
    for name, w, steps, precision in SETTINGS:
        for threads in args.threads:
            torch.set_num_threads(threads)
            sec = seconds_per_100(model, schedule, w, steps, precision, args.repeats)
            evals = steps * (2 if w else 1)  # network evaluations per digit
            measured.append(
                dict(
                    setting=name,
                    w=w,
                    steps=steps,
                    precision=precision,
                    threads=threads,
                    evaluations_per_digit=evals,
                    seconds_per_100=sec,
                )
            )
            rows.append(
                f"| {name} | {w:g} | {steps} | {precision} | {threads} | {evals} "
                f"| {sec:.1f} |"
            )
            print(rows[-1], flush=True)
    cpu = platform.processor() or platform.machine()
    note = (
        f"*{SHIPPED.name}, 100 digits per call, DDIM ending at t = T / 10; median of "
        f"{args.repeats} calls after a warm-up. {cpu}, {os.cpu_count()} cores (load "
        f"average {load_before:.1f} at the start), torch {torch.__version__}, "
        f"{time.strftime('%Y-%m-%d')}. Made by `python benchmarks/sampling_speed.py`.*"
    )
    head = [
        "| setting | w | steps | network | threads | evaluations per digit "
        "| seconds per 100 digits |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(head + rows) + "\n\n" + note + "\n")
    result = {"rows": measured, "load_before": load_before, "note": note}
    OUT.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUT} and .json")


if __name__ == "__main__":
    main()
