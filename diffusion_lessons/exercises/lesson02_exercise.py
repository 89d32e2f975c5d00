"""Lesson 02 exercise: noise schedules, or how fast to fade.

Chapter: docs/lessons/02-schedules.md

Write the four functions below (tasks 2.1 to 2.4), then check them:

    diffusion-lessons check 2 lesson02_exercise.py

PASS / FAIL (with a counterexample and a hint) / TODO per property; a body that still
raises NotImplementedError is a TODO. To use the course's version of a function, replace
it by an import, e.g. `from diffusion_lessons.lesson02_schedules import
schedule_from_alpha_bar`. See every property with `diffusion-lessons check 2 --list`.

    (2.1)   linear  beta_t = beta_start + (beta_end - beta_start) (t - 1) / (T - 1)
    (2.2)   cosine  alpha_bar_t = f(t) / f(0),  f(t) = cos^2( (t/T + s) / (1 + s) * pi/2
                )
    (2.4)   beta_t = 1 - alpha_bar_t / alpha_bar_{t-1},  clipped at max_beta = 0.999
    (2.5)   SNR(t) = alpha_bar_t / (1 - alpha_bar_t),  log-SNR(t) = log SNR(t)

Arrays have length T+1 and alpha_bar[t] is ᾱ_t (alpha_bar[0] = 1).
``schedule_from_betas`` (lesson 01) takes beta_1..beta_T, shape (T,), and prepends
beta_0 = 0 itself.

Keep your own experiments under `if __name__ == "__main__":` at the bottom: the checker
imports this file.
"""

from __future__ import annotations

import math

import torch

from diffusion_lessons.lesson01_forward_noise import Schedule, schedule_from_betas


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
    raise NotImplementedError("Task 2.1: linear_schedule")


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
    raise NotImplementedError("Task 2.2: schedule_from_alpha_bar")


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
    # t = torch.arange(T + 1, dtype=torch.float64)      # (T+1,): 0..T
    raise NotImplementedError("Task 2.3: cosine_schedule")


def log_snr(schedule: Schedule) -> torch.Tensor:
    """Task 2.4: log-SNR(t) for t = 1..T, eq. 2.5.

    Returns: (T,) float64, strictly decreasing. t = 0 is left out: alpha_bar_0 = 1 has
        an infinite SNR.
    """
    raise NotImplementedError("Task 2.4: log_snr")


if __name__ == "__main__":
    # print(cosine_schedule(10).alpha_bar)
    pass
