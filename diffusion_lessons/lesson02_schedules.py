"""Lesson 02: noise schedules, or how fast to fade.

Chapter: docs/lessons/02-schedules.md

Lesson 01 used the linear schedule of Ho et al. (2020). The schedule decides how much of
the T steps the model spends at each noise level, and that changes what it learns. Three
schedules:

    (2.1)   linear  beta_t = beta_start + (beta_end - beta_start) (t - 1) / (T - 1)
    (2.2)   cosine  alpha_bar_t = f(t) / f(0),  f(t) = cos^2( (t/T + s) / (1 + s) * pi/2
                )
    (2.3)   sigmoid  alpha_bar_t = (sigm(e/tau) - sigm((t/T (e - b) + b) / tau)) /
                (sigm(e/tau) - sigm(b/tau))

(cosine: Nichol & Dhariwal 2021; sigmoid: Jabri et al. 2022, Chen 2023). A schedule
given by alpha_bar is turned into steps with

    (2.4)   beta_t = 1 - alpha_bar_t / alpha_bar_{t-1},  clipped at max_beta = 0.999

because the last step of the cosine schedule would otherwise have beta_T = 1 (it divides
by zero later). Schedules are compared by the signal-to-noise ratio of x_t =
sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps:

    (2.5)   SNR(t) = alpha_bar_t / (1 - alpha_bar_t),  log-SNR(t) = log SNR(t)

Builds on: lesson01_forward_noise (Schedule, schedule_from_betas, linear_schedule,
q_sample, class_templates, recognisability), data (load_digits), plotting
(new_figure, savefig, show_images).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from .data import load_digits
from .lesson01_forward_noise import (
    Schedule,
    class_templates,
    linear_schedule,
    q_sample,
    recognisability,
    schedule_from_betas,
)
from .plotting import new_figure, savefig, show_images

__all__ = [
    "Schedule",
    "linear_schedule",
    "cosine_schedule",
    "sigmoid_schedule",
    "schedule_from_alpha_bar",
    "make_schedule",
    "log_snr",
    "band_shares",
    "schedule_facts",
    "matcher_shares",
    "SCHEDULES",
]

# ---------------------------------------------------------------------------
# Schedules defined by alpha_bar
# ---------------------------------------------------------------------------


def _check_T(T) -> int:
    if int(T) != T or T < 1:
        raise ValueError(f"T must be a whole number of steps >= 1; got {T!r}.")
    return int(T)


def schedule_from_alpha_bar(
    alpha_bar: torch.Tensor, name: str, max_beta: float = 0.999
) -> Schedule:
    """Build a schedule from alpha_bar_0..alpha_bar_T, shape (T+1,), with eq. 2.4."""
    if not 0 < max_beta < 1:
        raise ValueError(
            f"max_beta must lie strictly between 0 and 1; got {max_beta}. The usual "
            "value is 0.999."
        )
    alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)
    if len(alpha_bar) < 2 or alpha_bar[0].item() != 1.0:
        raise ValueError(
            "alpha_bar must hold alpha_bar_0..alpha_bar_T with alpha_bar_0 = 1 "
            "(length T+1); got "
            f"{len(alpha_bar)} values starting at "
            f"{alpha_bar[0].item() if len(alpha_bar) else None}. "
            "Prepend the 1 for t = 0: torch.cat([torch.ones(1), alpha_bar])."
        )
    beta = 1 - alpha_bar[1:] / alpha_bar[:-1]  # eq. 2.4, (T,)
    return schedule_from_betas(beta.clamp(min=1e-12, max=max_beta), name=name)


def cosine_schedule(
    T: int = 1000, s: float = 0.008, max_beta: float = 0.999
) -> Schedule:
    """The cosine schedule of Nichol & Dhariwal (2021), eq. 2.2; ``s`` keeps beta_1 from
    being tiny.
    """
    T = _check_T(T)
    if s < 0:
        raise ValueError(
            f"The offset s must be >= 0; got {s}. The paper uses s = 0.008."
        )
    t = torch.arange(T + 1, dtype=torch.float64)  # (T+1,): 0..T
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
    return schedule_from_alpha_bar(f / f[0], name="cosine", max_beta=max_beta)


def sigmoid_schedule(
    T: int = 1000,
    start: float = -3.0,
    end: float = 3.0,
    tau: float = 1.0,
    max_beta: float = 0.999,
) -> Schedule:
    """The sigmoid schedule (Jabri et al. 2022; Chen 2023), eq. 2.3: flat at both ends,
    steep in the middle.
    """
    T = _check_T(T)
    if not start < end or tau <= 0:
        raise ValueError(
            f"Need start < end and tau > 0; got start={start}, end={end}, tau={tau}. "
            "Try -3, 3, 1."
        )
    t = torch.arange(T + 1, dtype=torch.float64) / T  # (T+1,): 0..1
    v_start, v_end = (
        torch.sigmoid(torch.tensor(v / tau, dtype=torch.float64)) for v in (start, end)
    )
    alpha_bar = (v_end - torch.sigmoid((t * (end - start) + start) / tau)) / (
        v_end - v_start
    )
    return schedule_from_alpha_bar(alpha_bar, name="sigmoid", max_beta=max_beta)


SCHEDULES = {
    "linear": linear_schedule,
    "cosine": cosine_schedule,
    "sigmoid": sigmoid_schedule,
}


def make_schedule(name: str, T: int = 1000) -> Schedule:
    """A schedule by name (``linear``, ``cosine`` or ``sigmoid``) with default
    parameters.
    """
    if name not in SCHEDULES:
        raise ValueError(
            f"Unknown schedule {name!r}; choose one of {sorted(SCHEDULES)}."
        )
    return SCHEDULES[name](T)


def log_snr(schedule: Schedule) -> torch.Tensor:
    """log-SNR(t) for t = 1..T, eq. 2.5, shape (T,) (t = 0 is infinite: no noise at
    all).
    """
    ab = schedule.alpha_bar[1:]
    return torch.log(ab) - torch.log1p(-ab)


#: Section 2.7's bands of log-SNR: lambda <= -5, -5 < lambda <= 0, 0 < lambda <= 5, > 5
BAND_EDGES = (-5.0, 0.0, 5.0)


def band_shares(schedule: Schedule, edges=BAND_EDGES) -> list[float]:
    """The share of the steps t = 1..T whose log-SNR falls in each band
    (-inf, e_1], (e_1, e_2], ..., (e_k, inf) of the sorted ``edges``; sums to 1.
    """
    lam = log_snr(schedule).double()  # (T,)
    band = torch.bucketize(lam, torch.tensor(edges, dtype=lam.dtype))  # (T,) in 0..k
    return (torch.bincount(band, minlength=len(edges) + 1) / len(lam)).tolist()


def _first_step(mask: torch.Tensor) -> int | None:
    """The first t at which ``mask`` (T + 1,) holds, or None."""
    hits = mask.nonzero()
    return int(hits[0, 0]) if len(hits) else None


def schedule_facts(schedule: Schedule) -> dict:
    """The numbers chapter 02 quotes about one schedule: alpha_bar at a quarter, half
    and the end, the first step with alpha_bar below 1/2, the first and last two betas,
    log-SNR at a quarter, three quarters and the end, and the share of steps with
    SNR above 1 and in each band of ``band_shares``. A step that does not exist (a
    short schedule that never falls below 0.01) is None.
    """
    T, ab, beta, lam = schedule.T, schedule.alpha_bar, schedule.beta, log_snr(schedule)
    return {
        "alpha_bar_quarter": ab[T // 4].item(),
        "alpha_bar_half": ab[T // 2].item(),
        "alpha_bar_T": ab[-1].item(),
        # eq. 6.1 divides by sqrt(alpha_bar_T) at the first sampling step
        "sqrt_alpha_bar_T": ab[-1].sqrt().item(),
        "inv_sqrt_alpha_bar_T": ab[-1].rsqrt().item(),
        # x_t = sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps, half and 3/4 of the way
        "signal_half": ab[T // 2].sqrt().item(),
        "noise_half": (1 - ab[T // 2]).sqrt().item(),
        "signal_three_quarters": ab[3 * T // 4].sqrt().item(),
        "noise_three_quarters": (1 - ab[3 * T // 4]).sqrt().item(),
        "t_half_signal": _first_step(ab < 0.5),
        "t_one_percent_signal": _first_step(ab < 0.01),
        "beta_1": beta[1].item(),
        "sqrt_beta_1": beta[1].sqrt().item(),
        "beta_T_minus_1": beta[-2].item(),
        "beta_T": beta[-1].item(),
        "log_snr_quarter": lam[T // 4 - 1].item(),  # lam[i] is step t = i + 1
        "log_snr_three_quarters": lam[3 * T // 4 - 1].item(),
        "log_snr_T": lam[-1].item(),
        "share_snr_above_1": (lam > 0).double().mean().item(),
        "band_shares": band_shares(schedule),
    }


def matcher_shares(
    schedule: Schedule,
    x0: torch.Tensor,
    labels: torch.Tensor,
    templates: torch.Tensor,
    every: int = 20,
    seed: int = 0,
) -> dict:
    """Section 2.7's stand-in for "is there still a digit to recover?": lesson 01's
    template matcher reads the digits x0 (N, 1, H, W), noised with one fixed eps
    (``seed``) at every ``every``-th step. Returns the share of those steps at which
    it is right on more than half of the digits, and on less than 15 % (chance: 10 %).
    """
    steps = range(every, schedule.T + 1, every)
    by_t = recognisability(x0, labels, templates, schedule, steps=steps, seed=seed)
    accuracy = torch.tensor([row["all"] for row in by_t.values()])  # (T // every,)
    return {
        "above_half": (accuracy > 0.5).double().mean().item(),
        "below_15": (accuracy < 0.15).double().mean().item(),
    }


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def fig_schedules(schedules: list[Schedule]):
    """alpha_bar_t, beta_t and log-SNR(t) of each schedule against t/T, one above the
    other.
    """
    fig, axes = new_figure(3, 1, size=(6.8, 6.6), sharex=True)
    for sch in schedules:
        frac = torch.arange(1, sch.T + 1) / sch.T
        axes[0].plot(frac, sch.alpha_bar[1:], label=sch.name)
        axes[1].plot(frac, sch.beta[1:], label=sch.name)
        axes[2].plot(frac, log_snr(sch), label=sch.name)
    axes[0].set_title(r"$\bar\alpha_t$ (signal kept)")
    axes[1].set_title(r"$\beta_t$ (noise added per step)")
    axes[1].set_yscale("log")
    axes[2].set_title(r"log-SNR$(t)$")
    axes[2].axhline(0, color="k", lw=0.8, ls=":")
    axes[-1].set_xlabel("t / T")
    axes[0].legend()
    fig.tight_layout()
    return fig


def fig_progression_by_schedule(
    x0: torch.Tensor, schedules: list[Schedule], n_cols: int = 9, seed: int = 0
):
    """One digit x0 (1, C, H, W) noised with the same eps, one row per schedule, columns
    at equal t/T.
    """
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    rows = []
    for sch in schedules:
        steps = [round(i * sch.T / (n_cols - 1)) for i in range(n_cols)]
        # (n_cols, C, H, W)
        rows.append(torch.cat([q_sample(x0, t, sch, eps=eps) for t in steps]))
    fig, ax = new_figure(size=(0.7 * n_cols + 0.9, 0.8 * len(schedules) + 0.5))
    show_images(
        ax,
        torch.cat(rows),
        nrow=n_cols,
        row_labels=[s.name for s in schedules],
        col_labels=[f"{i / (n_cols - 1):.2g}" for i in range(n_cols)],
        title="t / T",
    )
    return fig


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
    schedules = [make_schedule(name, 1000) for name in SCHEDULES]
    numbers = {}
    print(
        f"{'schedule':>8}  {'alpha_bar[T/2]':>14}  {'alpha_bar[T]':>12}  "
        f"{'steps with SNR > 1':>18}"
    )
    for sch in schedules:
        facts = numbers[sch.name] = schedule_facts(sch)
        print(
            f"{sch.name:>8}  {facts['alpha_bar_half']:14.4f}  "
            f"{facts['alpha_bar_T']:12.2e}  {facts['share_snr_above_1']:17.0%}"
        )
    linear_beta = make_schedule("linear", 1000).beta[1:]  # (T,)
    for sch in schedules:  # figure 2.1's middle panel: who adds less noise per step
        below = (sch.beta[1:] < linear_beta).double().mean().item()
        numbers[sch.name]["share_beta_below_linear"] = below
    names = ["lambda <= -5", "-5 < lambda <= 0", "0 < lambda <= 5", "lambda > 5"]
    print("\nshare of the steps in each band of log-SNR:")
    print(f"{'schedule':>8}  " + "  ".join(f"{b:>16}" for b in names))
    for name, facts in numbers.items():
        print(
            f"{name:>8}  "
            + "  ".join(f"{share:16.1%}" for share in facts["band_shares"])
        )
    images, labels = load_digits(dataset, split="train")
    x_test, y_test = load_digits(dataset, split="test")  # (N, 1, 28, 28)
    templates = class_templates(images, labels)  # (10, 784), from the training split
    print("\nshare of the steps at which the template matcher is right on")
    print(f"{'schedule':>8}  {'more than 50%':>14}  {'less than 15%':>14}")
    for sch in schedules:
        shares = numbers[sch.name]["matcher"] = matcher_shares(
            sch, x_test, y_test, templates
        )
        print(
            f"{sch.name:>8}  {shares['above_half']:14.0%}  {shares['below_15']:14.0%}"
        )
    x0 = images[(labels == 3).nonzero()[0, 0]][None]  # (1, 1, 28, 28): a three
    files = [
        savefig(fig_schedules(schedules), out / "02_schedules.png"),
        savefig(
            fig_progression_by_schedule(x0, schedules),
            out / "02_progression_by_schedule.png",
        ),
    ]
    for f in files:
        print(f"wrote {f}")
    return {"schedules": numbers, "files": files}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Lesson 02: linear, cosine and sigmoid noise schedules."
    )
    parser.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="accepted for symmetry; this lesson is fast",
    )
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
