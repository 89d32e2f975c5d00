"""Properties of the noise schedules (lesson 02)."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffusion_lessons.lesson02_schedules import (
    SCHEDULES,
    band_shares,
    cosine_schedule,
    linear_schedule,
    log_snr,
    make_schedule,
    matcher_shares,
    schedule_facts,
    sigmoid_schedule,
)

schedule_names = st.sampled_from(sorted(SCHEDULES))


@given(name=schedule_names, T=st.integers(1, 2000))
def test_alpha_bar_strictly_decreasing_in_unit_interval(name, T):
    sch = make_schedule(name, T)
    ab = sch.alpha_bar
    assert len(ab) == T + 1 and len(sch.beta) == T + 1 and len(sch.alpha) == T + 1
    assert ab[0].item() == 1.0
    assert (ab[1:] > 0).all() and (ab[1:] < 1).all()
    assert (ab[1:] < ab[:-1]).all()


@given(name=schedule_names, T=st.integers(1, 2000))
def test_beta_in_open_unit_interval_and_products_consistent(name, T):
    sch = make_schedule(name, T)
    beta = sch.beta[1:]
    assert (beta > 0).all() and (beta < 1).all()
    assert sch.beta[0].item() == 0.0
    torch.testing.assert_close(sch.alpha, 1 - sch.beta)
    torch.testing.assert_close(sch.alpha_bar, torch.cumprod(sch.alpha, 0))


@given(name=schedule_names, T=st.integers(2, 2000))
def test_log_snr_strictly_decreasing(name, T):
    s = log_snr(make_schedule(name, T))
    assert s.shape == (T,)
    assert (s[1:] < s[:-1]).all()


def test_linear_schedule_matches_ddpm():
    sch = linear_schedule(1000)
    assert sch.beta[1].item() == pytest.approx(1e-4)
    assert sch.beta[1000].item() == pytest.approx(0.02)
    assert sch.alpha_bar[1000].item() == pytest.approx(4.036e-5, rel=1e-3)


@given(T=st.integers(10, 4000), s=st.floats(0.0, 0.05))
def test_cosine_schedule_matches_paper_definition(T, s):
    """alpha_bar_t = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) pi/2), wherever the 0.999
    clip is inactive.
    """
    sch = cosine_schedule(T, s=s)
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in range(0, T, max(1, T // 17)):
        if t == 0 or sch.beta[1 : t + 1].max().item() < 0.999:
            assert sch.alpha_bar[t].item() == pytest.approx(
                f(t) / f(0), rel=1e-9, abs=1e-12
            )
    assert sch.beta.max().item() <= 0.999


def test_sigmoid_schedule_is_symmetric_by_default():
    sch = sigmoid_schedule(1000)
    assert sch.alpha_bar[500].item() == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize(
    "make",
    [
        lambda: linear_schedule(0),
        lambda: linear_schedule(2.5),
        lambda: linear_schedule(10, 0.02, 1e-4),
        lambda: linear_schedule(10, 0.0, 0.02),
        lambda: linear_schedule(10, 1e-4, 1.0),
        lambda: cosine_schedule(0),
        lambda: cosine_schedule(10, s=-1),
        lambda: sigmoid_schedule(10, start=3, end=-3),
        lambda: sigmoid_schedule(10, tau=0),
        lambda: make_schedule("quadratic"),
    ],
)
def test_invalid_parameters_raise_clear_value_error(make):
    with pytest.raises(ValueError, match=r"(got|choose)"):
        make()


def test_run_writes_figures(tmp_path):
    from diffusion_lessons.lesson02_schedules import run

    result = run(tmp_path, quick=True)
    for f in result["files"]:
        assert f.exists() and f.stat().st_size > 1000


def test_schedule_from_alpha_bar_refuses_a_missing_alpha_bar_0():
    from diffusion_lessons.lesson02_schedules import schedule_from_alpha_bar

    with pytest.raises(ValueError, match="alpha_bar_0 = 1"):
        schedule_from_alpha_bar(torch.tensor([0.9, 0.5, 0.1]), "shifted")


@given(
    name=schedule_names,
    T=st.integers(1, 2000),
    edges=st.lists(st.floats(-30, 30), min_size=1, max_size=5, unique=True),
)
def test_band_shares_count_every_step_once(name, T, edges):
    sch = make_schedule(name, T)
    edges = sorted(edges)
    shares = band_shares(sch, edges)
    assert len(shares) == len(edges) + 1
    assert sum(shares) == pytest.approx(1.0)
    lam = log_snr(sch).double()
    bounds = [-math.inf, *edges, math.inf]
    for share, lo, hi in zip(shares, bounds[:-1], bounds[1:]):
        assert share == pytest.approx(((lam > lo) & (lam <= hi)).double().mean().item())


@given(name=schedule_names, T=st.integers(4, 2000))
def test_schedule_facts_agree_with_the_schedule(name, T):
    sch = make_schedule(name, T)
    facts = schedule_facts(sch)
    for key, level in (("t_half_signal", 0.5), ("t_one_percent_signal", 0.01)):
        t = facts[key]
        if t is None:
            assert (sch.alpha_bar >= level).all()
        else:
            assert sch.alpha_bar[t] < level <= sch.alpha_bar[t - 1]
    assert facts["beta_T"] <= 0.999 + 1e-9
    assert facts["log_snr_T"] == pytest.approx(log_snr(sch)[-1].item())
    assert sum(facts["band_shares"]) == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_matcher_shares_are_shares_of_disjoint_events(name):
    from diffusion_lessons.data import load_digits
    from diffusion_lessons.lesson01_forward_noise import class_templates

    images, labels = load_digits("mnist-5k", split="train")
    x, y = load_digits("mnist-5k", split="test")
    shares = matcher_shares(
        make_schedule(name, 200), x[:200], y[:200], class_templates(images, labels)
    )
    assert 0 <= shares["above_half"] <= 1 and 0 <= shares["below_15"] <= 1
    assert shares["above_half"] + shares["below_15"] <= 1
    assert shares["above_half"] > 0  # the first steps barely touch the digit
