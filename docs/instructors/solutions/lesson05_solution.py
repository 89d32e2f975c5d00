"""Lesson 05 reference solution: the training objective and its helpers.

Chapter: docs/lessons/05-training.md

The exercise template (``diffusion-lessons check 5 --template lesson05_exercise.py``)
with tasks 5.1 to 5.4 done, each written here rather than imported from the course.
Check it:

    diffusion-lessons check 5 docs/instructors/solutions/lesson05_solution.py

    (5.1)   t ~ Uniform{1..T},  eps ~ N(0, I),  x_t = sqrt(alpha_bar_t) x0 + sqrt(1 -
                alpha_bar_t) eps
    (5.2)   L_simple = E || eps - eps_theta(x_t, t, y) ||^2
    (5.5)   theta_ema <- d * theta_ema + (1 - d) * theta
    (5.4)   lr(step) = lr (step + 1) / warmup for step < warmup, then lr * (1 + cos(pi *
                progress)) / 2
    Min-SNR weight  w(t) = min(SNR(t), gamma) / SNR(t),  SNR(t) = alpha_bar_t / (1 -
    alpha_bar_t)  (eq. 5.3)
"""

from __future__ import annotations

import math

import torch

from diffusion_lessons.lesson01_forward_noise import Schedule, q_sample
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
    drop = torch.rand(labels.shape, generator=generator) < p_uncond  # (B,) bool
    null = torch.full_like(labels, null_class)  # (B,): all ∅
    return torch.where(drop, null, labels)  # a new tensor; labels is untouched


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
    B = x0.shape[0]
    t = torch.randint(1, schedule.T + 1, (B,), generator=generator)  # (B,): 1..T
    eps = torch.randn(x0.shape, generator=generator)  # (B, C, H, W), N(0, I)
    xt = q_sample(x0, t, schedule, eps=eps)  # eq. 5.1
    labels = drop_labels(labels, p_uncond, model.config.num_classes, generator)
    eps_pred = model(xt, t, labels)  # (B, C, H, W)
    mse = ((eps - eps_pred) ** 2).mean(dim=(1, 2, 3))  # (B,): eq. 5.2, per image
    if min_snr_gamma is None:
        return mse.mean()
    alpha_bar_t = schedule.alpha_bar[t]  # (B,) float64
    snr = alpha_bar_t / (1 - alpha_bar_t)  # (B,): SNR(t), eq. 2.5
    weight = snr.clamp(max=min_snr_gamma) / snr  # (B,): min(SNR, gamma) / SNR
    return (weight.to(mse.dtype) * mse).mean()  # eq. 5.3


@torch.no_grad()
def ema_update(
    ema_model: torch.nn.Module, model: torch.nn.Module, decay: float
) -> None:
    """Task 5.3: theta_ema <- decay * theta_ema + (1 - decay) * theta for every
    parameter, in place (eq. 5.5).

    ``model`` (the one being trained) is left unchanged. Returns None.
    """
    for p_ema, p in zip(ema_model.parameters(), model.parameters()):
        p_ema.mul_(decay).add_(p, alpha=1 - decay)  # eq. 5.5, in place


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Task 5.4: linear warm-up to ``cfg.lr``, then a cosine decay to 0 at ``cfg.steps``
    (eq. 5.4).

    Steps count from 0. For step < cfg.warmup: cfg.lr * (step + 1) / cfg.warmup. After
    it, with progress = (step - warmup) / (steps - warmup): cfg.lr * 0.5 * (1 + cos(pi *
    progress)).
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup  # warm-up: lr / warmup .. lr
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)  # 0 .. 1
    progress = min(progress, 1.0)  # stay at 0 after cfg.steps
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))  # eq. 5.4


if __name__ == "__main__":
    cfg = TrainConfig(steps=100, warmup=10)
    print([round(learning_rate(s, cfg), 5) for s in range(0, 101, 10)])
