"""Lesson 07's properties: the Fréchet distance.

They check the exercise functions of ``diffusion_lessons.lesson07_classifier``.
"""

from __future__ import annotations

import math

import torch
from hypothesis import given
from hypothesis import strategies as st

from ._common import Property, _generator, _settings, registrar

MODULE = "lesson07_classifier"
FUNCTIONS = ("frechet_distance",)
# how the properties call each function: (positional arguments, keywords)
CALLS = {
    "frechet_distance": (4, ()),
}
PROPERTIES: list[Property] = []
prop = registrar(PROPERTIES)


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
    "frechet_distance with full (non-diagonal) covariances matches the matrix square "
    "root formula (eq. 7.3)",
    _HINT_FRECHET,
    uses=("frechet_distance",),
)
def fd_full_covariances(impl):
    @_settings(25)
    @given(seed=st.integers(0, 10_000), D=st.integers(2, 6))
    def check(seed, D):
        g = _generator(seed)
        a = torch.randn((D, D), generator=g, dtype=torch.float64)
        b = torch.randn((D, D), generator=g, dtype=torch.float64)
        s1, s2 = a @ a.T + 0.1 * torch.eye(D), b @ b.T + 0.1 * torch.eye(D)
        mu1 = torch.randn(D, generator=g, dtype=torch.float64)
        mu2 = torch.randn(D, generator=g, dtype=torch.float64)
        lam, V = torch.linalg.eigh(s1)
        root = V @ torch.diag(lam.clamp(min=0).sqrt()) @ V.T  # Σ1^½
        tr_sqrt = torch.linalg.eigvalsh(root @ s2 @ root).clamp(min=0).sqrt().sum()
        base = ((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace()
        want = (base - 2 * tr_sqrt).item()
        got = _fd(impl, mu1, s1, mu2, s2)
        if abs(got - want) <= 1e-6 * (1 + abs(want)):
            return
        elementwise = (s1 @ s2).clamp(min=0).sqrt().trace()
        candidates = {
            "the trace of an ELEMENT-WISE square root of Σ1 Σ2 (a matrix square root "
            "is not the square root of each entry)": max(
                0.0, (base - 2 * elementwise).item()
            ),
            "tr(Σ1^½ Σ2 Σ1^½) without its square root": max(
                0.0, (base - 2 * (root @ s2 @ root).trace()).item()
            ),
        }
        note = next(
            (
                f"; that is {label}"
                for label, value in candidates.items()
                if abs(got - value) <= 1e-6 * (1 + abs(value))
            ),
            "",
        )
        raise AssertionError(
            f"FD of two Gaussians with full covariances (D = {D}) is {got:.6g}; "
            f"expected {want:.6g}{note}"
        )

    check()
