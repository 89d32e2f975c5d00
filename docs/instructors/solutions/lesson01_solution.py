"""Lesson 01 reference solution: the forward process, fading a digit into static.

Chapter: docs/lessons/01-forward-noise.md

The exercise template (``diffusion-lessons check 1 --template lesson01_exercise.py``)
with tasks 1.1 to 1.3 done. Every task is written here, none is imported from the
course. Check it:

    diffusion-lessons check 1 docs/instructors/solutions/lesson01_solution.py

Notation (docs/notation.md): time runs t = 1..T; schedule arrays have length T+1 and
index 0 means "no noise yet", so alpha_bar[t] is ᾱ_t and alpha_bar[0] = 1.

    (1.1)   q(x_t | x_{t-1}) = N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I)
    (1.2)   q(x_t | x_0)  = N(x_t; sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    (1.3)   x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,  eps ~ N(0, I)
"""

from __future__ import annotations

import torch

from diffusion_lessons.lesson01_forward_noise import Schedule


def schedule_from_betas(beta: torch.Tensor, name: str = "custom") -> Schedule:
    """Task 1.1: build a ``Schedule`` from beta_1..beta_T.

    Args:
        beta: beta_1..beta_T, shape (T,), each strictly between 0 and 1.
        name: a label for the schedule.
    Returns: ``Schedule(beta=beta, alpha=alpha, alpha_bar=alpha_bar, name=name)``: three
        float64 tensors of shape (T+1,) with beta[0] = 0, alpha_t = 1 - beta_t and
        alpha_bar_t = alpha_1 alpha_2 ... alpha_t, so alpha_bar[0] = 1.
    Raises:
        ValueError: if there are no betas, or a beta_t is not a finite number strictly
            between 0 and 1 (the message names the problem and the fix).
    """
    beta = torch.as_tensor(beta, dtype=torch.float64).flatten()  # (T,)
    if len(beta) == 0:
        raise ValueError("A schedule needs at least one step: give beta_1..beta_T.")
    if not torch.isfinite(beta).all() or (beta <= 0).any() or (beta >= 1).any():
        raise ValueError(
            "Every beta_t must be a finite number strictly between 0 and 1; got "
            f"values from {beta.min().item():.3g} to {beta.max().item():.3g}. Lower "
            "beta_end (or clip the betas)."
        )
    zero = torch.zeros(1, dtype=torch.float64)
    beta = torch.cat([zero, beta])  # (T+1,): beta_0 = 0, so index t is step t
    alpha = 1 - beta  # alpha_t = 1 - beta_t, alpha_0 = 1
    alpha_bar = torch.cumprod(alpha, dim=0)  # alpha_bar_t = alpha_1 ... alpha_t
    return Schedule(beta=beta, alpha=alpha, alpha_bar=alpha_bar, name=name)


def forward_step(
    x_prev: torch.Tensor,
    t: int,
    schedule: Schedule,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Task 1.2: one step of the chain, eq. 1.1: x_t = sqrt(1 - beta_t) x_{t-1} +
    sqrt(beta_t) eps.

    Args:
        x_prev: x_{t-1}, (B, C, H, W).
        t: the step being taken, 1..T.
        schedule: the schedule; ``schedule.beta[t]`` is beta_t.
        generator: draw eps ~ N(0, I) with it: ``torch.randn(x_prev.shape,
            generator=generator)``.
    Returns:
        x_t, (B, C, H, W).
    """
    beta_t = schedule.beta[t].item()  # a float: the variance added at step t
    eps = torch.randn(x_prev.shape, generator=generator, dtype=x_prev.dtype)
    return (1 - beta_t) ** 0.5 * x_prev + beta_t**0.5 * eps  # eq. 1.1


def q_sample(
    x0: torch.Tensor,
    t: torch.Tensor | int,
    schedule: Schedule,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Task 1.3: jump straight to x_t with the closed form, eq. 1.3.

    Args:
        x0: clean images in [-1, 1], (B, C, H, W).
        t: steps in 0..T: an int (the same step for every image) or a (B,) tensor (one
            step per image).
        schedule: the schedule; ``schedule.alpha_bar[t]`` is alpha_bar_t.
        eps: the noise to use, (B, C, H, W); if None, draw it from N(0, I) with
            ``generator``.
        generator: random generator for eps (ignored when eps is given).
    Returns:
        x_t, (B, C, H, W), with the dtype of x0.
    Raises:
        ValueError: if a t lies outside 0..T (alpha_bar[-1] would silently read
            alpha_bar_T).
    """
    B = x0.shape[0]
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    t = torch.as_tensor(t).long().expand(B)  # (B,): an int becomes one t per image
    if (t < 0).any() or (t > schedule.T).any():
        raise ValueError(
            f"t must lie in 0..T = 0..{schedule.T} (t = 0 is the clean image); got "
            f"values from {t.min().item()} to {t.max().item()}."
        )
    alpha_bar_t = schedule.alpha_bar[t].to(x0.dtype).view(B, 1, 1, 1)  # (B, 1, 1, 1)
    return alpha_bar_t.sqrt() * x0 + (1 - alpha_bar_t).sqrt() * eps  # eq. 1.3


if __name__ == "__main__":
    sch = schedule_from_betas(torch.tensor([0.1, 0.2, 0.5]))
    print(sch.alpha_bar)  # 1, 0.9, 0.72, 0.36
