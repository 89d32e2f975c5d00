"""One table from several sweep.py results: each sampling setting, per recipe.

Run:  .venv/bin/python benchmarks/recipe/sweep_table.py LABEL=NAME,NAME... [--out FILE]

Each LABEL groups the sweep files (benchmarks/results/recipe/sweep_NAME.json) of one
recipe's training seeds; a LABEL given twice adds the second group's rows to the
first's (more settings of the same recipe). A row is one setting of one recipe: the
mean over its training seeds (range in brackets) of each seed's mean over its sampling
seeds. Printed, and written as markdown to FILE (default
benchmarks/results/recipe/sampling_levers.md), with the means in FILE's .json twin
({label: [{"setting", "acc", "worst", "fd", "haze", "sec"}]}) for the pages that quote
them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from statistics import mean

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "recipe"


def setting_label(setting: dict) -> str:
    """A setting in words: sweep.py's defaults (the textbook chain) are left out."""
    parts = [f"{k} = {v}" for k, v in setting.items()]
    return ", ".join(parts) if parts else "textbook chain (t_min = 1)"


def cell(values: list[float], fmt: str) -> str:
    """Mean, with the range over training seeds when there are several."""
    m = format(mean(values), fmt)
    if len(values) < 2:
        return m
    return f"{m} ({format(min(values), fmt)}–{format(max(values), fmt)})"


def rows_for(label: str, names: list[str]) -> tuple[list[str], list[dict]]:
    files = [RESULTS / f"sweep_{n}.json" for n in names]
    for f in files:
        if not f.exists():
            sys.exit(f"sweep_table.py: no {f.name} in {RESULTS}: run sweep.py for it.")
    runs = [json.loads(f.read_text()) for f in files]
    settings = []
    for row in runs[0]["rows"]:
        if row["setting"] not in settings:
            settings.append(row["setting"])
    out, facts = [], []
    for setting in settings:
        per_run = []  # one dict per training seed: means over its sampling seeds
        for run in runs:
            rows = [r for r in run["rows"] if r["setting"] == setting]
            if not rows:
                sys.exit(f"{run['checkpoint']} has no rows for {setting}: rerun it.")
            per_run.append(
                {
                    "acc": mean(r["accuracy"] for r in rows),
                    "worst": mean(min(r["per_class"]) for r in rows),
                    "fd": mean(r["fd"] / run["floor"] for r in rows),
                    "haze": mean(r["haze"]["above"] for r in rows),
                    "sec": mean(r["seconds_per_100"] for r in rows),
                    "n": f"{rows[0]['n']} × {len(rows)}",
                }
            )
        col = {
            k: [p[k] for p in per_run] for k in ("acc", "worst", "fd", "haze", "sec")
        }
        facts.append({"setting": setting, **{k: mean(v) for k, v in col.items()}})
        out.append(
            f"| {label} | {setting_label(setting)} | {len(runs)} | {per_run[0]['n']} | "
            f"{cell(col['acc'], '.1%')} | {cell(col['worst'], '.0%')} | "
            f"{cell(col['fd'], '.2f')} | {cell(col['haze'], '.2%')} | "
            f"{mean(col['sec']):.1f} |"
        )
    return out, facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", nargs="+", help="LABEL=NAME,NAME...")
    parser.add_argument("--out", default=str(RESULTS / "sampling_levers.md"))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    default = out == (RESULTS / "sampling_levers.md").resolve()
    root = RESULTS.parents[2]
    shown = out.relative_to(root) if out.is_relative_to(root) else out
    out_arg = "" if default else f" --out {shown}"
    lines = [
        "| recipe | sampling | training seeds | samples × sampling seeds | accuracy "
        "| worst class | FD / floor | haze | s per 100 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    facts = {}
    for group in args.groups:
        label, _, names = group.partition("=")
        rows, group_facts = rows_for(label, names.split(","))
        facts.setdefault(label, []).extend(group_facts)  # a label may come twice
        lines += rows
    lines += [
        "",
        "*Guidance w = 0.5 unless the row says otherwise, DDIM 50 steps. Mean over "
        "training seeds (range in brackets), each averaged over its sampling seeds; FD "
        "against the 1,000 held-out digits, floor = 1,000 training digits; haze: share "
        "of background pixels above 0.02; seconds per 100 digits as measured in the "
        "batch of 1,000 (not an idle-machine timing). Made by `python "
        "benchmarks/recipe/sweep_table.py " + " ".join(args.groups) + out_arg + "`.*",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text)
    Path(args.out).with_suffix(".json").write_text(json.dumps(facts, indent=1))


if __name__ == "__main__":
    main()
