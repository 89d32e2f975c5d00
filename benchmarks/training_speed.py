"""Training throughput (images/s) of each U-Net preset on this machine, with the CPU
levers of lesson 05.

Run:  .venv/bin/python benchmarks/training_speed.py [--threads 1 2] [--out
    benchmarks/results/training_speed.md]

Measures one optimiser step (forward, backward, AdamW) on a batch of 128 noisy digits,
after warm-up,
median of several repeats, for: fp32, bf16 autocast, channels_last. Run it on an
otherwise idle machine: two busy processes sharing two cores slow torch down
several-fold.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from diffusion_lessons.lesson04_unet import UNET_PRESETS, UNet, count_parameters


def step_time(
    preset: str,
    threads: int,
    bf16: bool = False,
    channels_last: bool = False,
    batch: int = 128,
    repeats: int = 6,
    warmup: int = 2,
) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = UNet(UNET_PRESETS[preset])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    xt = torch.randn(batch, 1, 28, 28).to(memory_format=fmt)
    t, y = torch.randint(1, 1001, (batch,)), torch.randint(0, 10, (batch,))
    eps = torch.randn(batch, 1, 28, 28)
    times = []
    for i in range(warmup + repeats):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            eps_pred = model(xt, t, y)
        loss = ((eps_pred.float() - eps) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--out", default="benchmarks/results/training_speed.md")
    args = parser.parse_args()
    rows = [
        "| preset | parameters | threads | variant | ms / step (batch 128) | images / "
        "s |",
        "|---|---:|---:|---|---:|---:|",
    ]
    measured = {}
    for preset in args.presets:
        params = count_parameters(UNet(UNET_PRESETS[preset]))
        for threads in args.threads:
            for name, kw in [
                ("fp32", {}),
                ("bf16 autocast", {"bf16": True}),
                ("fp32, channels_last", {"channels_last": True}),
            ]:
                sec = step_time(preset, threads, **kw)
                measured.setdefault(preset, {}).setdefault(str(threads), {})[name] = (
                    sec * 1000
                )
                rows.append(
                    f"| {preset} | {params:,} | {threads} | {name} | {sec * 1000:.0f} "
                    f"| {128 / sec:.0f} |"
                )
                print(rows[-1], flush=True)
    cpu = platform.processor() or platform.machine()
    note = (
        f"\n*Measured by `benchmarks/training_speed.py` on {cpu}, "
        f"{torch.get_num_threads()} max threads, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d')}.*\n"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(rows) + "\n" + note)
    for by_threads in measured.values():  # how much slower float32 is than bfloat16
        for ms in by_threads.values():
            ms["fp32_over_bf16"] = ms["fp32"] / ms["bf16 autocast"]
    Path(args.out).with_suffix(".json").write_text(
        json.dumps({"ms_per_step": measured, "note": note.strip()}, indent=1)
    )
    print(f"wrote {args.out} and .json")


if __name__ == "__main__":
    main()
