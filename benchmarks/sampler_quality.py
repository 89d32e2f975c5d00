"""Quality against network evaluations (NFE) for lesson 06's DDIM and for diffusers'
DPM-Solver++ and Heun, all driving the shipped U-Net with guidance w = 0.5 (lesson 09).

Run:  .venv/bin/python benchmarks/sampler_quality.py [--per-digit 50] [--replot]

Every sampler starts from the same initial noise (seed 0) for the same labels and runs
its chain to the end (DDIM with t_min = 1, not lesson 06's default end); each
setting is scored by lesson 07's classifier accuracy and Fréchet classifier distance to
the 1,000 held-out digits of mnist-5k, which no generator trains on, beside its floor:
as many real *training* digits scored against the same held-out digits (the same n as
the samples, so that distance and floor carry the same small-n bias). Writes
benchmarks/results/sampler_quality.md and docs/figures/10_quality_vs_nfe.{png,md,json}.
Thirteen settings of 500 guided samples at --per-digit 50: about 20 minutes on 2 idle
CPU cores, far longer on a shared machine. Needs the diffusers extra.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import time
from pathlib import Path

import torch

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson05_training import load_trained
from diffusion_lessons.lesson06_sampling import SHIPPED, digit_labels
from diffusion_lessons.lesson07_classifier import (
    evaluate_samples,
    feature_stats,
    load_classifier,
)
from diffusion_lessons.lesson09_guidance import RECOMMENDED_W
from diffusion_lessons.lesson10_going_further import run_sampler
from diffusion_lessons.plotting import DIGIT_COLORS, new_figure, savefig
from diffusion_lessons.runs import write_json

ROOT = Path(__file__).resolve().parents[1]
#: (sampler, steps); NFE = steps, except Heun: 2 steps - 1
SETTINGS = [
    ("ours", 5),
    ("ours", 10),
    ("ours", 20),
    ("ours", 50),
    ("ours", 100),
    ("dpm++", 5),
    ("dpm++", 10),
    ("dpm++", 20),
    ("dpm++", 50),
    ("heun", 3),
    ("heun", 5),
    ("heun", 10),
    ("heun", 25),
]
NAMES = {"ours": "DDIM (lesson 06)", "dpm++": "DPM-Solver++ (2M)", "heun": "Heun"}


def fig_quality_vs_nfe(rows: list[dict], title: str = ""):
    """Accuracy and Fréchet distance (with its floor) against network evaluations."""
    fig, axes = new_figure(1, 2, size=(9, 3.4))
    for i, name in enumerate(dict.fromkeys(r["sampler"] for r in rows)):
        mine = [r for r in rows if r["sampler"] == name]
        nfe = [r["nfe"] for r in mine]
        style = dict(marker="o", color=DIGIT_COLORS[2 * i], label=name)
        axes[0].plot(nfe, [100 * r["accuracy"] for r in mine], **style)
        axes[1].plot(nfe, [r["frechet_distance"] for r in mine], **style)
    axes[1].axhline(rows[0]["frechet_floor"], color="k", ls=":", label="real floor")
    axes[0].set_ylabel("classifier accuracy (%)")
    axes[1].set_ylabel("Fréchet classifier distance (log scale)")
    axes[1].set_yscale("log")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("network evaluations (NFE)")
        ax.legend(fontsize=9)
    fig.suptitle(title, fontsize=10)
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-digit", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--checkpoint", default=str(SHIPPED))
    parser.add_argument(
        "--replot",
        action="store_true",
        help="redraw the figure from 10_quality_vs_nfe.json without sampling",
    )
    args = parser.parse_args(argv)
    figure = ROOT / "docs" / "figures" / "10_quality_vs_nfe.png"
    if args.replot:
        data = json.loads(
            (ROOT / "docs" / "figures" / "10_quality_vs_nfe.json").read_text()
        )
        print(
            f"wrote {savefig(fig_quality_vs_nfe(data['rows'], data['source']), figure)}"
        )
        return
    torch.set_num_threads(args.threads)
    model, schedule, _ = load_trained(args.checkpoint)
    classifier = load_classifier()
    # the course's reference: the held-out digits (evaluate_samples scores the floor,
    # as many training digits, against the same reference at the samples' n)
    reference = feature_stats(classifier, load_digits("mnist-5k", "test")[0])
    labels, w = digit_labels("0123456789", args.per_digit), RECOMMENDED_W
    rows = []
    for name, steps in SETTINGS:
        x, nfe, sec = run_sampler(model, schedule, labels, name, steps, w, seed=0)
        report = evaluate_samples(x, labels, classifier, reference=reference)
        rows.append(
            {
                "sampler": NAMES[name],
                "nfe": nfe,
                "seconds": sec,
                **{
                    k: report[k]
                    for k in (
                        "accuracy",
                        "frechet_distance",
                        "frechet_floor",
                        "frechet_floor_n",
                        "n",
                    )
                },
            }
        )
        r = rows[-1]
        # binomial standard error of the accuracy, sqrt(p (1 - p) / n)
        r["accuracy_se"] = math.sqrt(r["accuracy"] * (1 - r["accuracy"]) / r["n"])
        print(
            f"{r['sampler']:>18} NFE {nfe:3d}: accuracy {r['accuracy']:.1%}, FD "
            f"{r['frechet_distance']:.1f} (floor {r['frechet_floor']:.1f}), "
            f"{sec:.0f} s",
            flush=True,
        )
    n = rows[0]["n"]
    source = (
        f"{Path(args.checkpoint).name}, guidance w = {w:g}, {n} samples per setting "
        f"({args.per_digit} per digit), seed 0"
    )
    table = [
        "| sampler | NFE | accuracy | Fréchet distance | real floor | seconds |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    table += [
        f"| {r['sampler']} | {r['nfe']} | {r['accuracy']:.1%} | "
        f"{r['frechet_distance']:.1f} | {r['frechet_floor']:.1f} | {r['seconds']:.0f} |"
        for r in rows
    ]
    stamp = (
        f"{platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
        f"{datetime.date.today()}"
    )
    table.append(
        f"\n*{source}. Distance and floor against the 1,000 held-out digits of "
        f"mnist-5k; the floor scores {rows[0]['frechet_floor_n']} training digits (the "
        f"same n). {stamp}. Made by `python benchmarks/sampler_quality.py "
        f"--per-digit {args.per_digit}`.*"
    )
    text = "\n".join(table) + "\n"
    for path in (
        ROOT / "benchmarks" / "results" / "sampler_quality.md",
        ROOT / "docs" / "figures" / "10_quality_vs_nfe.md",
    ):
        path.write_text(text)
        print(f"wrote {path}")
    # the same rows as numbers, for value() in chapter 10's prose
    path = write_json(
        ROOT / "docs" / "figures" / "10_quality_vs_nfe.json",
        {
            "source": source,
            "reference": "mnist-5k held-out digits (1,000)",
            "machine": stamp,
            "rows": rows,
        },
    )
    print(f"wrote {path}")
    print(f"wrote {savefig(fig_quality_vs_nfe(rows, source), figure)}")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
