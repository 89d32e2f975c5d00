"""Lesson 06's properties: sampling.

They check the exercise functions of ``diffusion_lessons.lesson06_sampling``.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from ._common import (
    Property,
    _as_tensor,
    _expect_close,
    _expect_finite,
    _generator,
    _settings,
    registrar,
)

MODULE = "lesson06_sampling"
FUNCTIONS = ("reverse_step", "sampling_timesteps")
# how the properties call each function: (positional arguments, keywords)
CALLS = {
    "reverse_step": (5, ("eta", "clip_x0", "generator")),
    "sampling_timesteps": (2, ()),
}
PROPERTIES: list[Property] = []
prop = registrar(PROPERTIES)


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
    from ..lesson01_forward_noise import q_sample
    from ..lesson02_schedules import make_schedule

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
            data.draw(st.floats(0.0, 1.0), label="eta"),
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
    "with eta = 0 and the true noise, reverse_step lands exactly on q_sample(x0, s, "
    "eps), for any s < t",
    _HINT_REVERSE,
    uses=("reverse_step",),
)
def ddim_lands_on_q_sample(impl):
    from ..lesson01_forward_noise import q_sample

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
                "q_sample(x0, t - 1, eps): use s, the step you move to, not t - 1": (
                    q_sample(x0, t - 1, sch, eps=eps)
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
        from ..lesson02_schedules import make_schedule

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
        # the same seed gives the same z: the noise cancels, the mean remains
        diff = x1 - x2
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
    "clip_x0 clips x0_pred to [-1, 1] and recomputes eps_pred from it; clip_x0=False "
    "leaves x0_pred alone",
    "if clip_x0: x0_pred = x0_pred.clamp(-1, 1), then eps_pred = (x_t - sqrt(ᾱ_t) "
    "x0_pred) / sqrt(1 - ᾱ_t), so that "
    "x0_pred and eps_pred describe the same x_t; without that second line the step "
    "mixes a clipped x0 with the old noise.",
    uses=("reverse_step",),
)
def clip_recomputes_eps(impl):
    from ..lesson02_schedules import make_schedule

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


def _timesteps_problem(impl, T: int, steps: int) -> str | None:
    """What is wrong with sampling_timesteps(T, steps), or None."""
    out = impl.sampling_timesteps(T, steps)
    try:
        ts = [int(v) for v in (out.tolist() if hasattr(out, "tolist") else out)]
    except (TypeError, ValueError):
        return (
            f"sampling_timesteps({T}, {steps}) returned {type(out).__name__}; return a "
            "list of ints"
        )
    call = f"sampling_timesteps({T}, {steps})"
    if len(ts) != steps:
        return f"{call} has {len(ts)} steps; expected {steps}: {ts[-4:]} at the end"
    if ts[0] != T:
        return f"{call} starts at {ts[0]}; it must start at T = {T}"
    if ts != sorted(set(ts), reverse=True):
        return f"{call} must be strictly descending and distinct; got {ts[:8]}..."
    if ts[-1] < 1:
        return (
            f"{call} ends at {ts[-1]}; the last step to take is >= 1 (t = 0 is the "
            "clean image)"
        )
    return None


@prop(
    "sampling_timesteps(T, steps): `steps` distinct steps, descending from T, none "
    "below 1, for every pair with T <= 120 and for larger T",
    "Start at T and space the steps evenly down to 1: "
    "sorted({round(T - i * (T - 1) / max(1, steps - 1)) for i in "
    "range(steps)}, reverse=True). t = 0 is the clean image, never a step to take; "
    "the sampler ends with s = 0. A float spacing such as np.arange(T, 0, -T / steps) "
    "gives steps + 1 values, the last one 0, for some pairs.",
    uses=("sampling_timesteps",),
)
def sampling_timesteps_property(impl):
    for T in range(1, 121):  # every pair: a spacing bug shows for a few percent only
        for steps in range(1, T + 1):
            problem = _timesteps_problem(impl, T, steps)
            assert problem is None, problem

    @_settings(40)
    @given(T=st.integers(121, 2000), data=st.data())
    def check(T, data):
        steps = data.draw(st.integers(1, T), label="steps")
        problem = _timesteps_problem(impl, T, steps)
        assert problem is None, problem

    check()


@prop(
    "the last move, to s = 0, adds no noise for any eta: x_0 is x0_pred",
    "Eq. 6.2 gives sigma = 0 when s = 0 (ᾱ_0 = 1 makes 1 - ᾱ_s zero), so the last "
    "step returns x0_pred exactly. Adding DDPM's sqrt(beta_t) z on every step, the "
    "last one included, leaves noise in the final image.",
    uses=("reverse_step",),
)
def final_step_is_clean(impl):
    @_settings(25)
    @given(
        name=st.sampled_from(["linear", "cosine"]),
        T=st.integers(2, 1000),
        eta=st.floats(0.0, 1.0),
        clip=st.booleans(),
        data=st.data(),
    )
    def check(name, T, eta, clip, data):
        t = data.draw(st.integers(1, T), label="t")
        sch, x0, eps, xt = _reverse_case(name, T, t, 0, seed=t, shape=(2, 1, 4, 4))
        outs = [
            _two_tensors(
                impl.reverse_step(
                    xt, eps, t, 0, sch, eta=eta, clip_x0=clip, generator=_generator(g)
                ),
                "reverse_step",
            )
            for g in (1, 2)
        ]
        (x_s, x0_pred), (x_s2, _) = outs
        _expect_close(
            x_s,
            x0_pred.detach(),
            f"x_0 of reverse_step(x_t, eps, t={t}, s=0, eta={eta:.3g}) ({name}, "
            f"T={T}); it must equal the x0_pred it returns",
            atol=1e-5,
        )
        _expect_close(
            x_s2,
            x_s.detach(),
            f"x_0 of the last step with another generator seed (eta={eta:.3g})",
            atol=1e-5,
        )

    check()


@prop(
    "reverse_step adds noise of standard deviation sigma = eta sqrt((1 - ᾱ_s)/(1 - "
    "ᾱ_t) (1 - ᾱ_t/ᾱ_s)) (eq. 6.2) for every eta in [0, 1] and every s < t",
    "sigma = eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5 with ab_s = "
    "alpha_bar[s] for the step you move to: eta multiplies the square root (it is "
    "not inside it, not squared). DDPM's posterior variance β̃_t = (1 - ᾱ_{t-1}) / "
    "(1 - ᾱ_t) β_t is the case s = t - 1 only; with skipped steps use ᾱ_s.",
    uses=("reverse_step",),
)
def noise_scale_any_eta(impl):
    from ..lesson02_schedules import make_schedule

    @_settings(40)
    @given(
        name=st.sampled_from(["linear", "cosine"]),
        T=st.integers(3, 1000),
        eta=st.floats(0.0, 1.0),
        data=st.data(),
    )
    def check(name, T, eta, data):
        t = data.draw(st.integers(2, T), label="t")
        s = data.draw(st.integers(1, t - 1), label="s")
        sch = make_schedule(name, T)
        g = _generator(t * 7919 + s)
        shape = (1, 1, 64, 64)  # 4096 draws of the noise
        xt = torch.randn(shape, generator=g, dtype=torch.float64)
        eps = torch.randn(shape, generator=g, dtype=torch.float64)
        ab_t, ab_s = sch.alpha_bar[t].item(), sch.alpha_bar[s].item()
        ab_prev, b = sch.alpha_bar[t - 1].item(), sch.beta[t].item()
        var = (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
        sigma = eta * var**0.5
        runs = [
            _two_tensors(
                impl.reverse_step(
                    xt, eps, t, s, sch, eta=eta, clip_x0=False, generator=_generator(9)
                ),
                "reverse_step",
            )[0]
            for _ in range(2)
        ]
        for x in runs:
            _expect_finite(x, f"x_s of reverse_step(t={t}, s={s}, eta={eta:.3g})")
        assert torch.equal(runs[0], runs[1]), (
            "the same inputs and generator seed gave two different x_s: draw z with "
            "torch.randn(xt.shape, generator=generator)"
        )
        x0_pred = (xt - (1 - ab_t) ** 0.5 * eps) / ab_t**0.5
        mean = ab_s**0.5 * x0_pred + max(0.0, 1 - ab_s - sigma**2) ** 0.5 * eps
        std = (runs[0] - mean).std().item()
        if abs(std - sigma) <= 0.1 * sigma + 1e-6:
            return
        candidates = {
            "sqrt(eta) times eq. 6.2's sigma: eta is inside the square root; "
            "eq. 6.2 multiplies the square root by eta": eta**0.5 * var**0.5,
            "eta² times eq. 6.2's sigma: eta is squared outside the square root": (
                eta**2 * var**0.5
            ),
            "eta sqrt(β̃_t), DDPM's posterior variance for s = t - 1: with skipped "
            "steps use ᾱ_s": eta * ((1 - ab_prev) / (1 - ab_t) * b) ** 0.5,
            "eta sqrt(beta_t): use eq. 6.2 with ᾱ_s": eta * b**0.5,
            "sigma² (a variance): add sigma z": sigma**2,
        }
        note = next(
            (
                f"; that is {label}"
                for label, value in candidates.items()
                if abs(value - sigma) > 0.1 * sigma + 1e-6
                and abs(std - value) <= 0.1 * value + 1e-6
            ),
            "",
        )
        raise AssertionError(
            f"reverse_step(t={t}, s={s}, eta={eta:.3g}) ({name}, T={T}) added noise "
            f"of standard deviation {std:.4g}; eq. 6.2 gives sigma = {sigma:.4g}{note}"
        )

    check()
