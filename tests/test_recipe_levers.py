"""The recipe levers that are not part of the course (benchmarks/recipe/), and
haze_source.py's one-step measurement.

attention.py: its U-Net must start as lesson 04's (so the lever changes the
architecture, not the starting point), and a checkpoint trained with it must load only
with it. noise_levels.py: the drawn steps must follow EDM's log-normal in sigma(t).
"""

import dataclasses
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import diffusion_lessons.lesson05_training as l5
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


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(["linear", "cosine", "sigmoid"]),
    T=st.integers(50, 1000),
    p_mean=st.floats(-3.0, 2.0),
    p_std=st.floats(0.1, 3.0),
)
def test_edm_steps_put_each_drawn_sigma_on_the_first_step_that_reaches_it(
    seed, name, T, p_mean, p_std
):
    schedule = make_schedule(name, T)
    ab = schedule.alpha_bar.double()
    sigma = ((1 - ab) / ab).sqrt()  # (T + 1,), increasing in t
    g = torch.Generator().manual_seed(seed)
    drawn = (p_mean + p_std * torch.randn(500, generator=g).double()).exp()
    g = torch.Generator().manual_seed(seed)
    t = noise_levels.edm_steps(schedule, 500, g, p_mean, p_std)
    assert t.dtype == torch.long and t.min() >= 1 and t.max() <= T
    inside = (drawn.double() > sigma[1]) & (drawn.double() <= sigma[T])
    assert (sigma[t[inside]] >= drawn[inside].double() * (1 - 1e-9)).all()
    assert (sigma[t[inside] - 1] < drawn[inside].double() * (1 + 1e-9)).all()
    assert (t[drawn.double() <= sigma[1]] == 1).all()


@pytest.mark.parametrize(
    "lognormal, gamma",
    [({}, None), ({"p_mean": -0.4, "p_std": 1.4}, 2.0)],  # EDM's; between EDM and U
)
def test_the_noise_level_lever_swaps_only_how_t_is_drawn(lognormal, gamma):
    cfg = dataclasses.replace(PRESETS["tiny"], prediction="v", min_snr_gamma=gamma)
    schedule = make_schedule(cfg.schedule, cfg.model.T)
    torch.manual_seed(0)
    net = UNet(cfg.model)
    x0 = torch.rand((6, 1, 28, 28)) * 2 - 1
    labels = torch.arange(6)
    args = (net, x0, labels, schedule, 0.0)
    lesson_loss = l5.training_loss
    with noise_levels.use_edm_levels(**lognormal):
        edm = l5.training_loss(*args, torch.Generator().manual_seed(3), gamma, "v")
    # the same loss by hand: the log-normal's steps, then lesson 05's per-image loss
    g = torch.Generator().manual_seed(3)
    t = noise_levels.edm_steps(schedule, 6, g, **lognormal)
    eps = torch.randn(x0.shape, generator=g)
    xt = l5.q_sample(x0, t, schedule, eps=eps)
    pred = net(xt, t, labels)
    by_hand = l5.per_image_loss(pred, x0, eps, t, schedule, gamma, "v").mean()
    assert torch.allclose(edm, by_hand)
    assert l5.training_loss is lesson_loss  # restored


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
    "value", ["uniform", {"p_mean": -0.4}, {"p_mean": 0, "p_std": 0}, [-0.4, 1.4]]
)
def test_lever_refuses_a_noise_level_it_cannot_train_with_one_line(value):
    import lever

    with pytest.raises(SystemExit, match='"noise_levels" must be "edm" or'):
        lever.config({"prediction": "v", "noise_levels": value})
    assert lever.levels({"p_mean": -0.4, "p_std": 1.4}) == {
        "p_mean": -0.4,
        "p_std": 1.4,
    }
    assert lever.levels("edm") == {} and lever.levels(None) is None


@settings(max_examples=10, deadline=None)
@given(
    p_mean=st.floats(-2.0, 2.0),
    p_std=st.floats(0.3, 2.0),
    t0=st.integers(2, 1000),
)
def test_edm_steps_below_a_step_as_often_as_the_log_normal_says(p_mean, p_std, t0):
    # t < t0 exactly when the drawn ln sigma is at most ln sigma(t0 - 1)
    schedule = make_schedule("cosine", 1000)
    ab = schedule.alpha_bar.double()
    log_sigma = 0.5 * torch.log((1 - ab[t0 - 1]) / ab[t0 - 1])
    expected = torch.distributions.Normal(p_mean, p_std).cdf(log_sigma).item()
    g = torch.Generator().manual_seed(0)
    t = noise_levels.edm_steps(schedule, 100_000, g, p_mean, p_std)
    assert abs((t < t0).double().mean().item() - expected) < 0.006  # 4 std errors


def test_noise_level_facts_are_those_of_the_draws():
    facts = noise_levels.facts(make_schedule("cosine", 1000), n=100_000)
    assert abs(facts["uniform"]["below_100"] - 0.099) < 0.005
    assert abs(facts["uniform"]["above_500"] - 0.5) < 0.006
    assert facts["lower-t"]["median_t"] < facts["uniform"]["median_t"]
    assert facts["uniform"]["median_t"] < facts["higher-t"]["median_t"]
    assert facts["edm"]["below_100"] > facts["lower-t"]["below_100"]
