"""Lesson 08: re-ranking, CLIP scoring, digit-CLIP files, evaluation with CLIP and
clear errors.
"""

import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lessons import evaluate as E
from diffusion_lessons import lesson08_clip as L
from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson02_schedules import make_schedule
from diffusion_lessons.lesson04_unet import UNET_PRESETS, UNet
from diffusion_lessons.lesson06_sampling import save_samples
from diffusion_lessons.lesson07_classifier import (
    DigitClassifier,
    feature_stats,
    format_report,
    save_classifier,
)

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


# ---------------------------------------------------------------------------
# Re-ranking (eq. 8.3)
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
    classifier = DigitClassifier().eval()
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
    text = format_report(report)
    assert "Fréchet classifier distance" in text and "digit-clip-test" in text
    assert "CLIP score" in text


def test_rerank_experiment_and_finetune_run(tiny_setup, tiny_clip):
    model, schedule, classifier = tiny_setup
    ranked = L.rerank_experiment(
        model, schedule, classifier, tiny_clip, per_digit=2, candidates=2, steps=2
    )
    assert ranked["after"]["clip_score"] >= ranked["before"]["clip_score"] - 1e-6
    assert ranked["after"]["images"].shape == (20, 1, 28, 28)
    ref = feature_stats(classifier, load_digits("mnist-5k", "test", limit=50)[0])
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


def test_evaluate_command_without_clip_on_a_samples_file(tmp_path, tiny_setup):
    _, _, classifier = tiny_setup
    images, labels = load_digits("mnist-5k", "test", limit=20)
    save_samples(tmp_path / "s.npz", images, labels)
    save_classifier(classifier, tmp_path / "c.pt", classifier.meta)
    parser = E.add_evaluate_arguments(__import__("argparse").ArgumentParser())
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
    report = E.evaluate_command(args)
    assert report["n"] == 20 and (tmp_path / "r.json").exists()
