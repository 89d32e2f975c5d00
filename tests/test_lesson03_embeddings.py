"""Properties of the embeddings (lesson 03): eqs. 3.2-3.4 hold for every t and dim;
labels are checked.
"""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lessons.lesson03_embeddings import (
    ClassEmbedding,
    EmbedBlock,
    TimeEmbedding,
    check_labels,
    cosine_similarity_matrix,
    sinusoidal_embedding,
)

even_dims = st.integers(1, 64).map(lambda k: 2 * k)
fast = settings(max_examples=20, deadline=None)


@fast
@given(B=st.integers(1, 32), dim=even_dims, data=st.data())
def test_sinusoidal_shape_dtype_and_range(B, dim, data):
    t = torch.tensor(data.draw(st.lists(st.integers(0, 1000), min_size=B, max_size=B)))
    pe = sinusoidal_embedding(t, dim)
    assert pe.shape == (B, dim) and pe.dtype == torch.float32
    assert pe.abs().max() <= 1.0


@fast
@given(t=st.integers(0, 1000), dim=even_dims)
def test_sinusoidal_layout_sin_then_cos(t, dim):
    """Eqs. 3.2-3.3: index k is sin(omega_k t), index dim/2 + k is cos(omega_k t),
    omega_k = 10000^(-k/(dim/2)).
    """
    pe = sinusoidal_embedding(t, dim)[0]  # a python int gives one row
    half = dim // 2
    for k in {0, half // 2, half - 1}:
        omega = 10_000 ** (-k / half)
        assert pe[k].item() == pytest.approx(math.sin(omega * t), abs=1e-3)
        assert pe[half + k].item() == pytest.approx(math.cos(omega * t), abs=1e-3)


@pytest.mark.parametrize("dim", [4, 8, 16, 64, 128])
def test_distinct_timesteps_give_distinct_embeddings(dim):
    """Every t in 0..1000 gets its own vector. (dim = 2 is the exception that proves the
    rule: with one frequency, sin t and cos t of t = 0 and t = 710 differ by only 6e-5,
    because 710 is close to 113 * 2 pi.)
    """
    pe = sinusoidal_embedding(torch.arange(0, 1001), dim).double()
    dist = torch.cdist(pe, pe) + torch.eye(1001) * 10
    assert dist.min() > 1e-2


@fast
@given(t=st.integers(1, 500), dim=st.sampled_from([8, 16, 32, 64, 128]))
def test_neighbours_are_more_similar_than_distant_steps(t, dim):
    # T = 1000, T/2 = 500
    pe = sinusoidal_embedding(torch.tensor([t, t + 1, t + 500]), dim)
    sim = cosine_similarity_matrix(pe)
    assert sim[0, 1] > sim[0, 2]


@fast
@given(
    t=st.integers(0, 500),
    s=st.integers(0, 500),
    shift=st.integers(0, 500),
    dim=st.sampled_from([8, 32, 64]),
)
def test_similarity_depends_only_on_the_gap(t, s, shift, dim):
    """Eq. 3.4: PE(t) . PE(s) = sum_k cos(omega_k (t - s)), the same after shifting both
    steps.
    """
    pe = sinusoidal_embedding(torch.tensor([t, s, t + shift, s + shift]), dim).double()
    assert (pe[0] @ pe[1]).item() == pytest.approx(
        (pe[2] @ pe[3]).item(), abs=2e-3 * dim
    )


@pytest.mark.parametrize("dim", [0, 1, 3, 63])
def test_odd_dim_is_rejected(dim):
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(torch.tensor([1]), dim)
    with pytest.raises(ValueError, match="even"):
        TimeEmbedding(dim)


def test_sinusoidal_rejects_2d_t():
    with pytest.raises(ValueError, match=r"\(B,\)"):
        sinusoidal_embedding(torch.zeros(2, 3, dtype=torch.long), 8)


@fast
@given(
    B=st.integers(1, 8),
    dim=st.sampled_from([8, 32]),
    out_dim=st.sampled_from([None, 16, 48]),
)
def test_time_embedding_shape(B, dim, out_dim):
    e = TimeEmbedding(dim, out_dim)(torch.randint(0, 1001, (B,)))
    assert e.shape == (B, out_dim or dim) and torch.isfinite(e).all()


@fast
@given(B=st.integers(1, 8), K=st.integers(1, 12), C=st.integers(1, 40))
def test_embed_block_one_hot_gives_a_channel_vector(B, K, C):
    labels = torch.randint(0, K, (B,))
    out = EmbedBlock(K, C)(F.one_hot(labels, K).float())
    assert out.shape == (B, C, 1, 1)


def test_embed_block_rejects_raw_labels():
    with pytest.raises(ValueError, match="one_hot"):
        EmbedBlock(10, 16)(torch.tensor([1, 2]))


def test_one_hot_linear_is_a_table_lookup():
    """Eq. 3.6's first layer on a one-hot vector picks one column of its weight: eq. 3.7
    without the multiply.
    """
    linear = torch.nn.Linear(10, 8, bias=False)
    labels = torch.arange(10)
    assert torch.allclose(
        linear(F.one_hot(labels, 10).float()), linear.weight.T[labels]
    )


@fast
@given(K=st.integers(1, 20), dim=st.sampled_from([4, 16]), B=st.integers(1, 8))
def test_class_embedding_has_a_null_row(K, dim, B):
    emb = ClassEmbedding(K, dim)
    assert emb.null_class == K and emb.table.num_embeddings == K + 1
    labels = torch.randint(0, K + 1, (B,))
    assert emb(labels).shape == (B, dim)
    null = emb(torch.tensor([emb.null_class]))
    assert torch.equal(null[0], emb.table.weight[K])


@pytest.mark.parametrize(
    "labels, error, match",
    [
        (torch.tensor([0, 11]), ValueError, r"0\.\.10"),
        (torch.tensor([-1]), ValueError, "null class"),
        (torch.tensor([1.0, 2.0]), TypeError, "long"),
        (torch.tensor([[1, 2]]), ValueError, r"\(B,\)"),
        ([1, 2], ValueError, "tensor"),
    ],
)
def test_class_embedding_rejects_bad_labels(labels, error, match):
    with pytest.raises(error, match=match):
        ClassEmbedding(10, 8)(labels)


def test_check_labels_batch_mismatch():
    with pytest.raises(ValueError, match="one label per image"):
        check_labels(torch.tensor([1, 2, 3]), 10, batch=2)


def test_run_quick_writes_the_figures(tmp_path):
    from diffusion_lessons.lesson03_embeddings import run

    result = run(tmp_path, quick=True)
    for name in (
        "03_time_embedding.png",
        "03_time_similarity.png",
        "03_without_time.png",
    ):
        assert (tmp_path / name).stat().st_size > 10_000
    assert result["sim_t1_t2"] > result["sim_t1_t500"]
    assert result["one_hot_lookup_gap"] == 0
    assert 0.5 < result["c_star"] < 1
    assert (tmp_path / "03_time_estimator.md").stat().st_size > 100
    read = result["time_steps_read"]["by_t"]
    assert read[10]["low"] <= 10 <= read[10]["high"]  # little noise: read exactly
    assert read[1000]["high"] - read[1000]["low"] > 100  # pure noise: no step to read
    assert result["similarity_drift"] < 1e-4  # eq. 3.4: a function of |t - s| only


def test_noise_estimate_reads_the_std_of_pure_noise():
    from diffusion_lessons.lesson03_embeddings import noise_estimate

    g = torch.Generator().manual_seed(0)
    for sigma in (0.05, 0.3, 1.0):
        est = noise_estimate(sigma * torch.randn(32, 1, 28, 28, generator=g))
        assert abs(est.median().item() - sigma) < 0.05 * sigma
