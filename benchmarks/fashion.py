"""Going further (lesson 09): the same lessons on Fashion-MNIST, with guidance, measured
the same way.

Run (from the repository root, after training the model):
    diffusion-lessons train --preset small --dataset fashion-mnist --out runs/fashion
    python benchmarks/fashion.py --run runs/fashion

Trains a classifier on Fashion-MNIST's 60,000 training images (3 epochs; its accuracy on
the 10,000 test images is reported), then draws 100 images per class at several guidance
weights (DDIM 50 steps, seed 0) and reports classifier accuracy, the Fréchet classifier
distance and within-class diversity. As for the digits (chapter 07), the distance is
measured against images the generator never trained on, the 10,000 test images, beside
its floor: as many training images scored against the same test images. Writes
docs/figures/09_fashion_samples.png and docs/figures/09_fashion.{md,json}.
Offline, Fashion-MNIST comes from Debian's dataset-fashion-mnist package.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from diffusion_lessons.data import CLASS_NAMES, load_digits
from diffusion_lessons.lesson05_training import load_trained
from diffusion_lessons.lesson06_sampling import digit_labels
from diffusion_lessons.lesson07_classifier import (
    classifier_report,
    diversity,
    feature_stats,
    frechet_distance,
    frechet_floor,
    train_classifier,
)
from diffusion_lessons.lesson09_guidance import fig_sweep, guidance_sweep
from diffusion_lessons.plotting import savefig
from diffusion_lessons.runs import write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="runs/fashion")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--epochs",
        type=int,
        default=3,
        help="classifier epochs over the 60,000 training images",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    classifier, held_out = train_classifier("fashion-mnist", epochs=args.epochs)
    print(f"Fashion-MNIST classifier: {held_out:.1%} on the 10,000 test images")
    real_x, real_y = load_digits("fashion-mnist", "test")
    reference = feature_stats(classifier, real_x)  # never seen by the generator
    model, schedule, cfg = load_trained(Path(args.run) / "checkpoint.pt")
    labels = digit_labels("0123456789", args.per_class)
    ws = [0.0, 0.5, 1.0, 2.0]
    samples = guidance_sweep(model, schedule, ws, labels, steps=50)
    floor, n = frechet_floor(classifier, len(labels), "fashion-mnist", reference)
    real_div = diversity(classifier, real_x[:1000], real_y[:1000])
    rows = [
        "| w | accuracy | Fréchet distance | real floor | diversity |",
        "|---:|---:|---:|---:|---:|",
    ]
    numbers = {  # the same numbers, for value() in chapter 09's prose
        "classifier_test_accuracy": held_out,
        "frechet_floor": floor,
        "frechet_floor_n": n,
        "samples_per_w": len(labels),
        "real_diversity": real_div,
        "rows": [],
    }
    for w, x in samples.items():
        acc = classifier_report(classifier, x, labels)["accuracy"]
        fd = frechet_distance(*feature_stats(classifier, x), *reference)
        div = diversity(classifier, x, labels)
        rows.append(f"| {w:g} | {acc:.1%} | {fd:.1f} | {floor:.1f} | {div:.1f} |")
        numbers["rows"].append(
            {"w": w, "accuracy": acc, "frechet_distance": fd, "diversity": div}
        )
        print(rows[-1], flush=True)
    best = min(numbers["rows"], key=lambda r: r["frechet_distance"])
    numbers["lowest_frechet_w"] = best["w"]
    rows.append(
        f"\n*Fashion-MNIST, the small preset ({cfg.model.channels}) trained for "
        f"{cfg.steps} steps ({args.run}); {len(labels)} samples per w "
        f"(DDIM 50, seed 0); classifier trained here for {args.epochs} epochs: "
        f"{held_out:.1%} on the test images; "
        "distance and floor against the 10,000 test images, which the generator never "
        f"trained on; the floor scores {n} training images (the same n); real test "
        f"diversity {real_div:.1f} (1,000 test images). "
        "Made by `python benchmarks/fashion.py "
        f"--run {args.run} --epochs {args.epochs}`.*"
    )
    Path("docs/figures/09_fashion.md").write_text("\n".join(rows) + "\n")
    write_json("docs/figures/09_fashion.json", numbers)
    fig = fig_sweep(samples, per_digit=args.per_class)
    fig.axes[0].set_title(
        "Fashion-MNIST, same noise in every row: "
        + ", ".join(CLASS_NAMES["fashion-mnist"]),
        fontsize=8.5,
    )
    savefig(fig, "docs/figures/09_fashion_samples.png")
    print("wrote docs/figures/09_fashion.md, docs/figures/09_fashion_samples.png")


if __name__ == "__main__":
    main()
