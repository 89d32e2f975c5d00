"""Tables and figures of the recipe ablation (chapter 05), from the measured results.

Run:  .venv/bin/python benchmarks/recipe/report.py [--figure]

Reads benchmarks/results/recipe/*.json (written by lever.py and final.py) and writes
- docs/figures/05_ablation.md: one row per lever at equal wall-clock time, mean and
  range over training seeds;
- docs/figures/05_recipe.json and benchmarks/results/recipe_small.md: the shipped
  ``small`` preset and its 5-minute twin measured on 1,000 samples (per-class accuracy,
  Fréchet distance with its floor, haze, sampling time);
- docs/figures/05_seed_spread.md and .json: how far the headline numbers move between
  training seeds and between sampling seeds, for the ``small`` recipe predicting eps,
  which has three training seeds (final.py results ``small_final``, ``small_final_s1``,
  ...) and its 5-minute configuration (lever.py results ``combo_3600*``);
- with --figure, docs/figures/05_real_vs_generated.png: ten held-out digits of each
  class beside ten generated ones from checkpoints/small.pt at the recommended guidance.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from diffusion_lessons.runs import write_json

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "recipe"
FIGURES = ROOT / "docs" / "figures"

#: (key, row label, what changed, result files: one per training seed)
ABLATION = [
    (
        "base",
        "the old recipe",
        "ε, Min-SNR γ = 5, batch 128",
        ["base_1800", "base_1800_s1"],
    ),
    (
        "snr_none",
        "plain loss",
        "γ = ∞: no Min-SNR weighting (eq. 5.2)",
        ["snr_none_1800"],
    ),
    ("snr2", "stronger Min-SNR", "γ = 2", ["snr2_1800"]),
    ("batch64", "smaller batch", "batch 64, twice the steps", ["batch64_3636*"]),
    (
        "combo",
        "both",
        "batch 64 and γ = 2: the `small` recipe predicting ε",
        ["combo_3600", "combo_3600_s1", "combo_3600_s2"],
    ),
    (
        "ema",
        "longer EMA",
        "the ε recipe with EMA decay 0.999 (eq. 5.5; 0.995)",
        ["ema999_3600*"],
    ),
    (
        "v",
        "v-prediction",
        "batch 64 and γ = 2 predicting v (eq. 5.6), weight min(SNR, γ) / (SNR + 1)",
        ["v_3600*"],
    ),
    (
        "higher_t",
        "higher noise levels: the `small` preset",
        "v, with t drawn so that ln σ(t) ~ N(0.4, 1.4²) (eq. 5.8), not uniform",
        ["lnp04_v_3600*"],
    ),
]

#: (key, label, result files, one list per training seed: one score per sampling seed)
SPREAD = [
    # the eps recipe: three training seeds, each with two sampling seeds
    ("small", "`small` predicting ε, full budget", "final", ["small_final*"]),
    (
        "small_5min",
        "ε, 5-minute configuration",
        "lever",
        ["combo_3600", "combo_3600_s1", "combo_3600_s2"],
    ),
]
#: metric -> (column header, how to read it off one score, format, scale)
METRICS = {
    "w0": ("accuracy, w = 0", lambda q: q["w0"]["accuracy"], ".1f", 100),
    "guided": ("accuracy, w = 0.5", lambda q: q["guided"]["accuracy"], ".1f", 100),
    "worst": (
        "worst digit, w = 0.5",
        lambda q: min(q["guided"]["per_class"]),
        ".0f",
        100,
    ),
    "fd_ratio": (
        "FD / floor, w = 0.5",
        lambda q: q["guided"]["fd"] / q["floor"],
        ".2f",
        1,
    ),
    "haze": ("haze", lambda q: q["guided"]["haze"]["above"], ".1f", 100),
}


def load(stem: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(f"{stem}.json"))]


def spread(values: list[float], fmt: str) -> str:
    """Mean, and the range over seeds when there is more than one."""
    mean = statistics.fmean(values)
    if len(values) == 1:
        return format(mean, fmt)
    return (
        f"{format(mean, fmt)} ({format(min(values), fmt)}–{format(max(values), fmt)})"
    )


def ablation_table() -> str:
    lines = [
        "| lever | what changed | steps | seeds | accuracy, w = 0 | accuracy, "
        "w = 0.5 | worst digit | FD / floor | background haze |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    n, summary = None, {}
    for key, label, change, stems in ABLATION:
        runs = [r for stem in stems for r in load(stem)]
        if not runs:
            continue
        n = runs[0]["n"]
        summary[key] = {
            "seeds": len(runs),
            "steps": runs[0]["steps"],
            "n": n,
            "w0": statistics.fmean(r["w0"]["accuracy"] for r in runs),
            "w0_min": min(r["w0"]["accuracy"] for r in runs),
            "w0_max": max(r["w0"]["accuracy"] for r in runs),
            "guided": statistics.fmean(r["guided"]["accuracy"] for r in runs),
            "worst": statistics.fmean(min(r["guided"]["per_class"]) for r in runs),
            "fd_ratio": statistics.fmean(r["guided"]["fd"] / r["floor"] for r in runs),
            "haze": statistics.fmean(r["guided"]["haze"]["above"] for r in runs),
        }
        lines.append(
            f"| {label} | {change} | {runs[0]['steps']:,} | {len(runs)} | "
            + " | ".join(
                [
                    spread([r["w0"]["accuracy"] * 100 for r in runs], ".1f") + " %",
                    spread([r["guided"]["accuracy"] * 100 for r in runs], ".1f") + " %",
                    spread([min(r["guided"]["per_class"]) * 100 for r in runs], ".0f")
                    + " %",
                    spread([r["guided"]["fd"] / r["floor"] for r in runs], ".2f"),
                    spread([r["guided"]["haze"]["above"] * 100 for r in runs], ".1f")
                    + " %",
                ]
            )
            + " |"
        )
    lines.append(
        "\n*Each lever trained on mnist-5k for the wall-clock time of 1,800 "
        "steps of the old recipe (half the old `small` budget; step counts from "
        "each lever's measured cost per step), scored on "
        f"{n} samples per row (DDIM 50, sampling seed 0); several training seeds: "
        "mean (range). FD: Fréchet classifier distance to the 1,000 held-out digits "
        "divided by its floor (as many training digits against the same held-out "
        "set). Haze: share of background pixels above 0.02. Made by "
        "`python benchmarks/recipe/report.py` from the runs listed in "
        "benchmarks/recipe/README.md.*"
    )
    (FIGURES / "05_ablation.json").write_text(json.dumps(summary, indent=1))
    return "\n".join(lines) + "\n"


def seed_scores(kind: str, stems: list[str]) -> list[list[dict]]:
    """One list per training seed, holding its scores (one per sampling seed)."""
    if kind == "final":  # final.py: one file per training seed, sampling seeds inside
        return [r["seeds"] for stem in stems for r in load(stem)]
    out = []  # lever.py: one file per (training seed, sampling seed): STEM, STEM_ss1
    for stem in stems:
        scores = load(stem) + load(f"{stem}_ss*")
        if scores:
            out.append(scores)
    return out


def seed_spread() -> tuple[str, dict]:
    """How much each headline number moves between training and sampling seeds."""
    summary = {}
    header = " | ".join(h for h, *_ in METRICS.values())
    lines = [f"| | {header} |", "|---|" + "---:|" * len(METRICS)]
    for key, label, kind, stems in SPREAD:
        models = seed_scores(kind, stems)
        if not models:
            continue
        n, sampling = models[0][0]["n"], min(len(m) for m in models)
        summary[key] = {
            "training_seeds": len(models),
            "sampling_seeds": sampling,
            "n": n,
        }
        rows = {"all": [], "train": [], "sampling": []}
        for metric, (_, read, fmt, scale) in METRICS.items():
            values = [[read(q) for q in m] for m in models]
            flat = [v for m in values for v in m]
            means = [statistics.fmean(m) for m in values]
            entry = {
                "mean": statistics.fmean(flat),
                "min": min(flat),
                "max": max(flat),
                "per_seed": values,
                "training_range": max(means) - min(means),
                "sampling_gap": max(max(m) - min(m) for m in values),
            }
            if scale == 100:  # the two ranges in percentage points, as in the table
                entry["training_range_pts"] = 100 * entry["training_range"]
                entry["sampling_gap_pts"] = 100 * entry["sampling_gap"]
            summary[key][metric] = entry
            unit = " %" if scale == 100 else ""
            rows["all"].append(spread([v * scale for v in flat], fmt) + unit)
            points = " pts" if scale == 100 else ""
            rows["train"].append(format(entry["training_range"] * scale, fmt) + points)
            rows["sampling"].append(format(entry["sampling_gap"] * scale, fmt) + points)
        lines += [
            f"| **{label}**: {len(models)} training × {sampling} sampling seeds, "
            f"{n:,} samples each | " + " | ".join(rows["all"]) + " |",
            "| range of the training seeds' means | "
            + " | ".join(rows["train"])
            + " |",
            "| largest gap between two sampling seeds of one model | "
            + " | ".join(rows["sampling"])
            + " |",
        ]
    lines.append(
        "\n*Each score: accuracy of the samples (DDIM 50, 100 or 50 per digit) as "
        "read by chapter 07's classifier, Fréchet classifier distance to the 1,000 "
        "held-out digits divided by its floor at the same n, and background haze "
        "(share of background pixels above 0.02). First row of each block: mean "
        "(range) over all scores; pts: percentage points. FD / floor shrinks towards 1 "
        "as n falls (both carry a bias of order 1/n), so compare it within a block "
        "only. Made by "
        "`python benchmarks/recipe/report.py` "
        "from the runs listed in benchmarks/recipe/README.md.*"
    )
    return "\n".join(lines) + "\n", summary


def summarise(name: str) -> dict | None:
    """The numbers of one final.py result file, averaged over its sampling seeds."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    seeds = r["seeds"]

    def mean(key, sub):
        return statistics.fmean(q[key][sub] for q in seeds)

    per_class = [
        statistics.fmean(q["guided"]["per_class"][c] for q in seeds) for c in range(10)
    ]
    per_class_w0 = [
        statistics.fmean(q["w0"]["per_class"][c] for q in seeds) for c in range(10)
    ]
    return {
        "steps": r["steps"],
        "minutes": r["seconds"] / 60,
        "images_per_second": r["steps"] * r["config"]["batch_size"] / r["seconds"],
        "n": seeds[0]["n"],
        "sampling_seeds": len(seeds),
        "w": seeds[0]["w"],
        "t_min": seeds[0].get("t_min", 1),
        # DDIM steps; results written before they were kept used 50
        "sampling_steps": seeds[0].get("steps", 50),
        "w0": mean("w0", "accuracy"),
        "w0_range": [
            min(q["w0"]["accuracy"] for q in seeds),
            max(q["w0"]["accuracy"] for q in seeds),
        ],
        "guided": mean("guided", "accuracy"),
        "guided_range": [
            min(q["guided"]["accuracy"] for q in seeds),
            max(q["guided"]["accuracy"] for q in seeds),
        ],
        "per_class_guided": per_class,
        "per_class_w0": per_class_w0,
        "worst_guided": min(per_class),
        "worst_digit": per_class.index(min(per_class)),
        "fd": mean("guided", "fd"),
        "fd_w0": mean("w0", "fd"),
        "floor": seeds[0]["floor"],
        "floor_n": seeds[0]["floor_n"],
        "fd_ratio": mean("guided", "fd") / seeds[0]["floor"],
        "haze_above": statistics.fmean(q["guided"]["haze"]["above"] for q in seeds),
        "haze_mean": statistics.fmean(q["guided"]["haze"]["mean"] for q in seeds),
        "real_haze_above": seeds[0]["real_haze"]["above"],
        "real_haze_mean": seeds[0]["real_haze"]["mean"],
        "seconds_100_guided": statistics.fmean(q["seconds_100_guided"] for q in seeds),
    }


def final_table(results: dict) -> str:
    """benchmarks/results/recipe_small.md: the shipped recipe at 10 and 5 minutes."""
    names = {
        "small": "`small` (full budget)",
        "small_5min": "half budget (`--steps 3600`)",
    }
    rows = [(names[k], v) for k, v in results.items() if k in names and v]
    w = f"w = {rows[0][1]['w']:g}" if rows else "guided"
    lines = [
        f"| run | steps | training (min) | accuracy, w = 0 | accuracy, {w} | "
        f"worst digit, {w} | FD / floor, {w} | haze: mean, share > 0.02 | "
        "100 guided digits (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, v in rows:
        lines.append(
            f"| {label} | {v['steps']:,} | {v['minutes']:.1f} | {v['w0']:.1%} | "
            f"{v['guided']:.1%} | {v['worst_guided']:.1%} ({v['worst_digit']}) | "
            f"{v['fd']:.1f} / {v['floor']:.1f} = {v['fd_ratio']:.2f} | "
            f"{v['haze_mean']:.4f}, {v['haze_above']:.2%} | "
            f"{v['seconds_100_guided']:.1f} |"
        )
    v = rows[0][1] if rows else None
    if v:
        lines.append(
            "\n| digit | "
            + " | ".join(str(c) for c in range(10))
            + " |\n|---|"
            + "---:|" * 10
        )
        for label, key in (("w = 0", "per_class_w0"), (w, "per_class_guided")):
            lines.append(
                f"| {label} | " + " | ".join(f"{a:.0%}" for a in v[key]) + " |"
            )
        lines.append(
            f"\n*DDIM {v['sampling_steps']} ending at t = {v['t_min']}, "
            f"{v['n']} samples per sampling seed (100 per digit), "
            f"{v['sampling_seeds']} sampling seeds, means shown; per-digit rows: the "
            "full-budget run. FD: Fréchet classifier distance of the guided samples to "
            f"the 1,000 held-out digits; floor: {v['floor_n']} training digits against "
            f"the same set. Real held-out digits: haze {v['real_haze_mean']:.4f}, "
            f"{v['real_haze_above']:.2%}. Made by `benchmarks/recipe/final.py` and "
            "`report.py` (commands in benchmarks/recipe/README.md).*"
        )
    return "\n".join(lines) + "\n"


def side_by_side(checkpoint=ROOT / "checkpoints" / "small.pt", seed: int = 0):
    """Ten held-out digits of each class (the first ten) beside ten generated ones."""
    import torch

    from diffusion_lessons.data import load_digits
    from diffusion_lessons.lesson05_training import load_trained
    from diffusion_lessons.lesson06_sampling import digit_labels, sample
    from diffusion_lessons.lesson09_guidance import RECOMMENDED_W, GuidedModel
    from diffusion_lessons.plotting import new_figure, show_images

    held_x, held_y = load_digits("mnist-5k", "test")
    real = torch.cat([held_x[held_y == c][:10] for c in range(10)])  # (100, 1, 28, 28)
    model, schedule, _ = load_trained(checkpoint)
    labels = digit_labels("0123456789", 10)  # 0 x10, 1 x10, ...
    fake = sample(
        GuidedModel(model, RECOMMENDED_W),
        schedule,
        labels,
        generator=torch.Generator().manual_seed(seed),
    )
    fig, axes = new_figure(1, 2, size=(6.88, 3.9))
    rows = [str(c) for c in range(10)]
    show_images(axes[0], real, nrow=10, title="real (held out)", row_labels=rows)
    show_images(
        axes[1],
        fake,
        nrow=10,
        title=f"generated (w = {RECOMMENDED_W:g})",
        row_labels=rows,
    )
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", action="store_true")
    args = parser.parse_args()
    (FIGURES / "05_ablation.md").write_text(ablation_table())
    print(f"wrote {FIGURES / '05_ablation.md'} and .json")
    table, summary = seed_spread()
    (FIGURES / "05_seed_spread.md").write_text(table)
    write_json(FIGURES / "05_seed_spread.json", summary)
    print(f"wrote {FIGURES / '05_seed_spread.md'} and .json")
    # the shipped recipe, scored as the book samples (final.py)
    results = {
        "small": summarise("small_ht_final"),
        "small_5min": summarise("small_ht_5min_final"),
    }
    if any(results.values()):
        (FIGURES / "05_recipe.json").write_text(json.dumps(results, indent=1))
        out = ROOT / "benchmarks" / "results" / "recipe_small.md"
        out.write_text(final_table(results))
        print(f"wrote {FIGURES / '05_recipe.json'}, {out}")
    if args.figure:
        from diffusion_lessons.plotting import savefig

        path = savefig(side_by_side(), FIGURES / "05_real_vs_generated.png")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
