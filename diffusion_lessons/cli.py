"""The ``diffusion-lessons`` command: one entry point for every lesson and tool of the
course.

diffusion-lessons list                 the lessons and their chapters
diffusion-lessons run N [--out DIR]  run lesson N as a learner would (figures)
diffusion-lessons figures  regenerate every figure of the docs site in docs/figures/
diffusion-lessons tour [--lessons 1-4] run the lessons in order: figures and a summary
in tour-output/

diffusion-lessons train --preset small --dataset auto --out runs/NAME [--device D]
[--resume] diffusion-lessons sample --checkpoint PATH --digits 0123456789 --per-digit N
--out FILE(.png|.npz)
diffusion-lessons check N FILE [--json OUT]  check your exercise solution
    (--template DEST to get one)
diffusion-lessons evaluate --samples FILE.npz [--json OUT.json]   (or --checkpoint PATH)
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from . import LESSONS


def parse_lessons(spec: str) -> list[int]:
    """'1-4' -> [1, 2, 3, 4]; '1,3,5' -> [1, 3, 5]; 'all' -> every lesson."""
    if spec == "all":
        return sorted(LESSONS)
    chosen: list[int] = []
    try:
        for part in spec.split(","):
            lo, _, hi = part.partition("-")
            chosen.extend(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise SystemExit(
            f"Cannot read lessons {spec!r}: write e.g. 3, 1-4 or 1,3,5."
        ) from None
    unknown = sorted(set(chosen) - set(LESSONS))
    if unknown:
        raise SystemExit(
            f"No lesson {unknown}; the course has lessons "
            f"{min(LESSONS)}-{max(LESSONS)} (see: diffusion-lessons list)."
        )
    return sorted(set(chosen))


def lesson_module(n: int):
    """Import lesson ``n``'s module."""
    return importlib.import_module(f"diffusion_lessons.{LESSONS[n][0]}")


def cmd_list(args) -> None:
    for n, (module, title) in LESSONS.items():
        print(f"{n:2d}  {title:<58} python -m diffusion_lessons.{module}")


def cmd_run(args) -> None:
    for n in parse_lessons(args.lesson):
        print(f"== Lesson {n:02d}: {LESSONS[n][1]} ==")
        start = time.perf_counter()
        lesson_module(n).run(args.out, quick=args.quick)
        print(f"(lesson {n:02d} took {time.perf_counter() - start:.1f} s)\n")


def cmd_figures(args) -> None:
    args.lesson = args.lessons
    cmd_run(args)


def cmd_train(args) -> None:
    import dataclasses

    from .lesson05_training import PRESETS, train
    from .lesson06_sampling import digit_labels, sample, save_samples

    if args.preset not in PRESETS:
        raise SystemExit(
            f"Unknown preset {args.preset!r}; choose one of {sorted(PRESETS)}."
        )
    overrides = {
        k: v
        for k, v in (
            ("dataset", args.dataset),
            ("steps", args.steps),
            ("seed", args.seed),
            ("threads", args.threads),
        )
        if v is not None
    }
    cfg = dataclasses.replace(PRESETS[args.preset], **overrides)
    out = Path(args.out)
    import torch

    from .lesson02_schedules import make_schedule

    schedule = make_schedule(cfg.schedule, cfg.model.T)

    # the quality-over-training grids: same noise at every snapshot
    def draw_grid(step, ema_model):
        labels = digit_labels("0123456789", 4)
        x = sample(
            ema_model,
            schedule,
            labels,
            steps=25,
            generator=torch.Generator().manual_seed(0),
        )
        save_samples(out / "samples" / f"step_{step:06d}.png", x.cpu(), labels, nrow=4)

    # --- lesson 09: under `torchrun --nproc_per_node N`, the same loop on N processes
    import os

    if "WORLD_SIZE" in os.environ:  # set by torchrun, even for one process
        from .distributed import train_distributed as train
    # --- end of lesson 09

    from .data import DatasetError
    from .lesson05_training import CheckpointError

    try:
        result = train(
            cfg, out, resume=args.resume, device=args.device, callback=draw_grid
        )
    except (ValueError, CheckpointError, DatasetError) as err:
        raise SystemExit(str(err)) from None
    print(f"Checkpoint: {out / 'checkpoint.pt'}; sample grids: {out / 'samples'}/")
    if result["stopped"] not in ("finished", "interrupted"):
        raise SystemExit(1)


def cmd_export(args) -> None:
    from .lesson05_training import export_checkpoint

    path = export_checkpoint(args.checkpoint, args.out)
    print(
        f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB): EMA weights and config, "
        "ready for `diffusion-lessons sample`."
    )


def cmd_sample(args) -> None:
    import torch

    from .lesson05_training import CheckpointError, load_trained, resolve_device
    from .lesson06_sampling import digit_labels, sample, save_samples

    try:
        model, schedule, _ = load_trained(
            args.checkpoint, device=str(resolve_device(args.device))
        )
    except (CheckpointError, ValueError) as err:
        raise SystemExit(str(err)) from None
    labels = digit_labels(args.digits, args.per_digit)
    if args.guidance:
        from .lesson08_guidance import GuidedModel

        model = GuidedModel(model, args.guidance)
    start = time.perf_counter()
    x = sample(
        model,
        schedule,
        labels,
        sampler=args.sampler,
        steps=args.steps,
        eta=args.eta,
        generator=torch.Generator().manual_seed(args.seed),
    )
    path = save_samples(args.out, x.cpu(), labels, nrow=args.per_digit)
    print(
        f"Wrote {len(labels)} samples to {path} in {time.perf_counter() - start:.1f} s "
        f"({args.sampler}, {schedule.T if args.sampler == 'ddpm' else args.steps} "
        f"steps, guidance {args.guidance}, seed {args.seed})."
    )


def cmd_tour(args) -> None:
    from .tour import tour

    tour(args.out, args.lessons, quick=args.quick)


def cmd_check(args) -> None:
    from .check import check_command  # imported lazily: it loads torch and hypothesis

    raise SystemExit(check_command(args))


def cmd_evaluate(args) -> None:
    from .lesson05_training import CheckpointError
    from .lesson07_evaluation import EvaluationError, evaluate_command
    from .lesson08_guidance import GuidedModel

    try:
        evaluate_command(args, guide=GuidedModel)
    except (EvaluationError, CheckpointError, FileNotFoundError, ValueError) as err:
        raise SystemExit(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    from .lesson07_evaluation import add_evaluate_arguments
    from .lesson08_guidance import RECOMMENDED_W

    parser = argparse.ArgumentParser(
        prog="diffusion-lessons", description="Learn diffusion models by building one."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the lessons")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "run", help="run one lesson (or a range such as 1-4) and write its figures"
    )
    p.add_argument("lesson", help="lesson number, range (1-4) or list (1,3)")
    p.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    p.add_argument(
        "--quick", action="store_true", help="smaller settings, for a fast check"
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "tour",
        help="run every lesson in order and write a summary (the README's main job)",
    )
    p.add_argument(
        "--out",
        default="tour-output",
        help="folder for figures and summary (default: tour-output)",
    )
    p.add_argument(
        "--lessons", default="all", help="which lessons, e.g. 1-4 (default: all)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="reduced settings (the test suite uses this)",
    )
    p.set_defaults(func=cmd_tour)

    p = sub.add_parser(
        "figures", help="regenerate the docs figures (docs/figures) deterministically"
    )
    p.add_argument("--lessons", default="all", help="which lessons (default: all)")
    p.add_argument("--out", default=str(Path("docs") / "figures"))
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("train", help="train a model (lesson 05)")
    p.add_argument(
        "--preset", default="small", help="tiny | small | full (default: small)"
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="auto | mnist | mnist-5k | fashion-mnist | cifar10 | IDX folder",
    )
    p.add_argument("--out", required=True, help="run folder, e.g. runs/my-first-model")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint.pt"
    )
    p.add_argument(
        "--steps", type=int, default=None, help="override the preset's number of steps"
    )
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: the preset's)"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "export",
        help="shrink a run's checkpoint to what sampling needs (EMA weights + config)",
    )
    p.add_argument("checkpoint", help="a run's checkpoint.pt")
    p.add_argument(
        "out", help="where to write the exported file, e.g. checkpoints/mine.pt"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("sample", help="draw digits from a checkpoint (lesson 06)")
    p.add_argument("--checkpoint", default="checkpoints/small.pt")
    p.add_argument("--digits", default="0123456789")
    p.add_argument("--per-digit", type=int, default=10)
    p.add_argument(
        "--guidance",
        type=float,
        default=RECOMMENDED_W,
        help="classifier-free guidance weight w (lesson 08; default "
        f"{RECOMMENDED_W:g}, 0 = none)",
    )
    p.add_argument("--sampler", default="ddim", choices=["ddpm", "ddim"])
    p.add_argument(
        "--steps", type=int, default=50, help="DDIM steps (DDPM always uses all T)"
    )
    p.add_argument(
        "--eta",
        type=float,
        default=0.0,
        help="DDIM noise: 0 deterministic, 1 like DDPM",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--out", required=True, help="FILE.png (a grid) or FILE.npz (arrays)"
    )
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "check",
        help="check your solution of a lesson's exercise (autograder: exit status, "
        "--json)",
    )
    p.add_argument("lesson", type=int, help="lesson number (1-8)")
    p.add_argument("file", nargs="?", help="your .py file (a filled-in template)")
    p.add_argument(
        "--json", metavar="OUT", default=None, help="also write the report as JSON"
    )
    p.add_argument(
        "--template",
        metavar="DEST",
        default=None,
        help="copy the lesson's template to DEST (.py or folder) and stop",
    )
    p.add_argument(
        "--list", action="store_true", help="list the lesson's properties and stop"
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "evaluate",
        help="score samples (or a checkpoint) with the classifier, a Fréchet distance "
        "and CLIP (lesson 07)",
    )
    add_evaluate_arguments(p)
    p.set_defaults(func=cmd_evaluate, guidance=RECOMMENDED_W)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
