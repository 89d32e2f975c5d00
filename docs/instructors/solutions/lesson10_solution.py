"""Lesson 10 reference solution: the conventions between the course and diffusers, and
the shard of a distributed batch.

Chapter: docs/lessons/10-going-further.md

The exercise template (``diffusion-lessons check 10 --template lesson10_exercise.py``)
with tasks 10.1-10.4 done, each written here rather than imported from the course.
Check it:

    diffusion-lessons check 10 docs/instructors/solutions/lesson10_solution.py

    (10.1)   k = t - 1,   alphas_cumprod[k] = alpha_bar_t
    (10.3)   eps = eps_∅ + s (eps_c - eps_∅),   s = 1 + w
    (10.5)   process r of N computes rows r B/N .. (r+1) B/N - 1 of the global batch
"""

from __future__ import annotations

import torch


def course_t(k) -> int:
    """Task 10.1: diffusers' timestep k (0..T-1; an int or a 0-d tensor) -> our t
    (1..T), eq. 10.1. A fractional k must raise a ValueError that names the fix
    (timestep_spacing='trailing')."""
    k = float(k)  # a python number, also from a 0-d tensor
    if k != int(k):
        raise ValueError(
            f"diffusers asked for the fractional timestep {k}; the U-Net takes whole "
            "steps. Build the scheduler with timestep_spacing='trailing'."
        )
    return int(k) + 1  # eq. 10.1: t = k + 1


def guidance_scale(w: float) -> float:
    """Task 10.2: our guidance weight w (eq. 9.1) -> diffusers' guidance_scale s."""
    return 1.0 + w  # eq. 10.3: s = 1 + w


def diffusers_guidance(
    eps_cond: torch.Tensor, eps_uncond: torch.Tensor, s: float
) -> torch.Tensor:
    """Task 10.3: eq. 10.3 as diffusers' pipelines write it; (B, C, H, W) each."""
    return eps_uncond + s * (eps_cond - eps_uncond)  # eq. 10.3, (B, C, H, W)


def shard(batch_size: int, rank: int, nproc: int) -> slice:
    """Task 10.4: the rows of the global batch that process ``rank`` of ``nproc``
    computes, as a slice (eq. 10.5). A batch that does not split into ``nproc`` equal
    shards must raise a ValueError naming the fix."""
    if batch_size % nproc:
        raise ValueError(
            f"The batch of {batch_size} does not split into {nproc} equal shards; use "
            f"a number of processes that divides {batch_size}, or change the batch."
        )
    per = batch_size // nproc  # B / N rows each
    return slice(rank * per, (rank + 1) * per)  # eq. 10.5


if __name__ == "__main__":
    print([shard(8, r, 4) for r in range(4)])
