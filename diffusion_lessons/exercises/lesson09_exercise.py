"""Lesson 09 exercise: classifier-free guidance.

Chapter: docs/lessons/09-guidance.md

Write the function below (task 9.1), then check it:

    diffusion-lessons check 9 lesson09_exercise.py

PASS / FAIL (with a counterexample and a hint) / TODO per property; a body that still
raises NotImplementedError is a TODO. See every property with `diffusion-lessons check 9
--list`.

    (9.1)   eps_w = (1 + w) eps_theta(x_t, t, c) - w eps_theta(x_t, t, ∅)
          = eps_theta(x_t, t, ∅) + s (eps_theta(x_t, t, c) - eps_theta(x_t, t, ∅)),  s =
          1 + w  (eq. 9.2)

w = 0 is the plain conditional model, w = -1 the unconditional one. ∅ is label
``model.config.num_classes``.

Keep your own experiments under `if __name__ == "__main__":` at the bottom: the checker
imports this file.
"""

from __future__ import annotations

import torch
from torch import nn


def guided_eps(
    model: nn.Module, xt: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, w: float
) -> torch.Tensor:
    """Task 9.1: eq. 9.1, the guided noise prediction.

    Args:
        model: eps_theta(xt, t, labels) -> (B, C, H, W); label
            ``model.config.num_classes`` is ∅.
        xt: (B, C, H, W); t: (B,); labels: (B,).
        w: guidance weight (0: conditional, -1: unconditional).
    Returns:
        eps_w, (B, C, H, W).
    """
    # One batched forward pass is cheaper than two: torch.cat([xt, xt]), torch.cat([t,
    # t]), torch.cat([labels, null]) -> split the (2B, C, H, W) answer with .chunk(2).
    raise NotImplementedError("Task 9.1: guided_eps")


if __name__ == "__main__":
    pass
