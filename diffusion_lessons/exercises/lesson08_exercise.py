"""Lesson 08 exercise: re-ranking.

Chapter: docs/lessons/08-clip.md

Write the function below (task 8.1), then check it:

    diffusion-lessons check 8 lesson08_exercise.py

PASS / FAIL (with a counterexample and a hint) / TODO per property; a body that still
raises NotImplementedError is a TODO. See every property with `diffusion-lessons check 8
--list`.

    (8.3)   re-ranking: in each group keep the k candidates with the highest scores

Keep your own experiments under `if __name__ == "__main__":` at the bottom: the checker
imports this file.
"""

from __future__ import annotations

import torch


def rerank(
    candidates: torch.Tensor, scores: torch.Tensor, keep: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Task 8.1: eq. 8.3, in each group keep the ``keep`` candidates with the highest
    scores.

    Args:
        candidates: (G, N, ...), N candidates for each of G groups (e.g. one group per
            digit).
        scores: (G, N). keep: 1..N.
    Returns:
        kept (G, keep, ...) best first, and their indices (G, keep).
    """
    raise NotImplementedError("Task 8.1: rerank")


if __name__ == "__main__":
    pass
