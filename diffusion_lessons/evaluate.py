"""The ``diffusion-lessons evaluate`` command: its options, reading a samples file,
checking the outputs before the work starts, scoring, and writing the report.

Lessons 07 and 08 hold what is measured (lesson 07: ``load_classifier``,
``format_report``, the classifier's numbers; lesson 08: ``load_clip`` and its
``evaluate_samples``, which adds CLIP's numbers to lesson 07's); this module holds the
command line around them, kept apart so the lessons stay about the metrics:

- ``add_evaluate_arguments(parser)`` adds the options (--samples or --checkpoint,
  --per-digit, --sampler, --steps, --seed, --guidance, --json, --classifier, --dataset,
  then --figure, --clip, --clip-weights, --clip-model); ``clip=False`` leaves out the
  CLIP ones (lesson 07's own ``evaluate`` subcommand).
- ``load_digit_samples(path)`` reads an .npz that ``diffusion-lessons sample`` wrote,
  and says what is wrong with one it cannot use.
- ``check_outputs(args)`` refuses a bad --json or --figure before any sampling;
  ``write_report`` prints the report and writes --json (NaN as null, ``json_safe``).
- ``samples_to_evaluate(args, guide)`` reads --samples or draws new samples from
  --checkpoint.
- ``evaluate_command(args, guide)`` runs it all: ``diffusion-lessons evaluate`` (cli.py
  passes lesson 09's guided model) and the ``evaluate`` subcommands of lessons 07 (no
  CLIP) and 08.

Builds on: lesson05_training (load_trained), lesson06_sampling (sample, digit_labels,
load_samples, SHIPPED), lesson07_classifier (load_classifier, format_report,
EvaluationError, CLASSIFIER_PATH), lesson08_clip (load_clip, evaluate_samples,
fig_clip_vs_classifier, DIGIT_CLIP_NAME, DIGIT_CLIP_PATH), data (NUM_CLASSES),
options, plotting (savefig). Lessons 07 and 08 import this module only inside their
main(), so nothing here is imported back at module level.
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
from .lesson06_sampling import (
    DEFAULT_STEPS,
    SHIPPED,
    digit_labels,
    load_samples,
    sample,
)
from .lesson07_classifier import (
    CLASSIFIER_PATH,
    EvaluationError,
    format_report,
    load_classifier,
)
from .lesson08_clip import (
    DIGIT_CLIP_NAME,
    DIGIT_CLIP_PATH,
    evaluate_samples,
    fig_clip_vs_classifier,
    load_clip,
)
from .plotting import savefig


def add_evaluate_arguments(
    parser: argparse.ArgumentParser, guidance: float = 0.0, clip: bool = True
) -> argparse.ArgumentParser:
    """The options of ``diffusion-lessons evaluate`` (see ``evaluate_command``): the
    classifier's, then the CLIP ones; ``guidance`` is the default weight w (the command
    line passes lesson 09's). ``clip=False`` leaves the CLIP options out (as --clip
    none, no --figure).
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
        default=DEFAULT_STEPS,
        help=f"DDIM steps, 1..T (default: {DEFAULT_STEPS})",
    )
    parser.add_argument(
        "--t-min",
        type=opt.positive_int,
        default=None,
        help="the last step before the jump to t = 0 (lesson 06; default: T / 10 = "
        "100 for ddim, 1 for ddpm)",
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
    if not clip:
        parser.set_defaults(figure=None, clip="none")
        return parser
    parser.add_argument(
        "--figure",
        help="also draw the per-digit accuracy and CLIP score of these samples "
        "(figure 8.2) to this .png (default: not drawn)",
    )
    parser.add_argument(
        "--clip",
        default="digit",
        choices=["none", "digit", "hub"],
        help="which CLIP scores the samples (default: digit, the shipped digit-CLIP)",
    )
    parser.add_argument(
        "--clip-weights",
        help="a local CLIP weight file (digit-CLIP .pt, open_clip .bin/.safetensors) "
        f"(default: {DIGIT_CLIP_PATH.name} for --clip digit, the hub for --clip hub)",
    )
    parser.add_argument(
        "--clip-model",
        default="ViT-B-32",
        help="open_clip architecture for --clip hub, tag openai (default: ViT-B-32)",
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
    """Fail now, not after the work: --json must name a file (its folder is made),
    --figure a .png that CLIP can fill.
    """
    if args.json:
        json_path = Path(args.json)
        if json_path.is_dir():
            raise EvaluationError(f"--json {json_path} is a folder; give a file name.")
        json_path.parent.mkdir(parents=True, exist_ok=True)
    if args.figure and Path(args.figure).suffix.lower() != ".png":
        raise EvaluationError(f"--figure {args.figure}: give a .png file name.")
    if args.figure and args.clip == "none":
        raise EvaluationError("--figure draws CLIP scores; drop --clip none.")


def samples_to_evaluate(
    args: argparse.Namespace, guide=None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (N, 1, 28, 28) and labels (N,) to score: --samples read back, or new
    samples drawn from --checkpoint. ``guide(model, w)`` wraps a model for guidance
    (cli.py passes lesson 09's GuidedModel through ``evaluate_command``).
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
        t_min=args.t_min,
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
    """Run ``diffusion-lessons evaluate``: score the samples with the classifier
    (accuracy, FD with its floor) and, unless --clip none, CLIP; print format_report,
    optionally write --json and draw --figure. ``guide(model, w)`` wraps a model for
    guidance (cli.py passes lesson 09's GuidedModel; this module does not import lesson
    09).
    """
    check_outputs(args)
    classifier = load_classifier(args.classifier)
    images, labels = samples_to_evaluate(args, guide)
    clip = None
    if args.clip == "digit":
        clip = load_clip(DIGIT_CLIP_NAME, weights=args.clip_weights)
    elif args.clip == "hub":
        clip = load_clip(args.clip_model, "openai", weights=args.clip_weights)
    report = evaluate_samples(images, labels, classifier, clip, dataset=args.dataset)
    write_report(report, args)
    if args.figure and clip is not None:
        what = f"{report['n']:,} generated digits, w = {args.guidance:g}"
        fig = fig_clip_vs_classifier(
            report["clip_per_class"], report["per_class"], clip.label, what=what
        )
        savefig(fig, args.figure)
    return report
