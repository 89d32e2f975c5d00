"""Training (lesson 05): the loss goes down, checkpoints lose nothing, bad input is
refused clearly.
"""

import dataclasses
import math
import os
import signal

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lessons.lesson02_schedules import linear_schedule, make_schedule
from diffusion_lessons.lesson04_unet import UNET_PRESETS, UNet, UNetConfig
from diffusion_lessons.lesson05_training import (
    PRESETS,
    CheckpointError,
    TrainConfig,
    diffusion_loss,
    draw_steps,
    drop_labels,
    ema_update,
    learning_rate,
    load_checkpoint,
    load_trained,
    train,
)

MICRO = UNetConfig(channels=(8, 16), emb_dim=16, groups=4)
FAST = dataclasses.replace(
    PRESETS["tiny"],
    model=MICRO,
    dataset="mnist-5k",
    steps=12,
    batch_size=16,
    warmup=3,
    checkpoint_every=4,
    sample_every=6,
    threads=1,
)


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    model = UNet(MICRO)
    x0 = torch.rand(16, 1, 28, 28) * 2 - 1
    labels = torch.arange(16) % 10
    sch = linear_schedule(1000)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def loss_at(seed):
        return diffusion_loss(
            model, x0, labels, sch, 0.0, torch.Generator().manual_seed(seed)
        )

    with torch.no_grad():
        before = sum(loss_at(s).item() for s in range(4))
    for step in range(40):
        loss = loss_at(100 + step)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = sum(loss_at(s).item() for s in range(4))
    assert after < 0.7 * before


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    full = train(FAST, tmp_path / "full", progress=False)
    half = train(dataclasses.replace(FAST, steps=8), tmp_path / "half", progress=False)
    # continue the 8-step run to 12 steps: the schedule of learning rates must be the
    # 12-step one, so the first leg is trained with the 12-step config and stopped early
    # by a KeyboardInterrupt
    assert len(half["losses"]) == 8
    leg = tmp_path / "leg"
    calls = {"n": 0}

    def stop_after_first_snapshot(step, ema):
        calls["n"] += 1
        os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C

    # Ctrl-C at step 6 saves a checkpoint
    first = train(FAST, leg, progress=False, callback=stop_after_first_snapshot)
    assert first["stopped"] == "interrupted"
    assert load_checkpoint(leg / "checkpoint.pt")["step"] == 6
    resumed = train(FAST, leg, resume=True, progress=False)
    assert resumed["losses"] == full["losses"]
    a, b = (
        load_checkpoint(tmp_path / "full" / "checkpoint.pt"),
        load_checkpoint(leg / "checkpoint.pt"),
    )
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key


def test_checkpoint_roundtrip_and_errors(tmp_path):
    train(dataclasses.replace(FAST, steps=4), tmp_path, progress=False)
    model, schedule, cfg = load_trained(tmp_path / "checkpoint.pt")
    assert cfg.model == MICRO and schedule.T == MICRO.T and not model.training
    assert not list(tmp_path.glob("*.tmp")), (
        "atomic save must not leave temporary files"
    )
    with pytest.raises(CheckpointError, match="No checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((tmp_path / "checkpoint.pt").read_bytes()[:500])
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(corrupt)
    other = dataclasses.replace(FAST, model=UNET_PRESETS["tiny"])
    with pytest.raises(CheckpointError, match="same --preset"):
        train(other, tmp_path, resume=True, progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    import diffusion_lessons.lesson05_training as l5

    real = l5.training_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 7 else loss

    monkeypatch.setattr(l5, "training_loss", poisoned)
    result = train(FAST, tmp_path, progress=False)
    assert result["stopped"].startswith("loss became nan") and result["step"] == 6
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4
    assert "last good checkpoint is kept" in capsys.readouterr().out


@given(p=st.floats(0.0, 0.9), seed=st.integers(0, 1000))
def test_label_dropout_rate(p, seed):
    labels = torch.randint(
        0, 10, (20_000,), generator=torch.Generator().manual_seed(seed)
    )
    dropped = drop_labels(labels, p, 10, torch.Generator().manual_seed(seed + 1))
    rate = (dropped == 10).double().mean().item()
    assert abs(rate - p) < 0.02
    kept = dropped != 10
    assert torch.equal(dropped[kept], labels[kept])


@given(decay=st.floats(0.0, 0.999))
def test_ema_update_is_the_convex_combination(decay):
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    before = [p.clone() for p in a.parameters()]
    ema_update(a, b, decay)
    for p0, p_ema, p in zip(before, a.parameters(), b.parameters()):
        torch.testing.assert_close(p_ema, decay * p0 + (1 - decay) * p)


@given(step=st.integers(0, 5000))
def test_learning_rate_warms_up_then_decays(step):
    cfg = TrainConfig(steps=5000, warmup=100, lr=1e-3)
    lr = learning_rate(step, cfg)
    assert 0 <= lr <= cfg.lr
    if step < 100:
        assert lr == pytest.approx(cfg.lr * (step + 1) / 100)
    elif step < 4999:
        assert learning_rate(step + 1, cfg) <= lr


def test_invalid_config_is_refused():
    with pytest.raises(ValueError, match="p_uncond"):
        TrainConfig(p_uncond=1.5)
    with pytest.raises(ValueError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(ValueError, match="prediction must be eps or v"):
        TrainConfig(prediction="x0")


def test_export_keeps_what_sampling_needs_and_refuses_resume(tmp_path):
    from diffusion_lessons.lesson05_training import export_checkpoint

    train(dataclasses.replace(FAST, steps=4), tmp_path / "run", progress=False)
    small = export_checkpoint(
        tmp_path / "run" / "checkpoint.pt", tmp_path / "run2" / "checkpoint.pt"
    )
    assert (
        small.stat().st_size < (tmp_path / "run" / "checkpoint.pt").stat().st_size / 2
    )
    a, _, _ = load_trained(tmp_path / "run" / "checkpoint.pt")
    b, _, _ = load_trained(small)
    x, t, y = torch.randn(2, 1, 28, 28), torch.tensor([5, 500]), torch.tensor([1, 2])
    torch.testing.assert_close(a(x, t, y), b(x, t, y))
    with pytest.raises(CheckpointError, match="cannot be resumed"):
        train(
            dataclasses.replace(FAST, steps=8),
            tmp_path / "run2",
            resume=True,
            progress=False,
        )


def test_committed_presets_table_matches_the_presets():
    """Chapter 05 includes docs/figures/05_presets.md; it must say what PRESETS says."""
    from pathlib import Path

    from diffusion_lessons.lesson05_training import presets_table_markdown

    table = Path(__file__).resolve().parents[1] / "docs" / "figures" / "05_presets.md"
    assert table.read_text() == presets_table_markdown()


@given(
    d=st.floats(0.5, 0.9999),
    steps=st.integers(1, 3000),
    schedule=st.sampled_from(["linear", "cosine", "sigmoid"]),
)
def test_recipe_facts_follow_eq_5_5(d, steps, schedule):
    """The decay's warm-up never keeps more of the random start than a fixed d (each
    factor is at most d); the step where it reaches d is the first one; the SNR weight
    falls with t (eq. 2.5)."""
    from diffusion_lessons.lesson05_training import (
        PRESETS,
        ema_decay_at,
        recipe_facts,
    )

    cfg = dataclasses.replace(
        PRESETS["tiny"], ema_decay=d, steps=steps, schedule=schedule
    )
    facts = recipe_facts(cfg)
    k = facts["ema_full_decay_step"]
    if k is None:
        assert all(ema_decay_at(j, cfg) < d for j in range(steps))
    else:
        assert ema_decay_at(k, cfg) >= d and (k == 0 or ema_decay_at(k - 1, cfg) < d)
    for share in facts["ema_start_share"].values():
        assert 0 <= share["warmup"] <= share["fixed"] <= 1
    snr = facts["snr"]
    assert snr["1"] > snr["10"] > snr["500"] > snr["900"] > 0
    assert facts["snr_1_over_500"] == pytest.approx(snr["1"] / snr["500"])


def _draw(seed: int, t_max: int, n: int = 4):
    """x0 in [-1, 1], eps ~ N(0, I) and steps t in 1..t_max, float64, (n, 1, 6, 6)."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand(n, 1, 6, 6, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(n, 1, 6, 6, generator=g, dtype=torch.float64)
    return x0, eps, torch.randint(1, t_max + 1, (n,), generator=g)


@given(
    seed=st.integers(0, 10**6),
    schedule=st.sampled_from(["linear", "cosine", "sigmoid"]),
)
def test_eps_from_v_inverts_v_at_every_step(seed, schedule):
    """Eq. 5.7 undoes eq. 5.6: the v of (x0, eps) and the x_t they make give eps back,
    at any step 1..T of any schedule."""
    from diffusion_lessons.lesson01_forward_noise import q_sample
    from diffusion_lessons.lesson02_schedules import make_schedule
    from diffusion_lessons.lesson05_training import eps_from_v, v_target

    sch = make_schedule(schedule, 1000)
    sch = dataclasses.replace(sch, alpha_bar=sch.alpha_bar.double())
    x0, eps, t = _draw(seed, 1000)
    xt = q_sample(x0, t, sch, eps=eps)
    v = v_target(x0, eps, t, sch)
    torch.testing.assert_close(eps_from_v(v, xt, t, sch), eps, rtol=0, atol=1e-9)


@given(
    seed=st.integers(0, 10**6),
    schedule=st.sampled_from(["linear", "cosine", "sigmoid"]),
    gamma=st.one_of(st.none(), st.floats(0.1, 20.0)),
)
def test_v_loss_with_its_matching_weight_is_the_eps_loss(seed, schedule, gamma):
    """For any output v_hat, the v loss weighted min(SNR, gamma) / (SNR + 1) equals the
    Min-SNR eps loss of the noise that v_hat implies (eq. 5.7): the two targets differ
    in what the network must output, not in what the loss rewards. Without Min-SNR the
    v loss is the eps loss times (SNR + 1) / SNR."""
    from diffusion_lessons.lesson01_forward_noise import q_sample
    from diffusion_lessons.lesson02_schedules import make_schedule
    from diffusion_lessons.lesson05_training import eps_from_v, per_image_loss

    sch = make_schedule(schedule, 1000)
    x0, eps, t = _draw(seed, 1000)
    x0, eps = x0.float(), eps.float()
    xt = q_sample(x0, t, sch, eps=eps)
    v_hat = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed + 1))
    eps_hat = eps_from_v(v_hat, xt, t, sch)
    by_v = per_image_loss(v_hat, x0, eps, t, sch, gamma, prediction="v")
    by_eps = per_image_loss(eps_hat, x0, eps, t, sch, gamma, prediction="eps")
    if gamma is None:
        snr = (sch.alpha_bar / (1 - sch.alpha_bar))[t]
        by_eps = by_eps * ((snr + 1) / snr).float()
    torch.testing.assert_close(by_v, by_eps, rtol=1e-4, atol=1e-6)


def test_a_v_run_is_sampled_as_a_noise_predictor(tmp_path):
    """A run trained to predict v loads as a noise predictor: its output is eq. 5.7
    applied to the network's v, and the stored config says what it predicts."""
    from diffusion_lessons.lesson05_training import EpsFromV, eps_from_v

    cfg = dataclasses.replace(FAST, steps=4, prediction="v")
    seen = []
    train(cfg, tmp_path, progress=False, callback=lambda s, m: seen.append(m))
    model, sch, stored = load_trained(tmp_path / "checkpoint.pt")
    assert stored.prediction == "v" and isinstance(model, EpsFromV)
    assert seen and all(isinstance(m, EpsFromV) for m in seen)
    x, t, y = torch.randn(2, 1, 28, 28), torch.tensor([5, 900]), torch.tensor([1, 2])
    with torch.no_grad():
        torch.testing.assert_close(
            model(x, t, y), eps_from_v(model.net(x, t, y), x, t, sch)
        )


@given(
    seed=st.integers(0, 10**6),
    gamma=st.one_of(st.none(), st.floats(0.1, 20.0)),
    p_uncond=st.floats(0.0, 0.9),
)
def test_the_training_loss_is_the_taught_loss(seed, gamma, p_uncond):
    """train_step minimises training_loss; with the eps target it is diffusion_loss
    (the code of section 5.9 and of exercise 5.2) to the last bit."""
    from diffusion_lessons.lesson05_training import training_loss

    torch.manual_seed(0)
    model = UNet(MICRO)
    x0 = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    labels = torch.arange(8) % 10
    sch = linear_schedule(1000)
    taught, trained = (
        f(model, x0, labels, sch, p_uncond, torch.Generator().manual_seed(seed), gamma)
        for f in (diffusion_loss, training_loss)
    )
    assert torch.equal(taught, trained)


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    name=st.sampled_from(["linear", "cosine", "sigmoid"]),
    T=st.integers(50, 1000),
    mean=st.floats(-3.0, 2.0),
    std=st.floats(0.1, 3.0),
)
def test_drawn_steps_put_each_drawn_sigma_on_the_first_step_that_reaches_it(
    seed, name, T, mean, std
):
    """Eq. 5.8: sigma(t - 1) < drawn sigma <= sigma(t) wherever the schedule reaches."""
    schedule = make_schedule(name, T)
    ab = schedule.alpha_bar.double()
    sigma = ((1 - ab) / ab).sqrt()  # (T + 1,), increasing in t
    g = torch.Generator().manual_seed(seed)
    drawn = (mean + std * torch.randn(500, generator=g).double()).exp()
    g = torch.Generator().manual_seed(seed)
    t = draw_steps(schedule, 500, g, (mean, std))
    assert t.dtype == torch.long and t.min() >= 1 and t.max() <= T
    inside = (drawn > sigma[1]) & (drawn <= sigma[T])
    assert (sigma[t[inside]] >= drawn[inside] * (1 - 1e-9)).all()
    assert (sigma[t[inside] - 1] < drawn[inside] * (1 + 1e-9)).all()
    assert (t[drawn <= sigma[1]] == 1).all()


@settings(max_examples=10, deadline=None)
@given(mean=st.floats(-2.0, 2.0), std=st.floats(0.3, 2.0), t0=st.integers(2, 1000))
def test_drawn_steps_fall_below_a_step_as_often_as_the_log_normal_says(mean, std, t0):
    # t < t0 exactly when the drawn ln sigma is at most ln sigma(t0 - 1)
    schedule = make_schedule("cosine", 1000)
    ab = schedule.alpha_bar.double()
    log_sigma = 0.5 * torch.log((1 - ab[t0 - 1]) / ab[t0 - 1])
    expected = torch.distributions.Normal(mean, std).cdf(log_sigma).item()
    g = torch.Generator().manual_seed(0)
    t = draw_steps(schedule, 100_000, g, (mean, std))
    assert abs((t < t0).double().mean().item() - expected) < 0.006  # 4 std errors


LEVELS = st.one_of(
    st.none(), st.tuples(st.floats(-3.0, 2.0), st.floats(0.1, 3.0))
)  # None: uniform t; else (mean, std) of eq. 5.8


@settings(max_examples=20, deadline=None)
@given(
    noise_levels=LEVELS,
    seed=st.integers(0, 2**31 - 1),
    gamma=st.one_of(st.none(), st.floats(0.1, 20.0)),
    prediction=st.sampled_from(["eps", "v"]),
)
def test_the_noise_levels_change_only_how_t_is_drawn(
    noise_levels, seed, gamma, prediction
):
    """training_loss with any noise_levels is eqs. 5.1, 5.2/5.6 and 5.3 with
    draw_steps's t; None draws t ~ U{1..T} to the bit, as diffusion_loss does."""
    from diffusion_lessons.lesson01_forward_noise import q_sample
    from diffusion_lessons.lesson05_training import per_image_loss, training_loss

    schedule = make_schedule("cosine", 1000)
    torch.manual_seed(0)
    net = UNet(MICRO)
    x0 = torch.rand((6, 1, 28, 28)) * 2 - 1
    labels = torch.arange(6)
    loss = training_loss(
        net, x0, labels, schedule, 0.0, torch.Generator().manual_seed(seed), gamma,
        prediction, noise_levels,
    )  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    t = draw_steps(schedule, 6, g, noise_levels)
    if noise_levels is None:
        g = torch.Generator().manual_seed(seed)
        assert torch.equal(t, torch.randint(1, 1001, (6,), generator=g))
    eps = torch.randn(x0.shape, generator=g)
    pred = net(q_sample(x0, t, schedule, eps=eps), t, labels)
    by_hand = per_image_loss(pred, x0, eps, t, schedule, gamma, prediction).mean()
    assert torch.allclose(loss, by_hand)


@given(
    mean=st.floats(allow_nan=True, allow_infinity=True),
    std=st.floats(allow_nan=True, allow_infinity=True),
)
def test_noise_levels_are_refused_unless_finite_with_a_positive_std(mean, std):
    ok = math.isfinite(mean) and math.isfinite(std) and std > 0
    if ok:
        assert TrainConfig(noise_levels=(mean, std)).noise_levels == (mean, std)
    else:
        with pytest.raises(ValueError, match="noise_levels must be None"):
            TrainConfig(noise_levels=(mean, std))


@given(noise_levels=LEVELS)
def test_a_noise_level_config_survives_a_checkpoint(noise_levels):
    """A checkpoint's config goes through JSON (tuples come back as lists) and must
    come back equal; one written before the field existed loads as uniform t."""
    import json

    from diffusion_lessons.lesson05_training import config_from_dict, config_to_dict

    cfg = TrainConfig(noise_levels=noise_levels)
    assert config_from_dict(json.loads(json.dumps(config_to_dict(cfg)))) == cfg
    old = config_to_dict(TrainConfig())
    del old["noise_levels"]
    assert config_from_dict(old).noise_levels is None


@pytest.mark.parametrize("bad", [(0.4,), (0.4, 1.4, 2.0)])
def test_noise_levels_need_exactly_a_mean_and_a_std(bad):
    with pytest.raises(ValueError, match="noise_levels must be None"):
        TrainConfig(noise_levels=bad)
