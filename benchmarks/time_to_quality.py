"""Time to quality: how good are the samples after each minute of CPU training?

Run:  .venv/bin/python benchmarks/time_to_quality.py --run runs/small [--train]
    [--preset small]

With --train it first trains the preset into --run (exactly `diffusion-lessons train
--preset P --dataset mnist-5k --out RUN`). Then, for every EMA snapshot the run saved,
it draws ``--per-digit`` digits of each class (as the book samples: lesson 06's DDIM
steps ending at t = T / 10, seed 0) without guidance and with the recommended guidance
weight, reads them with the course's classifier
(checkpoints/classifier.pt), and measures the guided samples' Fréchet distance to the
1,000 held-out digits beside its floor at the same n (benchmarks/recipe/quality.py).
Writes benchmarks/results/time_to_quality_<preset>.md and .json (per-class accuracy,
the mean training loss of the 50 steps before each snapshot),
docs/figures/05_time_to_quality.png and the quality-over-training grid
docs/figures/05_quality_over_training.png (same noise in every row).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "recipe"))
from quality import frechet_floor_heldout  # noqa: E402

from diffusion_lessons.cli import main as cli  # noqa: E402
from diffusion_lessons.data import load_digits  # noqa: E402
from diffusion_lessons.lesson02_schedules import make_schedule  # noqa: E402
from diffusion_lessons.lesson04_unet import UNet  # noqa: E402
from diffusion_lessons.lesson05_training import (  # noqa: E402
    config_from_dict,
    eps_model,
)
from diffusion_lessons.lesson06_sampling import (  # noqa: E402
    DEFAULT_STEPS,
    default_t_min,
    digit_labels,
    sample,
)
from diffusion_lessons.lesson07_classifier import (
    classifier_report,
    feature_stats,
    frechet_distance,
    load_classifier,
)  # noqa: E402
from diffusion_lessons.lesson09_guidance import RECOMMENDED_W, GuidedModel  # noqa: E402
from diffusion_lessons.plotting import new_figure, savefig, show_images  # noqa: E402


def load_snapshot(path: Path):
    """An EMA snapshot as a noise predictor (a v network is wrapped, as lesson 05's
    ``load_trained`` does), its schedule and the stored state.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    cfg = config_from_dict(state["config"])
    model = UNet(cfg.model)
    model.load_state_dict(state["ema"])
    schedule = make_schedule(cfg.schedule, cfg.model.T)
    return eps_model(model.eval(), cfg, schedule), schedule, state


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
    reference = feature_stats(classifier, load_digits("mnist-5k", "test")[0])
    floor, floor_n = frechet_floor_heldout(
        classifier, load_digits("mnist-5k", "train")[0], reference, len(labels)
    )
    losses = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)[
        "losses"
    ]
    rows, grid, details = [], [], []
    for path in sorted((run / "snapshots").glob("ema_*.pt")):
        model, schedule, state = load_snapshot(path)
        accs, reports = [], []
        for w in (0.0, RECOMMENDED_W):
            x = sample(
                GuidedModel(model, w),
                schedule,
                labels,
                generator=torch.Generator().manual_seed(0),  # as the book samples
            )
            reports.append(classifier_report(classifier, x, labels))
            accs.append(reports[-1]["accuracy"])
        step = state["step"]
        details.append(
            {
                "step": step,
                "minutes": state["seconds"] / 60,
                "loss_50": sum(losses[step - 50 : step]) / 50,
                "accuracy_w0": accs[0],
                "accuracy_guided": accs[1],
                "per_class_w0": reports[0]["per_class"],
                "per_class_guided": reports[1]["per_class"],
                "hardest_w0": min(range(10), key=reports[0]["per_class"].__getitem__),
                "easiest_w0": max(range(10), key=reports[0]["per_class"].__getitem__),
                "fd_guided": frechet_distance(
                    *feature_stats(classifier, x), *reference
                ),
            }
        )
        grid.append(
            sample(
                model,
                schedule,
                digit_labels("0123456789", 1),
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
        "| step | training time (min) | mean loss, last 50 steps | accuracy, w = 0 | "
        f"accuracy, w = {RECOMMENDED_W:g} | Fréchet distance, w = {RECOMMENDED_W:g} |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    table += [
        f"| {d['step']:,} | {d['minutes']:.1f} | {d['loss_50']:.4f} | "
        f"{d['accuracy_w0']:.1%} | {d['accuracy_guided']:.1%} | {d['fd_guided']:.1f} |"
        for d in details
    ]
    table.append(
        f"\n*{len(labels)} samples per row (DDIM {DEFAULT_STEPS} steps ending at t = "
        f"{default_t_min(schedule.T)}, seed 0), read by "
        "checkpoints/classifier.pt; Fréchet distance to the 1,000 held-out digits "
        f"(floor at the same n: {floor:.1f}). Preset {args.preset}, {args.threads} CPU "
        f"threads, run {run}. Made by `python benchmarks/time_to_quality.py --run "
        f"{run} --per-digit {args.per_digit}`.*"
    )
    out.write_text("\n".join(table) + "\n")
    out.with_suffix(".json").write_text(
        json.dumps(
            {"n": len(labels), "floor": floor, "floor_n": floor_n, "rows": details},
            indent=1,
        )
    )
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
        "EMA weights at each snapshot; same noise in every row "
        f"(DDIM {DEFAULT_STEPS}, seed 1)",
        fontsize=9,
    )
    savefig(fig, "docs/figures/05_quality_over_training.png")
    print(
        f"wrote {out}, docs/figures/05_time_to_quality.png, "
        "docs/figures/05_quality_over_training.png"
    )


if __name__ == "__main__":
    main()
