"""Lesson 01: the forward process, fading a digit into static.

Chapter: docs/lessons/01-forward-noise.md

A diffusion model learns to undo a fixed, simple corruption. This lesson builds that
corruption. Each step keeps a little less of the image and adds a little Gaussian noise
(beta_t is the variance added):

    (1.1)   q(x_t | x_{t-1}) = N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I)

Writing alpha_t = 1 - beta_t and alpha_bar_t = alpha_1 alpha_2 ... alpha_t (with
alpha_bar_0 = 1), T steps of eq. 1.1 collapse into one Gaussian, so any x_t can be drawn
straight from x_0:

    (1.2)   q(x_t | x_0) = N(x_t; sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    (1.3)   x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,  eps ~ N(0, I)

Time runs t = 1..T. Arrays are indexed by t directly: they have length T+1 and index 0
means "no noise yet" (beta_0 = 0, alpha_bar_0 = 1), so ``alpha_bar[t]`` is alpha_bar_t,
never alpha_bar_{t+1}.

Builds on: data (load_digits), plotting (show_images, new_figure, savefig,
DIGIT_COLORS).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import load_digits
from .plotting import DIGIT_COLORS, new_figure, savefig, show_images

# ---------------------------------------------------------------------------
# The schedule: which beta_t at each step
# ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Schedule:
    """The variances of the forward process and the products derived from them.

    Attributes (all float64 tensors of shape (T+1,), indexed by t = 0..T):
        beta:      beta_t, the variance added at step t; beta[0] = 0.
        alpha:     alpha_t = 1 - beta_t; alpha[0] = 1.
        alpha_bar: alpha_bar_t = prod_{s<=t} alpha_s; alpha_bar[0] = 1.
        name:      a label for figures and checkpoints.
    """

    beta: torch.Tensor
    alpha: torch.Tensor
    alpha_bar: torch.Tensor
    name: str = "custom"

    @property
    def T(self) -> int:
        """The number of diffusion steps."""
        return len(self.beta) - 1


def schedule_from_betas(beta: torch.Tensor, name: str = "custom") -> Schedule:
    """Build a ``Schedule`` from beta_1..beta_T, shape (T,), each strictly between 0 and
    1.
    """
    beta = torch.as_tensor(beta, dtype=torch.float64).flatten()
    if len(beta) < 1:
        raise ValueError("A schedule needs at least one step (T >= 1); got no betas.")
    if not torch.isfinite(beta).all() or (beta <= 0).any() or (beta >= 1).any():
        raise ValueError(
            "Every beta_t must lie strictly between 0 and 1; got min "
            f"{beta.min().item():.3g}, "
            f"max {beta.max().item():.3g}. Lower beta_end (or clip the betas) so noise "
            "is added gradually."
        )
    # (T+1,), beta_0 = 0: "no noise yet"
    beta = torch.cat([torch.zeros(1, dtype=torch.float64), beta])
    alpha = 1.0 - beta  # alpha_t = 1 - beta_t
    alpha_bar = torch.cumprod(alpha, dim=0)  # alpha_bar_t = prod_{s<=t} alpha_s
    return Schedule(beta=beta, alpha=alpha, alpha_bar=alpha_bar, name=name)


def linear_schedule(
    T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Schedule:
    """The linear schedule of Ho et al. (2020): beta_t rises evenly from ``beta_start``
    to ``beta_end``.
    """
    if int(T) != T or T < 1:
        raise ValueError(f"T must be a whole number of steps >= 1; got {T!r}.")
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(
            f"Need 0 < beta_start <= beta_end < 1; got beta_start={beta_start}, "
            f"beta_end={beta_end}. "
            "The DDPM values are beta_start=1e-4, beta_end=0.02."
        )
    return schedule_from_betas(
        torch.linspace(beta_start, beta_end, int(T), dtype=torch.float64), name="linear"
    )


# ---------------------------------------------------------------------------
# The forward process
# ---------------------------------------------------------------------------


def _gather(
    values: torch.Tensor, t: torch.Tensor | int, like: torch.Tensor
) -> torch.Tensor:
    """values[t] for each image in the batch, shaped (B, 1, 1, 1) to broadcast over (B,
    C, H, W).
    """
    T = len(values) - 1
    t = torch.as_tensor(t, device=values.device).long()
    if t.ndim == 0:
        t = t.expand(like.shape[0])
    if t.shape != (like.shape[0],):
        raise ValueError(
            f"t must be an int or a tensor of shape ({like.shape[0]},), one step per "
            f"image; got shape {tuple(t.shape)}."
        )
    if (t < 0).any() or (t > T).any():
        raise ValueError(
            f"t must lie in 0..T = 0..{T} (t = 0 is the clean image); got values from "
            f"{t.min().item()} to {t.max().item()}."
        )
    # (B, 1, 1, 1)
    return values[t].to(like.device, like.dtype).view(-1, *([1] * (like.ndim - 1)))


def _check_images(x: torch.Tensor) -> None:
    if not torch.is_tensor(x) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(
            f"Images must be a float tensor of shape (B, C, H, W); got "
            f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}. Add a "
            "batch axis with x[None]."
        )


def forward_step(
    x_prev: torch.Tensor,
    t: torch.Tensor | int,
    schedule: Schedule,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One step of the chain, eq. 1.1: x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t)
    eps.

    Args:
        x_prev: x_{t-1}, (B, C, H, W).
        t: the step being taken, 1..T (int or (B,) tensor).
    Returns:
        x_t, (B, C, H, W).
    """
    _check_images(x_prev)
    beta_t = _gather(schedule.beta, t, x_prev)
    eps = torch.randn(x_prev.shape, generator=generator, dtype=x_prev.dtype).to(
        x_prev.device
    )
    return (1 - beta_t).sqrt() * x_prev + beta_t.sqrt() * eps


def forward_chain(
    x0: torch.Tensor,
    t: int,
    schedule: Schedule,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply eq. 1.1 t times, step by step: the slow way to reach x_t, (B, C, H, W)."""
    xt = x0
    for s in range(1, t + 1):
        xt = forward_step(xt, s, schedule, generator)
    return xt


def q_sample(
    x0: torch.Tensor,
    t: torch.Tensor | int,
    schedule: Schedule,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Jump straight to x_t with the closed form, eq. 1.3.

    Args:
        x0: clean images in [-1, 1], (B, C, H, W).
        t: steps in 0..T, an int or a (B,) tensor (one per image).
        schedule: the forward process' schedule.
        eps: the noise to use, (B, C, H, W); drawn from N(0, I) if not given.
        generator: random generator for eps (ignored when eps is given).
    Returns:
        x_t, (B, C, H, W), same dtype and device as x0.
    """
    _check_images(x0)
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype).to(x0.device)
    elif eps.shape != x0.shape:
        raise ValueError(
            f"eps must have the shape of x0 {tuple(x0.shape)}; got {tuple(eps.shape)}."
        )
    alpha_bar_t = _gather(schedule.alpha_bar, t, x0)  # (B, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * eps  # eq. 1.3


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def fig_noise_progression(
    x0: torch.Tensor,
    schedule: Schedule,
    fractions=(0, 0.25, 0.5, 0.75, 1.0),
    seed: int = 0,
):
    """Each row a digit, each column x_t at a fraction of T (figure 1.1)."""
    steps = [round(f * schedule.T) for f in fractions]
    g = torch.Generator().manual_seed(seed)
    # the same noise for every column: only t changes
    eps = torch.randn(x0.shape, generator=g)
    # (B, K, 1, 28, 28)
    cols = torch.stack([q_sample(x0, t, schedule, eps=eps) for t in steps], dim=1)
    fig, ax = new_figure(size=(1.3 * len(steps), 1.3 * len(x0)))
    show_images(
        ax,
        cols.flatten(0, 1),
        nrow=len(steps),
        col_labels=[f"t={t}\n({f:.0%} of T)" for t, f in zip(steps, fractions)],
    )
    return fig


def chain_vs_closed_form(
    x0: torch.Tensor, schedule: Schedule, steps: list[int], n: int = 5000, seed: int = 0
):
    """Draw x_t ``n`` times from one image x0 (1, C, H, W), by the chain (eq. 1.1) and
    by eq. 1.3.

    Returns:
        chain, closed: lists with one (n, C, H, W) tensor per requested step.
    """
    g = torch.Generator().manual_seed(seed)
    batch = x0.expand(n, *x0.shape[1:]).clone()  # (n, C, H, W): the same image n times
    chain, closed, xt = [], [], batch
    for t in range(1, max(steps) + 1):
        xt = forward_step(xt, t, schedule, g)
        if t in steps:
            chain.append(xt)
            closed.append(q_sample(batch, t, schedule, generator=g))
    return chain, closed


def fig_chain_vs_closed_form(
    x0: torch.Tensor, schedule: Schedule, seed: int = 0, n: int = 5000
):
    """Histograms of one bright pixel at several t: the step-by-step chain and the
    closed form agree.
    """
    steps = [max(1, round(f * schedule.T)) for f in (0.02, 0.1, 0.3, 1.0)]
    # a pixel on the stroke (x0 = +1)
    r, c = divmod(int(x0[0, 0].argmax()), x0.shape[-1])
    # (1, 1, 1, 1): the chain acts on each pixel alone
    pixel = x0[:1, :1, r : r + 1, c : c + 1]
    chain, closed = chain_vs_closed_form(pixel, schedule, steps, n=n, seed=seed)
    cols = 2
    rows = -(-len(steps) // cols)
    fig, axes = new_figure(rows, cols, size=(6.8, 2.3 * rows + 0.2))
    axes = axes.ravel()
    for ax, t, a, b in zip(axes, steps, chain, closed):
        ab = schedule.alpha_bar[t].item()
        ax.hist(
            a.flatten().numpy(),
            bins=40,
            density=True,
            alpha=0.55,
            color=DIGIT_COLORS[0],
            label="chain (eq. 1.1)",
        )
        ax.hist(
            b.flatten().numpy(),
            bins=40,
            density=True,
            alpha=0.55,
            color=DIGIT_COLORS[1],
            label="closed form (eq. 1.3)",
        )
        ax.axvline(ab**0.5 * pixel.item(), color="k", lw=1, ls="--")
        ax.set_title(
            f"t={t}: mean {ab**0.5 * pixel.item():.2f}, std {(1 - ab) ** 0.5:.2f}"
        )
        ax.set_xlabel("pixel value")
    axes[0].legend(loc="upper left", fontsize=8)
    for ax in axes[len(steps) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Measurements: eq. 1.4 on real digits (section 1.5), when a digit is lost (1.9)
# ---------------------------------------------------------------------------


def measured_variance(
    x0: torch.Tensor, schedule: Schedule, steps=(0, 100, 250, 500, 1000), seed: int = 1
) -> dict:
    """Eq. 1.4 on data: the pixel mean and variance of x0 (N, C, H, W), and at each
    step the variance of x_t measured beside the one eq. 1.4 predicts.
    """
    var0 = x0.var().item()
    g = torch.Generator().manual_seed(seed)
    by_t = {}
    for t in steps:
        ab = schedule.alpha_bar[t].item()
        xt = q_sample(x0, t, schedule, generator=g)
        by_t[t] = {"measured": xt.var().item(), "eq_1_4": ab * var0 + 1 - ab}
    return {"pixel_mean": x0.mean().item(), "pixel_variance": var0, "by_t": by_t}


def class_templates(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int = 10
) -> torch.Tensor:
    """The mean image of each class, flattened: (num_classes, H * W)."""
    return torch.stack(
        [images[labels == c].mean(0) for c in range(num_classes)]
    ).flatten(1)


def template_matcher(
    xt: torch.Tensor, t: int, schedule: Schedule, templates: torch.Tensor
) -> torch.Tensor:
    """Section 1.9's observer: label each noisy image of xt (B, C, H, W) with the
    class whose scaled template sqrt(alpha_bar_t) mu_c, the mean of a noisy digit of
    that class by eq. 1.3, is nearest. Returns (B,) class indices.
    """
    scaled = schedule.alpha_bar[t].float().sqrt() * templates  # (K, H * W)
    return torch.cdist(xt.flatten(1), scaled).argmin(1)


def recognisability(
    x0: torch.Tensor,
    labels: torch.Tensor,
    templates: torch.Tensor,
    schedule: Schedule,
    steps=(0, 300, 400, 500, 600, 700),
    seed: int = 0,
) -> dict:
    """The template matcher's accuracy on x0 (N, C, H, W), noised at each step with
    one fixed eps (``seed``). Returns {t: {alpha_bar, all, per_class, kept}}, where
    ``kept`` is each class's accuracy as a share of its accuracy on clean digits.
    """
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    clean = None
    by_t = {}
    for t in steps:
        pred = template_matcher(
            q_sample(x0, t, schedule, eps=eps), t, schedule, templates
        )
        per_class = [
            (pred[labels == c] == c).float().mean().item()
            for c in range(len(templates))
        ]
        if clean is None:
            clean = per_class
        by_t[t] = {
            "alpha_bar": schedule.alpha_bar[t].item(),
            "all": (pred == labels).float().mean().item(),
            "per_class": per_class,
            "kept": [a / c if c else float("nan") for a, c in zip(per_class, clean)],
        }
    return by_t


def template_margins(
    images: torch.Tensor, labels: torch.Tensor, templates: torch.Tensor
) -> dict:
    """How far each class's template lies from the others (Euclidean distance in
    pixel units of [-1, 1]), and how much ink an average digit of each class has
    (pixels brighter than mid-grey).
    """
    k = len(templates)
    dist = torch.cdist(templates, templates)  # (K, K)
    others = dist + torch.diag(torch.full((k,), float("inf")))
    return {
        "distance": dist,
        "nearest": others.argmin(1),
        "nearest_distance": others.min(1).values,
        "ink": [
            (images[labels == c] > 0).float().sum((1, 2, 3)).mean() for c in range(k)
        ],
    }


def recognisability_table(by_t: dict, counts: list[int]) -> str:
    """Section 1.9's table as Markdown: the matcher's accuracy per step and digit."""
    steps = list(by_t)
    head = " | ".join(
        rf"\( t = {t} \)" if i == 0 else str(t) for i, t in enumerate(steps)
    )
    lines = [f"| digit | {head} |", "|---" + "|---:" * len(steps) + "|"]
    lines.append(
        r"| \( \bar\alpha_t \) | "
        + " | ".join(f"{by_t[t]['alpha_bar']:.3f}" for t in steps)
        + " |"
    )
    lines.append(
        "| all digits | " + " | ".join(f"{by_t[t]['all']:.2f}" for t in steps) + " |"
    )
    for c in range(len(counts)):
        lines.append(
            f"| {c} | "
            + " | ".join(f"{by_t[t]['per_class'][c]:.2f}" for t in steps)
            + " |"
        )
    per = (
        f"{counts[0]:,}" if len(set(counts)) == 1 else f"{min(counts)} to {max(counts)}"
    )
    se = 0.5 / min(counts) ** 0.5  # the largest standard error of a share of n
    lines.append(
        f"\n*The template matcher's accuracy on the {sum(counts):,} held-out digits "
        f"of mnist-5k ({per} per class), all noised with eq. (1.3), one fixed noise "
        f"(seed 0), linear schedule. Chance is 0.10; each entry is uncertain by about "
        f"± {se:.2f}. Made by `diffusion-lessons run 1` (`recognisability`).*"
    )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Run the lesson
# ---------------------------------------------------------------------------


def run(
    out: Path | str = "figures", *, quick: bool = False, dataset: str = "mnist-5k"
) -> dict:
    """Print what this lesson shows, write its figures into ``out``, return the key
    numbers.
    """
    out = Path(out)
    schedule = linear_schedule(1000)
    images, labels = load_digits(dataset, split="train")
    # (5, 1, 28, 28)
    x0 = torch.stack([images[(labels == d).nonzero()[0, 0]] for d in (1, 4, 7, 8, 5)])
    print(
        f"T = {schedule.T}; alpha_bar_T = {schedule.alpha_bar[-1].item():.2e}: x_T is "
        "almost pure noise."
    )
    for frac in (0.25, 0.5, 0.75):
        t = round(frac * schedule.T)
        ab = schedule.alpha_bar[t].item()
        print(f"t = {t:4d}: x_t = {ab**0.5:.3f} * x0 + {(1 - ab) ** 0.5:.3f} * eps")
    files = [
        savefig(fig_noise_progression(x0, schedule), out / "01_noise_progression.png")
    ]
    n = 1000 if quick else 5000
    r, c = divmod(int(x0[0, 0].argmax()), x0.shape[-1])
    # (1, 1, 1, 1): one bright pixel of the first digit, x0 = +1
    pixel = x0[:1, :1, r : r + 1, c : c + 1]
    print(f"One pixel with x0 = {pixel.item():+.0f}, {n} draws of x_t each way:")
    for t in (100, 500, 1000):
        chain, closed = chain_vs_closed_form(pixel, schedule, [t], n=n)
        ab = schedule.alpha_bar[t].item()
        print(
            f"t = {t:4d}: chain mean/std {chain[0].mean():+.3f}/{chain[0].std():.3f}, "
            "closed form "
            f"{closed[0].mean():+.3f}/{closed[0].std():.3f}, eq. 1.2 says "
            f"{ab**0.5 * pixel.item():+.3f}/{(1 - ab) ** 0.5:.3f}"
        )
    files.append(
        savefig(
            fig_chain_vs_closed_form(x0, schedule, n=n),
            out / "01_chain_vs_closed_form.png",
        )
    )
    variance = measured_variance(images[:1000], schedule)
    print(
        f"mnist-5k, 1000 digits: pixel mean {variance['pixel_mean']:+.3f}, variance "
        f"{variance['pixel_variance']:.3f}; Var[x_t] measured (eq. 1.4 predicts): "
        + ", ".join(
            f"t={t} {v['measured']:.3f} ({v['eq_1_4']:.3f})"
            for t, v in variance["by_t"].items()
        )
    )
    x_test, y_test = load_digits(dataset, split="test")
    templates = class_templates(images, labels)
    by_t = recognisability(x_test, y_test, templates, schedule)
    counts = [int((y_test == c).sum()) for c in range(len(templates))]
    print("Template matcher on the held-out digits, accuracy by step (section 1.9):")
    print(f"{'t':>5} {'all':>5} | " + " ".join(f"{c:>4}" for c in range(10)))
    for t, row in by_t.items():
        print(
            f"{t:5d} {row['all']:5.2f} | "
            + " ".join(f"{a:4.2f}" for a in row["per_class"])
        )
    files.append(out / "01_recognisability.md")
    files[-1].write_text(recognisability_table(by_t, counts))
    margins = template_margins(images, labels, templates)
    print(
        "nearest other template (distance; ink in pixels): "
        + ", ".join(
            f"{c}: {int(margins['nearest'][c])} ({margins['nearest_distance'][c]:.1f}; "
            f"{float(margins['ink'][c]):.0f})"
            for c in range(len(templates))
        )
    )
    for f in files:
        print(f"wrote {f}")
    return {
        "alpha_bar_T": schedule.alpha_bar[-1].item(),
        # eq. 1.2 at the steps of figure 1.2, for a pixel x0 = +1
        "eq_1_2": {
            t: {
                "mean": schedule.alpha_bar[t].item() ** 0.5,
                "std": (1 - schedule.alpha_bar[t].item()) ** 0.5,
            }
            for t in (20, 100, 250, 300, 500, 750, 1000)
        },
        "variance": variance,
        "recognisability": {"counts": counts, "by_t": by_t},
        "templates": margins,
        "files": files,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Lesson 01: the forward noising process."
    )
    parser.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer samples, for a fast check"
    )
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
