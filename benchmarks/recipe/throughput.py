"""Seconds per optimiser step of recipe variants, on this machine, now.

Run:  .venv/bin/python benchmarks/recipe/throughput.py '{}' '{"batch_size": 64}' ... \
          [--budget 1800] [--timed 40] [--out throughput.json]

Each argument is a JSON object of TrainConfig overrides (as for lever.py). For each,
times ``--timed`` training steps after 10 warm-up steps (2 threads, bf16 as in the
preset) and prints seconds per step and the steps that fit the first variant's budget
(``--budget`` steps) at equal wall-clock time. Run it on an idle machine: the step
counts of the ablation come from it (benchmarks/results/recipe/throughput*.json).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from attention import AttentionUNet
from lever import config

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson02_schedules import make_schedule
from diffusion_lessons.lesson04_unet import UNet
from diffusion_lessons.lesson05_training import train_step, use_bf16

ROOT = Path(__file__).resolve().parents[2]


def seconds_per_step(overrides: dict, warm: int = 10, timed: int = 40) -> float:
    cfg = config(overrides)
    torch.manual_seed(0)
    torch.set_num_threads(cfg.threads)
    x, y = load_digits("mnist-5k", "train")
    net = AttentionUNet if overrides.get("attention") else UNet
    model, ema = net(cfg.model), net(cfg.model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    schedule = make_schedule(cfg.schedule, cfg.model.T)
    g = torch.Generator().manual_seed(0)
    bf16 = use_bf16(cfg.precision, torch.device("cpu"))
    for step in range(warm + timed):
        if step == warm:
            start = time.perf_counter()
        i = torch.randint(0, len(x), (cfg.batch_size,), generator=g)
        train_step(model, ema, opt, x[i], y[i], schedule, cfg, step, g, bf16)
    return (time.perf_counter() - start) / timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="*", default=["{}"], type=json.loads)
    parser.add_argument("--budget", type=int, default=1800, help="steps of the first")
    parser.add_argument("--timed", type=int, default=40, help="steps timed per variant")
    parser.add_argument("--out", default="throughput.json")
    args = parser.parse_args()
    rows = []
    for overrides in args.variants:
        rows.append({"overrides": overrides, "s_per_step": 0.0})
        rows[-1]["s_per_step"] = seconds_per_step(overrides, timed=args.timed)
    base = rows[0]["s_per_step"]
    for r in rows:
        r[f"steps_equal_time_{args.budget}"] = round(
            args.budget * base / r["s_per_step"]
        )
        print(json.dumps(r), flush=True)
    out = ROOT / "benchmarks" / "results" / "recipe" / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
