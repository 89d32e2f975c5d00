"""Full-budget recipes side by side: one row per recipe, mean and range over its
training seeds, from final.py's results (1,000 samples per sampling seed).

Run:  .venv/bin/python benchmarks/recipe/compare.py STEM [STEM ...] [--out FILE]

Each STEM names final.py result files: ``small_final`` takes ``small_final.json``,
``small_final_s1.json``, ... (one per training seed). Each file is first averaged over
its sampling seeds (report.py's ``summarise``); the table gives the mean over training
seeds and, in brackets, their range. Writes
benchmarks/results/recipe/compare.md (or --out) and prints it.
"""

from __future__ import annotations

import argparse
import statistics

from report import RESULTS, summarise

#: (column, key of summarise(), format)
COLUMNS = [
    ("w = 0", "w0", "{:.1%}"),
    ("guided", "guided", "{:.1%}"),
    ("worst class, guided", "worst_guided", "{:.0%}"),
    ("FD / floor, guided", "fd_ratio", "{:.2f}"),
    ("haze, guided", "haze_above", "{:.1%}"),
]


def row(stem: str) -> str:
    files = sorted(p.stem for p in RESULTS.glob(f"{stem}*.json"))
    files = [f for f in files if f == stem or f.startswith(f"{stem}_s")]
    runs = [summarise(f) for f in files]
    if not runs:
        raise SystemExit(f"no result files {stem}*.json in {RESULTS}; run final.py")
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
    parser.add_argument("--out", default=str(RESULTS / "compare.md"))
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
        + "`.*"
    )
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
