"""Lesson 08 reference solution: re-ranking.

Chapter: docs/lessons/08-clip.md

The exercise template (``diffusion-lessons check 8 --template lesson08_exercise.py``)
with task 8.1 done, written here rather than imported from the course. Check it:

    diffusion-lessons check 8 docs/instructors/solutions/lesson08_solution.py

    (8.3)   re-ranking: in each group keep the k candidates with the highest scores
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
    idx = scores.topk(keep, dim=1).indices  # (G, keep): highest score first
    groups = torch.arange(len(idx))[:, None]  # (G, 1): broadcasts against idx
    kept = candidates[groups, idx]  # (G, keep, ...): candidates[g, idx[g, j]]
    return kept, idx


if __name__ == "__main__":
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]])
    print(rerank(torch.arange(6).view(2, 3), scores, keep=2))  # [[1, 2], [3, 5]]
