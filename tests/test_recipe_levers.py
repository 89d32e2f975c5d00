"""The recipe levers that are not part of the course (benchmarks/recipe/), and
haze_source.py's one-step measurement.

attention.py: its U-Net must start as lesson 04's (so the lever changes the
architecture, not the starting point), and a checkpoint trained with it must load only
with it. lever.py: a malformed noise level stops with one line; noise_levels.py: its
facts agree with the draws.
"""

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lessons.lesson02_schedules import make_schedule
from diffusion_lessons.lesson04_unet import UNet
from diffusion_lessons.lesson05_training import (
    PRESETS,
    CheckpointError,
    ema_snapshot,
    load_trained,
)
from diffusion_lessons.lesson07_classifier import background_haze

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks" / "recipe"))
import attention  # noqa: E402
import haze_source  # noqa: E402
import noise_levels  # noqa: E402

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


@settings(max_examples=10, deadline=None)
@given(t=st.integers(1, 1000), name=st.sampled_from(["linear", "cosine", "sigmoid"]))
def test_one_step_haze_of_a_perfect_noise_predictor_is_the_real_haze(t, name):
    # an oracle that knows the clean digits answers with the exact noise (eq. 6.1
    # inverted), so its x0_pred is the digit itself and the haze is the data's own
    schedule = make_schedule(name, 1000)
    x0 = torch.full((4, 1, 28, 28), -1.0)
    x0[:, :, 8:20, 12:16] = 1.0  # a bar of ink on black
    x0[0, 0, 0, 0] = -0.9  # one grey background pixel: haze 1/4 of one image's
    labels = torch.arange(4)

    def oracle(xt, tt, y):
        ab = schedule.alpha_bar[tt].view(-1, 1, 1, 1)
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()

    measured = haze_source.one_step_haze(oracle, schedule, x0, labels, t)
    assert measured == background_haze(x0)["above"] > 0


@pytest.mark.parametrize(
    "value",
    [
        "uniform",
        {"p_mean": -0.4},
        {"p_mean": 0, "p_std": 0},
        {"p_mean": float("nan"), "p_std": 1.4},
        [-0.4, 1.4],
    ],
)
def test_lever_refuses_a_noise_level_it_cannot_train_with_one_line(value):
    import lever

    with pytest.raises(SystemExit, match='"noise_levels" must be "edm" or'):
        lever.config({"prediction": "v", "noise_levels": value})
    assert lever.levels({"p_mean": -0.4, "p_std": 1.4}) == (-0.4, 1.4)
    assert lever.levels("edm") == (-1.2, 1.2) and lever.levels(None) is None
    # the levers' base draws uniform t, whatever the preset draws
    assert lever.config({"prediction": "v"}).noise_levels is None
    lognormal = lever.config({"prediction": "v", "noise_levels": "edm"})
    assert lognormal.noise_levels == (-1.2, 1.2)


def test_noise_level_facts_are_those_of_the_draws():
    facts = noise_levels.facts(make_schedule("cosine", 1000), n=100_000)
    assert abs(facts["uniform"]["below_100"] - 0.099) < 0.005
    assert abs(facts["uniform"]["above_500"] - 0.5) < 0.006
    assert facts["lower-t"]["median_t"] < facts["uniform"]["median_t"]
    assert facts["uniform"]["median_t"] < facts["higher-t"]["median_t"]
    assert facts["edm"]["below_100"] > facts["lower-t"]["below_100"]
