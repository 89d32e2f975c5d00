"""The exercise properties (diffusion_lessons/properties/): the course's own functions
satisfy every one of them, and each known bug fails the property written to catch it.

The grader applies the same properties to a learner's functions; these tests apply them
to the course's reference code and to buggy versions of it, in this process.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import types

import numpy as np
import pytest
import torch

from diffusion_lessons import properties
from diffusion_lessons.lesson01_forward_noise import Schedule
from diffusion_lessons.lesson04_unet import UNet
from diffusion_lessons.lesson05_training import diffusion_loss
from diffusion_lessons.lesson06_sampling import sampling_timesteps
from diffusion_lessons.lesson07_classifier import frechet_distance

LESSONS = properties.lessons()


def course_impl(lesson: int, **replace) -> types.SimpleNamespace:
    """The course's functions of ``lesson``'s exercise, some replaced by ``replace``."""
    spec = properties.load(lesson)
    course = importlib.import_module(f"diffusion_lessons.{spec.module}")
    fns = {name: getattr(course, name) for name in spec.functions}
    return types.SimpleNamespace(**{**fns, **replace})


def prop(lesson: int, name: str):
    return next(p for p in properties.load(lesson).properties if p.name == name)


def fails(lesson: int, name: str, **replace) -> str:
    """Run property ``name`` on the course's code with ``replace``; return its message
    (the test fails if the property holds).
    """
    with pytest.raises(AssertionError) as err:
        prop(lesson, name).fn(course_impl(lesson, **replace))
    return str(err.value)


def holds(lesson: int, name: str, **replace) -> None:
    prop(lesson, name).fn(course_impl(lesson, **replace))


@pytest.mark.parametrize(
    "lesson, name",
    [(n, p.name) for n in LESSONS for p in properties.outline(n).properties],
)
def test_the_course_satisfies_every_property(lesson, name):
    holds(lesson, name)


def test_outline_reads_the_same_registry_without_importing():
    """``check N --list`` reads the modules' source; it must agree with the import."""
    for lesson in LESSONS:
        loaded, read = properties.load(lesson), properties.outline(lesson)
        assert (loaded.module, loaded.functions, loaded.calls) == (
            read.module,
            read.functions,
            read.calls,
        )
        assert [(p.name, p.description, p.hint, p.uses) for p in loaded.properties] == [
            (p.name, p.description, p.hint, p.uses) for p in read.properties
        ]


def test_calls_cover_every_function():
    for lesson in LESSONS:
        spec = properties.load(lesson)
        assert set(spec.calls) == set(spec.functions), lesson
        for p in spec.properties:
            assert set(p.uses) <= set(spec.functions), (lesson, p.name)


# ---------------------------------------------------------------------------
# Sampling (lesson 06)
# ---------------------------------------------------------------------------


def reverse_step_with(sigma_of):
    """reverse_step (eqs. 6.1-6.3) whose sigma is ``sigma_of(schedule, t, s, eta)``."""

    def step(xt, eps_pred, t, s, schedule, eta=0.0, clip_x0=True, generator=None):
        ab_t, ab_s = schedule.alpha_bar[t].item(), schedule.alpha_bar[s].item()
        x0_pred = (xt - (1 - ab_t) ** 0.5 * eps_pred) / ab_t**0.5
        if clip_x0:
            x0_pred = x0_pred.clamp(-1, 1)
            eps_pred = (xt - ab_t**0.5 * x0_pred) / (1 - ab_t) ** 0.5
        sigma = sigma_of(schedule, t, s, eta)
        z = torch.randn(xt.shape, generator=generator, dtype=xt.dtype)
        coef = max(0.0, 1 - ab_s - sigma**2) ** 0.5
        return ab_s**0.5 * x0_pred + coef * eps_pred + sigma * z, x0_pred

    return step


def _ab(schedule, t):
    return schedule.alpha_bar[t].item()


def eq_6_2(schedule, t, s, eta):  # the correct sigma
    ab_t, ab_s = _ab(schedule, t), _ab(schedule, s)
    return eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5


def eta_inside_the_root(schedule, t, s, eta):
    ab_t, ab_s = _ab(schedule, t), _ab(schedule, s)
    return (eta * (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5


def ddpm_posterior(schedule, t, s, eta):  # β̃_t, right only for s = t - 1
    ab_t, ab_prev = _ab(schedule, t), _ab(schedule, t - 1)
    return eta * ((1 - ab_prev) / (1 - ab_t) * schedule.beta[t].item()) ** 0.5


def noise_on_every_step(schedule, t, s, eta):  # DDPM's sqrt(beta_t), even at s = 0
    return eta * schedule.beta[t].item() ** 0.5


def test_a_correct_reverse_step_passes_the_new_properties():
    good = reverse_step_with(eq_6_2)
    for name in ("final_step_is_clean", "noise_scale_any_eta", "ddpm_step"):
        holds(6, name, reverse_step=good)


def test_noise_added_on_the_final_move_fails():
    message = fails(
        6, "final_step_is_clean", reverse_step=reverse_step_with(noise_on_every_step)
    )
    assert "s=0" in message and "x0_pred" in message


def test_eta_in_the_wrong_place_fails_for_eta_between_0_and_1():
    bad = reverse_step_with(eta_inside_the_root)
    holds(6, "ddpm_step", reverse_step=bad)  # eta = 1 hides it
    holds(6, "ddim_deterministic", reverse_step=bad)  # and so does eta = 0
    message = fails(6, "noise_scale_any_eta", reverse_step=bad)
    assert "eta is inside the square root" in message


def test_ddpm_posterior_variance_with_skipped_steps_fails():
    bad = reverse_step_with(ddpm_posterior)
    holds(6, "ddpm_step", reverse_step=bad)  # s = t - 1 hides it
    message = fails(6, "noise_scale_any_eta", reverse_step=bad)
    assert "posterior variance" in message


def float_spacing(T, steps):
    """A spacing seen in public code: a float stride, off for a few percent of pairs."""
    return np.round(np.arange(T, 0, -T / steps)).astype(int).tolist()


def test_a_float_timestep_spacing_fails_for_the_pairs_it_gets_wrong():
    bad_pairs = [
        (T, n)
        for T in range(1, 121)
        for n in range(1, T + 1)
        if len(float_spacing(T, n)) != n or float_spacing(T, n)[-1] < 1
    ]
    # rare: 25 random pairs would miss them, the property tries every pair
    assert 0 < len(bad_pairs) < 0.05 * 120 * 121 / 2
    message = fails(6, "sampling_timesteps_property", sampling_timesteps=float_spacing)
    T, n = bad_pairs[0]
    assert f"sampling_timesteps({T}, {n})" in message


def test_a_spacing_that_ends_at_zero_fails():
    def to_zero(T, steps):
        return [round(T - i * T / max(1, steps - 1)) for i in range(steps)]

    assert "ends at 0" in fails(
        6, "sampling_timesteps_property", sampling_timesteps=to_zero
    )
    holds(6, "sampling_timesteps_property", sampling_timesteps=sampling_timesteps)


# ---------------------------------------------------------------------------
# Fréchet distance (lesson 07)
# ---------------------------------------------------------------------------


def elementwise_frechet(mu1, sigma1, mu2, sigma2):
    """An element-wise square root of Σ1 Σ2, hidden by clamping at 0."""
    mu1, mu2, s1, s2 = (
        torch.as_tensor(a, dtype=torch.float64) for a in (mu1, mu2, sigma1, sigma2)
    )
    tr_sqrt = (s1 @ s2).clamp(min=0).sqrt().trace()
    fd = ((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * tr_sqrt
    return max(0.0, fd.item())


def test_an_elementwise_square_root_fails_the_full_covariance_property():
    for name in ("fd_zero_for_identical", "fd_one_dimension", "fd_diagonal"):
        holds(7, name, frechet_distance=elementwise_frechet)  # they all agree there
    message = fails(7, "fd_full_covariances", frechet_distance=elementwise_frechet)
    assert "ELEMENT-WISE" in message
    holds(7, "fd_full_covariances", frechet_distance=frechet_distance)


# ---------------------------------------------------------------------------
# Min-SNR weighting (lesson 05)
# ---------------------------------------------------------------------------


def batch_mean_min_snr(
    model, x0, labels, schedule, p_uncond=0.1, generator=None, min_snr_gamma=None
):
    """Weights the batch's mean error by the mean weight, not each image's error."""
    from diffusion_lessons.lesson01_forward_noise import q_sample
    from diffusion_lessons.lesson05_training import drop_labels

    B = len(x0)
    t = torch.randint(1, schedule.T + 1, (B,), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    xt = q_sample(x0, t, schedule, eps=eps)
    y = drop_labels(labels, p_uncond, model.config.num_classes, generator)
    mse = ((model(xt, t, y) - eps) ** 2).mean()
    if min_snr_gamma is None:
        return mse
    snr = schedule.alpha_bar[t] / (1 - schedule.alpha_bar[t])
    return mse * (snr.clamp(max=min_snr_gamma) / snr).mean().float()


def test_weighting_the_batch_mean_fails_min_snr():
    message = fails(5, "loss_min_snr", diffusion_loss=batch_mean_min_snr)
    assert "weight each image's own error" in message
    holds(5, "loss_min_snr", diffusion_loss=diffusion_loss)


# ---------------------------------------------------------------------------
# The U-Net's skips (lesson 04)
# ---------------------------------------------------------------------------


class ZeroSkipUNet(UNet):
    """The course's U-Net with every skip replaced by zeros (same layers)."""

    def __init__(self, config):
        super().__init__(dataclasses.replace(config, use_skips=False))


def test_a_unet_with_zero_skips_fails():
    for name in ("unet_shape", "unet_conditioning", "unet_gradients"):
        holds(4, name, UNet=ZeroSkipUNet)  # shapes, conditioning and gradients agree
    assert "skips are missing or zero" in fails(4, "unet_uses_skips", UNet=ZeroSkipUNet)


# ---------------------------------------------------------------------------
# Tolerances follow the dtype (lesson 02)
# ---------------------------------------------------------------------------


def diffusers_cosine(T=1000, s=0.008, max_beta=0.999):
    """The cosine schedule as diffusers computes it: float64 betas stored as float32,
    a float32 cumulative product.
    """
    if int(T) != T or T < 1 or s < 0:
        raise ValueError("need a whole T >= 1 and s >= 0")

    def f(t):
        return math.cos((t + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(int(T))]
    beta = torch.cat([torch.zeros(1), torch.tensor(betas, dtype=torch.float32)])
    alpha = 1 - beta
    return Schedule(beta=beta, alpha=alpha, alpha_bar=torch.cumprod(alpha, 0))


def test_a_float32_cosine_schedule_passes_and_an_unclipped_one_fails():
    holds(2, "cosine_formula", cosine_schedule=diffusers_cosine)

    def unclipped(T=1000, s=0.008, max_beta=0.999):
        return diffusers_cosine(T, s, max_beta=1.0)

    message = fails(2, "cosine_formula", cosine_schedule=unclipped)
    assert "above max_beta = 0.999 even allowing for float32 rounding" in message


# ---------------------------------------------------------------------------
# Messages: NaN and wrong types are named
# ---------------------------------------------------------------------------


def test_nan_is_named_as_nan():
    def nan_q_sample(x0, t, schedule, eps=None, generator=None):
        return x0 * float("nan")

    message = fails(1, "q_sample_zero_noise", q_sample=nan_q_sample)
    assert "NaN" in message

    def nan_step(xt, eps_pred, t, s, schedule, eta=0.0, clip_x0=True, generator=None):
        return xt * float("nan"), xt * float("nan")

    assert "NaN" in fails(6, "noise_scale_any_eta", reverse_step=nan_step)
    assert "different" not in fails(6, "noise_scale_any_eta", reverse_step=nan_step)


def test_a_wrong_type_is_named_not_printed():
    def numpy_q_sample(x0, t, schedule, eps=None, generator=None):
        return x0.numpy()

    message = fails(1, "q_sample_zero_noise", q_sample=numpy_q_sample)
    assert "returned numpy.ndarray; return a torch.Tensor" in message
    assert "array(" not in message and len(message) < 300


def test_instructor_table_counts_match_the_registry():
    """The instructor guide's chapter table quotes each lesson's property count."""
    import re
    from pathlib import Path

    from diffusion_lessons import properties

    guide = Path(__file__).parents[1] / "docs" / "instructors" / "index.md"
    rows = re.findall(
        r"^\| (\d\d) \|.*?\((\d+)(?: properties)?\) \|", guide.read_text(), re.M
    )
    assert rows, "no chapter table found in docs/instructors/index.md"
    for lesson, count in rows:
        exercise = properties.load(int(lesson))
        assert int(count) == len(exercise.properties), (
            f"lesson {lesson}: the guide says {count} properties, "
            f"the grader has {len(exercise.properties)}"
        )
