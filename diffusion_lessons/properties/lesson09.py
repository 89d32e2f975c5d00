"""Lesson 09's properties: classifier-free guidance.

They check the exercise functions of ``diffusion_lessons.lesson09_guidance``.
"""

from __future__ import annotations

import types

import torch
from hypothesis import given
from hypothesis import strategies as st

from ._common import (
    Property,
    _as_tensor,
    _expect_close,
    _generator,
    _settings,
    registrar,
)

MODULE = "lesson09_guidance"
FUNCTIONS = ("guided_eps",)
# how the properties call each function: (positional arguments, keywords)
CALLS = {
    "guided_eps": (5, ()),
}
PROPERTIES: list[Property] = []
prop = registrar(PROPERTIES)


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
    "Eq. 9.1: eps_w = (1 + w) eps(x_t, t, c) - w eps(x_t, t, ∅), with ∅ = "
    "model.config.num_classes "
    "(torch.full_like(labels, model.config.num_classes)). w = 0 is the conditional "
    "model, w = -1 the "
    "unconditional one; our w is diffusers' guidance_scale minus 1."
)


@prop(
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
    "guided_eps is affine in w: (1 + w) eps(x_t, t, c) - w eps(x_t, t, ∅) for every w "
    "(eq. 9.1)",
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
