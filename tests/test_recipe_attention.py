"""benchmarks/recipe/attention.py, the attention lever: its U-Net must start as lesson
04's (so the lever changes the architecture, not the starting point), and a checkpoint
trained with it must load only with it.
"""

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lessons.lesson04_unet import UNet
from diffusion_lessons.lesson05_training import (
    PRESETS,
    CheckpointError,
    ema_snapshot,
    load_trained,
)

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks" / "recipe"))
import attention  # noqa: E402

TINY = PRESETS["tiny"].model


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), t=st.integers(0, TINY.T))
def test_the_attention_unet_starts_as_lesson_04s(seed, t):
    torch.manual_seed(seed)
    base = UNet(TINY)
    for p in base.parameters():  # trained-looking weights, FiLM included
        torch.nn.init.normal_(p, std=0.1)
    net = attention.AttentionUNet(TINY)
    weights = {
        (f"mid.block.{k[4:]}" if k.startswith("mid.") else k): v
        for k, v in base.state_dict().items()
    }
    missing = net.load_state_dict(weights, strict=False).missing_keys
    assert missing and all(k.startswith(("mid.norm.", "mid.attn.")) for k in missing)
    g = torch.Generator().manual_seed(seed)
    xt = torch.randn((3, 1, 28, 28), generator=g)
    labels = torch.tensor([0, 5, TINY.num_classes])
    with torch.no_grad():
        assert torch.allclose(net(xt, t, labels), base(xt, t, labels), atol=1e-6)
    # the block is live: once W_o is not zero, the output moves
    torch.nn.init.normal_(net.mid.attn.out_proj.weight, std=0.5)
    with torch.no_grad():
        assert not torch.allclose(net(xt, t, labels), base(xt, t, labels))


def test_an_attention_checkpoint_loads_only_with_attention(tmp_path):
    cfg = dataclasses.replace(PRESETS["tiny"], prediction="v")
    path = tmp_path / "attention.pt"
    torch.save(ema_snapshot(attention.AttentionUNet(cfg.model), 1, 0.1, cfg), path)
    plain = tmp_path / "plain.pt"
    torch.save(ema_snapshot(UNet(cfg.model), 1, 0.1, cfg), plain)
    assert attention.uses_attention(path) and not attention.uses_attention(plain)
    with pytest.raises(CheckpointError):
        load_trained(path)
    with attention.loading(path):
        model, _, _ = load_trained(path)
    assert any(isinstance(m, attention.MidAttention) for m in model.modules())
    with attention.loading(plain):
        model, _, _ = load_trained(plain)
    assert not any(isinstance(m, attention.MidAttention) for m in model.modules())
