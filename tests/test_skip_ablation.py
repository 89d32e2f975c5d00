"""Chapter 04's skip-ablation script (benchmarks/skip_ablation.py): its fixed test."""

import importlib.util
from pathlib import Path

import pytest
import torch

from diffusion_lessons.lesson02_schedules import make_schedule

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "skip_ablation.py"
spec = importlib.util.spec_from_file_location("skip_ablation", SCRIPT)
skip_ablation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(skip_ablation)


def digits(n=10):
    g = torch.Generator().manual_seed(5)
    return torch.rand((n, 1, 28, 28), generator=g) * 2 - 1, torch.arange(n) % 10


def test_the_evaluation_draws_are_fixed_and_inside_their_bands():
    x0, labels = digits()
    torch.manual_seed(1)
    a = skip_ablation.evaluation_set(x0, labels, n=6, draws=3)
    torch.manual_seed(2)  # the global generator plays no part
    b = skip_ablation.evaluation_set(x0, labels, n=6, draws=3)
    assert a["x0"].shape == (18, 1, 28, 28) and torch.equal(a["x0"], b["x0"])
    assert list(a["bands"]) == ["1-20", "21-100", "101-300", "301-600", "601-1000"]
    for (lo, hi), key in zip(skip_ablation.BANDS, a["bands"]):
        t, eps = a["bands"][key]
        assert torch.equal(t, b["bands"][key][0]) and torch.equal(
            eps, b["bands"][key][1]
        )
        assert lo <= t.min() and t.max() <= hi


def test_band_loss_of_predicting_zero_is_the_noise_energy():
    x0, labels = digits()
    test = skip_ablation.evaluation_set(x0, labels, n=10, draws=2)
    schedule = make_schedule("cosine", 1000)
    losses = skip_ablation.band_losses(
        lambda xt, t, y: torch.zeros_like(xt), test, schedule, batch=7
    )
    for key, (_, eps) in test["bands"].items():
        assert losses[key] == pytest.approx(eps.pow(2).mean().item(), rel=1e-5)
