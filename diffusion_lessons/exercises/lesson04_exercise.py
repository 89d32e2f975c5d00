"""Lesson 04 exercise: the conditional U-Net.

Chapter: docs/lessons/04-unet.md

Write the residual block (task 4.1), then the U-Net that uses it (task 4.2), and check
them:

    diffusion-lessons check 4 lesson04_exercise.py

PASS / FAIL (with a counterexample and a hint) / TODO per property; a body that still
raises NotImplementedError is a TODO. To do task 4.2 with the course's block, replace
your ResBlock by `from diffusion_lessons.lesson04_unet import ResBlock`. See every
property with `diffusion-lessons check 4 --list`.

    (4.1)   conv block:  h = Conv3x3(SiLU(GroupNorm(x)))
    (4.2)   residual block:  h = conv block(x);  h = FiLM(h);  out = conv block(h) +
                shortcut(x)
    (4.3)   FiLM:  h <- h * (1 + gamma(e_y)) + beta(e_t),  gamma, beta: (B, C, 1, 1)
    (4.4)   skip connection: u_l <- ResBlock(concat[u_l, d_l])  (channels add up: C_u +
                C_d)
    (4.5)   sizes:  H_l = H / 2^l,  so H and W must be divisible by 2^(levels - 1)

gamma and beta come from zero-initialised nn.Linear layers, so a fresh block's FiLM is
the identity.

Keep your own experiments under `if __name__ == "__main__":` at the bottom: the checker
imports this file.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: F401
from torch import nn

from diffusion_lessons.lesson03_embeddings import (
    ClassEmbedding,
    TimeEmbedding,
    check_labels,
)  # noqa: F401

# noqa: F401  (conv_block is eq. 4.1)
from diffusion_lessons.lesson04_unet import UNetConfig, conv_block


class ResBlock(nn.Module):
    """Task 4.1: two conv blocks with the conditioning between them and a residual
    shortcut (eqs. 4.2-4.3).

    Args:
        c_in, c_out: channels in and out.
        emb_dim: width of e_t and e_y.
        groups: GroupNorm groups (divides c_in and c_out).

    forward(x (B, c_in, H, W), e_t (B, emb_dim), e_y (B, emb_dim)) -> (B, c_out, H, W),
    for any H, W.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        # conv1 = conv_block(c_in, c_out, groups); conv2 = conv_block(c_out, c_out,
        # groups) gamma = nn.Linear(emb_dim, c_out) (class -> gain); beta =
        # nn.Linear(emb_dim, c_out) (time -> shift), zero-initialised shortcut:
        # nn.Conv2d(c_in, c_out, 1) when c_in != c_out, else nn.Identity()
        raise NotImplementedError("Task 4.1: ResBlock.__init__")

    def forward(
        self, x: torch.Tensor, e_t: torch.Tensor, e_y: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError("Task 4.1: ResBlock.forward")


class UNet(nn.Module):
    """Task 4.2: eps_theta(x_t, t, y), a U-Net with FiLM conditioning (eq. 4.3) and
    concatenating skips (eq. 4.4).

    Build it from ``config`` (a ``UNetConfig``): ``config.channels[l]`` channels at
    level l (resolution H / 2^l), ``config.blocks_per_level`` ResBlocks per level on the
    way down and on the way up, ``config.emb_dim``, ``config.num_classes`` (label
    num_classes is ∅), ``config.groups``, ``config.in_channels``, ``config.T``.
    One way: TimeEmbedding(emb_dim, emb_dim) and ClassEmbedding(num_classes, emb_dim) ->
    e_t, e_y; a stem Conv3x3 in_channels -> channels[0]; down: ResBlocks, keep the
    output as the skip d_l, then a stride-2 Conv3x3 to channels[l+1]; a middle ResBlock;
    up: ConvTranspose2d(channels[l+1], channels[l], 2, stride=2), concatenate d_l (so
    the first up block of a level takes 2 * channels[l] channels), ResBlocks; a head
    conv_block -> in_channels.
    """

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = config
        raise NotImplementedError("Task 4.2: UNet.__init__")

    def forward(
        self, xt: torch.Tensor, t: torch.Tensor | int, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """Predict the noise in x_t.

        Args:
            xt: noisy images, (B, C, H, W), H and W divisible by ``config.down_factor``.
            t: steps, (B,) int64 in 0..T; an int means the same step for every image.
            labels: (B,) int64 in 0..num_classes (num_classes = ∅); None means ∅ for
                every image.
        Returns:
            eps_pred, (B, C, H, W).
        Raises:
            ValueError: if H or W is not divisible by ``config.down_factor`` (say: pad
                or resize the images).
        """
        raise NotImplementedError("Task 4.2: UNet.forward")


if __name__ == "__main__":
    # model = UNet(UNetConfig(channels=(4, 8, 8), groups=4, emb_dim=16))
    # print(model(torch.randn(2, 1, 28, 28), torch.tensor([1, 500]), torch.tensor([3,
    # 7])).shape)
    pass
