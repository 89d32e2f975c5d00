"""Lesson 01 exercise: the forward process, fading a digit into static.

Chapter: docs/lessons/01-forward-noise.md

Write the three functions below (tasks 1.1 to 1.3), then check them:

    diffusion-lessons check 1 lesson01_exercise.py

The checker runs the course's properties (statements that must hold for every input,
tried on many generated examples) against your functions and prints PASS, FAIL (with a
counterexample and a hint) or TODO for each. Work one function at a time: a body that
still raises NotImplementedError is a TODO. To use the course's version of a function
instead of yours, replace the whole function by an import, e.g. `from
diffusion_lessons.lesson01_forward_noise import schedule_from_betas` (the checker's
report notes it). See every property with `diffusion-lessons check 1 --list`.

Notation (docs/notation.md): time runs t = 1..T; schedule arrays have length T+1 and
index 0 means "no noise yet", so alpha_bar[t] is ᾱ_t and alpha_bar[0] = 1.

    (1.1)   q(x_t | x_{t-1}) = N(x_t; sqrt(1 - beta_t) x_{t-1}, beta_t I)
    (1.2)   q(x_t | x_0)  = N(x_t; sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    (1.3)   x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,  eps ~ N(0, I)

Keep your own experiments under `if __name__ == "__main__":` at the bottom: the checker
imports this file.
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
    # 1. beta = torch.as_tensor(beta, dtype=torch.float64).flatten()        # (T,)
    # 2. refuse bad input (see Raises)
    # 3. prepend beta_0 = 0, so that index t is step t                      # (T+1,)
    # 4. alpha = 1 - beta; alpha_bar = cumulative product of alpha
    raise NotImplementedError("Task 1.1: schedule_from_betas")


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
    raise NotImplementedError("Task 1.2: forward_step")


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
    # Shapes are the whole difficulty: alpha_bar[t] for a (B,) tensor t has shape (B,);
    # reshape it to (B, 1, 1, 1) so that it multiplies every pixel of its own image, and
    # cast it to x0.dtype.
    raise NotImplementedError("Task 1.3: q_sample")


if __name__ == "__main__":
    # Your experiments here, e.g.:
    # sch = schedule_from_betas(torch.tensor([0.1, 0.2, 0.5]))
    # print(sch.alpha_bar)
    pass
