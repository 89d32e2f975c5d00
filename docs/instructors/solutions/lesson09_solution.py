"""Lesson 09 reference solution: classifier-free guidance.

Chapter: docs/lessons/09-guidance.md

The exercise template (``diffusion-lessons check 9 --template lesson09_exercise.py``)
with task 9.1 done, written here rather than imported from the course. Check it:

    diffusion-lessons check 9 docs/instructors/solutions/lesson09_solution.py

    (9.1)   eps_w = (1 + w) eps_theta(x_t, t, c) - w eps_theta(x_t, t, ∅)
          = eps_theta(x_t, t, ∅) + s (eps_theta(x_t, t, c) - eps_theta(x_t, t, ∅)),  s =
          1 + w  (eq. 9.2)

w = 0 is the plain conditional model, w = -1 the unconditional one. ∅ is label
``model.config.num_classes``.
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
    null = torch.full_like(labels, model.config.num_classes)  # (B,): all ∅
    # one forward pass on a doubled batch: first half with c, second half with ∅
    eps = model(
        torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([labels, null])
    )  # (2B, C, H, W)
    eps_cond, eps_uncond = eps.chunk(2)  # (B, C, H, W) each
    return (1 + w) * eps_cond - w * eps_uncond  # eq. 9.1


if __name__ == "__main__":
    pass
