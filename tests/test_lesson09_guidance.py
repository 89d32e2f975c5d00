"""Classifier-free guidance (lesson 09): eq. 9.1's limits and linearity, sampling with
guidance, other shapes.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from diffusion_lessons.lesson02_schedules import make_schedule
from diffusion_lessons.lesson04_unet import UNet, UNetConfig
from diffusion_lessons.lesson05_training import PRESETS, diffusion_loss, train
from diffusion_lessons.lesson06_sampling import sample
from diffusion_lessons.lesson09_guidance import GuidedModel, guided_eps, write_tradeoff


class Recorder(torch.nn.Module):
    """A fake eps model: a fixed random function of (x, label) that records the labels
    it was given.
    """

    def __init__(self, num_classes: int = 10, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(
            torch.randn(num_classes + 1, 1, 4, 4, generator=g)
        )
        self.config = dataclasses.replace(
            UNetConfig(channels=(8,), groups=4), image_size=4, T=50
        )
        self.seen = []

    def forward(self, xt, t, labels):
        self.seen.append(labels.clone())
        return 0.5 * xt + self.table[labels] + 0.01 * t.view(-1, 1, 1, 1)


@given(w=st.floats(-3, 10), B=st.integers(1, 6), seed=st.integers(0, 100))
def test_guided_eps_limits_and_affinity(w, B, seed):
    m = Recorder(seed=seed)
    g = torch.Generator().manual_seed(seed)
    xt, t = (
        torch.randn(B, 1, 4, 4, generator=g),
        torch.randint(1, 51, (B,), generator=g),
    )
    labels = torch.randint(0, 10, (B,), generator=g)
    cond, uncond = m(xt, t, labels), m(xt, t, torch.full_like(labels, 10))
    torch.testing.assert_close(guided_eps(m, xt, t, labels, 0.0), cond)
    torch.testing.assert_close(guided_eps(m, xt, t, labels, -1.0), uncond)
    # affine in w: eps_w = eps_0 + w (eps_0 - eps_-1), and the two conventions agree (s
    # = 1 + w)
    torch.testing.assert_close(
        guided_eps(m, xt, t, labels, w),
        cond + w * (cond - uncond),
        rtol=1e-5,
        atol=1e-5,
    )
    torch.testing.assert_close(
        guided_eps(m, xt, t, labels, w),
        uncond + (1 + w) * (cond - uncond),
        rtol=1e-5,
        atol=1e-5,
    )


def test_guidance_is_one_batched_forward_pass_and_never_drops_the_requested_label():
    m = Recorder()
    labels = torch.tensor([3, 1, 4])
    sample(
        GuidedModel(m, 2.0),
        make_schedule("cosine", 50),
        labels,
        steps=5,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(m.seen) == 5, "one forward pass per step"
    for seen in m.seen:
        # conditional half keeps the labels; ∅ only in the other half
        assert seen.tolist() == [
            3,
            1,
            4,
            10,
            10,
            10,
        ]
    m.seen.clear()
    sample(
        GuidedModel(m, 0.0),
        make_schedule("cosine", 50),
        labels,
        steps=5,
        generator=torch.Generator().manual_seed(0),
    )
    assert all(seen.tolist() == [3, 1, 4] for seen in m.seen), (
        "w = 0 is the conditional model: no ∅ at all"
    )


@pytest.mark.parametrize("w", [0.0, 1.5])
def test_guided_sampler_shapes_range_determinism(w):
    torch.manual_seed(0)
    model = UNet(UNetConfig(channels=(8, 16), emb_dim=16, groups=4, T=100)).eval()
    sch = make_schedule("cosine", 100)
    labels = torch.arange(10)
    for sampler in ("ddim", "ddpm"):
        a = sample(
            GuidedModel(model, w),
            sch,
            labels,
            sampler=sampler,
            steps=8,
            generator=torch.Generator().manual_seed(1),
        )
        b = sample(
            GuidedModel(model, w),
            sch,
            labels,
            sampler=sampler,
            steps=8,
            generator=torch.Generator().manual_seed(1),
        )
        assert (
            a.shape == (10, 1, 28, 28)
            and a.min() >= -1
            and a.max() <= 1
            and torch.equal(a, b)
        )


def test_label_dropout_trains_the_null_class_only_at_training_time():
    """During training about p_uncond of the labels reach the model as ∅; the sampler
    passes them unchanged.
    """
    m = Recorder()
    sch = make_schedule("cosine", 50)
    x0, labels = torch.zeros(4000, 1, 4, 4), torch.randint(0, 10, (4000,))
    diffusion_loss(
        m, x0, labels, sch, p_uncond=0.1, generator=torch.Generator().manual_seed(0)
    )
    rate = (m.seen[-1] == 10).double().mean().item()
    assert abs(rate - 0.1) < 0.02


def test_cifar_shapes_train_and_sample_with_the_same_code(tmp_path, monkeypatch):
    """3x32x32 images (CIFAR-10's shape) go through the same lessons; random tensors
    stand in for the data offline.
    """
    import diffusion_lessons.lesson05_training as l5

    monkeypatch.setattr(
        l5,
        "load_digits",
        lambda *a, **k: (
            torch.rand(64, 3, 32, 32) * 2 - 1,
            torch.randint(0, 10, (64,)),
        ),
    )
    cfg = dataclasses.replace(
        PRESETS["tiny"],
        model=UNetConfig(
            in_channels=3, image_size=32, channels=(8, 16, 32), groups=4, emb_dim=16
        ),
        steps=3,
        batch_size=16,
        warmup=1,
        threads=1,
        dataset="cifar10",
    )
    train(cfg, tmp_path, progress=False)
    model, sch, _ = l5.load_trained(tmp_path / "checkpoint.pt")
    x = sample(
        GuidedModel(model, 1.0),
        sch,
        torch.arange(4),
        steps=3,
        generator=torch.Generator().manual_seed(0),
    )
    assert x.shape == (4, 3, 32, 32)


# ---------------------------------------------------------------------------
# Guidance needs the classifier, not CLIP
# ---------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
NO_CLIP = """
import sys
import diffusion_lessons.lesson09_guidance
{extra}
assert "open_clip" not in sys.modules, "open_clip was imported"
print("no open_clip")
"""


@pytest.mark.parametrize(
    "extra",
    [
        "",
        "from diffusion_lessons.cli import main\n"
        "try:\n    main(['sample', '--help'])\nexcept SystemExit:\n    pass",
    ],
    ids=["import", "sample --help"],
)
def test_guidance_and_sample_do_not_import_open_clip(extra):
    """Lesson 09 builds on lesson 07's classifier only: importing it, or asking
    ``diffusion-lessons sample`` for its help, leaves open_clip (lesson 08) unloaded."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", NO_CLIP.format(extra=extra)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "no open_clip" in out.stdout


def test_sample_help_as_a_module_does_not_import_open_clip():
    """The same through ``python -m diffusion_lessons sample --help``, in a fresh
    process that reports what it imported."""
    code = (
        "import runpy, sys\n"
        "sys.argv = ['diffusion_lessons', 'sample', '--help']\n"
        "try:\n"
        "    runpy.run_module('diffusion_lessons', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('open_clip' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_tradeoff_table_and_json_hold_the_same_rows(tmp_path):
    """Table 9.1 (09_tradeoff.md) and 09_tradeoff.json, which the chapters quote with
    value(), are written together from the same rows.
    """
    rows = [
        {
            "w": w,
            "accuracy": a,
            "frechet_distance": fd,
            "frechet_floor": 20.25,
            "diversity": d,
            "mean_confidence": 0.9,
            "n": 1000,
        }
        for w, a, fd, d in ((0.0, 0.905, 33.72, 30.2), (0.5, 0.975, 18.27, 26.6))
    ]
    files = write_tradeoff(rows, 28.47, "small.pt, 1000 samples per w", tmp_path)
    assert [f.name for f in files] == ["09_tradeoff.md", "09_tradeoff.json"]
    record = json.loads((tmp_path / "09_tradeoff.json").read_text())
    assert record["rows"] == rows and record["real_diversity"] == 28.47
    table = (tmp_path / "09_tradeoff.md").read_text()
    assert "| 0.5 | 97.5% | 18.3 | 20.2 | 26.6 |" in table
    assert "real held-out diversity 28.5" in table


def test_the_book_states_the_recommended_weight_the_code_uses():
    """Chapter 09 names the default weight in prose, in an equation and in a table; all
    must say RECOMMENDED_W (and s = 1 + w), so a new choice cannot leave one behind.
    """
    import re

    from diffusion_lessons.lesson09_guidance import RECOMMENDED_W

    text = (
        Path(__file__).resolve().parents[1] / "docs/lessons/09-guidance.md"
    ).read_text()
    stated = re.findall(r"`RECOMMENDED_W = ([0-9.]+)`", text)
    equation = re.findall(r"w = ([0-9.]+) \\qquad \(s = ([0-9.]+)", text)
    table = re.findall(
        r"this course's default \| \\\( w = ([0-9.]+) \\\) \| \\\( s = ([0-9.]+)", text
    )
    assert stated and equation and table
    assert {float(w) for w in stated} == {RECOMMENDED_W}
    for w, s in equation + table:
        assert float(w) == RECOMMENDED_W and float(s) == pytest.approx(
            1 + RECOMMENDED_W
        )
