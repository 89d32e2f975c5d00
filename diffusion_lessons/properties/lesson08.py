"""Lesson 08's properties: re-ranking.

They check the exercise functions of ``diffusion_lessons.lesson08_clip``.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from ._common import Property, _expect_close, _generator, _settings, registrar

MODULE = "lesson08_clip"
FUNCTIONS = ("rerank",)
# how the properties call each function: (positional arguments, keywords)
CALLS = {
    "rerank": (3, ()),
}
PROPERTIES: list[Property] = []
prop = registrar(PROPERTIES)


@prop(
    "rerank keeps, in each group, the `keep` candidates with the highest scores, best "
    "first (eq. 8.3)",
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
