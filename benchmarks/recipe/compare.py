"""Full-budget recipes side by side: one row per recipe, mean and range over its
training seeds, from final.py's results (1,000 samples per sampling seed).

Run:  .venv/bin/python benchmarks/recipe/compare.py STEM [STEM ...] [--out NAME.md]

Each STEM names final.py result files: ``small_final`` takes ``small_final.json``,
``small_final_s1.json``, ... (one per training seed). Each file is first averaged over
its sampling seeds (report.py's ``summarise``); the table gives the mean over training
seeds and, in brackets, their range. Writes benchmarks/results/recipe/compare.md (or
the --out name in that folder) and prints it, with the means beside it as JSON
(compare.json: stem -> column key -> mean, for the chapters' value() macro).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from report import RESULTS, summarise

DEFAULT_OUT = "compare.md"
#: (column, key of summarise(), format)
COLUMNS = [
    ("w = 0", "w0", "{:.1%}"),
    ("guided", "guided", "{:.1%}"),
    ("worst class, guided", "worst_guided", "{:.0%}"),
    ("FD / floor, guided", "fd_ratio", "{:.2f}"),
    ("haze, guided", "haze_above", "{:.1%}"),
]


def runs_of(stem: str) -> list[dict]:
    """summarise() of each training seed's result file of ``stem``."""
    files = sorted(p.stem for p in RESULTS.glob(f"{stem}*.json"))
    files = [f for f in files if f == stem or f.startswith(f"{stem}_s")]
    runs = [summarise(f) for f in files]
    if not runs:
        raise SystemExit(f"no result files {stem}*.json in {RESULTS}; run final.py")
    return runs


def means(stem: str) -> dict:
    """The mean over training seeds of each column, and the number of seeds."""
    runs = runs_of(stem)
    out = {key: statistics.fmean(r[key] for r in runs) for _, key, _ in COLUMNS}
    return {**out, "training_seeds": len(runs)}


def row(stem: str) -> str:
    runs = runs_of(stem)
    cells = []
    for _, key, fmt in COLUMNS:
        values = [r[key] for r in runs]
        cell = fmt.format(statistics.fmean(values))
        if len(values) > 1:
            cell += f" ({fmt.format(min(values))}–{fmt.format(max(values))})"
        cells.append(cell)
    recipe = runs[0]
    return (
        f"| `{stem}` | {len(runs)} | {recipe['n']} × {recipe['sampling_seeds']} | "
        + " | ".join(cells)
        + " |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stems", nargs="+")
    parser.add_argument("--out", default=DEFAULT_OUT, help="in the results folder")
    args = parser.parse_args()
    head = "| recipe | training seeds | samples × sampling seeds | " + " | ".join(
        c for c, _, _ in COLUMNS
    )
    lines = [head + " |", "|---|---:|---:|" + "---:|" * len(COLUMNS)]
    lines += [row(stem) for stem in args.stems]
    lines.append(
        "\n*Mean over training seeds (range in brackets), each averaged over its "
        "sampling seeds; FD against the 1,000 held-out digits, floor = 1,000 training "
        "digits. Made by `python benchmarks/recipe/compare.py "
        + " ".join(args.stems)
        + ("" if args.out == DEFAULT_OUT else f" --out {Path(args.out).name}")
        + "`.*"
    )
    text = "\n".join(lines) + "\n"
    out = RESULTS / Path(args.out).name
    out.write_text(text)
    numbers = {stem: means(stem) for stem in args.stems}
    out.with_suffix(".json").write_text(json.dumps(numbers, indent=1) + "\n")
    print(text)


if __name__ == "__main__":
    main()
