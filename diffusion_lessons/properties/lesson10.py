"""Lesson 10's properties: the conventions between the course and diffusers, and the
shards of a distributed batch.

They check the exercise functions of ``diffusion_lessons.lesson10_going_further``
(``shard`` is re-exported there from ``diffusion_lessons.distributed``). None needs
diffusers.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from ._common import Property, _expect_close, _expect_raises, _settings, registrar

MODULE = "lesson10_going_further"
FUNCTIONS = ("course_t", "guidance_scale", "diffusers_guidance", "shard")
# how the properties call each function: (positional arguments, keywords)
CALLS = {
    "course_t": (1, ()),
    "guidance_scale": (1, ()),
    "diffusers_guidance": (3, ()),
    "shard": (3, ()),
}
PROPERTIES: list[Property] = []
prop = registrar(PROPERTIES)

_HINT_STEPS = (
    "Eq. 10.1: diffusers numbers the steps k = 0..T-1, the course t = 1..T, so t = k + "
    "1. Accept a python int or a 0-d tensor (int(k)), and refuse a fractional k with "
    "a ValueError that names timestep_spacing='trailing'."
)
_HINT_GUIDANCE = (
    "Eq. 10.3: diffusers writes eps_∅ + s (eps_c - eps_∅) with s = 1 + w, so our w = "
    "0.5 "
    "is guidance_scale 1.5. eps_cond is the first argument, eps_uncond the second."
)
_HINT_SHARD = (
    "Eq. 10.5: process r of N keeps rows r B/N .. (r+1) B/N - 1 of the global batch: "
    "slice(r * per, (r + 1) * per) with per = B // N. A batch that does not split "
    "evenly must raise a ValueError naming the fix."
)


@prop(
    "course_t(k) = k + 1 for every diffusers step k = 0..T-1, int or 0-d tensor "
    "(eq. 10.1)",
    _HINT_STEPS,
    uses=("course_t",),
)
def steps_shift_by_one(impl):
    @_settings(30)
    @given(k=st.integers(0, 5000))
    def check(k):
        for given_k in (k, torch.tensor(k)):
            got = impl.course_t(given_k)
            if got != k + 1 or isinstance(got, bool):
                raise AssertionError(
                    f"course_t({given_k!r}) returned {got!r}; expected {k + 1} "
                    "(diffusers' k is our t - 1)"
                )

    check()


@prop(
    "course_t refuses a fractional step k with a ValueError",
    _HINT_STEPS,
    uses=("course_t",),
)
def fractional_steps_refused(impl):
    for k in (10.5, 0.25, torch.tensor(998.7)):
        _expect_raises(lambda k=k: impl.course_t(k), f"course_t({float(k)})")


@prop(
    "guidance_scale(w) = 1 + w for every w (eq. 10.3)",
    _HINT_GUIDANCE,
    uses=("guidance_scale",),
)
def scale_is_one_plus_w(impl):
    @_settings(30)
    @given(w=st.floats(-1.0, 50.0))
    def check(w):
        got = impl.guidance_scale(w)
        if not abs(float(got) - (1.0 + w)) <= 1e-9 * (1 + abs(w)):
            raise AssertionError(
                f"guidance_scale({w!r}) returned {got!r}; expected {1 + w!r}"
                + (" (you returned w itself)" if float(got) == w else "")
            )

    check()


@prop(
    "diffusers_guidance(c, u, guidance_scale(w)) is lesson 09's (1 + w) c - w u for "
    "every w",
    _HINT_GUIDANCE,
    uses=("diffusers_guidance", "guidance_scale"),
)
def guidance_matches_lesson08(impl):
    @_settings(20)
    @given(w=st.floats(-1.0, 20.0), seed=st.integers(0, 1000), B=st.integers(1, 4))
    def check(w, seed, B):
        g = torch.Generator().manual_seed(seed)
        cond = torch.randn((B, 1, 4, 4), generator=g)
        uncond = torch.randn((B, 1, 4, 4), generator=g)
        s = impl.guidance_scale(w)
        _expect_close(
            impl.diffusers_guidance(cond, uncond, s),
            (1 + w) * cond - w * uncond,
            f"diffusers_guidance(c, u, s={float(s):.4g})",
            atol=1e-5,
            rtol=1e-5,
            diagnoses={
                "c + s (u - c): eps_cond and eps_uncond are swapped": cond
                + s * (uncond - cond),
                "s c - w u with s used as w: the scale was applied as our w": (1 + s)
                * cond
                - s * uncond,
            },
        )

    check()


@prop(
    "shard(B, r, N) over r = 0..N-1 cuts range(B) into N equal slices, in order",
    _HINT_SHARD,
    uses=("shard",),
)
def shards_partition_the_batch(impl):
    @_settings(30)
    @given(per=st.integers(1, 64), nproc=st.integers(1, 8))
    def check(per, nproc):
        B = per * nproc
        rows = [list(range(B))[impl.shard(B, r, nproc)] for r in range(nproc)]
        if [len(r) for r in rows] != [per] * nproc or sum(rows, []) != list(range(B)):
            raise AssertionError(
                f"shard({B}, r, {nproc}) for r = 0..{nproc - 1} gave rows "
                f"{[(r[0], r[-1]) if r else () for r in rows]}; expected {nproc} "
                f"consecutive slices of {per} rows covering 0..{B - 1} once"
            )

    check()


@prop(
    "shard refuses a batch that does not split into N equal parts with a ValueError",
    _HINT_SHARD,
    uses=("shard",),
)
def uneven_batch_refused(impl):
    for B, nproc in ((65, 2), (64, 3), (10, 4)):
        _expect_raises(
            lambda B=B, n=nproc: impl.shard(B, 0, n), f"shard({B}, 0, {nproc})"
        )
