"""The ``diffusion-lessons evaluate`` command's plumbing: its options, reading a samples
file, checking the outputs before the work starts, and writing the report.

Lesson 07 holds what is measured (``load_classifier``, ``evaluate_samples``,
``format_report``); this module holds the command line around it, kept apart so the
lesson stays about the metrics:

- ``add_evaluate_arguments(parser)`` adds the options that need no CLIP (--samples or
  --checkpoint, --per-digit, --sampler, --steps, --seed, --guidance, --json,
  --classifier, --dataset); lesson 08 adds the CLIP ones.
- ``load_digit_samples(path)`` reads an .npz that ``diffusion-lessons sample`` wrote,
  and says what is wrong with one it cannot use.
- ``check_outputs(args)`` refuses a bad --json before any sampling; ``write_report``
  prints the report and writes --json (NaN as null, ``json_safe``).
- ``samples_to_evaluate(args, guide)`` reads --samples or draws new samples from
  --checkpoint.
- ``evaluate_command(args)`` is the classifier-only evaluation (``python -m
  diffusion_lessons.lesson07_classifier evaluate``); ``diffusion-lessons evaluate`` runs
  lesson 08's ``evaluate_command``, which adds CLIP to the same pieces.

Builds on: lesson05_training (load_trained), lesson06_sampling (sample, digit_labels,
load_samples, SHIPPED), lesson07_classifier (load_classifier, evaluate_samples,
format_report, EvaluationError, CLASSIFIER_PATH), data (NUM_CLASSES), options.
Lesson 08 imports from here, so nothing here imports lesson 08.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from . import options as opt
from .data import NUM_CLASSES
from .lesson05_training import load_trained
from .lesson06_sampling import SHIPPED, digit_labels, load_samples, sample
from .lesson07_classifier import (
    CLASSIFIER_PATH,
    EvaluationError,
    evaluate_samples,
    format_report,
    load_classifier,
)


def add_evaluate_arguments(
    parser: argparse.ArgumentParser, guidance: float = 0.0
) -> argparse.ArgumentParser:
    """The options of ``diffusion-lessons evaluate`` that need no CLIP (lesson 08 adds
    its own); ``guidance`` is the default weight w (the command line passes lesson
    09's).
    """
    src = parser.add_mutually_exclusive_group()
    src.add_argument(
        "--samples",
        help="an .npz written by `diffusion-lessons sample --out FILE.npz` (default: "
        "draw new samples from --checkpoint)",
    )
    src.add_argument(
        "--checkpoint",
        help="draw the samples from this checkpoint (default: "
        f"{SHIPPED.parent.name}/{SHIPPED.name})",
    )
    parser.add_argument(
        "--per-digit",
        type=opt.positive_int,
        default=20,
        help="samples of each digit to draw (default: 20)",
    )
    parser.add_argument(
        "--sampler",
        default="ddim",
        choices=["ddpm", "ddim"],
        help="how to draw them (default: ddim)",
    )
    parser.add_argument(
        "--steps",
        type=opt.positive_int,
        default=50,
        help="DDIM steps, 1..T (default: 50)",
    )
    parser.add_argument(
        "--seed", type=opt.seed, default=0, help="random seed (default: 0)"
    )
    parser.add_argument(
        "--guidance",
        type=opt.finite_float,
        default=guidance,
        help=f"guidance weight w (lesson 09; default: {guidance:g}, 0 = none)",
    )
    parser.add_argument(
        "--json",
        help="also write the numbers to this .json file (default: print them only)",
    )
    parser.add_argument(
        "--classifier",
        default=str(CLASSIFIER_PATH),
        help=f"the digit classifier (default: the shipped {CLASSIFIER_PATH.name})",
    )
    parser.add_argument(
        "--dataset",
        default="mnist-5k",
        help="real data for the Fréchet reference and floor; use the classifier's "
        "dataset (default: mnist-5k)",
    )
    return parser


def load_digit_samples(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a samples .npz (lesson 06's ``save_samples``) for evaluation: images
    (N, 28, 28) in [0, 1], labels (N,) in 0..9; anything else is an EvaluationError
    that says what is wrong.
    """
    path = Path(path)
    if path.is_file():
        try:
            with np.load(path) as data:
                images, labels = data["images"], data["labels"]
        except Exception as err:
            raise EvaluationError(
                f"{path} is not a samples file (an .npz with 'images' and 'labels', "
                f"as `diffusion-lessons sample --out FILE.npz` writes): {err}"
            ) from err
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) < 1:
            raise EvaluationError(
                f"{path}: images must be grey 28x28 digits, shape (N, 28, 28); got "
                f"{images.shape}. The classifier reads MNIST-sized digits only."
            )
        if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
            raise EvaluationError(
                f"{path}: labels must be {len(images)} whole numbers, shape "
                f"({len(images)},); got {labels.dtype} of shape {labels.shape}."
            )
        if not np.isfinite(images).all():
            raise EvaluationError(
                f"{path}: {int((~np.isfinite(images)).sum())} pixels are NaN or "
                "infinite; the model that drew them diverged. Sample again."
            )
        if labels.min() < 0 or labels.max() >= NUM_CLASSES:
            raise EvaluationError(
                f"{path}: labels must lie in 0..{NUM_CLASSES - 1}; got values from "
                f"{labels.min()} to {labels.max()}."
            )
    return load_samples(path)  # range checks, and the [-1, 1] tensors


def json_safe(value):
    """``value`` with every NaN or infinity replaced by None (JSON's null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def check_outputs(args: argparse.Namespace) -> None:
    """Fail now, not after the work: --json must name a file (its folder is made)."""
    if args.json:
        json_path = Path(args.json)
        if json_path.is_dir():
            raise EvaluationError(f"--json {json_path} is a folder; give a file name.")
        json_path.parent.mkdir(parents=True, exist_ok=True)


def samples_to_evaluate(
    args: argparse.Namespace, guide=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (N, 1, 28, 28) and labels (N,) to score: --samples read back, or new
    samples drawn from --checkpoint. ``guide(model, w)`` wraps a model for guidance
    (cli.py passes lesson 09's GuidedModel through lesson 08's ``evaluate_command``).
    """
    if args.samples:
        return load_digit_samples(args.samples)
    model, schedule, _ = load_trained(args.checkpoint or SHIPPED)
    if args.guidance:
        if guide is None:
            raise ValueError(
                "--guidance needs lesson 09's guided model: run `diffusion-lessons "
                "evaluate`, not the lesson's main."
            )
        model = guide(model, args.guidance)
    labels = digit_labels("0123456789", args.per_digit)
    images = sample(
        model,
        schedule,
        labels,
        sampler=args.sampler,
        steps=args.steps,
        generator=torch.Generator().manual_seed(args.seed),
    )
    return images, labels


def write_report(report: dict, args: argparse.Namespace) -> None:
    """Print format_report; with --json, also write the numbers (NaN as null)."""
    print(format_report(report))
    if args.json:
        text = json.dumps(json_safe(report), indent=1, allow_nan=False)
        Path(args.json).write_text(text)


def evaluate_command(args: argparse.Namespace, guide=None) -> dict:
    """Run the classifier's evaluation (lesson 07's ``evaluate``): accuracy, FD with
    its floor; ``diffusion-lessons evaluate`` adds CLIP (lesson 08).
    """
    check_outputs(args)
    classifier = load_classifier(args.classifier)
    images, labels = samples_to_evaluate(args, guide)
    report = evaluate_samples(images, labels, classifier, dataset=args.dataset)
    write_report(report, args)
    return report
