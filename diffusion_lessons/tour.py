"""The course in one command: ``diffusion-lessons tour`` runs every lesson in order and
writes a summary.

It trains the ``tiny`` preset on the spot (so you watch training happen) and uses the
shipped checkpoint (checkpoints/small.pt, the ``small`` preset trained for about 10 CPU
minutes) for the quality figures of lessons 06-09, and says so. Everything lands in one
folder: every lesson's figures plus ``summary.md`` and ``summary.html`` with the key
numbers and timings.
"""

from __future__ import annotations

import html
import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from . import LESSONS, lesson_module, parse_lessons


def key_numbers(n: int, result: dict) -> list[tuple[str, str]]:
    """The few numbers from lesson ``n``'s run() worth a line in the summary."""
    rows = []
    if n == 1:
        rows.append(
            ("alpha_bar_T, linear schedule, T = 1000", f"{result['alpha_bar_T']:.2e}")
        )
    elif n == 2:
        for name, v in result["schedules"].items():
            rows.append(
                (
                    f"share of steps with SNR > 1, {name}",
                    f"{v['share_snr_above_1']:.0%}",
                )
            )
    elif n == 3:
        rows.append(
            (
                "cosine similarity of embeddings t=1 vs t=2 / t=1 vs t=500",
                f"{result['sim_t1_t2']:.3f} / {result['sim_t1_t500']:.3f}",
            )
        )
    elif n == 4:
        rows.append(
            (
                "U-Net parameters",
                ", ".join(f"{k} {v:,}" for k, v in result["params"].items()),
            )
        )
        rows.append(
            (
                "skip ablation: loss with / without skips",
                f"{result['ablation_loss']['with']:.3f} / "
                f"{result['ablation_loss']['without']:.3f}",
            )
        )
    elif n == 5:
        tail = result["losses"][-50:]
        rows.append(
            (
                "tiny preset: steps, final loss (mean of last 50)",
                f"{result['step']}, {sum(tail) / len(tail):.4f}",
            )
        )
        rows.append(
            (
                "tiny preset: training time, images/s",
                f"{result['seconds']:.0f} s, {result['images_per_second']:.0f}",
            )
        )
    elif n == 6:
        rows.append(("model used", result["model"]))
        for name, sec in result["timings"].items():
            rows.append((f"sampling time, {name}", f"{sec:.1f} s"))
    elif n == 7:
        rows.append(
            (
                "classifier accuracy on real held-out digits",
                f"{result['classifier_real']:.1%}",
            )
        )
        rows.append(
            (
                "Fréchet distance floor (real held-out vs training)",
                f"{result['floor'][0]:.1f} at n={result['floor'][1]}",
            )
        )
        if "report" in result:
            r = result["report"]
            rows.append(
                (
                    f"shipped model, no guidance: accuracy on {r['n']} samples",
                    f"{r['accuracy']:.1%}",
                )
            )
    elif n == 8:
        rows.append(
            (
                "digit-CLIP zero-shot accuracy per real held-out digit, lowest",
                f"{min(result['clip_real']):.0%}",
            )
        )
        if "rerank" in result:
            r = result["rerank"]
            rows.append(
                (
                    "re-ranking by CLIP: classifier accuracy before / after",
                    f"{r['before']['accuracy']:.1%} / {r['after']['accuracy']:.1%}",
                )
            )
    elif n == 9 and result.get("rows"):
        for r in result["rows"]:
            rows.append(
                (
                    f"guidance w = {r['w']:g}: accuracy, Fréchet distance (floor), "
                    "diversity",
                    f"{r['accuracy']:.1%}, {r['frechet_distance']:.1f} "
                    f"({r['frechet_floor']:.1f}), {r['diversity']:.1f}",
                )
            )
    elif n == 10:
        rows += [(k, f"{v:.1e}") for k, v in result["numbers"].items()]
    return rows


def write_summary(
    out: Path, sections: list[dict], total: float, quick: bool
) -> list[Path]:
    """summary.md, summary.html and summary.json in ``out``."""
    intro = (
        f"Ran {len(sections)} lesson(s) in {total / 60:.1f} "
        f"minutes{' (quick settings)' if quick else ''}."
    )
    if any(s["n"] == 5 for s in sections):
        intro += " Lesson 05 trained the tiny preset right here."
    if any(s["n"] >= 6 for s in sections):
        intro += (
            " Lessons 06-10 use the shipped checkpoint `checkpoints/small.pt` (the "
            "small preset) for their quality figures."
        )
    md = ["# diffusion-lessons: your tour", "", intro, ""]
    page = [
        "<!doctype html><meta charset='utf-8'><title>diffusion-lessons tour</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "img{max-width:100%}"
        "td,th{padding:.2em .8em;text-align:left}</style>",
        f"<h1>diffusion-lessons: your tour</h1><p>{html.escape(md[2])}</p>",
    ]
    for s in sections:
        md += [
            f"## {s['n']:02d} · {s['title']} ({s['seconds']:.0f} s)",
            "",
            "| what | value |",
            "|---|---|",
        ]
        md += [f"| {k} | {v} |" for k, v in s["numbers"]]
        md += [""] + [f"![{f}]({f})" for f in s["figures"]] + [""]
        page.append(
            f"<h2>{s['n']:02d} · {html.escape(s['title'])} ({s['seconds']:.0f} "
            "s)</h2><table>"
        )
        page += [
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
            for k, v in s["numbers"]
        ]
        page.append("</table>")
        page += [
            f"<p><img src='{html.escape(f)}' alt='{html.escape(f)}'></p>"
            for f in s["figures"]
        ]
    paths = [out / "summary.md", out / "summary.html", out / "summary.json"]
    paths[0].write_text("\n".join(md))
    paths[1].write_text("\n".join(page))
    paths[2].write_text(
        json.dumps(
            {"total_seconds": total, "quick": quick, "lessons": sections},
            indent=1,
            default=str,
        )
    )
    return paths


def tour(
    out: str | Path = "tour-output", lessons: str = "all", quick: bool = False
) -> list[Path]:
    """Run the chosen lessons in order, writing figures and a summary into ``out``;
    return the summary files.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chosen = parse_lessons(lessons)
    sections, start = [], time.perf_counter()
    stages = tqdm(chosen, desc="tour", unit="lesson", disable=None)
    for n in stages:
        stages.set_postfix_str(f"lesson {n:02d}: {LESSONS[n][1]}")
        print(f"\n== Lesson {n:02d}: {LESSONS[n][1]} ==")
        t0 = time.perf_counter()
        result = lesson_module(n).run(out, quick=quick)
        figures = sorted(
            str(Path(f).relative_to(out))
            for f in result.get("files", [])
            if Path(f).suffix in (".png", ".gif") and Path(f).is_relative_to(out)
        )
        sections.append(
            {
                "n": n,
                "title": LESSONS[n][1],
                "seconds": time.perf_counter() - t0,
                "numbers": key_numbers(n, result),
                "figures": figures,
            }
        )
    total = time.perf_counter() - start
    paths = write_summary(out, sections, total, quick)
    print(
        f"\nTour finished in {total / 60:.1f} min. Summary: {paths[0]} and {paths[1]}"
    )
    return paths
