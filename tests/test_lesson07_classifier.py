"""Lesson 07: the Fréchet distance, the classifier metrics, background haze, the
recognisability curves (reverse and forward), the classifier's evaluation and clear
errors.
"""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffusion_lessons import evaluate as E
from diffusion_lessons import lesson07_classifier as L
from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson02_schedules import make_schedule
from diffusion_lessons.lesson04_unet import UNET_PRESETS, UNet
from diffusion_lessons.lesson06_sampling import save_samples


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
# End to end with a random tiny diffusion model (shapes and keys, not quality)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_setup():
    torch.manual_seed(0)
    classifier = L.DigitClassifier().eval()
    classifier.meta = {"held_out_accuracy": 0.1, "dataset": "mnist-5k"}
    return UNet(UNET_PRESETS["tiny"]).eval(), make_schedule("cosine", 1000), classifier


def test_evaluate_samples_and_report(tiny_setup):
    _, _, classifier = tiny_setup
    images, labels = load_digits("mnist-5k", "test", limit=30)
    report = L.evaluate_samples(images, labels, classifier)
    for key in (
        "accuracy",
        "per_class",
        "frechet_distance",
        "frechet_floor",
        "n",
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
    assert "Fréchet classifier distance" in text and "CLIP" not in text


def test_recognisability_curve_runs(tiny_setup):
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


@given(
    st.integers(0, 10_000),
    st.integers(1, 12),
    st.sampled_from([0.5, 0.9]),
)
def test_settled_from_is_the_start_of_the_final_run_above_the_level(seed, K, level):
    g = torch.Generator().manual_seed(seed)
    # accuracies on a grid of tenths, so values equal to the level occur too
    acc = torch.randint(0, 11, (K, 10), generator=g).float() / 10  # (K, 10)
    fraction = torch.sort(torch.rand(K, generator=g)).values  # (K,) increasing
    first = L.settled_from(acc, fraction, level)
    for d in range(10):
        above = (acc[:, d] >= level).tolist()
        if not above[-1]:
            assert first[d] is None
            continue
        k = fraction.tolist().index(first[d])
        assert all(above[k:]) and (k == 0 or not above[k - 1])


def test_forward_recognisability_reads_clean_digits_at_the_end(tiny_setup):
    _, schedule, classifier = tiny_setup
    x0, labels = load_digits("mnist-5k", "test", limit=40)
    fwd = L.forward_recognisability(classifier, schedule, x0, labels, steps=4)
    assert fwd["accuracy"].shape == (5, 10)
    assert fwd["fraction"][0] == 0 and fwd["fraction"][-1] == 1  # t = T ... 0
    clean = L.classifier_report(classifier, x0, labels)["per_class"]
    assert fwd["accuracy"][-1].tolist() == pytest.approx(clean, nan_ok=True)
    assert set(fwd["first50"]) == set(range(10))


@given(
    st.integers(0, 10_000),
    st.integers(1, 4),
    st.integers(6, 20),
    st.floats(0.0, 0.45),
)
def test_background_haze_measures_grey_away_from_ink(seed, N, size, grey):
    g = torch.Generator().manual_seed(seed)
    unit = torch.full((N, 1, size, size), grey)  # display scale [0, 1]
    ink = torch.rand(N, 1, size, size, generator=g) > 0.97
    unit[ink] = 1.0
    haze = L.background_haze(unit * 2 - 1)  # the function takes [-1, 1]
    near = torch.nn.functional.max_pool2d(ink.float(), 5, 1, 2) > 0
    if near.all():
        assert math.isnan(haze["mean"]) and math.isnan(haze["above"])
        return
    assert haze["mean"] == pytest.approx(grey, abs=1e-6)
    if abs(grey - haze["level"]) > 1e-6:  # every background pixel is on one side
        assert haze["above"] == (1.0 if grey > haze["level"] else 0.0)
    black = L.background_haze(torch.where(ink, 1.0, -1.0))
    assert black["mean"] == 0 and black["above"] == 0


def test_evaluate_command_on_a_samples_file(tmp_path, tiny_setup):
    _, _, classifier = tiny_setup
    images, labels = load_digits("mnist-5k", "test", limit=20)
    save_samples(tmp_path / "s.npz", images, labels)
    L.save_classifier(classifier, tmp_path / "c.pt", classifier.meta)
    parser = E.add_evaluate_arguments(
        __import__("argparse").ArgumentParser(), clip=False
    )
    args = parser.parse_args(
        [
            "--samples",
            str(tmp_path / "s.npz"),
            "--classifier",
            str(tmp_path / "c.pt"),
            "--json",
            str(tmp_path / "r.json"),
        ]
    )
    report = E.evaluate_command(args)
    assert report["n"] == 20 and (tmp_path / "r.json").exists()
