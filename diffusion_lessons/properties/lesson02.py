"""Lesson 02's properties: noise schedules.

They check the exercise functions of ``diffusion_lessons.lesson02_schedules``.
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
    _settings,
    _show,
    registrar,
)

MODULE = "lesson02_schedules"
FUNCTIONS = ("linear_schedule", "schedule_from_alpha_bar", "cosine_schedule", "log_snr")
# how the properties call each function: (positional arguments, keywords)
CALLS = {
    "linear_schedule": (3, ()),
    "schedule_from_alpha_bar": (2, ("max_beta",)),
    "cosine_schedule": (1, ("s",)),
    "log_snr": (1, ()),
}
PROPERTIES: list[Property] = []
prop = registrar(PROPERTIES)


@prop(
    "linear_schedule: beta_1 = beta_start, beta_T = beta_end, evenly spaced (eq. 2.1), "
    "arrays of length T+1",
    "torch.linspace(beta_start, beta_end, T, dtype=torch.float64) gives "
    "beta_1..beta_T; hand them to schedule_from_betas, "
    "which prepends beta_0 = 0. linspace(..., T + 1) or torch.arange shifts every beta "
    "by a step.",
    uses=("linear_schedule",),
)
def linear_endpoints(impl):
    @_settings(20)
    @given(
        T=st.integers(2, 300),
        beta_start=st.floats(1e-5, 1e-2),
        width=st.floats(0.0, 0.3),
    )
    def check(T, beta_start, width):
        beta_end = beta_start + width
        sch = impl.linear_schedule(T, beta_start, beta_end)
        assert sch.beta.shape == (T + 1,) and sch.alpha_bar.shape == (T + 1,), (
            f"linear_schedule({T}) gave arrays of length {len(sch.beta)}; expected T+1 "
            f"= {T + 1}"
        )
        expected = torch.cat(
            [
                torch.zeros(1, dtype=torch.float64),
                torch.linspace(beta_start, beta_end, T, dtype=torch.float64),
            ]
        )
        _expect_close(
            sch.beta,
            expected,
            f"linear_schedule({T}, {beta_start:.3g}, {beta_end:.3g}).beta",
            rtol=1e-6,
            atol=1e-12,
        )

    check()


@prop(
    "linear_schedule(1000) is DDPM's: alpha_bar[1000] ≈ 4.04e-5",
    "The defaults are T = 1000, beta_start = 1e-4, beta_end = 0.02 (Ho et al. 2020); "
    "alpha_bar[T] is the product of "
    "all T alphas: ≈ 4.04e-5, so x_T is almost pure noise.",
    uses=("linear_schedule",),
)
def linear_ddpm_value(impl):
    sch = impl.linear_schedule(1000)
    value = sch.alpha_bar[1000].item() if len(sch.alpha_bar) > 1000 else float("nan")
    assert len(sch.alpha_bar) == 1001, (
        f"linear_schedule(1000) has {len(sch.alpha_bar)} alpha_bar values; expected "
        "1001"
    )
    assert abs(value / 4.036e-5 - 1) < 1e-3, (
        f"linear_schedule(1000).alpha_bar[1000] = {value:.4g}; DDPM's value is 4.036e-5"
    )


@prop(
    "schedule_from_alpha_bar turns alpha_bar into betas with eq. 2.4 and gives the "
    "same alpha_bar back",
    "beta_t = 1 - alpha_bar[t] / alpha_bar[t-1] for t = 1..T, i.e. 1 - alpha_bar[1:] / "
    "alpha_bar[:-1]: T betas "
    "(not T+1), which schedule_from_betas turns back into a Schedule.",
    uses=("schedule_from_alpha_bar",),
)
def alpha_bar_roundtrip(impl):
    @_settings(20)
    @given(alphas=st.lists(st.floats(0.01, 0.999), min_size=1, max_size=40))
    def check(alphas):
        alpha = torch.tensor(alphas, dtype=torch.float64)
        alpha_bar = torch.cat(
            [torch.ones(1, dtype=torch.float64), torch.cumprod(alpha, 0)]
        )
        sch = impl.schedule_from_alpha_bar(alpha_bar, "test")
        _expect_close(
            sch.beta[1:],
            1 - alpha,
            "beta[1:] of schedule_from_alpha_bar(alpha_bar)",
            rtol=1e-7,
            atol=1e-9,
        )
        _expect_close(
            sch.alpha_bar,
            alpha_bar,
            "alpha_bar of the schedule it built",
            rtol=1e-7,
            atol=1e-12,
        )

    check()


@prop(
    "schedule_from_alpha_bar clips the betas at max_beta (eq. 2.4): alpha_bar_T = 0 "
    "still gives a valid schedule",
    "Eq. 2.4 gives beta_T = 1 when alpha_bar_T = 0 (the cosine schedule's last step), "
    "which later divides by zero; "
    "clamp the betas: beta.clamp(max=max_beta).",
    uses=("schedule_from_alpha_bar",),
)
def alpha_bar_clipping(impl):
    for max_beta in (0.999, 0.9):
        sch = impl.schedule_from_alpha_bar(
            torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64), "toy", max_beta=max_beta
        )
        _expect_close(
            sch.beta,
            [0.0, 0.5, max_beta],
            f"beta of schedule_from_alpha_bar([1, 0.5, 0], max_beta={max_beta})",
            atol=1e-9,
        )
        assert sch.alpha_bar[-1].item() > 0, (
            "alpha_bar_T must stay above 0 after clipping"
        )


@prop(
    "schedule_from_alpha_bar refuses an alpha_bar without alpha_bar_0 = 1 with a "
    "ValueError",
    "Check len(alpha_bar) >= 2 and alpha_bar[0] == 1; the message should say to "
    "prepend the 1 for t = 0.",
    uses=("schedule_from_alpha_bar",),
)
def alpha_bar_needs_one(impl):
    _expect_raises(
        lambda: impl.schedule_from_alpha_bar(
            torch.tensor([0.9, 0.5, 0.1], dtype=torch.float64), "shifted"
        ),
        "schedule_from_alpha_bar([0.9, 0.5, 0.1]) (alpha_bar_0 = 1 missing)",
    )


def _roundoff(sch) -> float:
    """The unit roundoff of the precision the schedule was computed in: float32 when
    its arrays are float32, or when every beta is a float32 number (betas computed in
    float32, as diffusers does, then widened).
    """
    beta = sch.beta.detach()
    if beta.dtype == torch.float32 or torch.equal(beta.float().double(), beta.double()):
        return 2.0**-24
    return 2.0**-53


@prop(
    "cosine_schedule matches the paper: alpha_bar_t = f(t) / f(0), f(t) = cos²((t/T + "
    "s)/(1 + s) · π/2) (eq. 2.2)",
    "Evaluate f at t = 0..T (torch.arange(T + 1)): f = torch.cos((t / T + s) / (1 + s) "
    "* math.pi / 2) ** 2, "
    "squared; divide by f[0] so alpha_bar_0 = 1; then schedule_from_alpha_bar (which "
    "clips at max_beta).",
    uses=("cosine_schedule",),
)
def cosine_formula(impl):
    @_settings(15)
    @given(T=st.integers(2, 1000), s=st.floats(0.0, 0.05))
    def check(T, s):
        sch = impl.cosine_schedule(T, s=s)
        assert sch.alpha_bar.shape == (T + 1,), (
            f"cosine_schedule({T}) gave {len(sch.alpha_bar)} alpha_bar values; "
            f"expected T+1 = {T + 1}"
        )
        u = _roundoff(sch)
        precision = "float32" if u > 2.0**-30 else "float64"
        beta = sch.beta.detach().double()
        # rounding error of alpha_bar_t: each beta_k and each product rounds once
        growth = torch.cumsum(1 + beta / (1 - beta).clamp(min=1e-12), 0)

        def f(t):
            return math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2

        for t in range(0, T, max(1, T // 17)):
            if t == 0 or beta[1 : t + 1].max().item() < 0.999:
                rtol = max(1e-7, 8 * u * growth[t].item())
                _expect_close(
                    sch.alpha_bar[t],
                    f(t) / f(0),
                    f"cosine_schedule(T={T}, s={s:.4g}).alpha_bar[{t}] (computed in "
                    f"{precision}, tolerance {rtol:.2g} relative)",
                    rtol=rtol,
                    atol=1e-10 if u < 2.0**-30 else 1e-7,
                    diagnoses={
                        "cos(...) / cos(0-term) without the square": math.sqrt(
                            f(t) / f(0)
                        ),
                        "f(t), not divided by f(0)": f(t),
                    },
                )
        top = beta.max().item()
        assert top <= 0.999 * (1 + 4 * u) + 1e-12, (
            f"the largest beta is {top!r}, above max_beta = 0.999 even allowing for "
            f"{precision} rounding; clip the betas at max_beta"
        )

    check()


@prop(
    "cosine_schedule: alpha_bar[0] = 1, strictly decreasing inside (0, 1), betas in "
    "(0, 1), length T+1, for any T",
    "Use t = 0..T (T+1 values) and schedule_from_alpha_bar, which clips the last beta: "
    "without the clip, "
    "beta_T = 1 and alpha_bar_T = 0.",
    uses=("cosine_schedule",),
)
def cosine_valid(impl):
    @_settings(15)
    @given(T=st.integers(1, 2000))
    def check(T):
        sch = impl.cosine_schedule(T)
        ab, beta = sch.alpha_bar, sch.beta
        assert len(ab) == T + 1 and len(beta) == T + 1, (
            f"cosine_schedule({T}) has arrays of length {len(ab)}; expected T+1 = "
            f"{T + 1}"
        )
        assert ab[0].item() == 1.0, (
            f"alpha_bar[0] = {ab[0].item()}; expected 1 (t = 0 is the clean image)"
        )
        assert (ab[1:] > 0).all() and (ab[1:] < 1).all(), (
            f"alpha_bar[1:] must lie strictly inside (0, 1); got {_show(ab)} for T = "
            f"{T}"
        )
        assert (ab[1:] < ab[:-1]).all(), (
            f"alpha_bar must decrease strictly with t (T = {T})"
        )
        assert (beta[1:] > 0).all() and (beta[1:] < 1).all(), (
            f"beta_1..beta_T must lie strictly inside (0, 1) (T = {T})"
        )

    check()


@prop(
    "linear_schedule refuses T < 1, beta_start > beta_end and betas outside (0, 1) "
    "with a ValueError",
    "Check the arguments first: T a whole number >= 1 and 0 < beta_start <= beta_end < "
    "1; raise ValueError naming "
    "the bad value and the fix (the DDPM values are beta_start = 1e-4, beta_end = "
    "0.02).",
    uses=("linear_schedule",),
)
def linear_rejects(impl):
    for args in ((0,), (10, 0.02, 1e-4), (10, 0.0, 0.02), (10, 1e-4, 1.0)):
        _expect_raises(
            lambda args=args: impl.linear_schedule(*args),
            f"linear_schedule{args}",
            (ValueError, TypeError),
        )


@prop(
    "cosine_schedule refuses T < 1 and s < 0 with a ValueError",
    "Check that T is a whole number >= 1 and s >= 0 before computing; raise ValueError "
    "naming the value and the fix.",
    uses=("cosine_schedule",),
)
def cosine_rejects(impl):
    for args, kwargs in (((0,), {}), ((2.5,), {}), ((10,), {"s": -1.0})):
        _expect_raises(
            lambda args=args, kwargs=kwargs: impl.cosine_schedule(*args, **kwargs),
            f"cosine_schedule({args[0]}, {kwargs or ''})",
            (ValueError, TypeError),
        )


@prop(
    "log_snr: log(ᾱ_t / (1 - ᾱ_t)) for t = 1..T, shape (T,), strictly decreasing (eq. "
    "2.5)",
    "Leave out t = 0 (ᾱ_0 = 1, an infinite SNR): ab = schedule.alpha_bar[1:]; then "
    "torch.log(ab) - torch.log1p(-ab) "
    "(log1p(-ab) is an accurate log(1 - ab) when ab is tiny).",
    uses=("log_snr",),
)
def log_snr_property(impl):
    from ..lesson02_schedules import make_schedule

    @_settings(15)
    @given(name=st.sampled_from(["linear", "cosine", "sigmoid"]), T=st.integers(2, 500))
    def check(name, T):
        sch = make_schedule(name, T)
        ab = sch.alpha_bar[1:]
        out = _as_tensor(impl.log_snr(sch), "log_snr(schedule)")
        assert out.shape == (T,), (
            f"log_snr of a {T}-step schedule has shape {tuple(out.shape)}; expected "
            f"({T},), one value per t = 1..T"
            + (
                " (you included t = 0, whose SNR is infinite)"
                if out.shape == (T + 1,)
                else ""
            )
        )
        _expect_close(
            out,
            torch.log(ab) - torch.log1p(-ab),
            f"log_snr({name} schedule, T={T})",
            rtol=1e-6,
            atol=1e-6,
            diagnoses={
                "log(1 - ᾱ_t) - log ᾱ_t: the sign is flipped": torch.log1p(-ab)
                - torch.log(ab),
                "log ᾱ_t alone: divide by 1 - ᾱ_t": torch.log(ab),
                "ᾱ_t / (1 - ᾱ_t) without the log": ab / (1 - ab),
            },
        )
        assert (out[1:] < out[:-1]).all(), "log_snr must decrease strictly with t"

    check()
