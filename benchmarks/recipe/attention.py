"""The attention lever: the ``small`` U-Net with one self-attention block at 7 x 7.

Lesson 04's U-Net sees the whole 28 x 28 image only through its receptive field: three
3 x 3 convolutions per level, two downsamplings. Self-attention at the bottleneck lets
every one of its 7 x 7 positions look at every other in one step (Vaswani et al. 2017;
Ho et al. 2020 put one at 16 x 16), the usual remedy for strokes that do not join up.
Here it follows the middle block:

    h <- h + W_o Attention(GroupNorm(h))     (49 tokens of ch[-1] channels, 4 heads)

with W_o zero-initialised, so the network starts as lesson 04's. The course's U-Net has
no such block; ``use_attention()`` swaps the U-Net that lesson 05 builds for this one
while a lever trains or a sweep scores it (benchmarks/recipe/README.md has the result).
"""

from __future__ import annotations

import contextlib
from unittest import mock

from torch import nn

import diffusion_lessons.lesson05_training as l5
from diffusion_lessons.lesson04_unet import UNet, UNetConfig


class MidAttention(nn.Module):
    """Lesson 04's middle ResBlock, then a residual self-attention over its H x W."""

    def __init__(self, block: nn.Module, channels: int, groups: int, heads: int = 4):
        super().__init__()
        self.block = block
        self.norm = nn.GroupNorm(groups, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        nn.init.zeros_(self.attn.out_proj.weight)  # starts as the identity
        nn.init.zeros_(self.attn.out_proj.bias)

    def forward(self, h, e_t, e_y):
        h = self.block(h, e_t, e_y)  # (B, C, H, W)
        B, C, H, W = h.shape
        a = self.norm(h).flatten(2).transpose(1, 2)  # (B, H W, C): one token per pixel
        a, _ = self.attn(a, a, a, need_weights=False)  # (B, H W, C)
        return h + a.transpose(1, 2).reshape(B, C, H, W)


class AttentionUNet(UNet):
    """Lesson 04's U-Net with ``MidAttention`` in place of its middle block."""

    def __init__(self, config: UNetConfig):
        super().__init__(config)
        self.mid = MidAttention(self.mid, config.channels[-1], config.groups)


def use_attention():
    """While active, lesson 05 trains and loads ``AttentionUNet``, not ``UNet``."""
    return mock.patch.object(l5, "UNet", AttentionUNet)


def uses_attention(checkpoint) -> bool:
    """True for a checkpoint (run or export) made under ``use_attention``."""
    state = l5.load_checkpoint(checkpoint)  # runs, exports and snapshots all keep "ema"
    return any(k.startswith("mid.attn.") for k in state["ema"])


def loading(checkpoint):
    """The context to load ``checkpoint`` in: ``use_attention()`` where it needs it."""
    return use_attention() if uses_attention(checkpoint) else contextlib.nullcontext()
