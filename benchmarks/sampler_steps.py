"""Chapter 06's sampler table: DDIM with 10, 25, 50 and 100 steps and DDPM with 1,000.

Run:  .venv/bin/python benchmarks/sampler_steps.py [--per-digit 20]
          [--ddpm-per-digit 10] [--jobs 2]

Samples the shipped checkpoint without guidance (clipping on) and scores each sampler
with lesson 07's classifier: the share of samples read as the requested digit, and the
Fréchet classifier distance to the 1,000 held-out digits of mnist-5k beside its floor,
as many real *training* digits against the same held-out digits (same n). DDPM calls
the network 1,000 times per sample, so it draws fewer digits (``--ddpm-per-digit``).

Each sampler draws each digit as one batch, from the noise of seed ``--seed + digit``,
so every sampler starts digit d from the same x_T (DDPM's digits are the first of
DDIM's). The batches run in ``--jobs`` processes of one torch thread each: no thread
waits for another, so a batch's CPU time is what drawing it costs, even on a busy
machine, where wall time is not. The table gives CPU seconds; the wall time and the
load average are kept in the JSON. Writes docs/figures/06_sampler_steps.json and
docs/figures/06_sampler_steps.md (about 5 CPU minutes at the defaults).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson05_training import load_trained
from diffusion_lessons.lesson06_sampling import SHIPPED, default_t_min, sample
from diffusion_lessons.lesson07_classifier import (
    evaluate_samples,
    feature_stats,
    load_classifier,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "figures" / "06_sampler_steps"
#: (key in the JSON, sampler, steps); the network is called `steps` times per sample
SETTINGS = [
    ("ddim_10", "ddim", 10),
    ("ddim_25", "ddim", 25),
    ("ddim_50", "ddim", 50),
    ("ddim_100", "ddim", 100),
    ("ddpm_1000", "ddpm", 1000),
]

_worker = {}


def _init_worker(checkpoint: str) -> None:
    torch.set_num_threads(1)
    _worker["model"], _worker["schedule"], _ = load_trained(checkpoint)


def draw_digit(unit: tuple) -> tuple:
    """One batch: ``n`` samples of one digit with one sampler, and its CPU seconds."""
    key, sampler, steps, digit, n, seed = unit
    wall, cpu = time.perf_counter(), time.process_time()
    x = sample(
        _worker["model"],
        _worker["schedule"],
        torch.full((n,), digit),
        sampler=sampler,
        steps=steps,
        generator=torch.Generator().manual_seed(seed + digit),
    )
    return key, digit, x, time.process_time() - cpu, time.perf_counter() - wall


def score(key, sampler, steps, x, labels, cpu, wall, classifier, reference) -> dict:
    """Lesson 07's numbers for one sampler's samples, with its cost."""
    report = evaluate_samples(x, labels, classifier, reference=reference)
    n, acc = report["n"], report["accuracy"]
    se = (acc * (1 - acc) / n) ** 0.5  # standard error of a share of n samples
    return {
        "sampler": "DDPM" if sampler == "ddpm" else "DDIM",
        "steps": steps,
        "network_calls": steps,
        "per_digit": n // 10,
        "n": n,
        "accuracy": acc,
        "accuracy_se": se,
        "accuracy_pm_points": 200 * se,  # two standard errors, in points
        "per_class": report["per_class"],
        "frechet_distance": report["frechet_distance"],
        "frechet_floor": report["frechet_floor"],
        "frechet_floor_n": report["frechet_floor_n"],
        "cpu_seconds": cpu,
        "wall_seconds_summed": wall,
        "cpu_seconds_per_100": 100 * cpu / n,
    }


def table(result: dict) -> str:
    lines = [
        "| sampler | network calls per sample | samples | classifier accuracy "
        "| Fréchet distance | real floor (same n) | CPU seconds per 100 digits |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"].values():
        lines.append(
            f"| {r['sampler']}, {r['steps']:,} steps | {r['network_calls']:,} "
            f"| {r['n']:,} | {r['accuracy']:.1%} ± {r['accuracy_pm_points']:.0f} "
            f"| {r['frechet_distance']:.1f} | {r['frechet_floor']:.1f} "
            f"| {r['cpu_seconds_per_100']:.1f} |"
        )
    m = result["machine"]
    lines.append(
        f"\n*{result['checkpoint']}, no guidance, clipping on; {result['per_digit']} "
        f"digits of each class per DDIM row and {result['ddpm_per_digit']} for DDPM, "
        f"digit d from sampling seed {result['seed']} + d. DDIM ends at t = "
        f"{result['ddim_t_min']} (lesson 06's default), DDPM at t = 1. Accuracy ± "
        "two standard errors, in points. Distance and floor against the 1,000 "
        "held-out digits of mnist-5k; the floor scores as many training digits. CPU "
        f"seconds of one torch thread, in {m['jobs']} processes (load average "
        f"{m['load_before']:.1f} at the start); {m['machine']}, torch {m['torch']}, "
        f"{result['date']}. Made by `{result['command']}`.*"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-digit", type=int, default=20)
    parser.add_argument("--ddpm-per-digit", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=2, help="processes, 1 thread each")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", default=str(SHIPPED))
    args = parser.parse_args(argv)
    load_before, start = os.getloadavg()[0], time.perf_counter()
    units = [  # the longest first, so that the processes finish together
        (key, sampler, steps, d, per, args.seed)
        for key, sampler, steps in sorted(SETTINGS, key=lambda s: -s[2])
        for per in [args.ddpm_per_digit if sampler == "ddpm" else args.per_digit]
        for d in range(10)
    ]
    images, cost = {}, {}
    with ProcessPoolExecutor(
        args.jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(args.checkpoint,),
    ) as pool:
        for key, digit, x, cpu, wall in pool.map(draw_digit, units):
            images[key, digit] = x
            c = cost.setdefault(key, [0.0, 0.0])
            c[0], c[1] = c[0] + cpu, c[1] + wall
    torch.set_num_threads(1)
    classifier = load_classifier()
    reference = feature_stats(classifier, load_digits("mnist-5k", "test")[0])
    rows = {}
    for key, sampler, steps in SETTINGS:
        x = torch.cat([images[key, d] for d in range(10)])
        labels = torch.arange(10).repeat_interleave(len(x) // 10)
        r = score(key, sampler, steps, x, labels, *cost[key], classifier, reference)
        rows[key] = r
        print(
            f"{r['sampler']}, {steps:4d} steps, n = {r['n']}: accuracy "
            f"{r['accuracy']:.1%} ± {r['accuracy_pm_points']:.0f}, FD "
            f"{r['frechet_distance']:.1f} (floor {r['frechet_floor']:.1f}), "
            f"{r['cpu_seconds']:.1f} CPU s",
            flush=True,
        )
    base = rows["ddim_50"]["cpu_seconds_per_100"]
    for r in rows.values():
        r["time_vs_ddim_50"] = r["cpu_seconds_per_100"] / base
    command = "python benchmarks/sampler_steps.py"
    for name, default in (("per_digit", 20), ("ddpm_per_digit", 10), ("jobs", 2)):
        if getattr(args, name) != default:
            command += f" --{name.replace('_', '-')} {getattr(args, name)}"
    result = {
        "checkpoint": Path(args.checkpoint).name,
        "guidance": 0.0,
        "seed": args.seed,
        "per_digit": args.per_digit,
        "ddpm_per_digit": args.ddpm_per_digit,
        # where each DDIM chain ends (lesson 06's default); DDPM takes all T steps
        "ddim_t_min": default_t_min(load_trained(args.checkpoint)[1].T),
        "reference": "mnist-5k held-out digits (1,000)",
        "command": command,
        "date": str(datetime.date.today()),
        "machine": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "jobs": args.jobs,
            "threads": 1,
            "torch": torch.__version__,
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "wall_seconds": time.perf_counter() - start,
        },
        "rows": rows,
    }
    OUT.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    OUT.with_suffix(".md").write_text(table(result))
    print(f"wrote {OUT.with_suffix('.json')}\nwrote {OUT.with_suffix('.md')}")


if __name__ == "__main__":
    main()
