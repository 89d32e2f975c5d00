"""Does the noise schedule matter after training? Linear, cosine and sigmoid
(chapter 02) trained with the shipped recipe at its 5-minute budget, two training
seeds each (three for cosine, the shipped schedule).

Run:  .venv/bin/python benchmarks/recipe/schedules.py

Reads benchmarks/results/recipe/{linear,combo,sigmoid}_3600*.json, written by lever.py
(commands in benchmarks/recipe/README.md; ``combo_3600`` is the shipped cosine recipe),
and writes docs/figures/02_trained_schedules.md (the table), .json (for the chapter's
numbers) and .png (loss curves and accuracies). Every run is scored on 500 samples
(DDIM 50, sampling seed 0).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from report import spread

from diffusion_lessons.plotting import new_figure, savefig
from diffusion_lessons.runs import write_json

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "recipe"
FIGURES = ROOT / "docs" / "figures"

#: schedule -> result files, one per training seed (0, 1, ...)
RUNS = {
    "linear": ["linear_3600", "linear_3600_s1"],
    "cosine": ["combo_3600", "combo_3600_s1", "combo_3600_s2"],
    "sigmoid": ["sigmoid_3600", "sigmoid_3600_s1"],
}
#: the full budget (7,200 steps): final.py results, 2 x 1,000 samples per training seed
FULL = {
    "linear": ["small_linear_final", "small_linear_final_s1"],
    "cosine": ["small_final", "small_final_s1", "small_final_s2"],
}
COLORS = {"linear": "tab:blue", "cosine": "tab:orange", "sigmoid": "tab:green"}


def load(stem: str) -> dict | None:
    """One run's result; its loss curve may sit in a re-scoring of the same run
    (``STEM_ss1``, another sampling seed) when the first scoring predates it.
    """
    path = RESULTS / f"{stem}.json"
    if not path.exists():
        return None
    r = json.loads(path.read_text())
    other = RESULTS / f"{stem}_ss1.json"
    if "loss_curve" not in r and other.exists():
        r["loss_curve"] = json.loads(other.read_text()).get("loss_curve")
    return r


def summary() -> dict:
    out = {}
    for name, stems in RUNS.items():
        runs = [r for r in map(load, stems) if r]
        if not runs:
            continue
        out[name] = {
            "seeds": len(runs),
            "steps": runs[0]["steps"],
            "n": runs[0]["n"],
            "w0": [r["w0"]["accuracy"] for r in runs],
            "guided": [r["guided"]["accuracy"] for r in runs],
            "fd_ratio": [r["guided"]["fd"] / r["floor"] for r in runs],
            "fd_ratio_w0": [r["w0"]["fd"] / r["floor"] for r in runs],
            "haze": [r["guided"]["haze"]["above"] for r in runs],
            "loss_last200": [r["loss_last200"] for r in runs],
            "loss_curves": [r.get("loss_curve") for r in runs],
        }
        for key in ("w0", "guided", "fd_ratio", "fd_ratio_w0", "haze"):
            out[name][f"{key}_mean"] = statistics.fmean(out[name][key])
            out[name][f"{key}_min"] = min(out[name][key])
            out[name][f"{key}_max"] = max(out[name][key])
    return out


def full_summary() -> dict:
    """The full-budget runs, each training seed's numbers averaged over its sampling
    seeds."""
    out = {}
    for name, stems in FULL.items():
        runs = [r for r in map(load, stems) if r]
        if not runs:
            continue

        def per_seed(read, runs=runs):
            return [statistics.fmean(read(q) for q in r["seeds"]) for r in runs]

        out[name] = {
            "seeds": len(runs),
            "sampling_seeds": len(runs[0]["seeds"]),
            "steps": runs[0]["steps"],
            "n": runs[0]["seeds"][0]["n"],
            "w0": per_seed(lambda q: q["w0"]["accuracy"]),
            "guided": per_seed(lambda q: q["guided"]["accuracy"]),
            "worst": per_seed(lambda q: min(q["guided"]["per_class"])),
            "fd_ratio": per_seed(lambda q: q["guided"]["fd"] / q["floor"]),
            "fd_ratio_w0": per_seed(lambda q: q["w0"]["fd"] / q["floor"]),
            "haze": per_seed(lambda q: q["guided"]["haze"]["above"]),
        }
        for key in ("w0", "guided", "worst", "fd_ratio", "fd_ratio_w0", "haze"):
            out[name][f"{key}_mean"] = statistics.fmean(out[name][key])
            out[name][f"{key}_min"] = min(out[name][key])
            out[name][f"{key}_max"] = max(out[name][key])
    return out


def full_table(s: dict) -> str:
    if not s:
        return ""
    lines = [
        "\n| full budget | training seeds | accuracy, w = 0 | accuracy, w = 0.5 "
        "| worst digit, w = 0.5 | FD / floor, w = 0 | FD / floor, w = 0.5 "
        "| background haze |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in s.items():
        cells = [
            spread([a * 100 for a in v["w0"]], ".1f") + " %",
            spread([a * 100 for a in v["guided"]], ".1f") + " %",
            spread([a * 100 for a in v["worst"]], ".0f") + " %",
            spread(v["fd_ratio_w0"], ".2f"),
            spread(v["fd_ratio"], ".2f"),
            spread([h * 100 for h in v["haze"]], ".1f") + " %",
        ]
        lines.append(f"| {name} | {v['seeds']} | " + " | ".join(cells) + " |")
    v = next(iter(s.values()))
    lines.append(
        f"\n*The same recipe at the full `small` budget, {v['steps']:,} steps; each "
        f"training seed scored on {v['n']:,} samples with {v['sampling_seeds']} "
        "sampling seeds (benchmarks/recipe/final.py), their mean shown, then the "
        "mean (range) over training seeds. FD / floor at n = 1,000 is not comparable "
        "with the table above (n = 500).*"
    )
    return "\n".join(lines) + "\n"


def table(s: dict) -> str:
    lines = [
        "| schedule | seeds | accuracy, w = 0 | accuracy, w = 0.5 | FD / floor, w = 0 "
        "| FD / floor, w = 0.5 | background haze |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in s.items():
        lines.append(
            f"| {name} | {v['seeds']} | "
            + " | ".join(
                [
                    spread([a * 100 for a in v["w0"]], ".1f") + " %",
                    spread([a * 100 for a in v["guided"]], ".1f") + " %",
                    spread(v["fd_ratio_w0"], ".2f"),
                    spread(v["fd_ratio"], ".2f"),
                    spread([h * 100 for h in v["haze"]], ".1f") + " %",
                ]
            )
            + " |"
        )
    v = next(iter(s.values()))
    lines.append(
        f"\n*The shipped recipe (batch 64, Min-SNR γ = 2) with each schedule, "
        f"{v['steps']:,} steps on mnist-5k (the 5-minute budget), one run per "
        f"training seed: mean (range over seeds). Each run scored on {v['n']} samples "
        "(DDIM 50, sampling seed 0). FD: Fréchet classifier distance to the 1,000 "
        "held-out digits divided by its floor at the same n. Made by "
        "`python benchmarks/recipe/schedules.py` from the runs listed in "
        "benchmarks/recipe/README.md.*"
    )
    return "\n".join(lines) + "\n"


def figure(s: dict):
    fig, (ax_loss, ax_acc) = new_figure(1, 2, size=(6.88, 3.2))
    for name, v in s.items():
        for seed, curve in enumerate(v["loss_curves"]):
            if curve:
                steps = [100 * (i + 1) for i in range(len(curve))]
                ax_loss.plot(
                    steps,
                    curve,
                    color=COLORS[name],
                    lw=1.2,
                    ls="-" if seed == 0 else "--",
                    label=name if seed == 0 else None,
                )
    ax_loss.set(
        xlabel="step",
        ylabel="loss, mean of 100 steps",
        yscale="log",
        title="training loss (not comparable across schedules)",
    )
    ax_loss.title.set_fontsize(9)
    ax_loss.legend(fontsize=8)
    names = list(s)
    for i, name in enumerate(names):
        v = s[name]
        for j, (key, marker) in enumerate((("w0", "o"), ("guided", "s"))):
            ax_acc.plot(
                [i + 0.12 * (2 * j - 1)] * len(v[key]),
                [100 * a for a in v[key]],
                marker,
                color=COLORS[name],
                mfc="none" if key == "w0" else COLORS[name],
                label=("w = 0" if key == "w0" else "w = 0.5") if i == 0 else None,
            )
    ax_acc.set(
        xticks=range(len(names)),
        xticklabels=names,
        xlim=(-0.5, len(names) - 0.5),
        ylabel="classifier accuracy (%)",
        title="each point: one training seed",
    )
    ax_acc.title.set_fontsize(9)
    ax_acc.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def main() -> None:
    s, full = summary(), full_summary()
    (FIGURES / "02_trained_schedules.md").write_text(table(s) + full_table(full))
    write_json(
        FIGURES / "02_trained_schedules.json",
        {
            **{
                k: {kk: vv for kk, vv in v.items() if kk != "loss_curves"}
                for k, v in s.items()
            },
            "full": full,
        },
    )
    path = savefig(figure(s), FIGURES / "02_trained_schedules.png")
    print(f"wrote {FIGURES / '02_trained_schedules.md'}, .json and {path}")


if __name__ == "__main__":
    main()
