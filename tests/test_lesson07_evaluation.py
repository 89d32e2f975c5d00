"""Lesson 07: the Fréchet distance, the classifier metrics, re-ranking, CLIP scoring and
clear errors.
"""

import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lessons import lesson07_evaluation as L
from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson02_schedules import make_schedule
from diffusion_lessons.lesson04_unet import UNET_PRESETS, UNet
from diffusion_lessons.lesson06_sampling import save_samples

TINY_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {
        "image_size": 28,
        "patch_size": 14,
        "width": 32,
        "layers": 1,
        "head_width": 16,
        "mlp_ratio": 1.0,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 16,
        "heads": 1,
        "layers": 1,
        "mlp_ratio": 1.0,
    },
}


@pytest.fixture(scope="module")
def tiny_clip():
    return L.new_digit_clip(TINY_CLIP, name="digit-clip-test", seed=0)


def gaussian(seed: int, D: int, n: int):
    """Mean (D,) and covariance (D, D) of n random points: rank min(n - 1, D), singular
    whenever n <= D.
    """
    g = torch.Generator().manual_seed(seed)
    f = (
        torch.randn(n, D, generator=g, dtype=torch.float64)
        * torch.rand(D, generator=g, dtype=torch.float64)
        * 3
    )
    return f.mean(0), (
        torch.cov(f.T) if n > 1 else torch.zeros(D, D, dtype=torch.float64)
    ).reshape(D, D)


# ---------------------------------------------------------------------------
# Fréchet distance (eqs. 7.3-7.4)
# ---------------------------------------------------------------------------


@given(st.integers(0, 10_000), st.integers(1, 8), st.integers(1, 20))
def test_frechet_zero_for_identical_gaussians(seed, D, n):
    mu, sigma = gaussian(seed, D, n)
    assert abs(L.frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * (
        1 + sigma.trace().item()
    )


@given(
    st.integers(0, 10_000), st.integers(1, 8), st.integers(1, 20), st.integers(1, 20)
)
def test_frechet_symmetric_and_non_negative(seed, D, n1, n2):
    a, b = gaussian(seed, D, n1), gaussian(seed + 1, D, n2)
    ab, ba = L.frechet_distance(*a, *b), L.frechet_distance(*b, *a)
    assert ab >= 0 and math.isfinite(ab)
    assert ab == pytest.approx(ba, rel=1e-6, abs=1e-6)


@given(st.floats(-5, 5), st.floats(-5, 5), st.floats(0, 10), st.floats(0, 10))
def test_frechet_matches_closed_form_in_1d(m1, m2, s1, s2):
    expected = (m1 - m2) ** 2 + s1 + s2 - 2 * math.sqrt(s1 * s2)
    t = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    got = L.frechet_distance(t([m1]), t([[s1]]), t([m2]), t([[s2]]))
    assert got == pytest.approx(max(expected, 0.0), rel=1e-9, abs=1e-9)


@given(st.integers(0, 10_000), st.integers(1, 10), st.booleans())
def test_frechet_matches_closed_form_for_diagonal_covariances(seed, D, singular):
    g = torch.Generator().manual_seed(seed)
    mu1, mu2 = (torch.randn(D, generator=g, dtype=torch.float64) for _ in range(2))
    a, b = (torch.rand(D, generator=g, dtype=torch.float64) * 4 for _ in range(2))
    if singular:  # some variances exactly zero: rank-deficient covariances
        a[::2] = 0
        b[1::3] = 0
    expected = ((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum()
    assert L.frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(
        expected.item(), rel=1e-7, abs=1e-7
    )


def test_frechet_stable_for_rank_deficient_covariances():
    # 128-d features from 10 samples (rank 9), as in a small evaluation; the limit of
    # eps I -> 0 agrees
    a, b = gaussian(0, 128, 10), gaussian(1, 128, 10)
    fd = L.frechet_distance(*a, *b)
    eye = torch.eye(128, dtype=torch.float64)
    near = L.frechet_distance(a[0], a[1] + 1e-9 * eye, b[0], b[1] + 1e-9 * eye)
    assert math.isfinite(fd) and fd > 0
    assert fd == pytest.approx(near, rel=1e-4)
    with pytest.raises(ValueError, match="feature_stats"):
        L.frechet_distance(a[0], a[1], b[0][:5], b[1][:5, :5])


# ---------------------------------------------------------------------------
# Classifier metrics on hand-built cases
# ---------------------------------------------------------------------------


class FixedLogits(torch.nn.Module):
    """A fake classifier: image i carries its index in pixel (0, 0) and gets the logits
    of row i.
    """

    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[x[:, 0, 0, 0].round().long()]

    def features(self, x):
        return self.logits[x[:, 0, 0, 0].round().long()]


def test_classifier_report_on_hand_built_case():
    preds = torch.tensor([0, 1, 1, 2, 3, 3])  # what the fake classifier reads
    labels = torch.tensor([0, 1, 2, 2, 3, 9])  # what was requested
    logits = torch.full((6, 10), -1e4)
    logits[torch.arange(6), preds] = 0.0
    logits[5, 9] = 0.0  # the last one is a tie: confidence 0.5 (argmax takes 3)
    images = torch.zeros(6, 1, 28, 28)
    images[:, 0, 0, 0] = torch.arange(6).float()
    r = L.classifier_report(FixedLogits(logits), images, labels)
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert (
        r["per_class"][:4] == [1.0, 1.0, 0.5, 1.0]
        and r["per_class"][9] == 0.0
        and math.isnan(r["per_class"][5])
    )
    c = torch.tensor(r["confusion"])
    assert (
        c.sum() == 6
        and c[2, 1] == 1
        and c[2, 2] == 1
        and c[9, 3] == 1
        and c.trace() == 4
    )
    assert r["mean_confidence"] == pytest.approx((5 + 0.5) / 6)


def test_random_shift_is_a_translation():
    x = -torch.ones(5, 1, 28, 28)
    x[:, :, 10:18, 10:18] = 1.0
    g = torch.Generator().manual_seed(0)
    assert torch.equal(L.random_shift(x, 0, g), x)
    y = L.random_shift(x, 2, g)
    assert y.shape == x.shape and torch.equal(
        (y > 0).sum((1, 2, 3)), (x > 0).sum((1, 2, 3))
    )


def test_classifier_save_load_roundtrip_and_clear_errors(tmp_path):
    model = L.DigitClassifier().eval()
    path = L.save_classifier(
        model, tmp_path / "c.pt", {"held_out_accuracy": 0.5, "dataset": "mnist-5k"}
    )
    loaded = L.load_classifier(path)
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(loaded(x), model(x)) and loaded.features(x).shape == (3, 128)
    assert loaded.meta["held_out_accuracy"] == 0.5
    with pytest.raises(
        L.EvaluationError,
        match=r"No digit classifier at .*missing\.pt.*train-classifier --out",
    ):
        L.load_classifier(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(
        L.EvaluationError,
        match=r"bad\.pt is not a readable digit classifier.*train-classifier --out",
    ):
        L.load_classifier(tmp_path / "bad.pt")


# ---------------------------------------------------------------------------
# Re-ranking (eq. 7.8)
# ---------------------------------------------------------------------------


@settings(max_examples=40)
@given(st.integers(1, 5), st.integers(1, 9), st.data())
def test_rerank_keeps_the_highest_scoring_candidates(G, N, data):
    keep = data.draw(st.integers(1, N))
    scores = torch.tensor(
        data.draw(st.lists(st.floats(-1e3, 1e3), min_size=G * N, max_size=G * N))
    ).view(G, N)
    # each candidate "is" its flat index
    candidates = torch.arange(G * N).view(G, N, 1) * 1.0
    kept, idx = L.rerank(candidates, scores, keep)
    assert kept.shape == (G, keep, 1) and idx.shape == (G, keep)
    for g in range(G):
        assert torch.equal(kept[g, :, 0].long(), g * N + idx[g])
        chosen = scores[g, idx[g]]
        dropped = scores[g][~torch.isin(torch.arange(N), idx[g])]
        assert torch.equal(chosen, scores[g].sort(descending=True).values[:keep])
        assert dropped.numel() == 0 or chosen.min() >= dropped.max()
    with pytest.raises(ValueError, match="keep"):
        L.rerank(candidates, scores, N + 1)


# ---------------------------------------------------------------------------
# CLIP
# ---------------------------------------------------------------------------


@settings(max_examples=8)
@given(st.integers(1, 9))
def test_clip_scores_are_probabilities_for_any_batch(tiny_clip, n):
    images = torch.rand(n, 1, 28, 28) * 2 - 1
    p = L.clip_scores(tiny_clip.model, tiny_clip.tokenizer, None, images)
    assert p.shape == (n, 10) and (p >= 0).all()
    assert torch.allclose(p.sum(-1), torch.ones(n), atol=1e-5)


def test_clip_input_and_pil_preprocess_agree(tiny_clip):
    images = torch.rand(3, 1, 28, 28) * 2 - 1
    x = L.clip_input(tiny_clip.model, images)
    assert x.shape == (3, 3, 28, 28)
    p_tensor = L.clip_scores(tiny_clip.model, tiny_clip.tokenizer, None, images)
    p_pil = L.clip_scores(
        tiny_clip.model, tiny_clip.tokenizer, tiny_clip.preprocess, images
    )
    # the PIL path rounds pixels to 8 bits
    assert torch.allclose(p_tensor, p_pil, atol=0.05)


def test_digit_clip_save_load_roundtrip(tiny_clip, tmp_path):
    path = L.save_digit_clip(
        tiny_clip,
        tmp_path / "clip.pt",
        {"zero_shot_accuracy": 0.1},
        TINY_CLIP,
        name="digit-clip-test",
    )
    # the word table keeps only the rows the captions use
    assert path.stat().st_size < 200_000
    loaded = L.load_clip("digit-clip", weights=path)
    assert loaded.label.startswith(
        "digit-CLIP trained offline (clip.pt; zero-shot 10.0%"
    )
    images = torch.rand(4, 1, 28, 28) * 2 - 1
    scores = [
        L.clip_scores(c.model, c.tokenizer, None, images) for c in (tiny_clip, loaded)
    ]
    assert torch.equal(*scores)
    with pytest.raises(
        L.EvaluationError,
        match=r"No digit-CLIP weights at .*missing\.pt.*train-clip --out",
    ):
        L.load_clip("digit-clip", weights=tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"junk")
    with pytest.raises(L.EvaluationError, match="not a readable digit-CLIP file"):
        L.load_clip("digit-clip", weights=tmp_path / "bad.pt")


def test_local_open_clip_weight_file_loads_exactly(tiny_clip, tmp_path):
    # any open_clip state dict file
    torch.save(tiny_clip.model.state_dict(), tmp_path / "weights.bin")
    loaded = L.load_clip("digit-clip-test", weights=tmp_path / "weights.bin")
    assert loaded.label == f"digit-clip-test weights from {tmp_path / 'weights.bin'}"
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    assert torch.equal(
        *[
            L.clip_scores(c.model, c.tokenizer, None, images)
            for c in (tiny_clip, loaded)
        ]
    )


def test_hub_weights_offline_fail_fast_with_the_documented_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(L.EvaluationError, match=r"--clip-weights PATH.*--clip digit"):
        L.load_clip("ViT-B-32", "openai")
    assert time.perf_counter() - start < 5
    with pytest.raises(L.EvaluationError, match="No CLIP weight file"):
        L.load_clip("ViT-B-32", weights="no/such/file.safetensors")


# ---------------------------------------------------------------------------
# End to end with a random tiny diffusion model (shapes and keys, not quality)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_setup():
    torch.manual_seed(0)
    classifier = L.DigitClassifier().eval()
    classifier.meta = {"held_out_accuracy": 0.1, "dataset": "mnist-5k"}
    return UNet(UNET_PRESETS["tiny"]).eval(), make_schedule("cosine", 1000), classifier


def test_evaluate_samples_and_report(tiny_setup, tiny_clip):
    _, _, classifier = tiny_setup
    images, labels = load_digits("mnist-5k", "test", limit=30)
    report = L.evaluate_samples(images, labels, classifier, tiny_clip)
    for key in (
        "accuracy",
        "per_class",
        "frechet_distance",
        "frechet_floor",
        "n",
        "clip_score",
        "clip_accuracy",
        "clip_agreement",
        "confusion",
        "mean_confidence",
    ):
        assert key in report
    assert (
        report["n"] == 30
        and report["frechet_floor_n"] == 30
        and report["frechet_distance"] >= 0
    )
    text = L.format_report(report)
    assert "Fréchet classifier distance" in text and "digit-clip-test" in text


def test_recognisability_rerank_and_finetune_run(tiny_setup, tiny_clip):
    model, schedule, classifier = tiny_setup
    curve = L.recognisability_curve(model, schedule, classifier, per_digit=2, steps=3)
    assert (
        curve["accuracy"].shape == (3, 10)
        and curve["fraction"][-1] > curve["fraction"][0]
    )
    assert set(curve["first50"]) == set(range(10)) and curve["x0"].shape == (
        20,
        1,
        28,
        28,
    )
    ranked = L.rerank_experiment(
        model, schedule, classifier, tiny_clip, per_digit=2, candidates=2, steps=2
    )
    assert ranked["after"]["clip_score"] >= ranked["before"]["clip_score"] - 1e-6
    assert ranked["after"]["images"].shape == (20, 1, 28, 28)
    ref = L.feature_stats(classifier, load_digits("mnist-5k", "test", limit=50)[0])
    tuned = L.finetune_on_top(
        model,
        schedule,
        ranked["after"]["images"],
        ranked["after"]["labels"],
        classifier,
        ref,
        finetune_steps=2,
        per_digit=2,
        steps=2,
    )
    assert set(tuned) == {"before", "after"} and tuned["after"]["frechet_distance"] >= 0


def test_evaluate_command_on_a_samples_file(tmp_path, tiny_setup):
    _, _, classifier = tiny_setup
    images, labels = load_digits("mnist-5k", "test", limit=20)
    save_samples(tmp_path / "s.npz", images, labels)
    L.save_classifier(classifier, tmp_path / "c.pt", classifier.meta)
    parser = L.add_evaluate_arguments(__import__("argparse").ArgumentParser())
    args = parser.parse_args(
        [
            "--samples",
            str(tmp_path / "s.npz"),
            "--classifier",
            str(tmp_path / "c.pt"),
            "--clip",
            "none",
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    report = L.evaluate_command(args)
    assert report["n"] == 20 and (tmp_path / "r.json").exists()
