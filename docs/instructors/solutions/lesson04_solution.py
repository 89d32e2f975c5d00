"""Lesson 04 reference solution: the conditional U-Net.

Chapter: docs/lessons/04-unet.md

The exercise template (``diffusion-lessons check 4 --template lesson04_exercise.py``)
with the residual block (task 4.1) and the U-Net that uses it (task 4.2) done, both
written here rather than imported from the course. Check it:

    diffusion-lessons check 4 docs/instructors/solutions/lesson04_solution.py

    (4.1)   conv block:  h = Conv3x3(SiLU(GroupNorm(x)))
    (4.2)   residual block:  h = conv block(x);  h = FiLM(h);  out = conv block(h) +
                shortcut(x)
    (4.3)   FiLM:  h <- h * (1 + gamma(e_y)) + beta(e_t),  gamma, beta: (B, C, 1, 1)
    (4.4)   skip connection: u_l <- ResBlock(concat[u_l, d_l])  (channels add up: C_u +
                C_d)
    (4.5)   sizes:  H_l = H / 2^l,  so H and W must be divisible by 2^(levels - 1)

gamma and beta come from zero-initialised nn.Linear layers, so a fresh block's FiLM is
the identity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from diffusion_lessons.lesson03_embeddings import ClassEmbedding, TimeEmbedding
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
        self.conv1 = conv_block(c_in, c_out, groups)  # eq. 4.1
        self.conv2 = conv_block(c_out, c_out, groups)  # eq. 4.1
        self.gamma = nn.Linear(emb_dim, c_out)  # class -> per-channel gain
        self.beta = nn.Linear(emb_dim, c_out)  # time -> per-channel shift
        for layer in (self.gamma, self.beta):  # zero init: FiLM starts as identity
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        if c_in != c_out:
            self.shortcut = nn.Conv2d(c_in, c_out, kernel_size=1)  # match channels
        else:
            self.shortcut = nn.Identity()

    def forward(
        self, x: torch.Tensor, e_t: torch.Tensor, e_y: torch.Tensor
    ) -> torch.Tensor:
        h = self.conv1(x)  # (B, c_out, H, W)
        gamma = self.gamma(e_y)[:, :, None, None]  # (B, c_out, 1, 1)
        beta = self.beta(e_t)[:, :, None, None]  # (B, c_out, 1, 1)
        h = h * (1 + gamma) + beta  # eq. 4.3
        return self.conv2(h) + self.shortcut(x)  # eq. 4.2, (B, c_out, H, W)


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

    def __init__(self, config: UNetConfig = UNetConfig()):  # noqa: B008 (frozen)
        super().__init__()
        self.config = config
        ch, e, g = config.channels, config.emb_dim, config.groups
        n, levels = config.blocks_per_level, len(config.channels)
        self.time_embed = TimeEmbedding(e, e)  # t -> e_t
        self.class_embed = ClassEmbedding(config.num_classes, e)  # y -> e_y, row K = ∅
        self.stem = nn.Conv2d(config.in_channels, ch[0], 3, padding=1)
        # way down: level l works at H / 2^l with ch[l] channels
        self.down = nn.ModuleList(
            nn.ModuleList(ResBlock(ch[l], ch[l], e, g) for _ in range(n))
            for l in range(levels)
        )
        self.downsample = nn.ModuleList(  # (B, ch[l], H, W) -> (B, ch[l+1], H/2, W/2)
            nn.Conv2d(ch[l], ch[l + 1], 3, stride=2, padding=1)
            for l in range(levels - 1)
        )
        self.mid = ResBlock(ch[-1], ch[-1], e, g)  # the bottleneck
        # way up: (B, ch[l+1], H/2, W/2) -> (B, ch[l], H, W), then concat d_l
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(ch[l + 1], ch[l], 2, stride=2) for l in range(levels - 1)
        )
        self.up = nn.ModuleList(
            nn.ModuleList(
                ResBlock(2 * ch[l] if i == 0 else ch[l], ch[l], e, g) for i in range(n)
            )
            for l in range(levels)
        )
        self.head = conv_block(ch[0], config.in_channels, g)

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
        B, _, H, W = xt.shape
        factor = self.config.down_factor  # eq. 4.5: 2^(levels - 1)
        if H % factor or W % factor:
            raise ValueError(
                f"H and W must be divisible by down_factor={factor}; got {H}x{W}. Pad "
                "or resize the images, or use fewer levels."
            )
        t = torch.as_tensor(t).long()
        if t.ndim == 0:
            t = t.expand(B)  # (B,): an int is the same step for every image
        if labels is None:
            labels = torch.full((B,), self.config.num_classes)  # (B,): all ∅
        e_t = F.silu(self.time_embed(t))  # (B, emb_dim)
        e_y = F.silu(self.class_embed(labels))  # (B, emb_dim)

        h = self.stem(xt)  # (B, ch[0], H, W)
        skips = []
        for l, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, e_t, e_y)
            skips.append(h)  # d_l: (B, ch[l], H / 2^l, W / 2^l)
            if l < len(self.downsample):
                h = self.downsample[l](h)  # (B, ch[l+1], H / 2^(l+1), W / 2^(l+1))
        h = self.mid(h, e_t, e_y)
        for l in reversed(range(len(self.up))):
            if l < len(self.upsample):
                h = self.upsample[l](h)  # (B, ch[l], H / 2^l, W / 2^l)
            h = torch.cat([h, skips[l]], dim=1)  # eq. 4.4, (B, 2 ch[l], ...)
            for block in self.up[l]:
                h = block(h, e_t, e_y)
        return self.head(h)  # (B, C, H, W)


if __name__ == "__main__":
    model = UNet(UNetConfig(channels=(4, 8, 8), groups=4, emb_dim=16))
    xt = torch.randn(2, 1, 28, 28)
    print(model(xt, torch.tensor([1, 500]), torch.tensor([3, 7])).shape)
