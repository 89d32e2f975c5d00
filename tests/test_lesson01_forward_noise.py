"""Properties of the forward process (lesson 01): the closed form is the chain, for
every t and schedule.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffusion_lessons.lesson01_forward_noise import (
    chain_vs_closed_form,
    forward_step,
    linear_schedule,
    q_sample,
    schedule_from_betas,
)
from diffusion_lessons.lesson02_schedules import make_schedule

schedule_names = st.sampled_from(["linear", "cosine", "sigmoid"])


@given(name=schedule_names, T=st.integers(1, 400), data=st.data())
def test_closed_form_matches_chain_moments(name, T, data):
    """Iterating eq. 1.1 t times has mean sqrt(alpha_bar_t) x0 and variance 1 -
    alpha_bar_t (eq. 1.2), exactly.
    """
    sch = make_schedule(name, T)
    t = data.draw(st.integers(1, T))
    x0 = data.draw(st.floats(-1, 1))
    mean, var = x0, 0.0
    for s in range(1, t + 1):  # propagate the moments of eq. 1.1 step by step
        b = sch.beta[s].item()
        mean, var = math.sqrt(1 - b) * mean, (1 - b) * var + b
    ab = sch.alpha_bar[t].item()
    assert mean == pytest.approx(math.sqrt(ab) * x0, abs=1e-9)
    assert var == pytest.approx(1 - ab, abs=1e-9)


@given(seed=st.integers(0, 2**16), t=st.sampled_from([1, 5, 50, 200]))
def test_sampled_chain_matches_closed_form(seed, t):
    """Monte Carlo: the chain's samples have the closed form's mean and std (to sampling
    error).
    """
    sch = linear_schedule(200)
    x0 = torch.tensor([[[[0.8]]]])
    chain, closed = chain_vs_closed_form(x0, sch, [t], n=20_000, seed=seed)
    ab = sch.alpha_bar[t].item()
    for xs in (chain[0], closed[0]):
        assert xs.mean().item() == pytest.approx(math.sqrt(ab) * 0.8, abs=0.03)
        assert xs.std().item() == pytest.approx(math.sqrt(1 - ab), abs=0.03)


@given(
    B=st.integers(1, 6),
    C=st.integers(1, 3),
    H=st.integers(1, 9),
    W=st.integers(1, 9),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    data=st.data(),
)
def test_q_sample_with_zero_noise_is_scaled_x0(B, C, H, W, dtype, data):
    sch = linear_schedule(100)
    x0 = torch.rand(B, C, H, W, dtype=dtype) * 2 - 1
    t = torch.tensor(data.draw(st.lists(st.integers(0, 100), min_size=B, max_size=B)))
    xt = q_sample(x0, t, sch, eps=torch.zeros_like(x0))
    assert xt.shape == x0.shape and xt.dtype == dtype
    expected = sch.alpha_bar[t].sqrt().to(dtype).view(B, 1, 1, 1) * x0
    torch.testing.assert_close(xt, expected)


@given(B=st.integers(1, 5), seed=st.integers(0, 1000))
def test_q_sample_is_deterministic_for_a_generator(B, seed):
    sch = linear_schedule(50)
    x0 = torch.zeros(B, 1, 4, 4)
    a = q_sample(x0, 10, sch, generator=torch.Generator().manual_seed(seed))
    b = q_sample(x0, 10, sch, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(a, b)


def test_t_zero_is_the_clean_image_and_t_T_is_almost_noise():
    sch = linear_schedule(1000)
    x0 = torch.rand(3, 1, 8, 8) * 2 - 1
    torch.testing.assert_close(q_sample(x0, 0, sch), x0)
    assert sch.alpha_bar[sch.T].item() < 1e-4


def test_forward_step_shape_and_variance():
    sch = linear_schedule(10)
    xt = forward_step(
        torch.zeros(4000, 1, 2, 2), 10, sch, generator=torch.Generator().manual_seed(0)
    )
    assert xt.shape == (4000, 1, 2, 2)
    assert xt.var().item() == pytest.approx(sch.beta[10].item(), rel=0.1)


@pytest.mark.parametrize("bad_t", [-1, 101, torch.tensor([0, 200])])
def test_q_sample_rejects_t_outside_range(bad_t):
    with pytest.raises(ValueError, match=r"t must lie in 0..T"):
        q_sample(torch.zeros(2, 1, 4, 4), bad_t, linear_schedule(100))


def test_q_sample_rejects_bad_shapes():
    sch = linear_schedule(100)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        q_sample(torch.zeros(28, 28), 3, sch)
    with pytest.raises(ValueError, match="one step per image"):
        q_sample(torch.zeros(2, 1, 4, 4), torch.tensor([1, 2, 3]), sch)
    with pytest.raises(ValueError, match="eps must have the shape"):
        q_sample(torch.zeros(2, 1, 4, 4), 3, sch, eps=torch.zeros(2, 1, 4, 5))


@pytest.mark.parametrize(
    "betas", [[0.0, 0.1], [0.5, 1.0], [0.1, -0.2], [float("nan")], []]
)
def test_schedule_from_betas_rejects_invalid(betas):
    with pytest.raises(ValueError):
        schedule_from_betas(torch.tensor(betas))


def test_run_writes_figures(tmp_path):
    from diffusion_lessons.lesson01_forward_noise import run

    result = run(tmp_path, quick=True)
    for f in result["files"]:
        assert f.exists() and f.stat().st_size > (1000 if f.suffix == ".png" else 100)
    by_t = result["recognisability"]["by_t"]
    assert by_t[0]["kept"] == [1.0] * 10  # every class keeps all of its clean accuracy
    assert by_t[0]["all"] > by_t[700]["all"] > 0.1  # lost with the noise, above chance


def test_template_matcher_reads_each_scaled_template_as_its_class():
    from diffusion_lessons.lesson01_forward_noise import template_matcher

    schedule = linear_schedule(1000)
    templates = torch.randn(10, 16, generator=torch.Generator().manual_seed(0))
    for t in (0, 500, 1000):
        x = schedule.alpha_bar[t].float().sqrt() * templates  # the mean of each class
        pred = template_matcher(x.view(10, 1, 4, 4), t, schedule, templates)
        assert pred.tolist() == list(range(10))
