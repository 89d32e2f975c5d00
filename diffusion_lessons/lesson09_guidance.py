"""Lesson 09: classifier-free guidance, and how far it can be pushed.

Chapter: docs/lessons/09-guidance.md

Lesson 05 trained one network two ways at once: with probability p_uncond the label was
replaced by the null class ∅, so eps_theta(x_t, t, c) is the conditional and
eps_theta(x_t, t, ∅) the unconditional noise prediction. Guidance (Ho & Salimans 2022)
extrapolates away from the unconditional prediction, towards what makes the image look
like class c:

    (9.1)   eps_w = (1 + w) eps_theta(x_t, t, c) - w eps_theta(x_t, t, ∅)
          = eps_theta(x_t, t, ∅) + s (eps_theta(x_t, t, c) - eps_theta(x_t, t, ∅)),  s =
          1 + w  (eq. 9.2)

w = 0 (s = 1) is the plain conditional model, w = -1 (s = 0) the unconditional one. The
other common convention (diffusers' ``guidance_scale``, Stable Diffusion's "CFG scale")
is s: our w = 2 is their 3. In score terms, eps is proportional to -grad log p(x_t), so
eq. 9.1 samples from a sharpened p(x_t | c)^(1+w) p(x_t)^(-w) ∝ p(x_t) p(c | x_t)^(1+w):
an implicit classifier raised to a power.
Larger w: more recognisable digits, less variety. The chapter measures that trade-off.

Builds on: lesson05_training (load_trained; its label dropout trained the ∅ prediction),
lesson06_sampling (sample, digit_labels, SHIPPED), lesson07_classifier (load_classifier,
evaluate_samples, feature_stats, diversity), data (load_digits), plotting.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from .data import load_digits
from .lesson05_training import load_trained
from .lesson06_sampling import DEFAULT_STEPS, SHIPPED, digit_labels, sample
from .lesson07_classifier import (
    diversity,
    evaluate_samples,
    feature_stats,
    load_classifier,
)
from .plotting import DIGIT_COLORS, new_figure, savefig, show_images

# : the guidance weight the chapter recommends (section 9.8), the default of
# `diffusion-lessons sample --guidance`
RECOMMENDED_W = 0.25

# ---------------------------------------------------------------------------
# Guided noise prediction
# ---------------------------------------------------------------------------


def guided_eps(
    model: nn.Module, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, w: float
) -> torch.Tensor:
    """Eq. 9.1 with ONE batched forward pass: the conditional and unconditional halves
    share a batch.

    Args:
        model: eps_theta(xt, t, labels); label ``model.config.num_classes`` is ∅.
        xt: (B, C, H, W); t: (B,); labels: (B,).
        w: guidance weight (0: conditional, -1: unconditional).
    Returns:
        eps_w, (B, C, H, W).
    """
    null = torch.full_like(labels, model.config.num_classes)  # (B,) all ∅
    eps = model(
        torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([labels, null])
    ).float()  # (2B, C, H, W)
    eps_cond, eps_uncond = eps.chunk(2)
    return (1 + w) * eps_cond - w * eps_uncond  # eq. 9.1


class GuidedModel(nn.Module):
    """A model whose forward is eq. 9.1: pass it to lesson 06's ``sample`` like any
    model.
    """

    def __init__(self, model: nn.Module, w: float):
        super().__init__()
        self.model, self.w, self.config = model, float(w), model.config

    def forward(
        self, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        if self.w == 0:
            return self.model(xt, t, labels)  # w = 0 needs no unconditional pass
        return guided_eps(self.model, xt, t, labels, self.w)


# ---------------------------------------------------------------------------
# Measuring the trade-off
# ---------------------------------------------------------------------------


def guidance_sweep(
    model,
    schedule,
    ws: list[float],
    labels: torch.Tensor,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
) -> dict:
    """Sample ``labels`` once per w from the SAME initial noise (same seed); {w: images
    (B, C, H, W)}.
    """
    return {
        w: sample(
            GuidedModel(model, w),
            schedule,
            labels,
            steps=steps,
            generator=torch.Generator().manual_seed(seed),
        )
        for w in ws
    }


def tradeoff(samples: dict, labels: torch.Tensor, classifier, reference) -> list[dict]:
    """For each w: classifier accuracy, Fréchet distance (vs the real held-out digits,
    with its floor), diversity.
    """
    rows = []
    for w, images in samples.items():
        report = evaluate_samples(images, labels, classifier, reference=reference)
        rows.append(
            {
                "w": w,
                "accuracy": report["accuracy"],
                "frechet_distance": report["frechet_distance"],
                "frechet_floor": report["frechet_floor"],
                "diversity": diversity(classifier, images, labels),
                "mean_confidence": report["mean_confidence"],
                "n": report["n"],
            }
        )
    return rows


def fig_sweep(samples: dict, per_digit: int = 1, digits: int = 10):
    """One row per w, same noise in every row: the effect of guidance alone."""
    ws = list(samples)
    # (len(ws) * 10, C, H, W)
    rows = torch.cat([samples[w][::per_digit][:digits] for w in ws])
    fig, ax = new_figure(size=(digits * 0.75 + 0.8, len(ws) * 0.8 + 0.4))
    show_images(ax, rows, nrow=digits, row_labels=[f"w = {w:g}" for w in ws])
    ax.set_title(
        "same initial noise in every row; only the guidance weight w changes",
        fontsize=9,
    )
    return fig


def fig_tradeoff(
    rows: list[dict], real_diversity: float | None = None, title: str = ""
):
    """Accuracy, Fréchet distance and within-class diversity against w, one above the
    other.
    """
    ws = [r["w"] for r in rows]
    fig, axes = new_figure(3, 1, size=(6.8, 6.6), sharex=True)
    axes[0].plot(ws, [100 * r["accuracy"] for r in rows], "o-", color=DIGIT_COLORS[0])
    axes[0].set_ylabel("classifier accuracy (%)")
    axes[1].plot(
        ws,
        [r["frechet_distance"] for r in rows],
        "o-",
        color=DIGIT_COLORS[3],
        label="samples",
    )
    axes[1].axhline(
        rows[0]["frechet_floor"],
        color="k",
        ls=":",
        label=f"real-data floor (n={rows[0]['n']})",
    )
    axes[1].set_ylabel("Fréchet classifier distance")
    axes[1].legend(fontsize=8)
    axes[2].plot(
        ws, [r["diversity"] for r in rows], "o-", color=DIGIT_COLORS[2], label="samples"
    )
    if real_diversity is not None:
        axes[2].axhline(real_diversity, color="k", ls=":", label="real held-out digits")
        axes[2].legend(fontsize=8)
    axes[2].set_ylabel("within-class diversity")
    axes[-1].set_xlabel("guidance weight w")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def write_tradeoff(
    rows: list[dict], real_diversity: float, source: str, out: Path
) -> list[Path]:
    """Table 9.1 as Markdown (09_tradeoff.md) and the same rows as JSON
    (09_tradeoff.json), from which the chapters quote their numbers.
    """
    table = [
        "| w | accuracy | Fréchet distance | real floor | diversity |",
        "|---:|---:|---:|---:|---:|",
    ]
    table += [
        f"| {r['w']:g} | {r['accuracy']:.1%} | {r['frechet_distance']:.1f} | "
        f"{r['frechet_floor']:.1f} | {r['diversity']:.1f} |"
        for r in rows
    ]
    table.append(
        f"\n*{source}; real held-out diversity {real_diversity:.1f}. Made by "
        "`diffusion-lessons run 9`.*"
    )
    (out / "09_tradeoff.md").write_text("\n".join(table) + "\n")
    record = {
        "rows": rows,
        "real_diversity": real_diversity,
        "source": source,
        "command": "diffusion-lessons run 9",
    }
    (out / "09_tradeoff.json").write_text(json.dumps(record, indent=1) + "\n")
    return [out / "09_tradeoff.md", out / "09_tradeoff.json"]


# ---------------------------------------------------------------------------
# Run the lesson
# ---------------------------------------------------------------------------


def run(
    out: Path | str = "figures",
    *,
    quick: bool = False,
    checkpoint: Path | str = SHIPPED,
) -> dict:
    """Sweep w on the shipped checkpoint: the sweep grid, the trade-off curves and their
    table.
    """
    out, checkpoint = Path(out), Path(checkpoint)
    if not checkpoint.exists():
        print(
            f"No checkpoint at {checkpoint}: train one with `diffusion-lessons train "
            "--preset small --out runs/small`."
        )
        return {"files": []}
    model, schedule, cfg = load_trained(checkpoint)
    classifier = load_classifier()
    ws = [0.0, 1.0, 3.0] if quick else [0.0, RECOMMENDED_W, 1.0, 2.0, 3.0, 5.0]
    per_digit, steps = (5, 10) if quick else (100, DEFAULT_STEPS)
    labels = digit_labels("0123456789", per_digit)
    real_x, real_y = load_digits("mnist-5k", "test")
    reference = feature_stats(classifier, real_x)  # the held-out digits
    samples = guidance_sweep(model, schedule, ws, labels, steps=steps)
    rows = tradeoff(samples, labels, classifier, reference)
    real_div = diversity(classifier, real_x, real_y)
    print(
        f"{len(labels)} samples per w (DDIM {steps} steps, seed 0); real held-out "
        f"diversity {real_div:.1f}"
    )
    print(f"{'w':>5} {'accuracy':>9} {'FD':>7} {'floor':>6} {'diversity':>9}")
    for r in rows:
        print(
            f"{r['w']:5g} {r['accuracy']:9.1%} {r['frechet_distance']:7.1f} "
            f"{r['frechet_floor']:6.1f} {r['diversity']:9.1f}"
        )
    source = (
        f"{checkpoint.name}, {len(labels)} samples per w, DDIM {steps} steps, seed 0"
    )
    files = [
        savefig(fig_sweep(samples, per_digit), out / "09_guidance_sweep.png"),
        savefig(fig_tradeoff(rows, real_div, source), out / "09_tradeoff.png"),
    ]
    files += write_tradeoff(rows, real_div, source, out)
    for f in files:
        print(f"wrote {f}")
    return {"rows": rows, "real_diversity": real_div, "files": files}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Lesson 09: classifier-free guidance and its trade-off."
    )
    parser.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples and steps")
    parser.add_argument("--checkpoint", default=str(SHIPPED))
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick, checkpoint=args.checkpoint)


if __name__ == "__main__":
    main()
