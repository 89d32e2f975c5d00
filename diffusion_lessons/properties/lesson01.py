"""Lesson 01's properties: the forward process.

They check the exercise functions of ``diffusion_lessons.lesson01_forward_noise``.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from ._common import (
    Property,
    _as_tensor,
    _expect_close,
    _expect_raises,
    _generator,
    _schedule,
    _settings,
    _show,
    _steep,
    registrar,
)

MODULE = "lesson01_forward_noise"
FUNCTIONS = ("schedule_from_betas", "forward_step", "q_sample")
# how the properties call each function: (positional arguments, keywords)
CALLS = {
    "schedule_from_betas": (1, ()),
    "forward_step": (3, ("generator",)),
    "q_sample": (3, ("eps", "generator")),
}
PROPERTIES: list[Property] = []
prop = registrar(PROPERTIES)


_HINT_SCHEDULE = (
    "Prepend beta_0 = 0 (torch.cat([torch.zeros(1, dtype=torch.float64), beta])) so "
    "that every array has "
    "length T+1 and alpha_bar[t] is ᾱ_t; then alpha = 1 - beta and alpha_bar = "
    "torch.cumprod(alpha, 0), "
    "a product, not a sum."
)
_HINT_Q_SAMPLE = (
    "x_t = sqrt(alpha_bar[t]) x0 + sqrt(1 - alpha_bar[t]) eps (eq. 1.3). alpha_bar[t] "
    "is ᾱ_t because the "
    "arrays have length T+1: did you use alpha_bar[t-1]? Both weights are square "
    "roots. For a (B,) tensor t, "
    "reshape alpha_bar[t] to (B, 1, 1, 1) so it broadcasts over (B, C, H, W), and cast "
    "it to x0.dtype."
)


@prop(
    "schedule_from_betas: length T+1, beta[0] = 0, alpha = 1 - beta, alpha_bar = "
    "cumulative product, alpha_bar[0] = 1",
    _HINT_SCHEDULE,
    uses=("schedule_from_betas",),
)
def schedule_arrays(impl):
    @_settings(20)
    @given(betas=st.lists(st.floats(1e-4, 0.5), min_size=1, max_size=30))
    def check(betas):
        beta = torch.tensor(betas, dtype=torch.float64)
        T = len(betas)
        sch = impl.schedule_from_betas(beta)
        for name in ("beta", "alpha", "alpha_bar"):
            arr = getattr(sch, name, None)
            assert torch.is_tensor(arr), (
                f"the schedule has no tensor attribute {name!r}: return "
                "Schedule(beta=beta, alpha=alpha, alpha_bar=alpha_bar)"
            )
            assert arr.shape == (T + 1,), (
                f"{name} has shape {tuple(arr.shape)} for T = {T} betas; expected "
                "(T+1,) = "
                f"({T + 1},): index 0 stands for t = 0, 'no noise yet'"
            )
        _expect_close(sch.beta[0], 0.0, "beta[0]")
        _expect_close(sch.beta[1:], beta, "beta[1:] (the betas you were given)")
        _expect_close(
            sch.alpha,
            1 - sch.beta,
            "alpha",
            diagnoses={"beta (alpha is 1 - beta)": sch.beta},
        )
        alpha = 1 - torch.cat([torch.zeros(1, dtype=torch.float64), beta])  # (T+1,)
        _expect_close(
            sch.alpha_bar,
            torch.cumprod(alpha, 0),
            "alpha_bar",
            rtol=1e-9,
            diagnoses={
                "the cumulative SUM of alpha (alpha_bar is a product)": torch.cumsum(
                    alpha, 0
                ),
                "the cumulative product of beta (alpha_bar multiplies the alphas)": (
                    torch.cumprod(1 - alpha + (alpha == 1), 0)
                ),
            },
        )

    check()


@prop(
    "schedule_from_betas refuses betas outside (0, 1), NaN or an empty list with a "
    "ValueError",
    "Check torch.isfinite(beta).all() and 0 < beta < 1 before building the arrays, and "
    "raise ValueError with a "
    "message that names the bad values and the fix (a beta of 1 wipes the image out in "
    "one step).",
    uses=("schedule_from_betas",),
)
def schedule_rejects_bad_betas(impl):
    for betas in ([0.0, 0.1], [0.5, 1.0], [0.1, -0.2], [float("nan")], []):
        _expect_raises(
            lambda betas=betas: impl.schedule_from_betas(
                torch.tensor(betas, dtype=torch.float64)
            ),
            f"schedule_from_betas(torch.tensor({betas}))",
        )


@prop(
    "q_sample with eps = 0 is sqrt(alpha_bar_t) x0, for any batch, per-image t in "
    "0..T, shape and dtype kept",
    _HINT_Q_SAMPLE,
    uses=("q_sample",),
)
def q_sample_zero_noise(impl):
    sch = _steep(20)

    @_settings(25)
    @given(
        B=st.integers(1, 5),
        C=st.integers(1, 3),
        H=st.integers(1, 6),
        W=st.integers(1, 6),
        dtype=st.sampled_from([torch.float32, torch.float64]),
        steps=st.lists(st.integers(0, 20), min_size=5, max_size=5),
        seed=st.integers(0, 1000),
    )
    def check(B, C, H, W, dtype, steps, seed):
        x0 = torch.rand((B, C, H, W), generator=_generator(seed), dtype=dtype) * 2 - 1
        t = torch.tensor(steps[:B])
        xt = _as_tensor(impl.q_sample(x0, t, sch, eps=torch.zeros_like(x0)), "q_sample")
        assert xt.shape == x0.shape, (
            f"q_sample returned {_show(xt)}; expected shape {tuple(x0.shape)}, the "
            "shape of x0"
        )
        assert xt.dtype == dtype, (
            f"q_sample turned {dtype} images into {xt.dtype}; cast alpha_bar[t] to "
            "x0.dtype"
        )
        ab = sch.alpha_bar[t].view(B, 1, 1, 1)
        ab_prev = sch.alpha_bar[t - 1].view(
            B, 1, 1, 1
        )  # what the off-by-one bug reads (t = 0 wraps to ᾱ_T)
        _expect_close(
            xt,
            ab.sqrt() * x0,
            f"q_sample(x0, t={steps[:B]}, eps=0)",
            atol=1e-5,
            diagnoses={
                "sqrt(alpha_bar[t-1]) x0: off by one, alpha_bar[t] is ᾱ_t": (
                    ab_prev.sqrt() * x0
                ),
                "alpha_bar[t] x0: the square root is missing": ab * x0,
                "x0 unchanged: the schedule is not applied": x0,
            },
        )
        t_int = steps[-1]
        xt = impl.q_sample(x0, t_int, sch, eps=torch.zeros_like(x0))
        _expect_close(
            xt,
            sch.alpha_bar[t_int].sqrt() * x0,
            f"q_sample(x0, t={t_int} (a python int, the same step for every image), "
            "eps=0)",
            atol=1e-5,
        )

    check()


@prop(
    "q_sample with x0 = 0 is sqrt(1 - alpha_bar_t) eps: a standard deviation, not a "
    "variance",
    _HINT_Q_SAMPLE,
    uses=("q_sample",),
)
def q_sample_noise_scale(impl):
    sch = _steep(20)

    @_settings(20)
    @given(
        B=st.integers(1, 4),
        steps=st.lists(st.integers(0, 20), min_size=4, max_size=4),
        seed=st.integers(0, 1000),
    )
    def check(B, steps, seed):
        eps = torch.randn((B, 1, 3, 3), generator=_generator(seed))
        t = torch.tensor(steps[:B])
        xt = impl.q_sample(torch.zeros_like(eps), t, sch, eps=eps)
        ab = sch.alpha_bar[t].view(B, 1, 1, 1)
        _expect_close(
            xt,
            (1 - ab).sqrt() * eps,
            f"q_sample(x0=0, t={steps[:B]}, eps)",
            atol=1e-5,
            diagnoses={
                "(1 - alpha_bar[t]) eps: that is the variance; the noise weight is its "
                "square root": (1 - ab) * eps,
                "sqrt(1 - alpha_bar[t-1]) eps: off by one, alpha_bar[t] is ᾱ_t": (
                    1 - sch.alpha_bar[t - 1].view(B, 1, 1, 1)
                ).sqrt()
                * eps,
                "eps unscaled: the noise weight sqrt(1 - ᾱ_t) is missing": eps,
            },
        )

    check()


@prop(
    "q_sample draws eps ~ N(0, I) itself when eps is None, the same noise for the same "
    "generator seed",
    "When eps is None draw it with torch.randn(x0.shape, generator=generator, "
    "dtype=x0.dtype): randn (a standard "
    "normal), not rand (uniform on [0, 1)), and pass the generator so the same seed "
    "gives the same x_t.",
    uses=("q_sample",),
)
def q_sample_draws_noise(impl):
    sch = _steep(20)

    @_settings(6)
    @given(t=st.integers(1, 20), seed=st.integers(0, 2**16))
    def check(t, seed):
        x0 = torch.zeros(1, 1, 64, 64)  # 4096 draws of one pixel
        a = impl.q_sample(x0, t, sch, generator=_generator(seed))
        b = impl.q_sample(x0, t, sch, generator=_generator(seed))
        c = impl.q_sample(x0, t, sch, generator=_generator(seed + 1))
        assert torch.equal(a, b), (
            "the same generator seed gave two different x_t: draw eps with the "
            "generator argument"
        )
        std, mean = a.std().item(), a.mean().item()
        want = (1 - sch.alpha_bar[t].item()) ** 0.5
        assert std > 0, (
            f"x_t for x0 = 0 at t = {t} has no noise at all; eq. 1.2 says its standard "
            "deviation is sqrt(1 - ᾱ_t) = "
            f"{want:.3f}"
            + (" (alpha_bar[t-1] at t = 1 is ᾱ_0 = 1: off by one)" if t == 1 else "")
        )
        assert not torch.equal(a, c), (
            "two different generator seeds gave the same x_t: is eps drawn from the "
            "generator?"
        )
        assert abs(mean) < 0.1 * want, (
            "x_t = sqrt(1 - ᾱ_t) eps for x0 = 0 should average 0; its mean is "
            f"{mean:.3f} "
            f"(t = {t}): is eps drawn from rand instead of randn?"
        )
        assert abs(std - want) < 0.1 * want, (
            f"x_t for x0 = 0 has standard deviation {std:.3f} at t = {t}; eq. 1.2 says "
            f"sqrt(1 - ᾱ_t) = {want:.3f}"
        )

    check()


@prop(
    "q_sample refuses t outside 0..T with a ValueError (negative indices would "
    "silently wrap around)",
    "Check 0 <= t <= T (T = len(schedule.alpha_bar) - 1) for every image and raise "
    "ValueError('t must lie in 0..T ...'). "
    "Python and torch read alpha_bar[-1] as ᾱ_T, so a missing check turns a bug into "
    "wrong numbers instead of an error.",
    uses=("q_sample",),
)
def q_sample_rejects_bad_t(impl):
    sch = _steep(20)
    x0 = torch.zeros(2, 1, 4, 4)
    for bad in (-1, 21, torch.tensor([0, 25]), torch.tensor([-3, 2])):
        _expect_raises(
            lambda bad=bad: impl.q_sample(x0, bad, sch, eps=torch.zeros_like(x0)),
            f"q_sample(x0, t={bad!r}) with T = 20",
        )


@prop(
    "forward_step multiplies x_{t-1} by sqrt(1 - beta_t) and adds noise of variance "
    "beta_t (eq. 1.1)",
    "x_t = sqrt(1 - beta[t]) x_{t-1} + sqrt(beta[t]) eps with eps = "
    "torch.randn(x_prev.shape, generator=generator). "
    "beta[t] is beta_t (index t, not t-1); both weights are square roots (beta_t is a "
    "variance).",
    uses=("forward_step",),
)
def forward_step_moments(impl):
    sch = _schedule([0.05, 0.2, 0.5])

    @_settings(6)
    @given(
        t=st.integers(1, 3),
        seed=st.integers(0, 2**16),
        shift=st.sampled_from([-0.8, 0.5, 1.0]),
    )
    def check(t, seed, shift):
        x = torch.zeros(1, 1, 64, 64)
        b = sch.beta[t].item()
        a = impl.forward_step(x, t, sch, generator=_generator(seed))
        c = impl.forward_step(x + shift, t, sch, generator=_generator(seed))
        assert torch.is_tensor(a) and a.shape == x.shape, (
            f"forward_step returned {_show(a)}; expected shape {tuple(x.shape)}"
        )
        diff = (
            c - a
        )  # the same seed gives the same eps, so only the mean's coefficient is left
        assert diff.std().item() < 1e-5, (
            "forward_step gave different noise for the same generator seed: draw eps "
            "with "
            "torch.randn(x_prev.shape, generator=generator)"
        )
        _expect_close(
            diff.mean(),
            math.sqrt(1 - b) * shift,
            f"forward_step(x + {shift}) - forward_step(x) (same seed, t = {t}, beta_t "
            f"= {b}): "
            f"the weight of x_{{t-1}} times {shift}",
            atol=1e-5,
            diagnoses={
                "(1 - beta_t) times the shift: the square root is missing": (1 - b)
                * shift,
                "sqrt(1 - beta[t-1]) times the shift: off by one": math.sqrt(
                    1 - sch.beta[t - 1].item()
                )
                * shift,
            },
        )
        std = a.std().item()
        note = ""
        if abs(std - b) < 0.1 * b:
            note = ": that is beta_t itself; the noise weight is sqrt(beta_t)"
        elif abs(std - sch.beta[t - 1].item() ** 0.5) < 0.05:
            note = ": that is sqrt(beta[t-1]), off by one"
        assert abs(std - b**0.5) < 0.1 * b**0.5, (
            f"forward_step(x_prev = 0, t = {t}) has standard deviation {std:.3f}; "
            f"eq. 1.1 says sqrt(beta_t) = {b**0.5:.3f}{note}"
        )

    check()


@prop(
    "t steps of forward_step and one jump with q_sample agree in mean and spread (eq. "
    "1.2)",
    "Both must give mean sqrt(ᾱ_t) x0 and standard deviation sqrt(1 - ᾱ_t). If only "
    "the chain is off, look at "
    "forward_step (step s uses beta[s]); if only the closed form is off, look at "
    "q_sample (alpha_bar[t], square roots).",
    uses=("forward_step", "q_sample"),
)
def chain_matches_closed_form(impl):
    sch = _schedule([0.1, 0.2, 0.3, 0.4])

    @_settings(4)
    @given(
        t=st.integers(1, 4),
        value=st.sampled_from([-1.0, 0.6, 1.0]),
        seed=st.integers(0, 2**16),
    )
    def check(t, value, seed):
        g = _generator(seed)
        x0 = torch.full((1, 1, 100, 100), value)  # 10,000 draws of one pixel
        xt = x0
        for s in range(1, t + 1):
            xt = impl.forward_step(xt, s, sch, generator=g)
        closed = impl.q_sample(x0, t, sch, generator=g)
        ab = sch.alpha_bar[t].item()
        mean, std = ab**0.5 * value, (1 - ab) ** 0.5
        for name, xs in (
            ("the chain (forward_step t times)", xt),
            ("the closed form (q_sample)", closed),
        ):
            m, s_ = xs.mean().item(), xs.std().item()
            assert abs(m - mean) < 0.04 and abs(s_ - std) < 0.04, (
                f"{name} at t = {t} from x0 = {value}: mean {m:.3f}, std {s_:.3f}; eq. "
                f"1.2 says mean sqrt(ᾱ_t) x0 = {mean:.3f}, "
                f"std sqrt(1 - ᾱ_t) = {std:.3f}"
            )

    check()
