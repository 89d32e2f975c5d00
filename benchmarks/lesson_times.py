"""How long each lesson's `diffusion-lessons run N` takes, as a learner runs it.

Each lesson runs in a fresh process (so the time includes importing torch), with the
shipped checkpoints, writing its figures into a scratch folder. The result file
docs/figures/lesson_times.json is where every page that quotes a lesson's running time
takes it from (`{{ value("figures/lesson_times.json", "lessons.1.seconds", ".0f") }}`).

    python benchmarks/lesson_times.py             # every lesson (about 8 minutes)
    python benchmarks/lesson_times.py --lessons 1-4

Run it on an otherwise idle machine: two busy processes sharing two cores slow torch
several-fold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from diffusion_lessons import LESSONS, parse_lessons

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "lesson_times.json"


def time_lesson(n: int, threads: int) -> float:
    """Wall-clock seconds of `python -m diffusion_lessons run n` in a new process."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MPLBACKEND="Agg")
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "diffusion_lessons", "run", str(n), "--out", out],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.perf_counter() - start


def by_number(item) -> int:
    return int(item[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lessons", default="all", help="e.g. 1-4 (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    args = parser.parse_args()
    result = json.loads(OUT.read_text()) if OUT.exists() else {"lessons": {}}
    for n in parse_lessons(args.lessons):
        seconds = time_lesson(n, args.threads)
        result["lessons"][str(n)] = {
            "title": LESSONS[n][1],
            "seconds": round(seconds, 1),
        }
        print(f"lesson {n:02d}: {seconds:6.1f} s", flush=True)
        result.update(
            command="python benchmarks/lesson_times.py",
            date=date.today().isoformat(),
            machine=f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU",
            threads=args.threads,
        )
        result["lessons"] = dict(sorted(result["lessons"].items(), key=by_number))
        OUT.write_text(json.dumps(result, indent=1) + "\n")  # after each lesson
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
