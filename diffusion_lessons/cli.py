"""The ``diffusion-lessons`` command: one entry point for every lesson and tool of the course.

    diffusion-lessons list                 the lessons and their chapters
    diffusion-lessons run N [--out DIR]    run lesson N as a learner would (prints, writes figures)
    diffusion-lessons figures              regenerate every figure of the docs site in docs/figures/

Further commands (train, sample, evaluate, check, tour) are added by the lessons that teach them.
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
        raise SystemExit(f"Cannot read lessons {spec!r}: write e.g. 3, 1-4 or 1,3,5.") from None
    unknown = sorted(set(chosen) - set(LESSONS))
    if unknown:
        raise SystemExit(f"No lesson {unknown}; the course has lessons {min(LESSONS)}-{max(LESSONS)} (see: diffusion-lessons list).")
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffusion-lessons", description="Learn diffusion models by building one.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list the lessons")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run one lesson (or a range such as 1-4) and write its figures")
    p.add_argument("lesson", help="lesson number, range (1-4) or list (1,3)")
    p.add_argument("--out", default="figures", help="folder for the figures (default: figures)")
    p.add_argument("--quick", action="store_true", help="smaller settings, for a fast check")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("figures", help="regenerate the docs figures (docs/figures) deterministically")
    p.add_argument("--lessons", default="all", help="which lessons (default: all)")
    p.add_argument("--out", default=str(Path("docs") / "figures"))
    p.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_figures)
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
