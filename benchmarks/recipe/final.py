"""The shipped recipe measured: a run of the ``small`` preset (or its 5-minute twin),
scored on 1,000 samples with two sampling seeds, as the book samples: DDIM with lesson
06's default steps and t_min, without guidance and at chapter 09's recommended weight.

Run:  .venv/bin/python benchmarks/recipe/final.py RUN_FOLDER NAME [--textbook]

RUN_FOLDER holds a finished run (e.g. made by `diffusion-lessons train --preset small
--dataset mnist-5k --out runs/small`); NAME names the result file
benchmarks/results/recipe/NAME.json: the run's steps, seconds and images per second,
and quality.py's numbers for sampling seeds 0 and 1 (100 digits of each class each).
``--textbook`` scores as the levers are scored instead: 50 steps to t = 1 at w = 0.5
(quality.py's protocol; the ``small_final*`` and ``small_v_final*`` results).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from quality import PROTOCOL_W, measure

from diffusion_lessons.lesson06_sampling import DEFAULT_STEPS
from diffusion_lessons.lesson09_guidance import RECOMMENDED_W

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a finished run folder")
    parser.add_argument("name", help="names benchmarks/results/recipe/NAME.json")
    parser.add_argument(
        "--textbook", action="store_true", help="the levers' protocol: t_min 1, w 0.5"
    )
    args = parser.parse_args()
    run, name = args.run, args.name
    w, t_min, steps = (
        (PROTOCOL_W, 1, 50) if args.textbook else (RECOMMENDED_W, None, DEFAULT_STEPS)
    )
    torch.set_num_threads(2)
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    result = {
        "name": name,
        "run": str(run),
        "steps": state["step"],
        "seconds": state["seconds"],
        "config": state["config"],
        "seeds": [
            measure(run / "checkpoint.pt", seed=s, w=w, t_min=t_min, steps=steps)
            for s in (0, 1)
        ],
    }
    out = ROOT / "benchmarks" / "results" / "recipe" / f"{name}.json"
    out.write_text(json.dumps(result, indent=1))
    for q in result["seeds"]:
        print(
            f"{name} seed {q['seed']}: w0 {q['w0']['accuracy']:.1%}, guided "
            f"{q['guided']['accuracy']:.1%} (worst {min(q['guided']['per_class']):.1%})"
            f", FD {q['guided']['fd']:.1f} / floor {q['floor']:.1f}, haze "
            f"{q['guided']['haze']['above']:.2%}, 100 guided "
            f"{q['seconds_100_guided']:.2f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
