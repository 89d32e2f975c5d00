"""Lesson 02 reference solution: noise schedules, or how fast to fade.

Chapter: docs/lessons/02-schedules.md

The exercise template (``diffusion-lessons check 2 --template lesson02_exercise.py``)
with tasks 2.1 to 2.4 done, each written here rather than imported from the course.
Check it:

    diffusion-lessons check 2 docs/instructors/solutions/lesson02_solution.py

    (2.1)   linear  beta_t = beta_start + (beta_end - beta_start) (t - 1) / (T - 1)
    (2.2)   cosine  alpha_bar_t = f(t) / f(0),  f(t) = cos^2( (t/T + s) / (1 + s) * pi/2
                )
    (2.4)   beta_t = 1 - alpha_bar_t / alpha_bar_{t-1},  clipped at max_beta = 0.999
    (2.5)   SNR(t) = alpha_bar_t / (1 - alpha_bar_t),  log-SNR(t) = log SNR(t)

Arrays have length T+1 and alpha_bar[t] is ᾱ_t (alpha_bar[0] = 1).
``schedule_from_betas`` (lesson 01) takes beta_1..beta_T, shape (T,), and prepends
beta_0 = 0 itself.
"""

from __future__ import annotations

import math

import torch

from diffusion_lessons.lesson01_forward_noise import Schedule, schedule_from_betas


def _check_T(T) -> int:
    """T as an int; a ValueError unless it is a whole number >= 1."""
    if int(T) != T or T < 1:
        raise ValueError(f"T must be a whole number of steps >= 1; got {T!r}.")
    return int(T)


def linear_schedule(
    T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02
) -> Schedule:
    """Task 2.1: the linear schedule of Ho et al. (2020), eq. 2.1: beta_t rises evenly
    from beta_start to beta_end.

    Args:
        T: number of steps, a whole number >= 1.
        beta_start: beta_1.  beta_end: beta_T.  Need 0 < beta_start <= beta_end < 1.
    Returns: The ``Schedule`` (float64 arrays of length T+1).
        linear_schedule(1000).alpha_bar[1000] is about 4.04e-5.
    Raises:
        ValueError: for T < 1 or not whole, or betas that break 0 < beta_start <=
            beta_end < 1.
    """
    T = _check_T(T)
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(
            f"Need 0 < beta_start <= beta_end < 1; got beta_start={beta_start}, "
            f"beta_end={beta_end}. DDPM uses 1e-4 and 0.02."
        )
    # eq. 2.1: T values from beta_1 = beta_start to beta_T = beta_end      # (T,)
    beta = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return schedule_from_betas(beta, name="linear")


def schedule_from_alpha_bar(
    alpha_bar: torch.Tensor, name: str, max_beta: float = 0.999
) -> Schedule:
    """Task 2.2: build a schedule from alpha_bar_0..alpha_bar_T with eq. 2.4.

    Args:
        alpha_bar: shape (T+1,), alpha_bar[0] = 1, decreasing.
        name: a label for the schedule.
        max_beta: clip every beta_t at this value (eq. 2.4): alpha_bar_T = 0 would give
            beta_T = 1.
    Returns: ``schedule_from_betas(beta, name)`` with beta_t = 1 - alpha_bar_t /
        alpha_bar_{t-1}, t = 1..T (T values).
    Raises:
        ValueError: if alpha_bar has fewer than 2 values or alpha_bar[0] is not 1 (say:
            prepend the 1 for t = 0).
    """
    alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)  # (T+1,)
    if len(alpha_bar) < 2 or alpha_bar[0].item() != 1.0:
        raise ValueError(
            "alpha_bar must hold alpha_bar_0..alpha_bar_T with alpha_bar_0 = 1; got "
            f"{len(alpha_bar)} values. Prepend the 1 for t = 0: "
            "torch.cat([torch.ones(1), alpha_bar])."
        )
    beta = 1 - alpha_bar[1:] / alpha_bar[:-1]  # eq. 2.4, (T,): t = 1..T
    # the clip: beta_t < 1 even where alpha_bar_t = 0, and > 0 where it is flat
    beta = beta.clamp(min=1e-12, max=max_beta)
    return schedule_from_betas(beta, name=name)


def cosine_schedule(
    T: int = 1000, s: float = 0.008, max_beta: float = 0.999
) -> Schedule:
    """Task 2.3: the cosine schedule of Nichol & Dhariwal (2021), eq. 2.2.

    Args:
        T: number of steps, a whole number >= 1.
        s: small offset (>= 0) that keeps beta_1 from being tiny; the paper uses 0.008.
        max_beta: passed on to ``schedule_from_alpha_bar``.
    Returns: The ``Schedule`` with alpha_bar_t = f(t) / f(0) for t = 0..T (where the
        clip is inactive).
    Raises:
        ValueError: for T < 1 or not whole, or s < 0.
    """
    T = _check_T(T)
    if s < 0:
        raise ValueError(f"The offset s must be >= 0; got {s}. The paper uses 0.008.")
    t = torch.arange(T + 1, dtype=torch.float64)  # (T+1,): 0..T
    f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # eq. 2.2, (T+1,)
    alpha_bar = f / f[0]  # alpha_bar_0 = 1
    return schedule_from_alpha_bar(alpha_bar, name="cosine", max_beta=max_beta)


def log_snr(schedule: Schedule) -> torch.Tensor:
    """Task 2.4: log-SNR(t) for t = 1..T, eq. 2.5.

    Returns: (T,) float64, strictly decreasing. t = 0 is left out: alpha_bar_0 = 1 has
        an infinite SNR.
    """
    alpha_bar = schedule.alpha_bar[1:]  # (T,): t = 1..T
    return torch.log(alpha_bar / (1 - alpha_bar))  # eq. 2.5


if __name__ == "__main__":
    print(cosine_schedule(10).alpha_bar)
