"""Lesson 03 reference solution: embeddings, telling the network the time and the digit.

Chapter: docs/lessons/03-embeddings.md

The exercise template (``diffusion-lessons check 3 --template lesson03_exercise.py``)
with tasks 3.1 and 3.2 done, each written here rather than imported from the course.
Check it:

    diffusion-lessons check 3 docs/instructors/solutions/lesson03_solution.py

    (3.2)   omega_k = max_period^(-k / (dim/2)),  k = 0 .. dim/2 - 1
    (3.3)   PE(t) = [sin(omega_0 t), ..., sin(omega_{dim/2-1} t), cos(omega_0 t), ...,
                cos(omega_{dim/2-1} t)]
    (3.7)   lookup table (nn.Embedding):  e_y = E[y],  E has K + 1 rows; row K is the
                null class ∅
"""

from __future__ import annotations

import torch
from torch import nn

from diffusion_lessons.lesson03_embeddings import check_labels

MAX_PERIOD = 10_000  # eq. 3.2: the slowest frequency is about 1 / max_period


def sinusoidal_embedding(
    t: torch.Tensor | int, dim: int, max_period: float = MAX_PERIOD
) -> torch.Tensor:
    """Task 3.1: the sinusoidal embedding of timesteps, eqs. 3.2-3.3, layout [sin(all
    freqs) | cos(all freqs)].

    Args:
        t: timesteps, a (B,) tensor (int or float) or a python int (which gives one
            row).
        dim: embedding width, even and >= 2 (half sines, half cosines).
        max_period: max_period in eq. 3.2.
    Returns: (B, dim) float32, every value in [-1, 1]: column k is sin(omega_k t),
        column dim/2 + k is cos(omega_k t).
    Raises:
        ValueError: if dim is odd or smaller than 2.
    """
    if dim < 2 or dim % 2:
        raise ValueError(
            f"dim must be even and >= 2 (half sines, half cosines); got {dim}."
        )
    t = torch.as_tensor(t).float().reshape(-1)  # (B,); a python int gives (1,)
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32)  # (half,): 0 .. dim/2 - 1
    omega = max_period ** (-k / half)  # eq. 3.2, (half,): from 1 to ~1/max_period
    angles = t[:, None] * omega[None, :]  # (B, half): omega_k t
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # eq. 3.3, (B, dim)


class ClassEmbedding(nn.Module):
    """Task 3.2: label -> vector by table lookup (eq. 3.7), with one extra row for the
    null class ∅.

    Args:
        num_classes: K, the number of real classes (10 digits); label K means ∅ (no
            label).
        dim: width of each class vector.

    Attributes to set: ``self.num_classes``, ``self.dim``, ``self.null_class`` (=
    num_classes) and ``self.table``, an ``nn.Embedding`` with K + 1 rows (rows 0..K-1
    the classes, row K = ∅).
    """

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.dim = dim
        self.null_class = num_classes  # label K means ∅
        self.table = nn.Embedding(num_classes + 1, dim)  # (K + 1, dim), row K = ∅

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """labels: (B,) int64 in 0..num_classes -> e_y: (B, dim)."""
        labels = check_labels(labels, self.num_classes)  # (B,), 0..K
        return self.table(labels)  # eq. 3.7, (B, dim)


if __name__ == "__main__":
    print(sinusoidal_embedding(torch.tensor([1, 2, 500]), 8))
