"""Lesson 06 reference solution: one reverse step (DDPM and DDIM), and the steps to
take.

Chapter: docs/lessons/06-sampling.md

The exercise template (``diffusion-lessons check 6 --template lesson06_exercise.py``)
with tasks 6.1 and 6.2 done, each written here rather than imported from the course.
Check it:

    diffusion-lessons check 6 docs/instructors/solutions/lesson06_solution.py

    (6.1)   x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)
    sigma = eta * sqrt( (1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t /
    alpha_bar_s) )  (eq. 6.2)
    (6.3)   x_s = sqrt(alpha_bar_s) x0_pred + sqrt(1 - alpha_bar_s - sigma^2) eps_pred +
                sigma z

With s = t - 1 and eta = 1 this is DDPM's ancestral step (eq. 6.4); with eta = 0 it is
deterministic DDIM and may skip steps (s any step below t, down to s = 0, the clean
image).
"""

from __future__ import annotations

import torch

from diffusion_lessons.lesson01_forward_noise import Schedule


def reverse_step(
    xt: torch.Tensor,
    eps_pred: torch.Tensor,
    t: int,
    s: int,
    schedule: Schedule,
    eta: float = 0.0,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Task 6.1: move x_t (B, C, H, W) to x_s, s < t, with eqs. 6.1-6.3.

    Args:
        xt: x_t, (B, C, H, W).
        eps_pred: the model's noise prediction for x_t, (B, C, H, W).
        t: the current step, 1..T.  s: the step to move to, 0..t-1.
        schedule: the schedule (``schedule.alpha_bar[t]`` is alpha_bar_t).
        eta: 0 for deterministic DDIM, 1 for DDPM's noise.
        clip_x0: clip x0_pred to [-1, 1], then recompute eps_pred = (x_t -
            sqrt(alpha_bar_t) x0_pred) / sqrt(1 - alpha_bar_t) so the two agree.
        generator: draw z ~ N(0, I) with it (``torch.randn(xt.shape,
            generator=generator)``) when sigma > 0.
    Returns:
        (x_s, x0_pred), both (B, C, H, W).
    """
    alpha_bar_t = schedule.alpha_bar[t].item()  # floats: one t for the whole batch
    alpha_bar_s = schedule.alpha_bar[s].item()
    # eq. 6.1: eq. 1.3 solved for x0                                  # (B, C, H, W)
    x0_pred = (xt - (1 - alpha_bar_t) ** 0.5 * eps_pred) / alpha_bar_t**0.5
    if clip_x0:
        x0_pred = x0_pred.clamp(-1, 1)
        # the noise that, with the clipped x0_pred, gives back x_t (eq. 1.3)
        eps_pred = (xt - alpha_bar_t**0.5 * x0_pred) / (1 - alpha_bar_t) ** 0.5
    # eq. 6.2: sigma = 0 for eta = 0 (DDIM) and for s = 0 (alpha_bar_0 = 1)
    ratio = (1 - alpha_bar_s) / (1 - alpha_bar_t)
    sigma = eta * (ratio * (1 - alpha_bar_t / alpha_bar_s)) ** 0.5
    x_s = alpha_bar_s**0.5 * x0_pred + (1 - alpha_bar_s - sigma**2) ** 0.5 * eps_pred
    if sigma > 0:
        z = torch.randn(xt.shape, generator=generator)  # (B, C, H, W)
        x_s = x_s + sigma * z  # eq. 6.3
    return x_s, x0_pred


def sampling_timesteps(T: int, steps: int) -> list[int]:
    """Task 6.2: ``steps`` distinct steps from T down to 1, evenly spaced (DDIM's
    sub-sequence).

    Returns a descending list that starts at T and ends at a step >= 1 (the sampler's
    last move is to s = 0). Raises ValueError unless 1 <= steps <= T.
    """
    if not 1 <= steps <= T:
        raise ValueError(f"steps must lie in 1..T = 1..{T}; got {steps}.")
    if steps == 1:
        return [T]
    gap = (T - 1) / (steps - 1)  # >= 1, so the rounded steps are distinct
    return [round(T - i * gap) for i in range(steps)]  # T, ..., 1


if __name__ == "__main__":
    print(sampling_timesteps(1000, 10))
