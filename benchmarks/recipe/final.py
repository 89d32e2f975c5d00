"""The shipped recipe measured: a run of the ``small`` preset (or its 5-minute twin),
scored on 1,000 samples with two sampling seeds.

Run:  .venv/bin/python benchmarks/recipe/final.py RUN_FOLDER NAME

RUN_FOLDER holds a finished run (e.g. made by `diffusion-lessons train --preset small
--dataset mnist-5k --out runs/small`); NAME names the result file
benchmarks/results/recipe/NAME.json: the run's steps, seconds and images per second,
and quality.py's numbers for sampling seeds 0 and 1 (100 digits of each class each).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from quality import measure

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    run, name = Path(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(2)
    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    result = {
        "name": name,
        "run": str(run),
        "steps": state["step"],
        "seconds": state["seconds"],
        "config": state["config"],
        "seeds": [measure(run / "checkpoint.pt", seed=s) for s in (0, 1)],
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
