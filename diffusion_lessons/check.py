"""Automatic checks for the exercises: ``diffusion-lessons check N my_file.py``.

Each lesson has an exercise template
(``diffusion_lessons/exercises/lessonNN_exercise.py``): the lesson's functions with
their signatures and docstrings, and bodies for the learner to fill in. This module
holds, per lesson, a registry of **properties**: statements that must hold for every
input (hypothesis generates the inputs), the same mathematics the course's own tests
pin. ``run_check`` loads a learner's file, runs the lesson's properties against the
functions it defines, and prints one line per property:

    PASS  the property holds for every example tried
    FAIL  a counterexample was found: the message says what went wrong, with a hint
    TODO  the function still raises NotImplementedError, or the file does not define it

Functions the file does not define are taken from the course, so a learner can work one
function at a time; a property that would check only course code is reported TODO ("not
in your file").
Exit status: 0 when every property passes, 1 otherwise (any FAIL or TODO), 2 when the
file cannot be loaded (missing, a syntax error, an exception while importing it).
Instructors can grade with the exit status or with the JSON report (``json_path``).

Everything runs on a CPU in seconds: tiny tensors, few examples, ``derandomize=True`` so
that the same file always gets the same report.
"""

from __future__ import annotations

import argparse
import builtins
import importlib
import importlib.resources
import importlib.util
import itertools
import json
import math
import re
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import torch

from . import LESSONS

try:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    _HYPOTHESIS_MISSING = None
except ImportError as _err:  # hypothesis is needed only when checks run
    _HYPOTHESIS_MISSING = _err

__all__ = [
    "Property",
    "LessonExercises",
    "EXERCISES",
    "run_check",
    "copy_template",
    "list_properties",
    "template_path",
    "check_command",
    "add_check_arguments",
]

# ---------------------------------------------------------------------------
# The registry
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    """One checked statement. ``fn(impl)`` raises AssertionError when it does not hold.

    Attributes:
        name: a stable identifier (the JSON report's ``name``).
        description: one line for the report.
        hint: what to look at when it fails (the common bugs).
        uses: the exercise functions it exercises, read from ``impl`` by name.
        fn: the check; ``impl`` is a namespace holding the exercise functions.
    """

    name: str
    description: str
    hint: str
    uses: tuple[str, ...]
    fn: Callable[[types.SimpleNamespace], None]


@dataclass
class LessonExercises:
    """A lesson's exercise: the course module, the functions the template asks for, the
    properties.
    """

    lesson: int
    module: str
    functions: tuple[str, ...]
    properties: list[Property] = field(default_factory=list)

    @property
    def title(self) -> str:
        return LESSONS[self.lesson][1]


EXERCISES: dict[int, LessonExercises] = {
    1: LessonExercises(
        1, "lesson01_forward_noise", ("schedule_from_betas", "forward_step", "q_sample")
    ),
    2: LessonExercises(
        2,
        "lesson02_schedules",
        ("linear_schedule", "schedule_from_alpha_bar", "cosine_schedule", "log_snr"),
    ),
    3: LessonExercises(
        3, "lesson03_embeddings", ("sinusoidal_embedding", "ClassEmbedding")
    ),
    4: LessonExercises(4, "lesson04_unet", ("ResBlock", "UNet")),
    5: LessonExercises(
        5,
        "lesson05_training",
        ("drop_labels", "diffusion_loss", "ema_update", "learning_rate"),
    ),
    6: LessonExercises(6, "lesson06_sampling", ("reverse_step", "sampling_timesteps")),
    7: LessonExercises(7, "lesson07_evaluation", ("frechet_distance", "rerank")),
    8: LessonExercises(8, "lesson08_guidance", ("guided_eps",)),
}


def prop(lesson: int, description: str, hint: str, uses: tuple[str, ...]):
    """Register the decorated ``fn(impl)`` as a property of ``lesson``."""

    def register(fn):
        EXERCISES[lesson].properties.append(
            Property(fn.__name__, description, hint, tuple(uses), fn)
        )
        return fn

    return register


# ---------------------------------------------------------------------------
# Helpers for writing properties with useful messages
# ---------------------------------------------------------------------------


def _settings(max_examples: int):
    """Few examples, no deadline, the same examples on every run, no .hypothesis folder
    in the learner's directory.
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        print_blob=False,
    )


def _show(x) -> str:
    """A short picture of a tensor or number: its first values and its shape."""
    if not torch.is_tensor(x):
        return repr(x)
    flat = x.detach().flatten().double().cpu()
    values = ", ".join(f"{v:.4g}" for v in flat[:4].tolist()) + (
        ", ..." if flat.numel() > 4 else ""
    )
    return f"[{values}]" + (f" (shape {tuple(x.shape)})" if x.ndim > 1 else "")


def _as_tensor(x, what: str) -> torch.Tensor:
    if torch.is_tensor(x):
        return x
    if isinstance(x, (int, float)):
        return torch.tensor(float(x))
    raise AssertionError(f"{what}: expected a tensor, got {type(x).__name__} {x!r:.80}")


def _expect_close(
    actual,
    expected,
    what: str,
    *,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    diagnoses: dict[str, torch.Tensor] | None = None,
) -> None:
    """Assert ``actual`` is close to ``expected``; on failure say by how much and which
    known bug it matches.
    """
    actual = _as_tensor(actual, what)
    expected = torch.as_tensor(expected, dtype=torch.float64)
    if actual.shape != expected.shape:
        raise AssertionError(
            f"{what}: expected shape {tuple(expected.shape)}, got {tuple(actual.shape)}"
        )
    a, e = actual.detach().double().cpu(), expected.double().cpu()
    if torch.allclose(a, e, atol=atol, rtol=rtol):
        return
    gap = (a - e).abs().nan_to_num(float("inf")).max().item()
    msg = f"{what}: expected {_show(e)}, got {_show(a)} (largest difference {gap:.3g})"
    for label, candidate in (diagnoses or {}).items():
        candidate = torch.as_tensor(candidate, dtype=torch.float64)
        if candidate.shape == a.shape and torch.allclose(
            a, candidate.double(), atol=atol, rtol=rtol
        ):
            msg += f". Your result equals {label}"
            break
    raise AssertionError(msg)


def _expect_raises(call: Callable[[], object], what: str, errors=(ValueError,)) -> None:
    """Assert ``call()`` raises one of ``errors`` (bad input must be refused with a
    clear message).
    """
    names = " or ".join(e.__name__ for e in errors)
    try:
        call()
    except errors:
        return
    except NotImplementedError:
        raise
    except Exception as err:
        raise AssertionError(
            f"{what} raised {type(err).__name__}: {err}; expected a {names} whose "
            "message "
            "names the problem and the fix"
        ) from None
    raise AssertionError(
        f"{what} was accepted without an error; expected a {names} whose message names "
        "the problem and the fix"
    )


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _perturb(
    model: torch.nn.Module, seed: int = 0, scale: float = 0.05
) -> torch.nn.Module:
    """Add seeded noise to every weight, standing in for training (a fresh U-Net's FiLM
    layers are zero on purpose).
    """
    g = _generator(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def _schedule(betas) -> object:
    """The course's Schedule from explicit betas (properties of later functions never
    depend on the learner's schedule code).
    """
    from .lesson01_forward_noise import schedule_from_betas

    return schedule_from_betas(torch.as_tensor(betas, dtype=torch.float64))


def _steep(T: int):
    """A short schedule with large betas (0.05 .. 0.5), so that an off-by-one in t
    changes the numbers a lot.
    """
    return _schedule(torch.linspace(0.05, 0.5, T, dtype=torch.float64))


# ---------------------------------------------------------------------------
# Lesson 01: the forward process
# ---------------------------------------------------------------------------

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
    1,
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
                "the cumulative product of beta (alpha_bar multiplies the alphas)": torch.cumprod(
                    1 - alpha + (alpha == 1), 0
                ),
            },
        )

    check()


@prop(
    1,
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
            lambda: impl.schedule_from_betas(torch.tensor(betas, dtype=torch.float64)),
            f"schedule_from_betas(torch.tensor({betas}))",
        )


@prop(
    1,
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
        xt = impl.q_sample(x0, t, sch, eps=torch.zeros_like(x0))
        assert torch.is_tensor(xt) and xt.shape == x0.shape, (
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
                "sqrt(alpha_bar[t-1]) x0: off by one, alpha_bar[t] is ᾱ_t": ab_prev.sqrt()
                * x0,
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
    1,
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
    1,
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
    1,
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
            lambda: impl.q_sample(x0, bad, sch, eps=torch.zeros_like(x0)),
            f"q_sample(x0, t={bad!r}) with T = 20",
        )


@prop(
    1,
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
    1,
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


# ---------------------------------------------------------------------------
# Lesson 02: noise schedules
# ---------------------------------------------------------------------------


@prop(
    2,
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
    2,
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
    2,
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
    2,
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
    2,
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


@prop(
    2,
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
        f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
        for t in range(0, T, max(1, T // 17)):
            if t == 0 or sch.beta[1 : t + 1].max().item() < 0.999:
                _expect_close(
                    sch.alpha_bar[t],
                    f(t) / f(0),
                    f"cosine_schedule(T={T}, s={s:.4g}).alpha_bar[{t}]",
                    rtol=1e-7,
                    atol=1e-10,
                    diagnoses={
                        "cos(...) / cos(0-term) without the square": math.sqrt(
                            f(t) / f(0)
                        ),
                        "f(t), not divided by f(0)": f(t),
                    },
                )
        assert sch.beta.max().item() <= 0.999 + 1e-12, (
            f"the largest beta is {sch.beta.max().item()}; clip at max_beta = 0.999"
        )

    check()


@prop(
    2,
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
    2,
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
            lambda: impl.linear_schedule(*args),
            f"linear_schedule{args}",
            (ValueError, TypeError),
        )


@prop(
    2,
    "cosine_schedule refuses T < 1 and s < 0 with a ValueError",
    "Check that T is a whole number >= 1 and s >= 0 before computing; raise ValueError "
    "naming the value and the fix.",
    uses=("cosine_schedule",),
)
def cosine_rejects(impl):
    for args, kwargs in (((0,), {}), ((2.5,), {}), ((10,), {"s": -1.0})):
        _expect_raises(
            lambda: impl.cosine_schedule(*args, **kwargs),
            f"cosine_schedule({args[0]}, {kwargs or ''})",
            (ValueError, TypeError),
        )


@prop(
    2,
    "log_snr: log(ᾱ_t / (1 - ᾱ_t)) for t = 1..T, shape (T,), strictly decreasing (eq. "
    "2.5)",
    "Leave out t = 0 (ᾱ_0 = 1, an infinite SNR): ab = schedule.alpha_bar[1:]; then "
    "torch.log(ab) - torch.log1p(-ab) "
    "(log1p(-ab) is an accurate log(1 - ab) when ab is tiny).",
    uses=("log_snr",),
)
def log_snr_property(impl):
    from .lesson02_schedules import make_schedule

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


# ---------------------------------------------------------------------------
# Lesson 03: embeddings
# ---------------------------------------------------------------------------

_HINT_EMBEDDING = (
    "half = dim // 2; omega = max_period ** (-torch.arange(half) / half) (eq. 3.1); "
    "angles = t[:, None] * "
    "omega[None, :]; return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1): "
    "all sines first, then "
    "all cosines, shape (B, dim), float32. A python int t becomes one row."
)


@prop(
    3,
    "sinusoidal_embedding: shape (B, dim), float32, every value in [-1, 1]; a python "
    "int gives one row",
    _HINT_EMBEDDING,
    uses=("sinusoidal_embedding",),
)
def embedding_shape_range(impl):
    @_settings(20)
    @given(
        steps=st.lists(st.integers(0, 1000), min_size=1, max_size=16),
        half=st.integers(1, 32),
    )
    def check(steps, half):
        dim = 2 * half
        pe = _as_tensor(
            impl.sinusoidal_embedding(torch.tensor(steps), dim),
            "sinusoidal_embedding(t, dim)",
        )
        assert pe.shape == (len(steps), dim), (
            f"sinusoidal_embedding of {len(steps)} steps with dim = {dim} has shape "
            f"{tuple(pe.shape)}; "
            f"expected ({len(steps)}, {dim})"
        )
        assert pe.dtype == torch.float32, (
            f"the embedding is {pe.dtype}; make it float32 (t.float() before "
            "multiplying)"
        )
        assert torch.isfinite(pe).all() and pe.abs().max() <= 1.0, (
            f"values must lie in [-1, 1] (sines and cosines); got {_show(pe)}"
        )
        one = _as_tensor(
            impl.sinusoidal_embedding(steps[0], dim),
            "sinusoidal_embedding(an int, dim)",
        )
        assert one.shape == (1, dim), (
            f"sinusoidal_embedding({steps[0]}, {dim}) (a python int) has shape "
            f"{tuple(one.shape)}; expected (1, {dim})"
        )

    check()


@prop(
    3,
    "sinusoidal_embedding: index k is sin(ω_k t), index dim/2 + k is cos(ω_k t), ω_k = "
    "max_period^(-k/(dim/2)) (eqs. 3.1-3.2)",
    _HINT_EMBEDDING,
    uses=("sinusoidal_embedding",),
)
def embedding_layout(impl):
    @_settings(20)
    @given(
        t=st.integers(0, 1000),
        half=st.integers(1, 64),
        max_period=st.sampled_from([10_000, 100]),
    )
    def check(t, half, max_period):
        dim = 2 * half
        pe = _as_tensor(
            impl.sinusoidal_embedding(torch.tensor([t]), dim, max_period),
            "sinusoidal_embedding",
        )
        assert pe.shape == (1, dim), f"shape {tuple(pe.shape)}; expected (1, {dim})"
        k = torch.arange(half, dtype=torch.float64)
        angles = t * max_period ** (-k / half)
        expected = torch.cat([angles.sin(), angles.cos()])[None]
        _expect_close(
            pe,
            expected,
            f"sinusoidal_embedding(t={t}, dim={dim}, max_period={max_period})",
            atol=2e-3,
            rtol=0,
            diagnoses={
                "interleaved sin/cos (sin, cos, sin, cos, ...): the course's layout is "
                "all sines, then all cosines": torch.stack(
                    [angles.sin(), angles.cos()], 1
                ).flatten()[None],
                "cosines first, then sines: the course's layout is [sin | cos]": torch.cat(
                    [angles.cos(), angles.sin()]
                )[None],
                "frequencies max_period^(+k/(dim/2)): the exponent must be negative": torch.cat(
                    [
                        (t * max_period ** (k / half)).sin(),
                        (t * max_period ** (k / half)).cos(),
                    ]
                )[None],
                "frequencies max_period^(-k/dim): divide k by dim/2, not dim": torch.cat(
                    [
                        (t * max_period ** (-k / dim)).sin(),
                        (t * max_period ** (-k / dim)).cos(),
                    ]
                )[None],
            },
        )

    check()


@prop(
    3,
    "sinusoidal_embedding: every t in 0..1000 gets its own vector (dim 4 to 128)",
    "The frequencies must spread from 1 down to about 1/max_period; with one frequency "
    "for all k (or growing "
    "frequencies) many steps share an embedding.",
    uses=("sinusoidal_embedding",),
)
def embedding_distinct(impl):
    for dim in (4, 16, 64, 128):
        pe = _as_tensor(
            impl.sinusoidal_embedding(torch.arange(0, 1001), dim),
            "sinusoidal_embedding",
        ).double()
        dist = torch.cdist(pe, pe) + torch.eye(1001, dtype=torch.float64) * 10
        i, j = divmod(int(dist.argmin()), 1001)
        assert dist.min() > 1e-2, (
            f"with dim = {dim}, t = {i} and t = {j} get (almost) the same embedding "
            f"(distance {dist.min().item():.2g})"
        )


@prop(
    3,
    "sinusoidal_embedding: neighbouring steps are more alike (cosine similarity) than "
    "steps T/2 apart",
    _HINT_EMBEDDING,
    uses=("sinusoidal_embedding",),
)
def embedding_nearby_similar(impl):
    @_settings(15)
    @given(t=st.integers(1, 500), dim=st.sampled_from([8, 16, 32, 64, 128]))
    def check(t, dim):
        pe = _as_tensor(
            impl.sinusoidal_embedding(torch.tensor([t, t + 1, t + 500]), dim),
            "sinusoidal_embedding",
        ).double()
        unit = pe / pe.norm(dim=1, keepdim=True)
        near, far = (unit[0] @ unit[1]).item(), (unit[0] @ unit[2]).item()
        assert near > far, (
            f"dim = {dim}: cos-sim(PE({t}), PE({t + 1})) = {near:.3f} is not above "
            f"cos-sim(PE({t}), PE({t + 500})) = {far:.3f}"
        )

    check()


@prop(
    3,
    "sinusoidal_embedding refuses an odd or too small dim with a ValueError",
    "Half the entries are sines and half cosines, so dim must be even and >= 2: check "
    "it first and raise ValueError "
    "suggesting an even dim.",
    uses=("sinusoidal_embedding",),
)
def embedding_rejects_odd_dim(impl):
    for dim in (0, 1, 3, 63):
        _expect_raises(
            lambda: impl.sinusoidal_embedding(torch.tensor([1, 2]), dim),
            f"sinusoidal_embedding(t, dim={dim})",
        )


@prop(
    3,
    "ClassEmbedding(K, dim) has K + 1 rows: label K is the null class ∅; (B,) labels "
    "give (B, dim)",
    "self.table = nn.Embedding(num_classes + 1, dim): rows 0..K-1 are the classes, row "
    "K is ∅ (self.null_class = "
    "num_classes). With only K rows, label K raises an IndexError.",
    uses=("ClassEmbedding",),
)
def class_embedding_null_row(impl):
    @_settings(15)
    @given(
        K=st.integers(1, 12),
        dim=st.sampled_from([4, 16]),
        labels=st.lists(st.integers(0, 12), min_size=1, max_size=8),
    )
    def check(K, dim, labels):
        torch.manual_seed(0)
        emb = impl.ClassEmbedding(K, dim)
        assert getattr(emb, "null_class", None) == K, (
            f"ClassEmbedding({K}, {dim}).null_class is "
            f"{getattr(emb, 'null_class', None)!r}; expected {K} (= num_classes)"
        )
        y = torch.tensor([min(v, K) for v in labels])
        out = _as_tensor(emb(y), "ClassEmbedding(...)(labels)")
        assert out.shape == (len(y), dim), (
            f"ClassEmbedding({K}, {dim}) of {len(y)} labels has shape "
            f"{tuple(out.shape)}; expected ({len(y)}, {dim})"
        )
        rows = emb(torch.arange(K + 1))  # every class and ∅
        assert rows.shape == (K + 1, dim)
        for i, j in itertools.combinations(range(K + 1), 2):
            assert not torch.allclose(rows[i], rows[j]), (
                f"labels {i} and {j} get the same vector; each class (and ∅ = {K}) "
                "needs its own row"
            )
        for i, label in enumerate(y.tolist()):
            assert torch.equal(out[i], rows[label]), (
                "the same label must always give the same vector (a table lookup)"
            )

    check()


# ---------------------------------------------------------------------------
# Lesson 04: the U-Net
# ---------------------------------------------------------------------------

_HINT_RESBLOCK = (
    "Eq. 4.2-4.3: h = conv_block(x) (GroupNorm -> SiLU -> Conv3x3, padding=1); h = h * "
    "(1 + gamma(e_y)) + "
    "beta(e_t) with gamma, beta = nn.Linear(emb_dim, c_out) reshaped to (B, C, 1, 1); "
    "out = conv_block(h) + "
    "shortcut(x), the shortcut a 1x1 Conv2d when c_in != c_out (else nn.Identity())."
)


def _micro_config(**changes):
    from .lesson04_unet import UNetConfig

    return UNetConfig(**{"channels": (4, 8, 8), "groups": 4, "emb_dim": 16, **changes})


def _unet_inputs(B, H, W, seed=0, C=1):
    g = _generator(seed)
    return (
        torch.randn((B, C, H, W), generator=g),
        torch.randint(1, 1001, (B,), generator=g),
        torch.randint(0, 10, (B,), generator=g),
    )


@prop(
    4,
    "ResBlock(c_in, c_out, emb_dim, groups) maps (B, c_in, H, W) to (B, c_out, H, W), "
    "also when c_in ≠ c_out",
    _HINT_RESBLOCK,
    uses=("ResBlock",),
)
def resblock_shape(impl):
    @_settings(10)
    @given(
        B=st.integers(1, 3),
        c_in=st.sampled_from([4, 8]),
        c_out=st.sampled_from([4, 8]),
        H=st.integers(2, 8),
        W=st.integers(2, 8),
    )
    def check(B, c_in, c_out, H, W):
        torch.manual_seed(0)
        block = impl.ResBlock(c_in, c_out, 16, 4)
        out = _as_tensor(
            block(torch.randn(B, c_in, H, W), torch.randn(B, 16), torch.randn(B, 16)),
            "ResBlock(...)(x, e_t, e_y)",
        )
        assert out.shape == (B, c_out, H, W), (
            f"ResBlock({c_in}, {c_out}, 16, 4) turned x of shape {(B, c_in, H, W)} "
            f"into {tuple(out.shape)}; "
            f"expected {(B, c_out, H, W)}"
        )

    check()


@prop(
    4,
    "a fresh ResBlock ignores e_t and e_y (zero-initialised gamma and beta) yet trains "
    "every one of its layers",
    "Zero-initialise the Linear layers that make gamma and beta (nn.init.zeros_ on "
    "weight and bias), so eq. 4.3 starts as "
    "the identity; and write h * (1 + gamma) + beta: with h * gamma a zero gamma wipes "
    "out h and the first convolution "
    "gets no gradient.",
    uses=("ResBlock",),
)
def resblock_fresh(impl):
    torch.manual_seed(0)
    block = impl.ResBlock(4, 8, 16, 4)
    g = _generator(1)
    x, e_t, e_y = (
        torch.randn((2, 4, 5, 5), generator=g),
        torch.randn((2, 16), generator=g),
        torch.randn((2, 16), generator=g),
    )
    a = block(x, e_t, e_y)
    with torch.no_grad():
        b = block(
            x,
            3 * torch.randn((2, 16), generator=g),
            3 * torch.randn((2, 16), generator=g),
        )
    _expect_close(
        b,
        a.detach(),
        "a freshly built ResBlock's output for other e_t and e_y",
        atol=1e-6,
    )
    a.square().mean().backward()
    dead = [
        name
        for name, p in block.named_parameters()
        if p.grad is None or p.grad.abs().max() == 0
    ]
    assert not dead, (
        f"in a fresh ResBlock these parameters get no gradient: {', '.join(dead)}"
    )


@prop(
    4,
    "ResBlock uses the conditioning: once trained, changing e_t or e_y changes the "
    "output, image by image",
    _HINT_RESBLOCK,
    uses=("ResBlock",),
)
def resblock_conditioning(impl):
    torch.manual_seed(0)
    block = _perturb(
        impl.ResBlock(8, 8, 16, 2)
    )  # 4 channels per GroupNorm group (with 1, the next norm cancels FiLM)
    g = _generator(2)
    x, e_t, e_y = (
        torch.randn((2, 8, 6, 6), generator=g),
        torch.randn((2, 16), generator=g),
        torch.randn((2, 16), generator=g),
    )
    with torch.no_grad():
        base = block(x, e_t, e_y)
        for name, (et, ey) in (
            ("e_t", (e_t.clone(), e_y)),
            ("e_y", (e_t, e_y.clone())),
        ):
            (et if name == "e_t" else ey)[0] += 2.0  # change image 0's embedding only
            out = block(x, et, ey)
            assert not torch.allclose(out[0], base[0], atol=1e-5), (
                f"changing {name} of image 0 did not change its output: is {name} used?"
            )
            assert torch.allclose(out[1], base[1], atol=1e-6), (
                f"changing {name} of image 0 changed image 1's output: reshape the "
                "embedding's projection to (B, C, 1, 1), one row per image"
            )


@prop(
    4,
    "UNet keeps the input shape (B, C, H, W) for any batch size and any H, W divisible "
    "by the down factor (eq. 4.5)",
    "Each level halves H and W (a stride-2 convolution) and the way up doubles them "
    "back (ConvTranspose2d(..., 2, stride=2)); "
    "concatenate the skip of the same size (eq. 4.4): channels add up, so the first up "
    "block of a level takes 2 * ch[l] "
    "channels. The head maps back to config.in_channels.",
    uses=("UNet",),
)
def unet_shape(impl):
    torch.manual_seed(0)
    model = impl.UNet(_micro_config())

    @_settings(10)
    @given(B=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7))
    def check(B, h, w):
        xt, t, labels = _unet_inputs(B, 4 * h, 4 * w)
        with torch.no_grad():
            out = _as_tensor(model(xt, t, labels), "UNet(config)(xt, t, labels)")
        assert out.shape == xt.shape, (
            f"UNet with channels (4, 8, 8) (down factor 4) turned {tuple(xt.shape)} "
            f"into {tuple(out.shape)}"
        )

    check()


@prop(
    4,
    "UNet refuses H or W not divisible by the down factor with a ValueError",
    "In forward, check H % config.down_factor and W % config.down_factor before "
    "anything else and raise ValueError "
    "naming down_factor and the fix (pad or resize the images); otherwise a skip "
    "concatenation fails deep inside.",
    uses=("UNet",),
)
def unet_rejects_bad_sizes(impl):
    torch.manual_seed(0)
    model = impl.UNet(_micro_config())
    for H, W in ((30, 28), (28, 26), (6, 6)):
        with torch.no_grad():
            _expect_raises(
                lambda: model(*_unet_inputs(1, H, W)),
                f"UNet (down factor 4) on a {H}x{W} image",
            )


@prop(
    4,
    "UNet depends on t and on the label; labels=None means the null class; an int t "
    "means every image",
    "Embed t with TimeEmbedding and the label with ClassEmbedding (row K is ∅) and "
    "give both to every ResBlock. "
    "labels=None: torch.full((B,), config.num_classes); an int t: t.expand(B).",
    uses=("UNet",),
)
def unet_conditioning(impl):
    torch.manual_seed(0)
    model = _perturb(impl.UNet(_micro_config()))
    xt, t, _ = _unet_inputs(2, 8, 8)
    with torch.no_grad():
        a = model(xt, t, torch.tensor([3, 3]))
        assert not torch.allclose(a, model(xt, t, torch.tensor([8, 8])), atol=1e-5), (
            "changing the label (3 -> 8) did not change the output"
        )
        null = model(xt, t, torch.tensor([10, 10]))
        assert not torch.allclose(a, null, atol=1e-5), (
            "the null class ∅ (label 10) gives the same output as label 3"
        )
        _expect_close(
            model(xt, t, None),
            null,
            "UNet(xt, t, labels=None), which means ∅ for every image",
            atol=1e-6,
        )
        labels = torch.tensor([1, 2])
        assert not torch.allclose(
            model(xt, torch.tensor([10, 10]), labels),
            model(xt, torch.tensor([900, 900]), labels),
            atol=1e-5,
        ), "changing t (10 -> 900) did not change the output"
        _expect_close(
            model(xt, 10, labels),
            model(xt, torch.tensor([10, 10]), labels),
            "UNet(xt, t=10 (an int), labels)",
            atol=1e-6,
        )


@prop(
    4,
    "UNet: every parameter gets a gradient (no layer built but left out of forward)",
    "A layer created in __init__ but never called in forward, or a skip that is never "
    "concatenated, gets no gradient; "
    "list the parameters named in the message and follow the data through forward.",
    uses=("UNet",),
)
def unet_gradients(impl):
    for config in (_micro_config(), _micro_config(channels=(4, 8), blocks_per_level=2)):
        torch.manual_seed(0)
        model = _perturb(impl.UNet(config))
        xt, t, labels = _unet_inputs(3, 8, 8)
        out = model(xt, t, labels)
        torch.nn.functional.mse_loss(
            out, torch.randn(out.shape, generator=_generator(5))
        ).backward()
        dead = [
            name
            for name, p in model.named_parameters()
            if p.grad is None or not p.grad.abs().max() > 0
        ]
        assert not dead, (
            f"with channels {config.channels}, blocks_per_level "
            f"{config.blocks_per_level}: no gradient reaches {', '.join(dead[:6])}"
        )


# ---------------------------------------------------------------------------
# Lesson 05: training
# ---------------------------------------------------------------------------


class _NoiseOracle(torch.nn.Module):
    """Stands in for the U-Net in the loss checks. It knows x0, so it reads the true
    noise off x_t (eq. 1.3 solved for eps) and returns it plus ``offset``: the loss must
    then be exactly mean(offset²). It records every call.
    """

    def __init__(
        self,
        x0: torch.Tensor,
        schedule,
        offset: float | torch.Tensor = 0.0,
        num_classes: int = 10,
    ):
        super().__init__()
        self.x0, self.schedule, self.offset = x0, schedule, offset
        self.config = types.SimpleNamespace(
            num_classes=num_classes,
            T=schedule.T,
            in_channels=x0.shape[1],
            image_size=x0.shape[-1],
        )
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.calls: list[dict] = []

    def forward(self, xt, t, labels):
        B, T = len(self.x0), self.schedule.T
        assert torch.is_tensor(xt) and xt.shape == self.x0.shape, (
            f"the model got x_t {_show(xt)}; expected the shape of x0, "
            f"{tuple(self.x0.shape)}"
        )
        assert torch.is_tensor(t) and t.shape == (B,) and not t.is_floating_point(), (
            f"the model got t = {_show(t)}; pass a ({B},) integer tensor, one step per "
            "image"
        )
        assert 1 <= t.min().item() and t.max().item() <= T, (
            f"the model got t from {t.min().item()} to {t.max().item()}; training "
            f"steps are t = 1..T = 1..{T} "
            "(torch.randint(1, T + 1, ...): t = 0 has no noise to predict)"
        )
        assert torch.is_tensor(labels) and labels.shape == (B,), (
            f"the model got labels {labels!r:.60}; pass the ({B},) labels (after "
            "dropout)"
        )
        ab = self.schedule.alpha_bar[t].to(xt.dtype).view(-1, 1, 1, 1)
        eps = (xt - ab.sqrt() * self.x0.to(xt.dtype)) / (
            1 - ab
        ).sqrt()  # eq. 1.3 solved for eps
        self.calls.append(
            {
                "t": t.detach().clone(),
                "labels": labels.detach().clone(),
                "eps": eps.detach().clone(),
            }
        )
        return eps + self.offset + 0 * self.weight


def _loss_setup(B=32, seed=0, size=4, T=20, offset=0.0, num_classes=10):
    g = _generator(seed)
    x0 = torch.rand((B, 1, size, size), generator=g) * 2 - 1
    labels = torch.randint(0, num_classes, (B,), generator=g)
    sch = _steep(T)
    return _NoiseOracle(x0, sch, offset, num_classes), x0, labels, sch


_HINT_LOSS = (
    "Eq. 5.1-5.2: t = torch.randint(1, T + 1, (B,), generator=generator); eps = "
    "torch.randn(x0.shape, generator="
    "generator); xt = q_sample(x0, t, schedule, eps=eps); eps_pred = model(xt, t, "
    "drop_labels(labels, p_uncond, "
    "model.config.num_classes, generator)); return ((eps - eps_pred) ** 2).mean(). The "
    "SAME eps makes x_t and is "
    "the target."
)


@prop(
    5,
    "diffusion_loss is 0 when the model predicts the true noise; a scalar that "
    "backward() can train",
    _HINT_LOSS,
    uses=("diffusion_loss",),
)
def loss_zero_for_true_noise(impl):
    @_settings(6)
    @given(seed=st.integers(0, 1000), p_uncond=st.sampled_from([0.0, 0.1, 0.5]))
    def check(seed, p_uncond):
        model, x0, labels, sch = _loss_setup(seed=seed)
        loss = _as_tensor(
            impl.diffusion_loss(model, x0, labels, sch, p_uncond, _generator(seed)),
            "diffusion_loss(...)",
        )
        assert model.calls, "diffusion_loss never called the model"
        assert loss.ndim == 0, (
            f"the loss has shape {tuple(loss.shape)}; return one number, a 0-dim "
            "tensor (.mean() over everything)"
        )
        assert loss.requires_grad, (
            "the loss is not connected to the model's output (no .item(), .detach() or "
            "torch.no_grad() "
            "inside diffusion_loss), so loss.backward() cannot train the model"
        )
        assert abs(loss.item()) < 1e-6, (
            "the model predicted the noise in x_t exactly, yet the loss is "
            f"{loss.item():.4g}, not 0: "
            "x_t was not made with eq. 5.1 for the t given to the model, or the loss "
            "compares "
            "eps_pred with something other than the eps that made x_t"
        )

    check()


@prop(
    5,
    "diffusion_loss is the mean squared error of eps over every pixel and image (eq. "
    "5.2)",
    "L_simple = ((eps - eps_pred) ** 2).mean(): the mean over batch, channels and "
    "pixels; not a sum, not an "
    "absolute value, not its square root.",
    uses=("diffusion_loss",),
)
def loss_is_mse(impl):
    offset = (
        torch.linspace(-1, 1, 16).view(1, 1, 4, 4) * 0.5 + 0.3
    )  # the model's error, the same in every image
    expected = offset.square().mean().item()
    model, x0, labels, sch = _loss_setup(B=8, offset=offset)
    loss = _as_tensor(
        impl.diffusion_loss(model, x0, labels, sch, 0.0, _generator(0)),
        "diffusion_loss(...)",
    ).reshape(-1)
    assert loss.numel() == 1, (
        f"the loss has shape {tuple(loss.shape)}; return the mean, one number"
    )
    _expect_close(
        loss[0],
        expected,
        "the loss when eps_pred = eps + e for a known error e (so the MSE is mean(e²))",
        rtol=1e-4,
        diagnoses={
            "the SUM of squares over everything (use the mean)": expected * x0.numel(),
            "the sum over pixels, mean over images (use the mean over pixels too)": expected
            * 16,
            "the mean absolute error (square the differences)": offset.abs()
            .mean()
            .item(),
            "the root mean square error (drop the square root)": math.sqrt(expected),
        },
    )


@prop(
    5,
    "diffusion_loss draws one t per image, uniformly from 1..T (every step, never 0)",
    "t = torch.randint(1, T + 1, (B,), generator=generator): randint's upper bound is "
    "exclusive, so T + 1 makes T possible; "
    "one t per image, not one per batch.",
    uses=("diffusion_loss",),
)
def loss_draws_t(impl):
    model, x0, labels, sch = _loss_setup(B=300, size=2, T=5)
    for seed in (0, 1):
        impl.diffusion_loss(model, x0, labels, sch, 0.0, _generator(seed))
    assert model.calls, "diffusion_loss never called the model"
    t = torch.cat([c["t"] for c in model.calls])
    assert all(len(c["t"].unique()) > 1 for c in model.calls), (
        "every image of a batch got the same t: draw one step per image"
    )
    counts = torch.bincount(t, minlength=6)[1:].double() / len(t)
    missing = [s for s in range(1, 6) if counts[s - 1] == 0]
    assert not missing, f"with T = 5, t = {missing} never came up in {len(t)} draws" + (
        " (randint's upper bound is exclusive: use T + 1)" if missing == [5] else ""
    )
    assert (counts - 0.2).abs().max() < 0.06, (
        "t should be uniform on 1..5; its frequencies were "
        f"{[round(c, 3) for c in counts.tolist()]}"
    )


@prop(
    5,
    "diffusion_loss draws the noise eps from a standard normal (mean 0, standard "
    "deviation 1)",
    "eps = torch.randn(x0.shape, generator=generator): randn is N(0, 1); rand is "
    "uniform on [0, 1).",
    uses=("diffusion_loss",),
)
def loss_noise_standard_normal(impl):
    model, x0, labels, sch = _loss_setup(B=256)
    impl.diffusion_loss(model, x0, labels, sch, 0.0, _generator(3))
    assert model.calls, "diffusion_loss never called the model"
    eps = model.calls[0]["eps"]
    mean, std = eps.mean().item(), eps.std().item()
    assert abs(mean) < 0.08 and abs(std - 1) < 0.08, (
        f"the noise in x_t has mean {mean:.3f} and standard deviation {std:.3f}; eps ~ "
        "N(0, I) has 0 and 1"
    )


@prop(
    5,
    "diffusion_loss drops labels to ∅ = model.config.num_classes at rate p_uncond and "
    "passes the others unchanged",
    "Before calling the model: labels = drop_labels(labels, p_uncond, "
    "model.config.num_classes, generator). Use "
    "model.config.num_classes for ∅ (not a hard-coded 10), and do not change the "
    "caller's labels tensor in place.",
    uses=("diffusion_loss",),
)
def loss_label_dropout(impl):
    K = 7  # an unusual number of classes, so a hard-coded 10 shows
    model, x0, labels, sch = _loss_setup(B=2000, size=1, num_classes=K)
    before = labels.clone()
    impl.diffusion_loss(model, x0, labels, sch, 0.0, _generator(0))
    assert model.calls, "diffusion_loss never called the model"
    assert torch.equal(model.calls[-1]["labels"], before), (
        "with p_uncond = 0 the model must get the labels unchanged"
    )
    impl.diffusion_loss(model, x0, labels, sch, 0.5, _generator(1))
    assert torch.equal(labels, before), (
        "diffusion_loss changed the caller's labels tensor in place; work on a copy "
        "(torch.where)"
    )
    seen = model.calls[-1]["labels"]
    dropped = seen == K
    rate = dropped.double().mean().item()
    assert abs(rate - 0.5) < 0.05, (
        f"with p_uncond = 0.5, {rate:.1%} of the labels the model got were ∅ = "
        f"num_classes = {K}"
        + ("; is ∅ hard-coded as 10?" if (seen == 10).any() else "")
    )
    assert torch.equal(seen[~dropped], before[~dropped]), (
        "labels that are not dropped must reach the model unchanged"
    )


@prop(
    5,
    "diffusion_loss is reproducible: the same generator seed gives the same loss",
    "Draw t, eps and the label dropout from the generator argument (torch.randint(..., "
    "generator=generator), "
    "torch.randn(..., generator=generator)), never from the global random state.",
    uses=("diffusion_loss",),
)
def loss_deterministic(impl):
    model, x0, labels, sch = _loss_setup(offset=0.5)
    model.offset = torch.linspace(0, 1, 16).view(
        1, 1, 4, 4
    )  # an error that depends on the pixel, so t and eps matter
    torch.manual_seed(0)
    a = impl.diffusion_loss(model, x0, labels, sch, 0.3, _generator(5))
    torch.manual_seed(1)
    b = impl.diffusion_loss(model, x0, labels, sch, 0.3, _generator(5))
    assert torch.equal(model.calls[0]["t"], model.calls[1]["t"]) and torch.equal(
        model.calls[0]["eps"], model.calls[1]["eps"]
    ), "the same generator seed gave different t or eps"
    assert torch.equal(model.calls[0]["labels"], model.calls[1]["labels"]), (
        "the same generator seed dropped different labels"
    )
    _expect_close(b, a.detach(), "the loss for the same generator seed", atol=0)


@prop(
    5,
    "diffusion_loss with min_snr_gamma weights each image by min(SNR(t), γ) / SNR(t) "
    "(eq. 5.5)",
    "snr = alpha_bar[t] / (1 - alpha_bar[t]) per image; mse = ((eps - eps_pred) ** "
    "2).mean(dim=(1, 2, 3)), one per image; "
    "return (snr.clamp(max=gamma) / snr * mse).mean(). min_snr_gamma=None means plain "
    "L_simple.",
    uses=("diffusion_loss",),
)
def loss_min_snr(impl):
    for gamma in (0.5, 2.0, None):
        model, x0, labels, sch = _loss_setup(
            B=64, offset=0.5
        )  # every image's MSE is 0.25
        loss = impl.diffusion_loss(
            model, x0, labels, sch, 0.0, _generator(7), min_snr_gamma=gamma
        )
        assert model.calls, "diffusion_loss never called the model"
        t = model.calls[-1]["t"]
        snr = sch.alpha_bar[t] / (1 - sch.alpha_bar[t])
        weight = torch.ones_like(snr) if gamma is None else snr.clamp(max=gamma) / snr
        _expect_close(
            loss,
            (weight * 0.25).mean(),
            f"the loss with min_snr_gamma={gamma} when every image's MSE is 0.25",
            rtol=1e-5,
            diagnoses={}
            if gamma is None
            else {
                "the weight min(SNR, γ) without dividing by SNR": (
                    snr.clamp(max=gamma) * 0.25
                ).mean(),
                "the unweighted loss: min_snr_gamma was ignored": torch.tensor(0.25),
            },
        )


@prop(
    5,
    "drop_labels replaces each label by null_class with probability p_uncond and "
    "leaves the others alone",
    "drop = torch.rand(labels.shape, generator=generator) < p_uncond; return "
    "torch.where(drop, "
    "torch.full_like(labels, null_class), labels). A '>' drops 1 - p of them.",
    uses=("drop_labels",),
)
def drop_labels_rate(impl):
    @_settings(10)
    @given(p=st.floats(0.0, 0.9), seed=st.integers(0, 1000))
    def check(p, seed):
        labels = torch.randint(0, 10, (20_000,), generator=_generator(seed))
        out = _as_tensor(
            impl.drop_labels(labels, p, 10, _generator(seed + 1)), "drop_labels(...)"
        )
        assert out.shape == labels.shape, (
            f"drop_labels returned shape {tuple(out.shape)}; expected "
            f"{tuple(labels.shape)}"
        )
        rate = (out == 10).double().mean().item()
        assert abs(rate - p) < 0.02, (
            f"with p_uncond = {p:.3f}, {rate:.1%} of the labels became ∅"
            + (
                ": that is 1 - p_uncond (use '<', not '>')"
                if abs(rate - (1 - p)) < 0.02
                else ""
            )
        )
        kept = out != 10
        assert torch.equal(out[kept], labels[kept]), (
            "labels that are not dropped must stay as they were"
        )

    check()


@prop(
    5,
    "drop_labels is reproducible for a generator and does not change its input",
    "Draw with torch.rand(labels.shape, generator=generator) and build a new tensor "
    "(torch.where); assigning "
    "labels[drop] = null_class changes the caller's labels.",
    uses=("drop_labels",),
)
def drop_labels_pure(impl):
    labels = torch.randint(0, 10, (500,), generator=_generator(0))
    before = labels.clone()
    a = impl.drop_labels(labels, 0.3, 10, _generator(1))
    assert torch.equal(labels, before), (
        "drop_labels changed its input in place; return a new tensor"
    )
    b = impl.drop_labels(labels, 0.3, 10, _generator(1))
    assert torch.equal(a, b), (
        "the same generator seed dropped different labels: draw from the generator "
        "argument"
    )
    assert a.dtype == labels.dtype, (
        f"drop_labels turned {labels.dtype} labels into {a.dtype}"
    )


@prop(
    5,
    "ema_update: theta_ema <- d · theta_ema + (1 - d) · theta, in place, the model "
    "untouched (eq. 5.3)",
    "The EMA keeps most of its OWN weights (d is close to 1): under torch.no_grad(), "
    "p_ema.mul_(d).add_(p, alpha=1 - d) "
    "or p_ema.lerp_(p, 1 - d) for each pair of parameters.",
    uses=("ema_update",),
)
def ema_convex(impl):
    @_settings(15)
    @given(decay=st.floats(0.0, 0.999), seed=st.integers(0, 100))
    def check(decay, seed):
        torch.manual_seed(seed)
        ema, model = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
        before = [p.detach().clone() for p in ema.parameters()]
        theta = [p.detach().clone() for p in model.parameters()]
        impl.ema_update(ema, model, decay)
        for (name, p_ema), p0, p in zip(ema.named_parameters(), before, theta):
            _expect_close(
                p_ema,
                decay * p0 + (1 - decay) * p,
                f"the EMA's {name} after ema_update(decay={decay:.4g})",
                atol=1e-6,
                diagnoses={
                    "(1 - d) · theta_ema + d · theta: d and 1 - d are swapped": (
                        1 - decay
                    )
                    * p0
                    + decay * p,
                    "the EMA unchanged: update the parameters in place": p0,
                },
            )
        for (name, p), p0 in zip(model.named_parameters(), theta):
            assert torch.equal(p, p0), (
                f"ema_update changed the trained model's {name}; only the EMA copy "
                "changes"
            )

    check()


@prop(
    5,
    "learning_rate warms up linearly (lr · (step + 1) / warmup), then decays along a "
    "cosine to 0 at cfg.steps (eq. 5.4)",
    "Steps count from 0: for step < warmup return lr * (step + 1) / warmup (so step 0 "
    "trains with lr / warmup, not 0); "
    "after it, progress = (step - warmup) / (steps - warmup) and lr * 0.5 * (1 + "
    "cos(pi * progress)).",
    uses=("learning_rate",),
)
def lr_schedule(impl):
    from .lesson05_training import TrainConfig

    @_settings(10)
    @given(
        steps=st.integers(50, 2000),
        warmup=st.integers(1, 40),
        lr=st.sampled_from([1e-3, 2e-3, 0.1]),
    )
    def check(steps, warmup, lr):
        cfg = TrainConfig(steps=steps, warmup=warmup, lr=lr)
        f = lambda step: float(impl.learning_rate(step, cfg))  # noqa: E731
        for step in (0, warmup // 2, warmup - 1):
            _expect_close(
                f(step),
                lr * (step + 1) / warmup,
                f"learning_rate(step={step}) with warmup={warmup}, lr={lr}",
                rtol=1e-6,
                diagnoses={
                    "lr · step / warmup: steps count from 0, so use step + 1": lr
                    * step
                    / warmup
                },
            )
        _expect_close(
            f(warmup), lr, f"learning_rate(step=warmup={warmup}), the peak", rtol=1e-6
        )
        quarter = warmup + (steps - warmup) // 4
        progress = (quarter - warmup) / (steps - warmup)
        _expect_close(
            f(quarter),
            lr * 0.5 * (1 + math.cos(math.pi * progress)),
            f"learning_rate(step={quarter}), a quarter into the decay",
            rtol=1e-6,
            diagnoses={
                "a linear decay: eq. 5.4 decays along a cosine": lr * (1 - progress)
            },
        )
        assert abs(f(steps)) < 1e-6 * lr, (
            f"learning_rate(step=steps={steps}) = {f(steps):.3g}; the decay ends at 0"
        )
        values = [
            f(step) for step in range(warmup, steps + 1, max(1, (steps - warmup) // 50))
        ]
        assert all(b <= a + 1e-15 for a, b in zip(values, values[1:])), (
            "after the warm-up the learning rate must never rise"
        )
        assert all(0 <= v <= lr * (1 + 1e-9) for v in values), (
            f"the learning rate must stay in [0, lr]; got {min(values):.3g} .. "
            f"{max(values):.3g}"
        )

    check()


# ---------------------------------------------------------------------------
# Lesson 06: sampling
# ---------------------------------------------------------------------------

_HINT_REVERSE = (
    "Eq. 6.1: x0_pred = (x_t - sqrt(1 - ᾱ_t) eps_pred) / sqrt(ᾱ_t). Eq. 6.2: sigma = "
    "eta * sqrt((1 - ᾱ_s) / "
    "(1 - ᾱ_t) * (1 - ᾱ_t / ᾱ_s)). Eq. 6.3: x_s = sqrt(ᾱ_s) x0_pred + sqrt(1 - ᾱ_s - "
    "sigma²) eps_pred + sigma z, "
    "z = torch.randn(xt.shape, generator=generator). alpha_bar[t] is ᾱ_t (arrays have "
    "length T+1), not "
    "alpha_bar[t-1]; use alpha_bar[s] for the step you move to (s may be any step "
    "below t, not only t - 1)."
)


def _reverse_case(name, T, t, s, seed, shape=(2, 1, 3, 3)):
    from .lesson01_forward_noise import q_sample
    from .lesson02_schedules import make_schedule

    sch = make_schedule(name, T)
    g = _generator(seed)
    x0 = torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1
    eps = torch.randn(shape, generator=g, dtype=torch.float64)
    return sch, x0, eps, q_sample(x0, t, sch, eps=eps)


def _two_tensors(out, what):
    assert isinstance(out, (tuple, list)) and len(out) == 2, (
        f"{what} returned {type(out).__name__}; return the pair (x_s, x0_pred)"
    )
    return _as_tensor(out[0], f"x_s of {what}"), _as_tensor(
        out[1], f"x0_pred of {what}"
    )


@prop(
    6,
    "reverse_step's x0_pred inverts q_sample (eq. 6.1): with the true noise, x0_pred "
    "is x0",
    _HINT_REVERSE,
    uses=("reverse_step",),
)
def x0_pred_inverts_q_sample(impl):
    @_settings(20)
    @given(
        name=st.sampled_from(["linear", "cosine"]),
        T=st.integers(2, 200),
        data=st.data(),
    )
    def check(name, T, data):
        t = data.draw(st.integers(1, T), label="t")
        s = data.draw(st.integers(0, t - 1), label="s")
        eta, clip = (
            data.draw(st.sampled_from([0.0, 1.0]), label="eta"),
            data.draw(st.booleans(), label="clip_x0"),
        )
        sch, x0, eps, xt = _reverse_case(name, T, t, s, seed=t)
        _, x0_pred = _two_tensors(
            impl.reverse_step(
                xt, eps, t, s, sch, eta=eta, clip_x0=clip, generator=_generator(0)
            ),
            "reverse_step",
        )
        ab, ab_prev = sch.alpha_bar[t].item(), sch.alpha_bar[t - 1].item()
        _expect_close(
            x0_pred,
            x0,
            f"x0_pred of reverse_step(q_sample(x0, t={t}, eps), eps, t={t}, s={s}) "
            f"({name} schedule, T={T})",
            atol=1e-6,
            diagnoses={
                "(x_t - sqrt(1 - ᾱ_{t-1}) eps) / sqrt(ᾱ_{t-1}): off by one, "
                "alpha_bar[t] is ᾱ_t": (xt - (1 - ab_prev) ** 0.5 * eps) / ab_prev**0.5,
                "(x_t + sqrt(1 - ᾱ_t) eps) / sqrt(ᾱ_t): subtract the noise": (
                    xt + (1 - ab) ** 0.5 * eps
                )
                / ab**0.5,
                "(x_t - (1 - ᾱ_t) eps) / ᾱ_t: the square roots are missing": (
                    xt - (1 - ab) * eps
                )
                / ab,
            },
        )

    check()


@prop(
    6,
    "with eta = 0 and the true noise, reverse_step lands exactly on q_sample(x0, s, "
    "eps), for any s < t",
    _HINT_REVERSE,
    uses=("reverse_step",),
)
def ddim_lands_on_q_sample(impl):
    from .lesson01_forward_noise import q_sample

    @_settings(20)
    @given(
        name=st.sampled_from(["linear", "cosine"]),
        T=st.integers(2, 200),
        data=st.data(),
    )
    def check(name, T, data):
        t = data.draw(st.integers(1, T), label="t")
        s = data.draw(st.integers(0, t - 1), label="s")
        sch, x0, eps, xt = _reverse_case(name, T, t, s, seed=s)
        x_s, _ = _two_tensors(
            impl.reverse_step(xt, eps, t, s, sch, eta=0.0, clip_x0=False),
            "reverse_step",
        )
        _expect_close(
            x_s,
            q_sample(x0, s, sch, eps=eps),
            f"x_s of reverse_step(x_t, eps, t={t}, s={s}, eta=0) ({name}, T={T})",
            atol=1e-6,
            diagnoses={
                "q_sample(x0, t - 1, eps): use s, the step you move to, not t - 1": q_sample(
                    x0, t - 1, sch, eps=eps
                ),
                "x_t itself: the step does not move": xt,
                "sqrt(ᾱ_s) x0_pred - sqrt(1 - ᾱ_s) eps: the sign of the noise term is "
                "wrong": sch.alpha_bar[s].sqrt() * x0
                - (1 - sch.alpha_bar[s]).sqrt() * eps,
                "sqrt(ᾱ_s) x0_pred alone: the noise term sqrt(1 - ᾱ_s - σ²) eps_pred "
                "is missing": sch.alpha_bar[s].sqrt() * x0,
            },
        )

    check()


@prop(
    6,
    "with eta = 0 reverse_step is deterministic: no noise is added, whatever the "
    "generator",
    "sigma = eta * (...) is 0 when eta = 0, so add no z at all (or 0 * z): the result "
    "must not depend on the generator.",
    uses=("reverse_step",),
)
def ddim_deterministic(impl):
    sch, _, eps, xt = _reverse_case("cosine", 50, 30, 20, seed=0)
    outs = [
        _two_tensors(
            impl.reverse_step(xt, eps, 30, 20, sch, eta=0.0, generator=g),
            "reverse_step",
        )[0]
        for g in (_generator(1), _generator(2), None)
    ]
    assert torch.equal(outs[0], outs[1]) and torch.equal(outs[0], outs[2]), (
        "with eta = 0 the result changed with the generator"
    )


@prop(
    6,
    "with eta = 1 and s = t - 1, reverse_step is DDPM's ancestral step (eq. 6.4): its "
    "mean and its noise sigma_t² = β̃_t",
    "With s = t - 1, eq. 6.2 gives sigma² = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t (DDPM's "
    "β̃_t); the noise term of eq. 6.3 is "
    "sqrt(1 - ᾱ_s - sigma²) eps_pred, not sqrt(1 - ᾱ_s) eps_pred; add sigma * z with z "
    "= torch.randn(xt.shape, "
    "generator=generator).",
    uses=("reverse_step",),
)
def ddpm_step(impl):
    @_settings(8)
    @given(
        name=st.sampled_from(["linear", "cosine"]),
        T=st.integers(2, 1000),
        data=st.data(),
    )
    def check(name, T, data):
        t = data.draw(st.integers(2, T), label="t")
        from .lesson02_schedules import make_schedule

        sch = make_schedule(name, T)
        g = _generator(t)
        shape = (1, 1, 64, 64)
        xt1, e1, xt2, e2 = (
            torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(4)
        )
        a, ab, ab_prev, b = (
            sch.alpha[t].item(),
            sch.alpha_bar[t].item(),
            sch.alpha_bar[t - 1].item(),
            sch.beta[t].item(),
        )
        sigma = ((1 - ab_prev) / (1 - ab) * b) ** 0.5

        def ddpm_mean(xt, eps):  # eq. 6.4 without its noise
            return (xt - b / (1 - ab) ** 0.5 * eps) / a**0.5

        x1, _ = _two_tensors(
            impl.reverse_step(
                xt1, e1, t, t - 1, sch, eta=1.0, clip_x0=False, generator=_generator(9)
            ),
            "reverse_step",
        )
        again, _ = _two_tensors(
            impl.reverse_step(
                xt1, e1, t, t - 1, sch, eta=1.0, clip_x0=False, generator=_generator(9)
            ),
            "reverse_step",
        )
        assert torch.equal(x1, again), (
            "the same inputs and generator seed gave two different x_s: draw z with "
            "torch.randn(xt.shape, generator=generator)"
        )
        x2, _ = _two_tensors(
            impl.reverse_step(
                xt2, e2, t, t - 1, sch, eta=1.0, clip_x0=False, generator=_generator(9)
            ),
            "reverse_step",
        )
        diff = (
            x1 - x2
        )  # the same seed gives the same z, so the noise cancels and only the mean's coefficients are left
        want = ddpm_mean(xt1, e1) - ddpm_mean(xt2, e2)
        _expect_close(
            diff,
            want,
            f"the deterministic part of the DDPM step at t={t} ({name}, T={T})",
            atol=1e-6,
            rtol=1e-6,
            diagnoses={"the step without its eps_pred term": (xt1 - xt2) / a**0.5},
        )
        residual = x1 - ddpm_mean(xt1, e1)
        std, mean = residual.std().item(), residual.mean().item()
        note = ""
        if abs(std - sigma**2) < 0.1 * sigma**2:
            note = ": that is sigma_t², a variance; add sigma_t z"
        elif abs(std - b**0.5) < 0.1 * b**0.5:
            note = (
                ": that is sqrt(beta_t), DDPM's other choice; eq. 6.2 with eta = 1 "
                "gives β̃_t"
            )
        elif std < 1e-12:
            note = ": no noise was added at all"
        assert abs(std - sigma) < 0.1 * sigma, (
            f"the noise added at t = {t} has standard deviation {std:.3g}; DDPM's "
            f"sigma_t = sqrt(β̃_t) = {sigma:.3g}{note}"
        )
        assert abs(mean) < 6 * sigma / 64, (
            f"the noise added at t = {t} has mean {mean:.3g}; z ~ N(0, I) has mean 0"
        )

    check()


@prop(
    6,
    "clip_x0 clips x0_pred to [-1, 1] and recomputes eps_pred from it; clip_x0=False "
    "leaves x0_pred alone",
    "if clip_x0: x0_pred = x0_pred.clamp(-1, 1), then eps_pred = (x_t - sqrt(ᾱ_t) "
    "x0_pred) / sqrt(1 - ᾱ_t), so that "
    "x0_pred and eps_pred describe the same x_t; without that second line the step "
    "mixes a clipped x0 with the old noise.",
    uses=("reverse_step",),
)
def clip_recomputes_eps(impl):
    from .lesson02_schedules import make_schedule

    @_settings(10)
    @given(t=st.integers(2, 100), seed=st.integers(0, 1000))
    def check(t, seed):
        sch = make_schedule("linear", 100)
        s = t // 2
        g = _generator(seed)
        xt = 3 * torch.randn(
            (2, 1, 4, 4), generator=g, dtype=torch.float64
        )  # wild inputs, so that x0_pred leaves [-1, 1]
        eps = 3 * torch.randn((2, 1, 4, 4), generator=g, dtype=torch.float64)
        ab_t, ab_s = sch.alpha_bar[t].item(), sch.alpha_bar[s].item()
        raw = (xt - (1 - ab_t) ** 0.5 * eps) / ab_t**0.5
        x_s, x0_pred = _two_tensors(
            impl.reverse_step(xt, eps, t, s, sch, eta=0.0, clip_x0=True),
            "reverse_step(clip_x0=True)",
        )
        clipped = raw.clamp(-1, 1)
        _expect_close(x0_pred, clipped, f"x0_pred with clip_x0=True (t={t})", atol=1e-6)
        eps_c = (xt - ab_t**0.5 * clipped) / (1 - ab_t) ** 0.5
        _expect_close(
            x_s,
            ab_s**0.5 * clipped + (1 - ab_s) ** 0.5 * eps_c,
            f"x_s with clip_x0=True, eta=0 (t={t}, s={s})",
            atol=1e-6,
            diagnoses={
                "the step with the clipped x0_pred but the OLD eps_pred: recompute "
                "eps_pred after clipping": ab_s**0.5 * clipped + (1 - ab_s) ** 0.5 * eps
            },
        )
        _, x0_free = _two_tensors(
            impl.reverse_step(xt, eps, t, s, sch, eta=0.0, clip_x0=False),
            "reverse_step(clip_x0=False)",
        )
        _expect_close(
            x0_free,
            raw,
            f"x0_pred with clip_x0=False (t={t})",
            atol=1e-6,
            diagnoses={"the clipped x0_pred: clip only when clip_x0 is true": clipped},
        )

    check()


@prop(
    6,
    "sampling_timesteps(T, steps): `steps` distinct steps, descending from T, none "
    "below 1",
    "Start at T and space the steps evenly down to 1: "
    "sorted({round(T - i * (T - 1) / max(1, steps - 1)) for i in "
    "range(steps)}, reverse=True). t = 0 is the clean image, never a step to take; the sampler ends with s = 0.",
    uses=("sampling_timesteps",),
)
def sampling_timesteps_property(impl):
    @_settings(25)
    @given(T=st.integers(1, 2000), data=st.data())
    def check(T, data):
        steps = data.draw(st.integers(1, T), label="steps")
        ts = list(impl.sampling_timesteps(T, steps))
        assert ts and ts[0] == T, (
            f"sampling_timesteps({T}, {steps}) starts at {ts[:1]}; it must start at T "
            f"= {T}"
        )
        assert ts == sorted(set(ts), reverse=True), (
            f"sampling_timesteps({T}, {steps}) must be strictly descending and "
            f"distinct; got {ts[:8]}..."
        )
        assert ts[-1] >= 1, (
            f"sampling_timesteps({T}, {steps}) ends at {ts[-1]}; the last step to take "
            "is >= 1 (t = 0 is the clean image)"
        )
        assert len(ts) == steps, (
            f"sampling_timesteps({T}, {steps}) has {len(ts)} steps; expected {steps}"
        )

    check()


# ---------------------------------------------------------------------------
# Lesson 07: evaluation
# ---------------------------------------------------------------------------

_HINT_FRECHET = (
    "Eq. 7.3-7.4: FD = |mu1 - mu2|² + tr Σ1 + tr Σ2 - 2 tr (Σ1^½ Σ2 Σ1^½)^½. Work in "
    "float64; get Σ1^½ from "
    "torch.linalg.eigh (V diag(sqrt(lambda.clamp(min=0))) V^T), then sum the square "
    "roots of the eigenvalues "
    "of the symmetric Σ1^½ Σ2 Σ1^½ (torch.linalg.eigvalsh, clamped at 0). An "
    "element-wise sqrt of a matrix "
    "is not its matrix square root."
)


def _gaussian(seed, D, n):
    f = torch.randn(
        (n, D), generator=_generator(seed), dtype=torch.float64
    ) * torch.linspace(0.5, 2, D, dtype=torch.float64)
    return f.mean(0), (
        torch.cov(f.T) if n > 1 else torch.zeros(D, D, dtype=torch.float64)
    ).reshape(D, D)


def _fd(impl, *args) -> float:
    out = impl.frechet_distance(*args)
    value = float(out.item() if torch.is_tensor(out) else out)
    assert math.isfinite(value), f"frechet_distance returned {value}"
    return value


@prop(
    7,
    "frechet_distance of a Gaussian with itself is 0",
    _HINT_FRECHET,
    uses=("frechet_distance",),
)
def fd_zero_for_identical(impl):
    @_settings(15)
    @given(seed=st.integers(0, 1000), D=st.integers(1, 6), n=st.integers(2, 12))
    def check(seed, D, n):
        mu, sigma = _gaussian(seed, D, n)
        fd = _fd(impl, mu, sigma, mu, sigma)
        assert abs(fd) < 1e-6 * (1 + sigma.trace().item()), (
            f"FD of a Gaussian (D = {D}, from {n} samples) with itself is {fd:.3g}, "
            "not 0"
        )

    check()


@prop(
    7,
    "frechet_distance is symmetric and never negative",
    _HINT_FRECHET,
    uses=("frechet_distance",),
)
def fd_symmetric_non_negative(impl):
    @_settings(15)
    @given(
        seed=st.integers(0, 1000),
        D=st.integers(1, 6),
        n1=st.integers(2, 12),
        n2=st.integers(2, 12),
    )
    def check(seed, D, n1, n2):
        a, b = _gaussian(seed, D, n1), _gaussian(seed + 1, D, n2)
        ab, ba = _fd(impl, *a, *b), _fd(impl, *b, *a)
        assert ab >= 0 and ba >= 0, (
            f"FD = {min(ab, ba):.3g} < 0; clamp eigenvalues at 0 before their square "
            "roots and the result at 0"
        )
        assert abs(ab - ba) <= 1e-6 * (1 + abs(ab)), (
            f"FD(a, b) = {ab:.6g} but FD(b, a) = {ba:.6g}"
        )

    check()


@prop(
    7,
    "frechet_distance in 1-D is (m1 - m2)² + (s1^½ - s2^½)²",
    _HINT_FRECHET,
    uses=("frechet_distance",),
)
def fd_one_dimension(impl):
    @_settings(15)
    @given(
        m1=st.floats(-5, 5), m2=st.floats(-5, 5), s1=st.floats(0, 4), s2=st.floats(0, 4)
    )
    def check(m1, m2, s1, s2):
        t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
        got = _fd(impl, t([m1]), t([[s1]]), t([m2]), t([[s2]]))
        want = (m1 - m2) ** 2 + (s1**0.5 - s2**0.5) ** 2
        note = ""
        if (
            abs(got - max(0.0, (m1 - m2) ** 2 + s1 + s2 - 2 * s1 * s2))
            < 1e-6 * (1 + abs(got))
            and abs(got - want) > 1e-6
        ):
            note = " (the square root of Σ1^½ Σ2 Σ1^½ is missing)"
        assert abs(got - want) <= 1e-6 * (1 + want), (
            f"FD(N({m1:.3g}, {s1:.3g}), N({m2:.3g}, {s2:.3g})) = {got:.6g}; expected "
            f"{want:.6g}{note}"
        )

    check()


@prop(
    7,
    "frechet_distance for diagonal covariances is |mu1 - mu2|² + Σ_k (a_k^½ - b_k^½)², "
    "also when singular",
    _HINT_FRECHET,
    uses=("frechet_distance",),
)
def fd_diagonal(impl):
    @_settings(15)
    @given(seed=st.integers(0, 1000), D=st.integers(1, 6), singular=st.booleans())
    def check(seed, D, singular):
        g = _generator(seed)
        mu1, mu2 = (
            torch.randn(D, generator=g, dtype=torch.float64),
            torch.randn(D, generator=g, dtype=torch.float64),
        )
        a, b = (
            torch.rand(D, generator=g, dtype=torch.float64) * 3,
            torch.rand(D, generator=g, dtype=torch.float64) * 3,
        )
        if singular:
            a[0] = 0.0
        want = ((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
        got = _fd(impl, mu1, torch.diag(a), mu2, torch.diag(b))
        assert abs(got - want.item()) <= 1e-6 * (1 + want.item()), (
            f"FD with diagonal covariances (D = {D}, singular={singular}) = {got:.6g}; "
            f"expected {want.item():.6g}"
        )

    check()


@prop(
    7,
    "frechet_distance stays finite and stable for rank-deficient covariances (fewer "
    "samples than dimensions)",
    _HINT_FRECHET,
    uses=("frechet_distance",),
)
def fd_rank_deficient(impl):
    a, b = _gaussian(0, 8, 4), _gaussian(1, 8, 5)  # ranks 3 and 4 in 8 dimensions
    fd = _fd(impl, *a, *b)
    eye = torch.eye(8, dtype=torch.float64)
    near = _fd(impl, a[0], a[1] + 1e-9 * eye, b[0], b[1] + 1e-9 * eye)
    assert fd >= 0 and abs(fd - near) < 1e-3 * (1 + fd), (
        f"FD of rank-deficient covariances is {fd:.6g}, but {near:.6g} after adding "
        "1e-9 I"
    )


@prop(
    7,
    "rerank keeps, in each group, the `keep` candidates with the highest scores, best "
    "first (eq. 7.7)",
    "idx = scores.topk(keep, dim=1).indices (largest first); kept = "
    "candidates[torch.arange(G)[:, None], idx]. "
    "argsort is ascending unless descending=True.",
    uses=("rerank",),
)
def rerank_keeps_best(impl):
    @_settings(15)
    @given(G=st.integers(1, 4), N=st.integers(1, 6), data=st.data())
    def check(G, N, data):
        keep = data.draw(st.integers(1, N), label="keep")
        g = _generator(G * 10 + N)
        scores = torch.stack(
            [torch.randperm(N, generator=g).double() for _ in range(G)]
        )  # distinct scores per group
        candidates = torch.randn((G, N, 1, 2, 2), generator=g)
        out = impl.rerank(candidates, scores, keep)
        assert isinstance(out, (tuple, list)) and len(out) == 2, (
            "rerank must return (kept, indices)"
        )
        kept, idx = out
        want = scores.argsort(dim=1, descending=True)[:, :keep]
        assert tuple(idx.shape) == (G, keep), (
            f"indices have shape {tuple(idx.shape)}; expected ({G}, {keep})"
        )
        assert torch.equal(idx.long(), want), (
            f"rerank kept indices {idx.tolist()}; the highest scores, best first, are "
            f"{want.tolist()}"
            + (
                " (you kept the lowest scores)"
                if torch.equal(idx.long(), scores.argsort(dim=1)[:, :keep])
                else ""
            )
        )
        _expect_close(
            kept,
            candidates[torch.arange(G)[:, None], want],
            "the kept candidates",
            atol=0,
        )

    check()


# ---------------------------------------------------------------------------
# Lesson 08: classifier-free guidance
# ---------------------------------------------------------------------------


class _TwoWayModel(torch.nn.Module):
    """A stand-in noise predictor whose answer depends on x_t, t and the label (∅ =
    config.num_classes included).
    """

    def __init__(self, num_classes: int = 7):
        super().__init__()
        self.config = types.SimpleNamespace(
            num_classes=num_classes, T=1000, in_channels=1, image_size=4
        )
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, xt, t, labels):
        self.calls += 1
        B = len(xt)
        if labels is None:  # like the U-Net: None means ∅ for every image
            labels = torch.full((B,), self.config.num_classes)
        t = torch.as_tensor(t).expand(B) if torch.as_tensor(t).ndim == 0 else t
        y = labels.to(xt.dtype).view(B, 1, 1, 1)
        null = (labels == self.config.num_classes).to(xt.dtype).view(B, 1, 1, 1)
        return self.weight * (
            xt * (1 + 0.1 * y)
            + 0.001 * t.to(xt.dtype).view(B, 1, 1, 1)
            + 0.3 * null
            + 0.05 * y**2
        )


def _guidance_inputs(B=3, seed=0, num_classes=7):
    g = _generator(seed)
    return (
        torch.randn((B, 1, 4, 4), generator=g),
        torch.randint(1, 1001, (B,), generator=g),
        torch.randint(0, num_classes, (B,), generator=g),
    )


_HINT_GUIDANCE = (
    "Eq. 8.1: eps_w = (1 + w) eps(x_t, t, c) - w eps(x_t, t, ∅), with ∅ = "
    "model.config.num_classes "
    "(torch.full_like(labels, model.config.num_classes)). w = 0 is the conditional "
    "model, w = -1 the "
    "unconditional one; our w is diffusers' guidance_scale minus 1."
)


@prop(
    8,
    "guided_eps with w = 0 is the conditional prediction eps(x_t, t, c)",
    _HINT_GUIDANCE,
    uses=("guided_eps",),
)
def guidance_w0_conditional(impl):
    model = _TwoWayModel()
    xt, t, labels = _guidance_inputs()
    with torch.no_grad():
        _expect_close(
            impl.guided_eps(model, xt, t, labels, 0.0),
            model(xt, t, labels),
            "guided_eps(w=0)",
            atol=1e-6,
            diagnoses={
                "the unconditional prediction eps(x_t, t, ∅): the roles of c and ∅ are "
                "swapped, or w is used as the scale s = 1 + w": model(
                    xt, t, torch.full_like(labels, 7)
                )
            },
        )


@prop(
    8,
    "guided_eps with w = -1 is the unconditional prediction eps(x_t, t, ∅), ∅ = "
    "model.config.num_classes",
    _HINT_GUIDANCE,
    uses=("guided_eps",),
)
def guidance_w_minus1_unconditional(impl):
    model = _TwoWayModel()
    xt, t, labels = _guidance_inputs()
    with torch.no_grad():
        _expect_close(
            impl.guided_eps(model, xt, t, labels, -1.0),
            model(xt, t, torch.full_like(labels, 7)),
            "guided_eps(w=-1) (the model has num_classes = 7, so ∅ is label 7)",
            atol=1e-6,
            diagnoses={
                "eps(x_t, t, label 10): ∅ is model.config.num_classes, not a "
                "hard-coded 10": model(xt, t, torch.full_like(labels, 10))
            },
        )


@prop(
    8,
    "guided_eps is affine in w: (1 + w) eps(x_t, t, c) - w eps(x_t, t, ∅) for every w "
    "(eq. 8.1)",
    _HINT_GUIDANCE,
    uses=("guided_eps",),
)
def guidance_affine_in_w(impl):
    model = _TwoWayModel()

    candidates = {
        "(1 + w) eps(∅) - w eps(c): c and ∅ are swapped": lambda w, c, u: (
            (1 + w) * u - w * c
        ),
        "w eps(c) + (1 - w) eps(∅): that is diffusers' guidance_scale; our w is the "
        "scale minus 1": lambda w, c, u: w * c + (1 - w) * u,
    }

    @_settings(15)
    @given(w=st.floats(-1.0, 10.0), seed=st.integers(0, 100), B=st.integers(1, 4))
    def check(w, seed, B):
        xt, t, labels = _guidance_inputs(B, seed)
        with torch.no_grad():
            cond, uncond = (
                model(xt, t, labels),
                model(xt, t, torch.full_like(labels, 7)),
            )
            got = _as_tensor(
                impl.guided_eps(model, xt, t, labels, w), f"guided_eps(w={w:.4g})"
            )
            want = (1 + w) * cond - w * uncond
            if got.shape == want.shape and torch.allclose(
                got, want, atol=1e-5, rtol=1e-5
            ):
                return
            # which known mistake is it? compare at several w, so one lucky w (like 0)
            # cannot mislead
            for label, formula in candidates.items():
                if all(
                    torch.allclose(
                        impl.guided_eps(model, xt, t, labels, v).double(),
                        formula(v, cond, uncond).double(),
                        atol=1e-5,
                        rtol=1e-5,
                    )
                    for v in (w, 0.5, 3.0)
                ):
                    _expect_close(
                        got,
                        want,
                        f"guided_eps(w={w:.4g})",
                        atol=1e-5,
                        rtol=1e-5,
                        diagnoses={label: got},
                    )
            _expect_close(got, want, f"guided_eps(w={w:.4g})", atol=1e-5, rtol=1e-5)

    check()


@prop(
    8,
    "guided_eps is deterministic and image by image: the same inputs give the same "
    "output, a batch equals its rows",
    "Guidance uses the labels as given: no label dropout at sampling time (that is a "
    "training trick, lesson 05), "
    "no randomness at all. Keep the conditional and unconditional halves in the same "
    "order when you split "
    "a doubled batch (eps.chunk(2)).",
    uses=("guided_eps",),
)
def guidance_deterministic_per_image(impl):
    model = _TwoWayModel()
    xt, t, labels = _guidance_inputs(B=4, seed=3)
    with torch.no_grad():
        a = impl.guided_eps(model, xt, t, labels, 2.0)
        b = impl.guided_eps(model, xt, t, labels, 2.0)
        _expect_close(b, a, "guided_eps called twice with the same inputs", atol=0)
        rows = torch.cat(
            [
                impl.guided_eps(
                    model, xt[i : i + 1], t[i : i + 1], labels[i : i + 1], 2.0
                )
                for i in range(4)
            ]
        )
        _expect_close(
            a,
            rows,
            "guided_eps of a batch compared with guided_eps of each image alone",
            atol=1e-6,
        )


# ---------------------------------------------------------------------------
# Loading a learner's file
# ---------------------------------------------------------------------------


class LoadError(Exception):
    """The learner's file (or the course module) could not be loaded; the message says
    why and what to do.
    """


def _where_in(err: BaseException, path: Path) -> str:
    """' (your file, line N: `code`)' for the innermost frame of the traceback inside
    ``path``, else ''.
    """
    frames = [
        f
        for f in traceback.extract_tb(err.__traceback__)
        if Path(f.filename).resolve() == path
    ]
    if not frames:
        return ""
    f = frames[-1]
    return (
        f" (in {path.name}, line {f.lineno}, in {f.name}: `{(f.line or '').strip()}`)"
    )


def load_learner_module(path: Path, lesson: int | str = "N") -> types.ModuleType:
    """Import the learner's file by path. Raises LoadError with a message that names the
    problem and the fix.
    """
    if not path.exists():
        raise LoadError(
            f"No file {path}. Get a template with `diffusion-lessons check {lesson} "
            f"--template {path.name}`, "
            "fill it in, and check that file."
        )
    if path.is_dir():
        raise LoadError(
            f"{path} is a folder; name the .py file to check, e.g. "
            f"{path / 'lesson01_exercise.py'}."
        )
    if path.suffix != ".py":
        raise LoadError(
            f"{path} is not a Python file (.py); check the .py file with your "
            "functions in it."
        )
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise LoadError(f"Cannot read {path}: {err}. Save it as UTF-8 text.") from None
    try:
        compile(source, str(path), "exec")
    except SyntaxError as err:
        line = (err.text or "").rstrip("\n")
        caret = (
            " " * max(0, (err.offset or 1) - 1 - (len(line) - len(line.lstrip()))) + "^"
        )
        raise LoadError(
            f"{path.name}, line {err.lineno}: {type(err).__name__}: {err.msg}\n    "
            f"{line.strip()}\n    {caret}\n"
            "Fix this line (and look at the one before it: an unclosed bracket shows "
            "up one line late), "
            "then check again."
        ) from None
    name = f"_diffusion_lessons_learner_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(
        0, str(path.parent)
    )  # the learner's own helper modules, next to the file
    try:
        spec.loader.exec_module(module)
    except KeyboardInterrupt:
        raise
    except BaseException as err:  # noqa: BLE001 - anything the learner's top-level code does, incl. SystemExit
        sys.modules.pop(name, None)
        raise LoadError(
            f"Importing {path.name} failed with {type(err).__name__}: "
            f"{err}{_where_in(err, path)}.\n"
            "The checker imports your file: keep experiments and prints under `if "
            '__name__ == "__main__":`, '
            "and check the imports at the top."
        ) from None
    finally:
        if str(path.parent) in sys.path:
            sys.path.remove(str(path.parent))
    return module


def _course_module(exercise: LessonExercises) -> types.ModuleType:
    try:
        return importlib.import_module(f"diffusion_lessons.{exercise.module}")
    except Exception as err:
        raise LoadError(
            f"The course's own module diffusion_lessons.{exercise.module} failed to "
            f"import ({type(err).__name__}: "
            f"{err}). This is a problem in the course, not in your file: reinstall "
            "diffusion-lessons or report it."
        ) from None


def _parameters(obj) -> dict[str, list[str]] | None:
    """Parameter names (without self): {"": names} for a function, {"__init__": ...,
    "forward": ...} for a module class.
    """
    import inspect

    def names(fn) -> list[str]:
        found = [q.name for q in inspect.signature(fn).parameters.values()]
        return found[1:] if found[:1] == ["self"] else found

    try:
        if inspect.isclass(obj):
            return {"__init__": names(obj.__init__), "forward": names(obj.forward)}
        return {"": names(obj)}
    except (TypeError, ValueError, AttributeError):
        return None


def _signature_problem(name: str, mine, template) -> str | None:
    """Why ``mine`` cannot be called like the template's ``name`` (the checks call it
    that way), or None.
    """
    want, got = _parameters(template), _parameters(mine)
    if want is None or got is None:
        return None
    for part, wanted in want.items():
        have = got.get(part, [])
        if have[: len(wanted)] != wanted:
            label = f"{name}.{part}" if part else name
            return (
                f"your {label} takes ({', '.join(have)}) but the checks call it like "
                f"the template's {label}({', '.join(wanted)}): "
                "keep the template's parameter names and order (extra parameters with "
                "defaults may follow)"
            )
    return None


def _template_module(lesson: int) -> types.ModuleType | None:
    try:
        return load_learner_module(template_path(lesson))
    except LoadError:
        return None


def _origin(obj) -> str:
    """'yours', or 'course (imported)' when the object is one of the course's own
    functions.
    """
    module = getattr(obj, "__module__", "") or ""
    return "course (imported)" if module.startswith("diffusion_lessons.") else "yours"


# ---------------------------------------------------------------------------
# Running the checks
# ---------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    description: str
    status: str  # "pass" | "fail" | "todo"
    message: str
    hint: str
    functions: dict[str, str]

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "status": self.status,
            "message": self.message,
            "hint": self.hint,
            "functions": self.functions,
        }


def _falsifying_example(err: BaseException) -> str:
    """hypothesis' note 'Falsifying example: check(t=3, ...)' as 't=3, ...'."""
    parts = []
    for note in getattr(err, "__notes__", ()):
        if note.startswith(("Falsifying example", "Failing test case")) and "(" in note:
            body = note.split("(", 1)[1].rsplit(")", 1)[0]
            parts += [
                a
                for a in (
                    re.sub(r"\s*#.*$", "", line).strip().rstrip(",")
                    for line in body.splitlines()
                )
                if a and not a.endswith("=data(...)")
            ]
        elif note.startswith("Draw "):
            parts.append(note.strip())
    return ", ".join(parts)


_EXCEPTION_GROUP = getattr(
    builtins, "BaseExceptionGroup", ()
)  # Python 3.11+; hypothesis' FlakyFailure is one


def _run_property(
    p: Property,
    impl: types.SimpleNamespace,
    owners: dict[str, str],
    path: Path,
    signature_problems: dict[str, str] | None = None,
) -> Result:
    functions = {name: owners[name] for name in p.uses}
    if all(owner == "course" for owner in functions.values()):
        return Result(
            p.name,
            p.description,
            "todo",
            f"not in your file: write {', '.join(p.uses)} to check this",
            p.hint,
            functions,
        )
    problems = [
        signature_problems[name]
        for name in p.uses
        if name in (signature_problems or {})
    ]
    if problems:
        return Result(
            p.name, p.description, "fail", "\n".join(problems), p.hint, functions
        )
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            p.fn(impl)
    except NotImplementedError as err:
        return Result(
            p.name,
            p.description,
            "todo",
            str(err) or "NotImplementedError: not written yet",
            p.hint,
            functions,
        )
    except AssertionError as err:
        message = str(err) or "assertion failed"
        example = _falsifying_example(err)
        where = _where_in(err, path)
        return Result(
            p.name,
            p.description,
            "fail",
            message + where + (f"\nFalsifying example: {example}" if example else ""),
            p.hint,
            functions,
        )
    except KeyboardInterrupt:
        raise
    except Exception as err:  # the learner's code crashed
        inner = err
        flaky = ""
        if (
            isinstance(err, _EXCEPTION_GROUP) and err.exceptions
        ):  # hypothesis' FlakyFailure
            inner = err.exceptions[0]
            flaky = (
                " It failed only some of the time: does your code draw random numbers "
                "without the generator argument?"
            )
        if isinstance(inner, NotImplementedError):
            return Result(
                p.name,
                p.description,
                "todo",
                str(inner) or "not written yet",
                p.hint,
                functions,
            )
        example = _falsifying_example(err) or _falsifying_example(inner)
        if isinstance(inner, AssertionError):
            message = f"{inner}{_where_in(inner, path)}.{flaky}"
        else:
            message = (
                f"your code raised {type(inner).__name__}: "
                f"{inner}{_where_in(inner, path)}.{flaky}"
            )
        return Result(
            p.name,
            p.description,
            "fail",
            message + (f"\nFalsifying example: {example}" if example else ""),
            p.hint,
            functions,
        )
    return Result(p.name, p.description, "pass", "", p.hint, functions)


def _attribution(functions: dict[str, str]) -> str:
    mine = [n for n, o in functions.items() if o != "course"]
    course = [n for n, o in functions.items() if o == "course"]
    if not mine:
        return "(not in your file)"
    text = "your " + ", ".join(mine)
    return f"({text}; course's {', '.join(course)})" if course else f"({text})"


def _print_report(
    exercise: LessonExercises,
    path: Path,
    owners: dict[str, str],
    results: list[Result],
    out: TextIO,
) -> None:
    print(
        f"Lesson {exercise.lesson:02d} · {exercise.title} — checking {path.name}",
        file=out,
    )
    mine = [n for n, o in owners.items() if o != "course"]
    missing = [n for n, o in owners.items() if o == "course"]
    imported = [n for n, o in owners.items() if o == "course (imported)"]
    print(
        f"  your file defines: {', '.join(mine) or 'none of ' + ', '.join(owners)}"
        + (
            f"; not in your file (the course's are used): {', '.join(missing)}"
            if missing and mine
            else ""
        ),
        file=out,
    )
    if imported:
        verb = "is" if len(imported) == 1 else "are"
        print(
            f"  note: {', '.join(imported)} in your file {verb} the course's own "
            "(imported), not your code",
            file=out,
        )
    width = min(max(len(r.description) for r in results), 70)
    for r in results:
        status = {"pass": "PASS", "fail": "FAIL", "todo": "TODO"}[r.status]
        note = (
            _attribution(r.functions)
            if r.status != "todo"
            else f"({r.message.splitlines()[0]})"
        )
        print(f"  {status}  {r.description:<{width}}  {note}", file=out)
        if r.status == "fail":
            for line in r.message.splitlines():
                print(f"        {line}", file=out)
            print(f"        Hint: {r.hint}", file=out)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "todo")}
    print(
        f"{counts['pass']} passed, {counts['fail']} failed, {counts['todo']} to do (of "
        f"{len(results)}).",
        file=out,
    )


def _write_json(json_path, payload: dict) -> None:
    path = Path(json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )


def _exercise(lesson: int) -> LessonExercises:
    if lesson not in EXERCISES:
        raise ValueError(
            f"No exercise for lesson {lesson!r}; the lessons with exercises are "
            f"{', '.join(str(n) for n in sorted(EXERCISES))} (see: diffusion-lessons "
            "list)."
        )
    return EXERCISES[lesson]


def run_check(
    lesson: int,
    path: str | Path,
    json_path: str | Path | None = None,
    *,
    out: TextIO | None = None,
) -> int:
    """Check the learner's file ``path`` against lesson ``lesson``'s properties and
    print the report.

    Args:
        lesson: the lesson number (1..8).
        path: the learner's .py file (usually a filled-in copy of the lesson's
            template).
        json_path: also write the report as JSON here: {"lesson", "title", "file",
            "exit_status", "error", "functions": {name: "yours" | "course (imported)" |
            "course"}, "results": [{"name", "description", "status": "pass" | "fail" |
            "todo", "message", "hint", "functions"}], "passed", "failed", "todo",
            "total"}.
        out: where to print (default: standard output).
    Returns:
        The exit status: 0 if every property passes, 1 if any fails or is still to do, 2
        if the file (or the course module) cannot be loaded.
    """
    out = out or sys.stdout
    path = Path(path).expanduser().resolve()
    payload = {
        "lesson": lesson,
        "title": LESSONS.get(lesson, ("", ""))[1],
        "file": str(path),
        "exit_status": 2,
        "error": None,
        "functions": {},
        "results": [],
        "passed": 0,
        "failed": 0,
        "todo": 0,
        "total": 0,
    }
    try:
        exercise = _exercise(lesson)
        if _HYPOTHESIS_MISSING is not None:
            raise LoadError(
                "`diffusion-lessons check` needs the hypothesis package "
                f"({_HYPOTHESIS_MISSING}). "
                "Install it: pip install hypothesis"
            )
        module = load_learner_module(path, lesson)
        owners = {
            name: (
                _origin(getattr(module, name)) if hasattr(module, name) else "course"
            )
            for name in exercise.functions
        }
        course = _course_module(exercise) if "course" in owners.values() else None
        impl = types.SimpleNamespace(
            **{
                name: getattr(module, name)
                if owners[name] != "course"
                else getattr(course, name)
                for name in exercise.functions
            }
        )
        template = _template_module(lesson)
        signature_problems = {
            name: problem
            for name in exercise.functions
            if owners[name] == "yours"
            and template is not None
            and (
                problem := _signature_problem(
                    name, getattr(impl, name), getattr(template, name, None)
                )
            )
        }
    except (LoadError, ValueError) as err:
        print(f"Cannot check {path.name}: {err}", file=out)
        payload["error"] = str(err)
        if json_path is not None:
            _write_json(json_path, payload)
        return 2
    results = [
        _run_property(p, impl, owners, path, signature_problems)
        for p in exercise.properties
    ]
    _print_report(exercise, path, owners, results, out)
    counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "todo")}
    status = 0 if counts["pass"] == len(results) else 1
    if json_path is not None:
        payload.update(
            exit_status=status,
            functions=owners,
            results=[r.as_dict() for r in results],
            passed=counts["pass"],
            failed=counts["fail"],
            todo=counts["todo"],
            total=len(results),
        )
        _write_json(json_path, payload)
    return status


# ---------------------------------------------------------------------------
# Templates and the command line
# ---------------------------------------------------------------------------


def template_path(lesson: int) -> Path:
    """The packaged template of ``lesson``:
    diffusion_lessons/exercises/lessonNN_exercise.py.
    """
    _exercise(lesson)
    return Path(
        str(
            importlib.resources.files("diffusion_lessons").joinpath(
                "exercises", f"lesson{lesson:02d}_exercise.py"
            )
        )
    )


def copy_template(
    lesson: int, dest: str | Path | None = None, *, overwrite: bool = False
) -> Path:
    """Copy lesson ``lesson``'s exercise template to ``dest`` (a .py file name or an
    existing folder; default: here).

    Returns the path written. Refuses to overwrite an existing file (your work) unless
    ``overwrite``.
    """
    src = template_path(lesson)
    dest = Path(dest) if dest is not None else Path.cwd()
    if dest.is_dir():
        dest = dest / src.name
    if dest.suffix != ".py":
        raise ValueError(
            f"Name the copy with a .py ending (e.g. {dest.with_suffix('.py').name}) so "
            "Python can import it, "
            "or give a folder."
        )
    if dest.exists() and not overwrite:
        raise FileExistsError(
            f"{dest} already exists and would be overwritten (your work?). Choose "
            "another name, or delete it first."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    return dest


def list_properties(lesson: int) -> str:
    """The lesson's exercise functions and properties, as text (for ``check N --list``)."""
    exercise = _exercise(lesson)
    lines = [
        f"Lesson {lesson:02d} · {exercise.title}: {len(exercise.properties)} properties",
        f"  functions to write: {', '.join(exercise.functions)} (template: "
        f"diffusion-lessons check {lesson} --template FILE.py)",
    ]
    for p in exercise.properties:
        lines.append(f"  {p.name:<34} {p.description}  [{', '.join(p.uses)}]")
    return "\n".join(lines)


def add_check_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The arguments of ``diffusion-lessons check``: N [FILE] [--json OUT] [--template
    DEST] [--list].
    """
    parser.add_argument("lesson", type=int, help="lesson number (1-8)")
    parser.add_argument("file", nargs="?", help="your .py file (a filled-in template)")
    parser.add_argument(
        "--json",
        metavar="OUT",
        default=None,
        help="also write the report as JSON to OUT (for autograders)",
    )
    parser.add_argument(
        "--template",
        metavar="DEST",
        default=None,
        help="copy the lesson's exercise template to DEST (a .py file or a folder) and "
        "stop",
    )
    parser.add_argument(
        "--list", action="store_true", help="list the lesson's properties and stop"
    )
    return parser


def check_command(args: argparse.Namespace) -> int:
    """Run ``diffusion-lessons check`` from parsed arguments; returns the exit status."""
    try:
        if args.list:
            print(list_properties(args.lesson))
            return 0
        if args.template:
            dest = copy_template(args.lesson, args.template)
            print(
                f"Wrote {dest}. Fill in the functions, then run: diffusion-lessons "
                f"check {args.lesson} {dest}"
            )
            return 0
    except (ValueError, FileExistsError) as err:
        print(err, file=sys.stderr)
        return 2
    if not args.file:
        print(
            f"Name the file to check: diffusion-lessons check {args.lesson} FILE.py "
            "(get a template with --template FILE.py, see the properties with --list).",
            file=sys.stderr,
        )
        return 2
    return run_check(args.lesson, args.file, args.json)


def main(argv: list[str] | None = None) -> None:
    """``python -m diffusion_lessons.check N FILE``: the same as ``diffusion-lessons
    check``.
    """
    parser = add_check_arguments(
        argparse.ArgumentParser(
            prog="diffusion-lessons check", description=__doc__.splitlines()[0]
        )
    )
    raise SystemExit(check_command(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
