"""The ``diffusion-lessons`` command: one entry point for every lesson and tool of the
course.

diffusion-lessons list                  the lessons and their chapters
diffusion-lessons run N [--out DIR]     run lesson N as a learner would (figures)
diffusion-lessons figures               regenerate every figure of the docs site
diffusion-lessons tour [--lessons 1-4]  run the lessons in order: figures and a summary
diffusion-lessons train --preset small --out runs/NAME [--resume | --overwrite]
diffusion-lessons export RUN/checkpoint.pt FILE.pt [--force]
diffusion-lessons sample --digits 0123456789 --per-digit N --out FILE(.png|.npz)
diffusion-lessons check N FILE [--json OUT]   check your exercise solution
diffusion-lessons evaluate --samples FILE.npz [--json OUT.json]   (or --checkpoint)

Every expected mistake ends with one line naming the problem and the fix: exit status
2 for a bad option, 1 for anything else, 130 after Ctrl-C. ``--debug`` shows the
traceback instead. Modules are imported only by the subcommand that uses them, so
``--help``, ``--version`` and ``list`` answer at once.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import LESSONS, CourseError, __version__, lesson_module, parse_lessons
from . import options as opt

__all__ = ["main", "build_parser", "parse_lessons", "lesson_module"]

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
#: the model ``sample`` uses without --checkpoint, wherever you stand
SHIPPED = CHECKPOINTS / "small.pt"
#: the most samples one ``sample`` call writes into an .npz (about 310 MB of pixels)
MAX_SAMPLES = 100_000
#: the most digits one .png grid shows
MAX_GRID = 2_000
#: how many samples are drawn at once: memory stays bounded for any request
SAMPLE_BATCH = 500


class UsageError(CourseError):
    """A bad option that can only be seen after reading a file (exit status 2)."""


# ---------------------------------------------------------------------------
# The subcommands
# ---------------------------------------------------------------------------


def cmd_list(args) -> None:
    for n, (module, title) in LESSONS.items():
        print(f"{n:2d}  {title:<58} python -m diffusion_lessons.{module}")


def cmd_run(args) -> None:
    for n in parse_lessons(args.lesson):
        print(f"== Lesson {n:02d}: {LESSONS[n][1]} ==")
        start = time.perf_counter()
        lesson_module(n).run(args.out, quick=args.quick)
        print(f"(lesson {n:02d} took {time.perf_counter() - start:.1f} s)\n")


class _Tee:
    """Write to the terminal and to a text file at once (a lesson's printed output)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()


def cmd_figures(args) -> None:
    """Run the lessons into docs/figures. Each lesson's printed output is also kept in
    NN_output.txt, and the numbers its ``run()`` returns in NN_run.json, so that the
    chapters can show and quote them without retyping a number.
    """
    import contextlib

    from .runs import write_json

    for n in parse_lessons(args.lessons):
        args.lesson = str(n)
        path = Path(args.out) / f"{n:02d}_output.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f, contextlib.redirect_stdout(_Tee(sys.stdout, f)):
            print(f"$ diffusion-lessons run {n}")
            result = lesson_module(n).run(args.out, quick=args.quick)
        write_json(Path(args.out) / f"{n:02d}_run.json", result or {})


def cmd_tour(args) -> None:
    from .tour import tour

    tour(args.out, args.lessons, quick=args.quick)


def train_config(args):
    """The run's TrainConfig: the preset (with --resume: the stored run's config) and
    the options given on the command line.
    """
    import dataclasses

    from .lesson05_training import PRESETS, config_from_dict, load_checkpoint

    if args.preset is not None and args.preset not in PRESETS:
        raise UsageError(
            f"argument --preset: unknown preset {args.preset!r}; choose one of "
            f"{', '.join(PRESETS)}."
        )
    if args.resume and args.preset is None:
        state = load_checkpoint(Path(args.out) / "checkpoint.pt")
        base = config_from_dict(state["config"])
    else:
        base = PRESETS[args.preset or "small"]
    given = {
        name: getattr(args, name)
        for name in ("dataset", "steps", "seed", "threads", "lr", "prediction")
        if getattr(args, name) is not None
    }
    return dataclasses.replace(base, **given)


def cmd_train(args) -> int:
    import torch

    from .lesson02_schedules import make_schedule
    from .lesson05_training import train
    from .lesson06_sampling import digit_labels, sample, save_samples

    cfg, out = train_config(args), Path(args.out)
    schedule = make_schedule(cfg.schedule, cfg.model.T)

    def draw_grid(step, ema_model):  # the quality-over-training grids: same noise
        labels = digit_labels("0123456789", 4)
        x = sample(
            ema_model,
            schedule,
            labels,
            steps=25,
            generator=torch.Generator().manual_seed(0),
        )
        save_samples(out / "samples" / f"step_{step:06d}.png", x.cpu(), labels, nrow=4)

    import os

    if "WORLD_SIZE" in os.environ:  # torchrun: the same loop on N processes (lesson 10)
        from .distributed import train_distributed

        result = train_distributed(
            cfg, out, resume=args.resume, device=args.device, callback=draw_grid
        )
    else:
        result = train(
            cfg,
            out,
            resume=args.resume,
            overwrite=args.overwrite,
            device=args.device,
            callback=draw_grid,
        )
    if result["stopped"] == "interrupted":
        return 130
    if result["stopped"] != "finished":
        return 1  # train() has said why, and how many steps are saved
    print(f"Checkpoint: {out / 'checkpoint.pt'}; sample grids: {out / 'samples'}/")
    return 0


def cmd_export(args) -> None:
    from .lesson05_training import export_checkpoint

    path = export_checkpoint(args.checkpoint, args.out, force=args.force)
    print(
        f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB): EMA weights and config, "
        "ready for `diffusion-lessons sample`."
    )


def check_sample_request(args) -> int:
    """Refuse a request that cannot be written, before any sampling; return N."""
    from .runs import check_writable

    n = len(args.digits) * args.per_digit
    limit = MAX_GRID if args.out.endswith(".png") else MAX_SAMPLES
    if n > limit:
        raise UsageError(
            f"argument --per-digit: {len(args.digits)} digit(s) x {args.per_digit} = "
            f"{n:,} samples; one {Path(args.out).suffix} file holds at most "
            f"{limit:,}. Ask for fewer, or write several files with different --seed."
        )
    check_writable(
        Path(args.out).parent, nbytes=1024, advice="Choose another --out file."
    )
    return n


def cmd_sample(args) -> None:
    n = check_sample_request(args)
    import torch
    from tqdm.auto import tqdm

    from .lesson05_training import load_trained, resolve_device
    from .lesson06_sampling import (
        default_t_min,
        digit_labels,
        sample,
        save_samples,
    )

    checkpoint = Path(args.checkpoint) if args.checkpoint else SHIPPED
    model, schedule, _ = load_trained(
        checkpoint, device=str(resolve_device(args.device))
    )
    t_min = args.t_min
    if t_min is None:  # lesson 06's default: T / 10 for DDIM, the full chain for DDPM
        t_min = default_t_min(schedule.T, args.sampler)
    elif not 1 <= t_min <= schedule.T:
        raise UsageError(
            f"argument --t-min: must lie in 1..{schedule.T} (T of {checkpoint}); got "
            f"{t_min}"
        )
    levels = schedule.T - t_min + 1  # the noise levels from T down to t_min
    if args.sampler == "ddim" and not 1 <= args.steps <= levels:
        why = f"T of {checkpoint}"
        if t_min > 1:
            which = "--t-min" if args.t_min else f"the default --t-min {t_min}"
            why = (
                f"T = {schedule.T} of {checkpoint}, less the {t_min - 1} below {which}"
            )
        raise UsageError(
            f"argument --steps: must lie in 1..{levels} ({why}); got {args.steps}"
        )
    labels = digit_labels(args.digits, args.per_digit)
    if args.guidance:
        from .lesson09_guidance import GuidedModel

        model = GuidedModel(model, args.guidance)
    start, generator, parts = time.perf_counter(), torch.Generator(), []
    generator.manual_seed(args.seed)
    batches = range(0, n, SAMPLE_BATCH)
    for i in tqdm(batches, desc="sample", unit="batch", disable=len(batches) < 2):
        x = sample(
            model,
            schedule,
            labels[i : i + SAMPLE_BATCH],
            sampler=args.sampler,
            steps=args.steps,
            eta=args.eta,
            t_min=t_min,
            generator=generator,
        )
        parts.append(x.cpu())
    path = save_samples(args.out, torch.cat(parts), labels, nrow=args.per_digit)
    print(
        f"Wrote {n} samples to {path} in {time.perf_counter() - start:.1f} s "
        f"({args.sampler}, {levels if args.sampler == 'ddpm' else args.steps} "
        f"steps down to t = {t_min}, guidance {args.guidance}, seed {args.seed}, "
        f"{checkpoint.name})."
    )


def cmd_check(args) -> int:
    from .check import check_command  # imported lazily: it loads torch and hypothesis

    return check_command(args)


def cmd_evaluate(args) -> None:
    from .evaluate import evaluate_command
    from .lesson09_guidance import GuidedModel

    evaluate_command(args, guide=GuidedModel)


# ---------------------------------------------------------------------------
# The options of each subcommand (added only for the subcommand that runs)
# ---------------------------------------------------------------------------


def add_run_arguments(p) -> None:
    p.add_argument("lesson", help="lesson number, range (1-4) or list (1,3)")
    p.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smaller settings, for a fast check (default: off)",
    )


def add_tour_arguments(p) -> None:
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
        help="reduced settings, as the test suite uses (default: off)",
    )


def add_figures_arguments(p) -> None:
    p.add_argument("--lessons", default="all", help="which lessons (default: all)")
    p.add_argument(
        "--out",
        default=str(Path("docs") / "figures"),
        help="folder for the figures (default: docs/figures)",
    )
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)


def add_train_arguments(p) -> None:
    p.add_argument(
        "--preset",
        default=None,
        help="tiny | small | full (default: small; with --resume: the stored run's)",
    )
    p.add_argument(
        "--dataset",
        default=None,
        help="auto | mnist | mnist-5k | fashion-mnist | cifar10 | IDX folder "
        "(default: the preset's, auto: MNIST if it can be downloaded, else mnist-5k)",
    )
    p.add_argument(
        "--out",
        required=True,
        help="run folder, e.g. runs/my-first-model (required; see above for one that "
        "holds a run already)",
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda", "mps"],
        help="where to train (default: auto = cuda, then mps, then cpu)",
    )
    again = p.add_mutually_exclusive_group()
    again.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUT exactly where it stopped (off by default)",
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the run in OUT and start again (off by default)",
    )
    p.add_argument(
        "--steps",
        type=opt.positive_int,
        default=None,
        help="number of optimiser steps (default: the preset's; may change on resume)",
    )
    p.add_argument(
        "--seed",
        type=opt.seed,
        default=None,
        help="random seed (default: the preset's)",
    )
    p.add_argument(
        "--lr",
        type=opt.positive_float,
        default=None,
        help="peak learning rate (default: the preset's)",
    )
    p.add_argument(
        "--threads",
        type=opt.positive_int,
        default=None,
        help="CPU threads (default: the preset's; may change on resume)",
    )
    p.add_argument(
        "--prediction",
        choices=("eps", "v"),  # lesson05_training.PREDICTIONS (no torch import here)
        default=None,
        help="what the network learns to output: eps, the noise, or v (chapter 05, "
        "eq. 5.6) (default: the preset's)",
    )


def add_export_arguments(p) -> None:
    p.add_argument("checkpoint", help="a run's checkpoint.pt")
    p.add_argument(
        "out", help="where to write the exported file, e.g. checkpoints/mine.pt"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace OUT if it exists (default: refuse)",
    )


def add_sample_arguments(p) -> None:
    from .lesson06_sampling import DEFAULT_STEPS
    from .lesson09_guidance import RECOMMENDED_W

    p.add_argument(
        "--checkpoint",
        default=None,
        help=f"a trained model (default: the shipped {SHIPPED.parent.name}/"
        f"{SHIPPED.name}, found from any folder)",
    )
    p.add_argument(
        "--digits",
        type=opt.digits,
        default="0123456789",
        help="which digits to draw (default: 0123456789)",
    )
    p.add_argument(
        "--per-digit",
        type=opt.positive_int,
        default=10,
        help=f"samples of each digit (default: 10; at most {MAX_SAMPLES:,} samples "
        f"per .npz, {MAX_GRID:,} per .png)",
    )
    p.add_argument(
        "--guidance",
        type=opt.finite_float,
        default=RECOMMENDED_W,
        help="classifier-free guidance weight w (lesson 09; default "
        f"{RECOMMENDED_W:g}, 0 = none)",
    )
    p.add_argument(
        "--sampler",
        default="ddim",
        choices=["ddpm", "ddim"],
        help="ddim (fast, --steps) or ddpm (all T steps) (default: ddim)",
    )
    p.add_argument(
        "--steps",
        type=opt.positive_int,
        default=DEFAULT_STEPS,
        help=f"DDIM steps, 1..T (default: {DEFAULT_STEPS}; DDPM always uses all T)",
    )
    p.add_argument(
        "--eta",
        type=opt.unit_interval,
        default=0.0,
        help="DDIM noise in [0, 1]: 0 deterministic, 1 like DDPM (default: 0)",
    )
    p.add_argument(
        "--t-min",
        type=opt.positive_int,
        default=None,
        help="the last step before the jump to t = 0; the steps spread from T down to "
        "it (lesson 06; default: T / 10 = 100 for ddim, 1 for ddpm)",
    )
    p.add_argument("--seed", type=opt.seed, default=0, help="random seed (default: 0)")
    p.add_argument(
        "--device",
        default="cpu",
        choices=["auto", "cpu", "cuda", "mps"],
        help="where to sample (default: cpu)",
    )
    p.add_argument(
        "--out",
        required=True,
        type=opt.samples_file,
        help="FILE.png (a grid) or FILE.npz (arrays) (required)",
    )


def add_check_arguments(p) -> None:
    from .check import add_check_arguments as add  # lazily: check.py loads torch

    add(p)
    for action in p._actions:  # say every default, as the other commands do
        if action.option_strings and action.help and "default" not in action.help:
            if action.default is None:
                action.help += " (default: not done)"
            elif action.default is False:
                action.help += " (default: off)"


def add_evaluate_arguments(p) -> None:
    from .evaluate import add_evaluate_arguments as add
    from .lesson09_guidance import RECOMMENDED_W

    add(p, guidance=RECOMMENDED_W)


#: name -> (handler, one-line help, long description or None, adds the options)
COMMANDS = {
    "list": (cmd_list, "list the lessons", None, None),
    "run": (
        cmd_run,
        "run one lesson (or a range such as 1-4) and write its figures",
        None,
        add_run_arguments,
    ),
    "tour": (
        cmd_tour,
        "run every lesson in order and write a summary (the README's main job)",
        None,
        add_tour_arguments,
    ),
    "figures": (
        cmd_figures,
        "regenerate the docs figures (docs/figures) deterministically",
        None,
        add_figures_arguments,
    ),
    "train": (
        cmd_train,
        "train a model (lesson 05)",
        "Train a model (lesson 05) into the run folder --out. A folder that already "
        "holds a run is never replaced silently: --resume continues it exactly, "
        "--overwrite deletes it and starts again, and without either the command "
        "stops with a message. Only one training at a time may use a folder (a lock "
        "file, train.lock). The folder is test-written before the first step. Ctrl-C "
        "stops after the current step, saves, and exits with status 130; --resume "
        "then gives the same weights as a run that was never interrupted.",
        add_train_arguments,
    ),
    "export": (
        cmd_export,
        "shrink a run's checkpoint to what sampling needs (EMA weights + config)",
        "Write a run's EMA weights and config to a new, smaller file for sampling. "
        "An existing file is never replaced unless --force is given.",
        add_export_arguments,
    ),
    "sample": (
        cmd_sample,
        "draw digits from a checkpoint (lesson 06)",
        "Draw digits from a trained model (lesson 06) and write them as a .png grid "
        "or an .npz file. The options and the output file are checked before "
        "sampling starts; large requests are drawn in batches.",
        add_sample_arguments,
    ),
    "check": (
        cmd_check,
        "check your solution of a lesson's exercise (autograder: exit status, --json)",
        "Check your solution of a lesson's exercise against the course's properties. "
        "This imports and RUNS the Python code in FILE, with your permissions: check "
        "only files you wrote or trust.",
        add_check_arguments,
    ),
    "evaluate": (
        cmd_evaluate,
        "score samples (or a checkpoint) with the classifier, a Fréchet distance "
        "and CLIP (lessons 07 and 08)",
        None,
        add_evaluate_arguments,
    ),
}


def build_parser(command: str | None = "all") -> argparse.ArgumentParser:
    """The parser; only ``command``'s options are added (all of them for "all"), so
    reading ``--help`` imports nothing heavy.
    """
    parser = argparse.ArgumentParser(
        prog="diffusion-lessons",
        description="Learn diffusion models by building one.",
        epilog="Exit status: 0 done, 1 an error (one line says which), 2 a bad "
        "option, 130 interrupted by Ctrl-C.",
    )
    parser.add_argument(
        "--version", action="version", version=f"diffusion-lessons {__version__}"
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error (default: one line)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (func, short, long, add) in COMMANDS.items():
        p = sub.add_parser(name, help=short, description=long or short)
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the full traceback of an error (default: one line)",
        )
        if add is not None and command in ("all", name):
            add(p)
        p.set_defaults(func=func, subparser=p)
    return parser


def command_in(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(command_in(argv)).parse_args(argv)
    try:
        status = args.func(args)
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        raise SystemExit(130) from None
    except UsageError as err:
        if args.debug:
            raise
        args.subparser.print_usage(sys.stderr)
        print(f"{args.subparser.prog}: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except (CourseError, ValueError, OSError) as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    if status:
        raise SystemExit(status)


if __name__ == "__main__":
    main()
