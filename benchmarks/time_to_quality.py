"""Time to quality: how good are the samples after each minute of CPU training?

Run:  .venv/bin/python benchmarks/time_to_quality.py --run runs/small [--train]
    [--preset small]

With --train it first trains the preset into --run (exactly `diffusion-lessons train
--preset P --dataset mnist-5k --out RUN`). Then, for every EMA snapshot the run saved,
it draws 50 digits of each class (DDIM, 50 steps, seed 0) without guidance and with the
recommended guidance weight, and reads them with the course's classifier
(checkpoints/classifier.pt). Writes benchmarks/results/time_to_quality_<preset>.md,
docs/figures/05_time_to_quality.png and the quality-over-training grid
docs/figures/05_quality_over_training.png (same noise in every row).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from diffusion_lessons.cli import main as cli
from diffusion_lessons.lesson02_schedules import make_schedule
from diffusion_lessons.lesson04_unet import UNet
from diffusion_lessons.lesson05_training import config_from_dict
from diffusion_lessons.lesson06_sampling import digit_labels, sample
from diffusion_lessons.lesson07_classifier import classifier_report, load_classifier
from diffusion_lessons.lesson09_guidance import RECOMMENDED_W, GuidedModel
from diffusion_lessons.plotting import new_figure, savefig, show_images


def load_snapshot(path: Path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = config_from_dict(state["config"])
    model = UNet(cfg.model)
    model.load_state_dict(state["ema"])
    return model.eval(), make_schedule(cfg.schedule, cfg.model.T), state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/small")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--per-digit", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    run = Path(args.run)
    if args.train:
        cli(
            [
                "train",
                "--preset",
                args.preset,
                "--dataset",
                "mnist-5k",
                "--out",
                str(run),
                "--threads",
                str(args.threads),
            ]
        )
    torch.set_num_threads(args.threads)
    classifier = load_classifier()
    labels = digit_labels("0123456789", args.per_digit)
    rows, grid = [], []
    for path in sorted((run / "snapshots").glob("ema_*.pt")):
        model, schedule, state = load_snapshot(path)
        accs = []
        for w in (0.0, RECOMMENDED_W):
            x = sample(
                GuidedModel(model, w),
                schedule,
                labels,
                steps=50,
                generator=torch.Generator().manual_seed(0),
            )
            accs.append(classifier_report(classifier, x, labels)["accuracy"])
        grid.append(
            sample(
                model,
                schedule,
                digit_labels("0123456789", 1),
                steps=50,
                generator=torch.Generator().manual_seed(1),
            )
        )
        rows.append((state["step"], state["seconds"], *accs))
        print(
            f"step {state['step']:6d}  {state['seconds'] / 60:5.1f} min  accuracy w=0 "
            f"{accs[0]:.1%}  w={RECOMMENDED_W:g} {accs[1]:.1%}",
            flush=True,
        )
    out = Path("benchmarks/results") / f"time_to_quality_{args.preset}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    table = [
        "| step | training time (min) | accuracy, w = 0 | accuracy, w = "
        f"{RECOMMENDED_W:g} |",
        "|---:|---:|---:|---:|",
    ]
    table += [
        f"| {s} | {sec / 60:.1f} | {a0:.1%} | {a1:.1%} |" for s, sec, a0, a1 in rows
    ]
    table.append(
        f"\n*{args.per_digit * 10} samples per row (DDIM 50 steps, seed 0), read by "
        "checkpoints/classifier.pt; "
        f"preset {args.preset}, {args.threads} CPU threads, run {run}. Made by "
        "`benchmarks/time_to_quality.py`.*"
    )
    out.write_text("\n".join(table) + "\n")
    fig, ax = new_figure(size=(6.5, 3.4))
    ax.plot(
        [r[1] / 60 for r in rows],
        [100 * r[2] for r in rows],
        "o-",
        label="no guidance (w = 0)",
    )
    ax.plot(
        [r[1] / 60 for r in rows],
        [100 * r[3] for r in rows],
        "o-",
        label=f"guidance w = {RECOMMENDED_W:g}",
    )
    ax.set_xlabel("training time on the CPU (minutes)")
    ax.set_ylabel("classifier accuracy (%)")
    ax.set_title(
        f"preset {args.preset}: samples read as the requested digit", fontsize=9
    )
    ax.legend()
    savefig(fig, "docs/figures/05_time_to_quality.png")
    fig, ax = new_figure(size=(8.5, 0.85 * len(grid) + 0.5))
    show_images(ax, torch.cat(grid), nrow=10, row_labels=[f"step {r[0]}" for r in rows])
    ax.set_title(
        "EMA weights at each snapshot; same noise in every row (DDIM 50, seed 1)",
        fontsize=9,
    )
    savefig(fig, "docs/figures/05_quality_over_training.png")
    print(
        f"wrote {out}, docs/figures/05_time_to_quality.png, "
        "docs/figures/05_quality_over_training.png"
    )


if __name__ == "__main__":
    main()
