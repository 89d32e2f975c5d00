"""Lesson 05 exercise: the training objective and its helpers.

Chapter: docs/lessons/05-training.md

Write the four functions below (tasks 5.1 to 5.4), then check them:

    diffusion-lessons check 5 lesson05_exercise.py

PASS / FAIL (with a counterexample and a hint) / TODO per property; a body that still
raises NotImplementedError is a TODO. See every property with `diffusion-lessons check 5
--list`. The checker calls diffusion_loss with a stand-in model that knows the true
noise, so the checks take seconds and need no trained network.

    (5.1)   t ~ Uniform{1..T},  eps ~ N(0, I),  x_t = sqrt(alpha_bar_t) x0 + sqrt(1 -
                alpha_bar_t) eps
    (5.2)   L_simple = E || eps - eps_theta(x_t, t, y) ||^2
    (5.5)   theta_ema <- d * theta_ema + (1 - d) * theta
    (5.4)   lr(step) = lr (step + 1) / warmup for step < warmup, then lr * (1 + cos(pi *
                progress)) / 2
    Min-SNR weight  w(t) = min(SNR(t), gamma) / SNR(t),  SNR(t) = alpha_bar_t / (1 -
    alpha_bar_t)  (eq. 5.3)

Keep your own experiments under `if __name__ == "__main__":` at the bottom: the checker
imports this file.
"""

from __future__ import annotations

import math  # noqa: F401

import torch

from diffusion_lessons.lesson01_forward_noise import Schedule, q_sample  # noqa: F401
from diffusion_lessons.lesson05_training import TrainConfig


def drop_labels(
    labels: torch.Tensor,
    p_uncond: float,
    null_class: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Task 5.1: label dropout. Replace each label by ``null_class`` (∅) with
    probability ``p_uncond``.

    Args:
        labels: (B,) int64 class labels (left unchanged: return a new tensor).
        p_uncond: the probability of dropping each label, in [0, 1).
        null_class: the label that means "no label", K.
        generator: draw the random numbers with it (``torch.rand(labels.shape,
            generator=generator)``).
    Returns:
        (B,) int64.
    """
    raise NotImplementedError("Task 5.1: drop_labels")


def diffusion_loss(
    model,
    x0: torch.Tensor,
    labels: torch.Tensor,
    schedule: Schedule,
    p_uncond: float = 0.1,
    generator: torch.Generator | None = None,
    min_snr_gamma: float | None = None,
) -> torch.Tensor:
    """Task 5.2: L_simple (eq. 5.2) on one batch, optionally Min-SNR weighted (eq. 5.3).

    Args:
        model: eps_theta, called as ``model(xt, t, labels)`` -> eps_pred (B, C, H, W);
            its null class ∅ is ``model.config.num_classes``.
        x0: clean images in [-1, 1], (B, C, H, W).
        labels: (B,) int64.
        schedule: the schedule (``schedule.T`` steps).
        p_uncond: label dropout rate (task 5.1).
        generator: draw t, eps and the dropout with it.
        min_snr_gamma: None for plain L_simple; else weight each image's MSE by
            min(SNR(t), gamma) / SNR(t).
    Returns: The loss, a 0-dim tensor connected to the model's output (so
        ``loss.backward()`` trains it).
    """
    # 1. t ~ U{1..T}, one per image (B,)        2. eps ~ N(0, I), the shape of x0
    # 3. x_t with eq. 5.1 (q_sample)            4. labels with dropout (drop_labels)
    # 5. eps_pred = model(xt, t, labels)        6. the mean squared error (weighted per
    # image if min_snr_gamma)
    raise NotImplementedError("Task 5.2: diffusion_loss")


@torch.no_grad()
def ema_update(
    ema_model: torch.nn.Module, model: torch.nn.Module, decay: float
) -> None:
    """Task 5.3: theta_ema <- decay * theta_ema + (1 - decay) * theta for every
    parameter, in place (eq. 5.5).

    ``model`` (the one being trained) is left unchanged. Returns None.
    """
    raise NotImplementedError("Task 5.3: ema_update")


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Task 5.4: linear warm-up to ``cfg.lr``, then a cosine decay to 0 at ``cfg.steps``
    (eq. 5.4).

    Steps count from 0. For step < cfg.warmup: cfg.lr * (step + 1) / cfg.warmup. After
    it, with progress = (step - warmup) / (steps - warmup): cfg.lr * 0.5 * (1 + cos(pi *
    progress)).
    """
    raise NotImplementedError("Task 5.4: learning_rate")


if __name__ == "__main__":
    # print([round(learning_rate(s, TrainConfig(steps=100, warmup=10)), 5) for s in
    # range(0, 101, 10)])
    pass
