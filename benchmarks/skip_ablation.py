"""Chapter 04's skip ablation: `tiny` with and without skips, loss by band of t.

Run:  .venv/bin/python benchmarks/skip_ablation.py [--seeds 0 1 2] [--steps 800]
          [--jobs 2] [--out docs/figures/04_skip_ablation] [--summarise-only]

For each seed, trains the `tiny` U-Net twice: with its skip connections and with
``use_skips=False`` (lesson 04: the same layers and parameters, zeros where the skips
would be). Both start from the same initial weights and see the same batches, steps t
and noise. The setting is ordinary training, not one batch: Adam at a constant learning
rate of 2e-3, batches of 64 from the 4,000 training digits of mnist-5k with their labels
(no label dropout), cosine schedule, t uniform in 1..T, the plain loss of eq. (5.2)
(lesson 05's ``diffusion_loss``), no EMA.

After 100, 400 and 800 steps each network is scored on held-out digits, by band of t.
The evaluation is fixed once for every run: 400 digits (a fixed random pick from the
1,000 held-out digits of mnist-5k) and, for each band, 4 draws per digit of (t uniform
in the band, eps), made from a generator of its own (seed ``EVAL_SEED``, not the
training seed). So every network, at every step, is scored on the same 8,000 noisy
images, and two cells differ only because the networks do.

Writes docs/figures/04_skip_ablation.json (the band losses per seed; mean, min and max
over seeds per cell; the ratio without/with skips and the relative gap, per seed and
summarised; whether the two ranges over seeds overlap) and
docs/figures/04_skip_ablation.md (the table of chapter 04); ``--out`` writes them
elsewhere, and ``--summarise-only`` rebuilds the summary and the table from the runs
kept in the JSON. Each run trains in a process of one torch thread, ``--jobs`` at a
time: 6 runs of about 110 CPU seconds each (11 CPU minutes in all, kept in the JSON),
so about 6 minutes of wall time on 2 free cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import multiprocessing
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson01_forward_noise import q_sample
from diffusion_lessons.lesson02_schedules import Schedule, make_schedule
from diffusion_lessons.lesson04_unet import UNET_PRESETS, UNet
from diffusion_lessons.lesson05_training import batch_indices, diffusion_loss
from diffusion_lessons.runs import write_json

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "figures" / "04_skip_ablation"
#: bands of t, both ends included; the keys in the JSON are "1-20", "21-100", ...
BANDS = [(1, 20), (21, 100), (101, 300), (301, 600), (601, 1000)]
STEPS_SCORED = (100, 400, 800)
HELD_OUT, DRAWS, EVAL_SEED = 400, 4, 1234
LR, BATCH = 2e-3, 64
VARIANTS = {"with": True, "without": False}  # key in the JSON -> use_skips


def band_key(band: tuple[int, int]) -> str:
    return f"{band[0]}-{band[1]}"


def evaluation_set(
    x0: torch.Tensor,
    labels: torch.Tensor,
    n: int = HELD_OUT,
    draws: int = DRAWS,
    seed: int = EVAL_SEED,
) -> dict:
    """The fixed held-out test: ``n`` digits of ``x0`` and, per band, ``draws`` pairs
    (t, eps) per digit, all from a generator seeded with ``seed``.
    """
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(x0), generator=g)[:n]
    x0, labels = x0[pick].repeat(draws, 1, 1, 1), labels[pick].repeat(draws)
    bands = {}
    for lo, hi in BANDS:
        t = torch.randint(lo, hi + 1, (len(x0),), generator=g)
        bands[band_key((lo, hi))] = (t, torch.randn(x0.shape, generator=g))
    return {"x0": x0, "labels": labels, "bands": bands}


@torch.no_grad()
def band_losses(
    model: UNet, test: dict, schedule: Schedule, batch: int = 400
) -> dict[str, float]:
    """Mean squared error of the predicted noise (eq. 5.2) on ``test``, per band."""
    out = {}
    for key, (t, eps) in test["bands"].items():
        total = 0.0
        for i in range(0, len(t), batch):
            s = slice(i, i + batch)
            xt = q_sample(test["x0"][s], t[s], schedule, eps=eps[s])  # eq. 5.1
            pred = model(xt, t[s], test["labels"][s])
            total += ((pred - eps[s]) ** 2).sum().item()
        out[key] = total / eps.numel()
    return out


def train_and_score(unit: tuple) -> dict:
    """One run: ``tiny`` with or without skips, scored at each of ``scored`` steps."""
    seed, variant, scored = unit
    torch.set_num_threads(1)
    cpu = time.process_time()
    x0_all, labels_all = load_digits("mnist-5k", split="train", verbose=False)
    test = evaluation_set(*load_digits("mnist-5k", split="test", verbose=False))
    schedule = make_schedule("cosine", UNET_PRESETS["tiny"].T)
    torch.manual_seed(seed)  # the same initial weights with and without skips
    config = dataclasses.replace(UNET_PRESETS["tiny"], use_skips=VARIANTS[variant])
    model = UNet(config)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    g = torch.Generator().manual_seed(seed)  # the same t and eps for both variants
    losses, scores = [], {}
    for step in range(max(scored)):
        idx = batch_indices(step, len(x0_all), BATCH, seed)
        loss = diffusion_loss(
            model, x0_all[idx], labels_all[idx], schedule, 0.0, g, None
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step + 1 in scored:
            model.eval()
            scores[str(step + 1)] = band_losses(model, test, schedule)
            model.train()
    return {
        "seed": seed,
        "variant": variant,
        "scores": scores,
        "train_loss_last_50": {
            str(s): statistics.fmean(losses[max(0, s - 50) : s]) for s in scored
        },
        "cpu_seconds": time.process_time() - cpu,
    }


def summary(values: list[float]) -> dict:
    return {
        "seeds": values,
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


def summarise(runs: list[dict], seeds: list[int], scored: tuple) -> dict:
    """Mean, min and max over seeds per cell; the ratio without/with per seed and the
    relative gap (ratio - 1); whether the two ranges over seeds are apart.
    """
    by = {(r["variant"], r["seed"]): r["scores"] for r in runs}
    cells, ratio, gap, separate = {}, {}, {}, {}
    for step in map(str, scored):
        for band in map(band_key, BANDS):
            for v in VARIANTS:
                values = [by[v, s][step][band] for s in seeds]
                cells.setdefault(v, {}).setdefault(step, {})[band] = summary(values)
            r = [
                by["without", s][step][band] / by["with", s][step][band] for s in seeds
            ]
            ratio.setdefault(step, {})[band] = summary(r)
            gap.setdefault(step, {})[band] = summary([x - 1 for x in r])
            # the gap is larger than the seed-to-seed spread: the ranges do not overlap
            separate.setdefault(step, {})[band] = (
                cells["without"][step][band]["min"] > cells["with"][step][band]["max"]
            )

    def extremes(per_band: dict) -> dict:  # over the bands, of the mean over seeds
        means = [c["mean"] for c in per_band.values()]
        return {"min": min(means), "max": max(means)}

    return {
        "cells": cells,
        "ratio": ratio,
        "gap": gap,
        "ranges_separate": separate,
        "ratio_over_bands": {step: extremes(ratio[step]) for step in ratio},
        "gap_over_bands": {step: extremes(gap[step]) for step in gap},
        "bands_separate": {step: sum(separate[step].values()) for step in separate},
    }


def fmt(cell: dict) -> str:
    return f"{cell['mean']:.3f} ({cell['min']:.3f}–{cell['max']:.3f})"


def table(result: dict) -> str:
    head = " | ".join(b.replace("-", "–") for b in map(band_key, BANDS))
    lines = [
        f"| held-out loss, \\( t \\) in | {head} |",
        "|---|" + "---:|" * len(BANDS),
    ]
    cells, separate = result["cells"], result["ranges_separate"]
    for step in map(str, result["steps_scored"]):
        for v in VARIANTS:
            row = []
            for band in map(band_key, BANDS):
                text = fmt(cells[v][step][band])
                bold = v == "without" and separate[step][band]
                row.append(f"**{text}**" if bold else text)
            lines.append(f"| {v} skips, after {step} steps | " + " | ".join(row) + " |")
    m = result["machine"]
    lines.append(
        f"\n*`tiny` ({result['parameters']:,} parameters with or without skips), "
        f"Adam at a learning rate of {result['lr']:g}, batches of "
        f"{result['batch_size']} from the {result['train_digits']:,} training digits "
        "of mnist-5k, cosine schedule, "
        "\\( t \\) uniform in 1..T. Loss of eq. (5.2) on "
        f"{result['held_out']} held-out digits, {result['draws']} fixed "
        "\\( (t, \\epsilon) \\) draws per digit and band, the same for every network. "
        f"Mean over {len(result['seeds'])} seeds "
        f"({', '.join(map(str, result['seeds']))}), with the lowest and highest in "
        "brackets; bold: every seed without skips is worse than every seed with them. "
        f"{m['machine']}, torch {m['torch']}, {result['date']}. Made by "
        f"`{result['command']}`.*"
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=800, help="the last step scored")
    parser.add_argument("--jobs", type=int, default=2, help="processes, 1 thread each")
    parser.add_argument(
        "--out", type=Path, default=OUT, help="writes OUT.json and OUT.md"
    )
    parser.add_argument(
        "--summarise-only",
        action="store_true",
        help="rebuild the summary and the table from the runs in OUT.json",
    )
    args = parser.parse_args(argv)
    if args.summarise_only:
        result = json.loads(args.out.with_suffix(".json").read_text())
        steps = tuple(result["steps_scored"])
        result.update(summarise(result["runs"], result["seeds"], steps))
        return write(result, args.out)
    scored = tuple(s for s in STEPS_SCORED if s < args.steps) + (args.steps,)
    load_before, start = os.getloadavg()[0], time.perf_counter()
    units = [(seed, v, scored) for seed in args.seeds for v in VARIANTS]
    with ProcessPoolExecutor(
        args.jobs, mp_context=multiprocessing.get_context("spawn")
    ) as pool:
        runs = []
        for r in pool.map(train_and_score, units):
            runs.append(r)
            last = r["scores"][str(scored[-1])]
            print(
                f"seed {r['seed']}, {r['variant']} skips, after {scored[-1]} steps: "
                + ", ".join(f"{k} {v:.3f}" for k, v in last.items())
                + f" ({r['cpu_seconds']:.0f} CPU s)",
                flush=True,
            )
    command = "python benchmarks/skip_ablation.py"
    if args.seeds != [0, 1, 2]:
        command += " --seeds " + " ".join(map(str, args.seeds))
    for name, default in (("steps", 800), ("jobs", 2), ("out", OUT)):
        if getattr(args, name) != default:
            command += f" --{name} {getattr(args, name)}"
    result = {
        "preset": "tiny",
        "parameters": sum(p.numel() for p in UNet(UNET_PRESETS["tiny"]).parameters()),
        "optimizer": "Adam",
        "lr": LR,
        "batch_size": BATCH,
        "schedule": "cosine",
        "dataset": "mnist-5k",
        "train_digits": len(load_digits("mnist-5k", split="train", verbose=False)[1]),
        "held_out": HELD_OUT,
        "draws": DRAWS,
        "eval_seed": EVAL_SEED,
        "bands": [band_key(b) for b in BANDS],
        "steps_scored": list(scored),
        "seeds": args.seeds,
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
            "cpu_seconds": sum(r["cpu_seconds"] for r in runs),
        },
        **summarise(runs, args.seeds, scored),
        "runs": runs,
    }
    write(result, args.out)


def write(result: dict, out: Path) -> None:
    """``out``.json (atomically) and the table ``out``.md."""
    write_json(out.with_suffix(".json"), result)
    out.with_suffix(".md").write_text(table(result))
    print(f"wrote {out.with_suffix('.json')}\nwrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
