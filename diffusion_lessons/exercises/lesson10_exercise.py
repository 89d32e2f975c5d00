"""Lesson 10 exercise: the conventions between the course and diffusers, and the shard
of a distributed batch.

Chapter: docs/lessons/10-going-further.md

Write the four functions below (tasks 10.1-10.4), then check them:

    diffusion-lessons check 10 lesson10_exercise.py

PASS / FAIL (with a counterexample and a hint) / TODO per property; a body that still
raises NotImplementedError is a TODO. See every property with
`diffusion-lessons check 10 --list`. None of them needs diffusers installed.

    (10.1)   k = t - 1,   alphas_cumprod[k] = alpha_bar_t
    (10.3)   eps = eps_∅ + s (eps_c - eps_∅),   s = 1 + w
    (10.5)   process r of N computes rows r B/N .. (r+1) B/N - 1 of the global batch

Keep your own experiments under `if __name__ == "__main__":` at the bottom: the checker
imports this file.
"""

from __future__ import annotations

import torch


def course_t(k) -> int:
    """Task 10.1: diffusers' timestep k (0..T-1; an int or a 0-d tensor) -> our t
    (1..T), eq. 10.1. A fractional k must raise a ValueError that names the fix
    (timestep_spacing='trailing')."""
    raise NotImplementedError("Task 10.1: course_t")


def guidance_scale(w: float) -> float:
    """Task 10.2: our guidance weight w (eq. 9.1) -> diffusers' guidance_scale s."""
    raise NotImplementedError("Task 10.2: guidance_scale")


def diffusers_guidance(
    eps_cond: torch.Tensor, eps_uncond: torch.Tensor, s: float
) -> torch.Tensor:
    """Task 10.3: eq. 10.3 as diffusers' pipelines write it; (B, C, H, W) each."""
    raise NotImplementedError("Task 10.3: diffusers_guidance")


def shard(batch_size: int, rank: int, nproc: int) -> slice:
    """Task 10.4: the rows of the global batch that process ``rank`` of ``nproc``
    computes, as a slice (eq. 10.5). A batch that does not split into ``nproc`` equal
    shards must raise a ValueError naming the fix."""
    raise NotImplementedError("Task 10.4: shard")


if __name__ == "__main__":
    pass
