"""Sampling (lesson 06): one update for DDPM and DDIM, shapes, ranges, determinism, file
formats.
"""

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffusion_lessons.lesson02_schedules import log_snr, make_schedule
from diffusion_lessons.lesson04_unet import UNet, UNetConfig
from diffusion_lessons.lesson06_sampling import (
    chain_steps,
    default_t_min,
    digit_labels,
    load_samples,
    multistep_x0,
    reverse_step,
    sample,
    sampling_timesteps,
    save_samples,
)

MICRO = UNetConfig(channels=(8, 16), emb_dim=16, groups=4, T=100)


@given(
    name=st.sampled_from(["linear", "cosine", "sigmoid"]),
    T=st.integers(2, 1000),
    data=st.data(),
)
def test_ddim_with_eta_1_and_every_step_is_ddpm(name, T, data):
    """Eq. 6.3 with s = t - 1 and eta = 1 has Algorithm 2's coefficients (eq. 6.4,
    sigma^2 = beta~_t).
    """
    sch = make_schedule(name, T)
    t = data.draw(st.integers(2, T))
    xt, eps = (
        torch.randn(2, 1, 3, 3, dtype=torch.float64),
        torch.randn(2, 1, 3, 3, dtype=torch.float64),
    )
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    x_s, _ = reverse_step(xt, eps, t, t - 1, sch, eta=1.0, clip_x0=False, generator=g1)
    a, ab, ab_prev, b = (
        sch.alpha[t].item(),
        sch.alpha_bar[t].item(),
        sch.alpha_bar[t - 1].item(),
        sch.beta[t].item(),
    )
    z = torch.randn(xt.shape, generator=g2).double()
    sigma = ((1 - ab_prev) / (1 - ab) * b) ** 0.5
    ddpm = (xt - b / (1 - ab) ** 0.5 * eps) / a**0.5 + sigma * z
    torch.testing.assert_close(x_s, ddpm, rtol=1e-6, atol=1e-6)


@given(T=st.integers(1, 2000), data=st.data())
def test_sampling_timesteps_descend_from_T(T, data):
    steps = data.draw(st.integers(1, T))
    ts = sampling_timesteps(T, steps)
    assert ts[0] == T and ts == sorted(set(ts), reverse=True) and ts[-1] >= 1
    assert len(ts) == steps or steps == 1


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return UNet(MICRO).eval()


@pytest.mark.parametrize("sampler,steps", [("ddpm", 0), ("ddim", 10)])
def test_sample_shape_range_and_determinism(model, sampler, steps):
    sch = make_schedule("cosine", MICRO.T)
    labels = digit_labels("0123456789", 1)
    kwargs = dict(sampler=sampler, steps=steps or 1, eta=0.5)
    a = sample(model, sch, labels, generator=torch.Generator().manual_seed(3), **kwargs)
    b = sample(model, sch, labels, generator=torch.Generator().manual_seed(3), **kwargs)
    c = sample(model, sch, labels, generator=torch.Generator().manual_seed(4), **kwargs)
    assert a.shape == (10, 1, 28, 28) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_trajectory_ends_at_the_sample(model):
    """By default DDIM ends at t_min = T / 10; DDPM takes every one of the T steps."""
    sch = make_schedule("cosine", MICRO.T)
    for sampler, expected in [
        ("ddim", chain_steps(MICRO.T, 7, MICRO.T // 10)),
        ("ddpm", list(range(MICRO.T, 0, -1))),
    ]:
        x0, traj = sample(
            model,
            sch,
            torch.tensor([3, 5]),
            sampler=sampler,
            steps=7,
            generator=torch.Generator().manual_seed(0),
            trajectory=True,
        )
        assert [e["t"] for e in traj] == expected
        torch.testing.assert_close(traj[-1]["x0_pred"], x0)
    assert chain_steps(MICRO.T, 7, 1) == sampling_timesteps(MICRO.T, 7)


@given(T=st.integers(1, 10_000))
def test_default_t_min_is_a_tenth_of_the_chain(T):
    """A valid step for any T, at most a tenth of the way up; DDPM keeps every step."""
    assert 1 <= default_t_min(T) <= max(1, T / 10)
    assert default_t_min(T, "ddpm") == 1


def test_default_t_min_of_the_book():
    assert default_t_min(1000) == 100


@given(T=st.integers(1, 2000), data=st.data())
def test_chain_steps_descend_from_T_to_t_min(T, data):
    """For any T, t_min and number of steps that fits between them: ``steps`` distinct
    steps, from T down to t_min exactly (one step is T alone)."""
    t_min = data.draw(st.integers(1, T), label="t_min")
    steps = data.draw(st.integers(1, T - t_min + 1), label="steps")
    ts = chain_steps(T, steps, t_min)
    assert ts[0] == T and ts == sorted(set(ts), reverse=True)
    assert len(ts) == steps
    assert ts[-1] == (T if steps == 1 else t_min)


@given(
    t_min=st.integers(1, MICRO.T),
    data=st.data(),
    sampler=st.sampled_from(["ddim", "ddpm", "dpm++2m"]),
)
def test_chain_ends_at_t_min(model, t_min, data, sampler):
    """With t_min, the chain spreads its steps from T down to t_min exactly, and the
    sample is the x0_pred made at t_min (the jump to t = 0).
    """
    steps = data.draw(st.integers(1, MICRO.T - t_min + 1), label="steps")
    sch = make_schedule("cosine", MICRO.T)
    g = torch.Generator().manual_seed(0)
    x0, traj = sample(
        model,
        sch,
        torch.tensor([4]),
        sampler=sampler,
        steps=steps,
        t_min=t_min,
        generator=g,
        trajectory=True,
    )
    ts = [e["t"] for e in traj]
    assert ts[0] == MICRO.T and ts == sorted(set(ts), reverse=True)
    assert len(ts) == (MICRO.T - t_min + 1 if sampler == "ddpm" else steps)
    assert ts[-1] == t_min or len(ts) == 1  # one step: only T itself
    torch.testing.assert_close(traj[-1]["x0_pred"], x0)


@given(
    name=st.sampled_from(["linear", "cosine", "sigmoid"]),
    T=st.integers(3, 1000),
    data=st.data(),
)
def test_multistep_x0_is_exact_for_a_guess_linear_in_lambda(name, T, data):
    """DPM-Solver++(2M): if the clean-image guess moves linearly in the log SNR, x0 =
    a + b lambda, then D is the guess at the middle of the step, a + b (lambda_t +
    lambda_s) / 2, for any three steps t_prev > t > s >= 1 of any schedule. A guess
    that does not move gives D = x0_pred: DDIM's step."""
    sch = make_schedule(name, T)
    t_prev = data.draw(st.integers(3, T), label="t_prev")
    t = data.draw(st.integers(2, t_prev - 1), label="t")
    s = data.draw(st.integers(1, t - 1), label="s")
    coef = st.floats(-10, 10, allow_nan=False)
    a, b = (
        torch.tensor(
            data.draw(st.lists(coef, min_size=3, max_size=3)), dtype=torch.float64
        )
        for _ in "ab"
    )
    lam = {k: log_snr(sch)[k - 1].item() / 2 for k in (t_prev, t, s)}
    D = multistep_x0(a + b * lam[t], a + b * lam[t_prev], t_prev, t, s, sch)
    torch.testing.assert_close(D, a + b * (lam[t] + lam[s]) / 2, rtol=1e-9, atol=1e-9)
    assert torch.equal(multistep_x0(a, a, t_prev, t, s, sch), a)
    assert multistep_x0(a, None, None, t, s, sch) is a  # first step: DDIM
    assert multistep_x0(a, b, t_prev, t, 0, sch) is a  # the jump to t = 0: DDIM


def test_bad_arguments(model):
    sch = make_schedule("cosine", MICRO.T)
    with pytest.raises(ValueError, match="Unknown sampler"):
        sample(model, sch, torch.tensor([1]), sampler="euler")
    with pytest.raises(ValueError, match="t_min must lie"):
        sample(model, sch, torch.tensor([1]), t_min=0)
    with pytest.raises(ValueError, match="dpm\\+\\+2m is deterministic"):
        sample(model, sch, torch.tensor([1]), sampler="dpm++2m", eta=0.5)
    with pytest.raises(ValueError, match="steps must lie"):
        sample(model, sch, torch.tensor([1]), steps=0)
    with pytest.raises(ValueError, match="digits must be"):
        digit_labels("12a")


def test_sample_files_exactly_as_specified(tmp_path):
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    save_samples(tmp_path / "s.npz", x, labels)
    data = np.load(tmp_path / "s.npz")
    assert set(data.files) == {"images", "labels"}
    assert data["images"].shape == (6, 28, 28) and data["images"].dtype == np.float32
    assert (
        data["labels"].dtype == np.int64 and data["labels"].tolist() == labels.tolist()
    )
    assert 0 <= data["images"].min() and data["images"].max() <= 1
    back, back_labels = load_samples(tmp_path / "s.npz")
    torch.testing.assert_close(back, x, atol=1e-6, rtol=0)
    save_samples(tmp_path / "s.png", x, labels, nrow=2)
    from PIL import Image

    assert Image.open(tmp_path / "s.png").size == (2 * 30 + 2, 3 * 30 + 2)
    with pytest.raises(ValueError, match=".png"):
        save_samples(tmp_path / "s.jpg", x, labels)
    np.savez(
        tmp_path / "bad.npz",
        images=np.full((2, 28, 28), 3.0, np.float32),
        labels=np.zeros(2, np.int64),
    )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_samples(tmp_path / "bad.npz")


def test_cli_writes_npz_and_png(tmp_path):
    from diffusion_lessons.cli import main
    from diffusion_lessons.lesson05_training import PRESETS, train

    cfg = dataclasses.replace(
        PRESETS["tiny"],
        model=MICRO,
        dataset="mnist-5k",
        steps=2,
        batch_size=8,
        warmup=1,
        threads=1,
    )
    train(cfg, tmp_path / "run", progress=False)
    for name in ("s.npz", "s.png"):
        main(
            [
                "sample",
                "--checkpoint",
                str(tmp_path / "run" / "checkpoint.pt"),
                "--digits",
                "07",
                "--per-digit",
                "3",
                "--steps",
                "5",
                "--seed",
                "0",
                "--out",
                str(tmp_path / name),
            ]
        )
    data = np.load(tmp_path / "s.npz")
    assert data["images"].shape == (6, 28, 28) and data["labels"].tolist() == [
        0,
        0,
        0,
        7,
        7,
        7,
    ]


@pytest.mark.parametrize("eta", [-0.1, 1.01, 2.0, float("nan")])
def test_eta_outside_zero_one_is_refused_with_a_clear_message(eta):
    """eta > 1 would add more fresh noise than the true reverse step has (and soon
    need a negative variance); the update refuses it, naming the allowed range.
    """
    sch = make_schedule("cosine", 50)
    xt = torch.zeros(1, 1, 4, 4)
    with pytest.raises(ValueError, match="eta must be between 0"):
        reverse_step(xt, xt, 10, 5, sch, eta=eta)


def test_every_entry_point_and_the_book_sample_with_the_default_steps():
    """``sample``, `diffusion-lessons sample` and `evaluate`, and chapter 06's sentence
    naming the default, all use DEFAULT_STEPS: a new choice cannot leave one behind.
    """
    import inspect
    import re
    from pathlib import Path

    from diffusion_lessons.cli import build_parser
    from diffusion_lessons.lesson06_sampling import DEFAULT_STEPS

    assert inspect.signature(sample).parameters["steps"].default == DEFAULT_STEPS
    for argv in (["sample", "--out", "x.npz"], ["evaluate"]):
        args = build_parser(argv[0]).parse_args(argv)
        assert args.steps == DEFAULT_STEPS, argv[0]
    text = (
        Path(__file__).resolve().parents[1] / "docs/lessons/06-sampling.md"
    ).read_text()
    stated = re.findall(r"draws with \*\*DDIM, (\d+) steps\*\*", text)
    assert stated and {int(n) for n in stated} == {DEFAULT_STEPS}
