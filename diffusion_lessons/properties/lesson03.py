"""Lesson 03's properties: embeddings.

They check the exercise functions of ``diffusion_lessons.lesson03_embeddings``.
"""

from __future__ import annotations

import itertools

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

MODULE = "lesson03_embeddings"
FUNCTIONS = ("sinusoidal_embedding", "ClassEmbedding")
# how the properties call each function: (positional arguments, keywords)
CALLS = {
    "sinusoidal_embedding": (2, ()),
    "ClassEmbedding": {"__init__": (2, ()), "forward": (1, ())},
}
PROPERTIES: list[Property] = []
prop = registrar(PROPERTIES)


_HINT_EMBEDDING = (
    "half = dim // 2; omega = max_period ** (-torch.arange(half) / half) (eq. 3.2); "
    "angles = t[:, None] * "
    "omega[None, :]; return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1): "
    "all sines first, then "
    "all cosines, shape (B, dim), float32. A python int t becomes one row."
)


@prop(
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
    "sinusoidal_embedding: index k is sin(ω_k t), index dim/2 + k is cos(ω_k t), ω_k = "
    "max_period^(-k/(dim/2)) (eqs. 3.2-3.3)",
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
                "cosines first, then sines: the layout is [sin | cos]": torch.cat(
                    [angles.cos(), angles.sin()]
                )[None],
                "max_period^(+k/(dim/2)): make the exponent negative": torch.cat(
                    [
                        (t * max_period ** (k / half)).sin(),
                        (t * max_period ** (k / half)).cos(),
                    ]
                )[None],
                "frequencies max_period^(-k/dim): divide k by dim/2": torch.cat(
                    [
                        (t * max_period ** (-k / dim)).sin(),
                        (t * max_period ** (-k / dim)).cos(),
                    ]
                )[None],
            },
        )

    check()


@prop(
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
    "sinusoidal_embedding refuses an odd or too small dim with a ValueError",
    "Half the entries are sines and half cosines, so dim must be even and >= 2: check "
    "it first and raise ValueError "
    "suggesting an even dim.",
    uses=("sinusoidal_embedding",),
)
def embedding_rejects_odd_dim(impl):
    for dim in (0, 1, 3, 63):
        _expect_raises(
            lambda dim=dim: impl.sinusoidal_embedding(torch.tensor([1, 2]), dim),
            f"sinusoidal_embedding(t, dim={dim})",
        )


@prop(
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
