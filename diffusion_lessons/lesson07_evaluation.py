"""Lesson 07: evaluation. Did the model draw the digit we asked for, and do its digits
look real?

Chapter: docs/lessons/07-evaluation.md

A loss curve cannot say whether a "7" looks like a 7. Three instruments can, each with
its own blind spot.
1. A digit classifier p_phi(c | x) (a small CNN trained on real digits) reads every
   sample:

    (7.1)   conditional accuracy = (1/N) sum_i 1[argmax_c p_phi(c | x_i) = y_i],
                confusion C[y, c] = #{i: y_i = y, pred_i = c}

2. A Fréchet distance in the classifier's 128-d features f(x) (FID does the same with
   Inception features; ours is the "Fréchet classifier distance", FD). Fit a Gaussian to
   each set of features,

    (7.2)   mu = mean_i f(x_i),  Sigma = cov_i f(x_i)
    (7.3)   FD = ||mu_1 - mu_2||^2 + tr Sigma_1 + tr Sigma_2 - 2 tr (Sigma_1^1/2 Sigma_2
                Sigma_1^1/2)^1/2
    tr (Sigma_1^1/2 Sigma_2 Sigma_1^1/2)^1/2 = sum_k sqrt(lambda_k),  lambda_k its
    eigenvalues (clamped at 0)  (eq. 7.4)

   FD shrinks with the sample size n, so a score means little alone: it is shown beside
   the real-data floor, real held-out digits against the same reference (the training
   digits) at the same n. Diversity is the mean pairwise feature distance within a
   class, D_c = mean_{i<j} ||f(x_i) - f(x_j)|| (eq. 7.5).
3. CLIP: an image encoder f and a text encoder g trained so that matching (image,
   caption) pairs have the highest cosine similarity in a batch. Zero-shot, it
   classifies by comparing an image with one prompt per digit, averaging over M prompt
   templates:

    (7.6)   L_CLIP = 1/2 [ CE(s F G^T, I) + CE(s G F^T, I) ]  (F, G: normalised image /
                caption features of a batch)
    (7.7)   p_CLIP(c | x) = (1/M) sum_m softmax_c( s cos(f(x), g(template_m(c))) )

Hub CLIP weights need a network; offline, the lesson trains a small digit-CLIP with
open_clip's own classes and loss (eq. 7.6). Re-ranking keeps the best k of N candidates
by p_CLIP(y | x) (eq. 7.8); and a digit is "recognisable" from the fraction 1 - t/T of
the reverse process on which the classifier reads x0_pred(x_t) (or x_t itself) as the
requested digit for at least 50% (90%) of the samples, to the end (eq. 7.9).

Builds on: lesson05_training (load_trained, diffusion_loss), lesson06_sampling (sample,
digit_labels, load_samples, SHIPPED), data (load_digits, cache_dir, NUM_CLASSES),
plotting (to_unit, DIGIT_COLORS, new_figure, savefig, show_images).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import math
import os
import socket
import threading
import time
from pathlib import Path
from typing import NamedTuple

import huggingface_hub
import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from . import CourseError
from . import options as opt
from .data import NUM_CLASSES, cache_dir, load_digits
from .lesson05_training import (
    OTHER_KINDS,
    checkpoint_kind,
    diffusion_loss,
    load_trained,
)
from .lesson06_sampling import SHIPPED, digit_labels, load_samples, sample
from .plotting import DIGIT_COLORS, new_figure, savefig, show_images, to_unit

# ---------------------------------------------------------------------------
# Constants and notation
# ---------------------------------------------------------------------------

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
CLASSIFIER_PATH, DIGIT_CLIP_PATH = (
    CHECKPOINTS / "classifier.pt",
    CHECKPOINTS / "clip-digits.pt",
)
CLASSIFIER_COMMAND = (
    "python -m diffusion_lessons.lesson07_evaluation train-classifier --out {path}"
)
DIGIT_CLIP_COMMAND = (
    "python -m diffusion_lessons.lesson07_evaluation train-clip --out {path}"
)
DIGIT_WORDS = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
]
# : prompt templates for eq. 7.7 (and the captions digit-CLIP is trained on): {digit} =
# "7", {word} = "seven"
PROMPTS = (
    "a photo of the number {digit}.",
    "a handwritten digit {word}.",
    "the digit {digit}",
    "a handwritten {word}",
    "the number {word}.",
    "a drawing of the digit {digit}",
)
DIGIT_CLIP_NAME = "digit-clip"
# : a CLIP small enough for a CPU: a 2-layer ViT on 7x7 patches of 28x28 digits and a
# 2-layer text transformer. : vocab_size stays 49408 so open_clip's bundled tokenizer
# works; captions are short, so context_length is 16.
DIGIT_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": 28,
        "patch_size": 7,
        "width": 64,
        "layers": 2,
        "head_width": 32,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {
        "context_length": 16,
        "vocab_size": 49408,
        "width": 64,
        "heads": 2,
        "layers": 2,
        "mlp_ratio": 2.0,
    },
}


class EvaluationError(CourseError):
    """A classifier or CLIP weight file is missing, unreadable or unreachable; the
    message names the fix.
    """


#: what a file of each kind is, in words (``checkpoint_kind`` of lesson 05)
KIND_NAMES = {
    **OTHER_KINDS,
    "run": "a diffusion model's training checkpoint (for --checkpoint)",
    "sampling": "a diffusion model (for --checkpoint)",
}


class Clip(NamedTuple):
    """An open_clip model with its tokenizer, its (PIL) preprocess and ``label``: which
    weights these are.
    """

    model: nn.Module
    tokenizer: object
    preprocess: object
    label: str


# ---------------------------------------------------------------------------
# Pure functions: the metrics
# ---------------------------------------------------------------------------


@torch.no_grad()
def _batched(fn, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([fn(images[i : i + batch]) for i in range(0, len(images), batch)])


def predict_proba(classifier, images: torch.Tensor) -> torch.Tensor:
    """p_phi(c | x) for images (N, 1, 28, 28) in [-1, 1]: (N, 10)."""
    if isinstance(classifier, nn.Module):
        classifier.eval()
    return _batched(lambda x: classifier(x).softmax(-1), images)


def per_class_accuracy(pred: torch.Tensor, labels: torch.Tensor) -> list[float]:
    """Accuracy among the samples requested as each class (nan where a class was not
    requested).
    """
    return [
        (pred[labels == c] == c).float().mean().item()
        if (labels == c).any()
        else float("nan")
        for c in range(NUM_CLASSES)
    ]


def classifier_report(classifier, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Eq. 7.1: accuracy, per-class accuracy, confusion matrix (rows = requested class)
    and mean confidence.
    """
    p = predict_proba(classifier, images)  # (N, 10)
    pred = p.argmax(-1)
    confusion = torch.zeros(NUM_CLASSES, NUM_CLASSES, dtype=torch.long)
    confusion.index_put_((labels.long(), pred), torch.ones_like(pred), accumulate=True)
    return {
        "accuracy": (pred == labels).float().mean().item(),
        "per_class": per_class_accuracy(pred, labels),
        "confusion": confusion.tolist(),
        "mean_confidence": p.max(-1).values.mean().item(),
        "n": len(labels),
    }


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Eqs. 7.3-7.4 in float64, stable when a covariance is singular (fewer samples than
    dimensions).

    Args:
        mu1, mu2: means, (D,). sigma1, sigma2: covariances, (D, D), symmetric positive
            semi-definite.
    Returns:
        FD >= 0, a float.
    """
    mu1, mu2, s1, s2 = (
        torch.as_tensor(a, dtype=torch.float64) for a in (mu1, mu2, sigma1, sigma2)
    )
    if (
        mu1.shape != mu2.shape
        or s1.shape != s2.shape
        or s1.shape != (len(mu1), len(mu1))
    ):
        raise ValueError(
            "Need means (D,) and covariances (D, D) of one size D; got "
            f"{tuple(mu1.shape)}, {tuple(s1.shape)}, "
            f"{tuple(mu2.shape)}, {tuple(s2.shape)}. Compute both with feature_stats "
            "on the same classifier."
        )
    lam, V = torch.linalg.eigh((s1 + s1.T) / 2)
    sqrt_s1 = V @ torch.diag(lam.clamp(min=0).sqrt()) @ V.T  # Sigma_1^1/2
    m = sqrt_s1 @ s2 @ sqrt_s1  # symmetric PSD, unlike Sigma_1 Sigma_2
    tr_sqrt = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()  # eq. 7.4
    fd = (mu1 - mu2).pow(2).sum() + s1.trace() + s2.trace() - 2 * tr_sqrt  # eq. 7.3
    return max(fd.item(), 0.0)


def feature_stats(
    classifier, images: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 7.2: mean (D,) and covariance (D, D), float64, of the classifier's
    penultimate features.
    """
    if len(images) < 2:
        raise ValueError(
            f"A covariance needs at least 2 images; got {len(images)}. Evaluate more "
            "samples."
        )
    classifier.eval()
    f = _batched(classifier.features, images).double()  # (N, D)
    return f.mean(0), torch.cov(f.T)


def frechet_floor(
    classifier, n: int = 1000, dataset: str = "mnist-5k", reference=None, seed: int = 0
) -> tuple[float, int]:
    """FD between n real held-out digits and the reference (default: every training
    digit). Returns (FD, n used).
    """
    mu_r, sigma_r = (
        reference
        if reference is not None
        else feature_stats(classifier, load_digits(dataset, "train")[0])
    )
    real, _ = load_digits(dataset, "test")
    n = min(n, len(real))
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(seed))[:n]
    return frechet_distance(*feature_stats(classifier, real[pick]), mu_r, sigma_r), n


def background_haze(
    images: torch.Tensor, ink: float = 0.5, margin: int = 2, level: float = 0.02
) -> dict:
    """How grey the background is, for images (N, 1, H, W) in [-1, 1].

    Background = pixels more than ``margin`` px (Chebyshev) from any pixel above
    ``ink`` (display scale [0, 1]). Returns the background's mean value and the share of
    its pixels above ``level``; real MNIST backgrounds are exactly 0.
    """
    x = to_unit(images.float())  # (N, 1, H, W) in [0, 1]
    near_ink = F.max_pool2d((x > ink).float(), 2 * margin + 1, 1, margin) > 0
    bg = x[~near_ink]  # (M,) background pixels of every image
    return {
        "mean": bg.mean().item() if len(bg) else float("nan"),
        "above": (bg > level).float().mean().item() if len(bg) else float("nan"),
        "level": level,
    }


def rerank(
    candidates: torch.Tensor, scores: torch.Tensor, keep: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 7.8: in each group keep the ``keep`` candidates with the highest scores.

    Args:
        candidates: (G, N, ...), N candidates for each of G groups (e.g. one group per
            digit).
        scores: (G, N). keep: 1..N.
    Returns:
        kept (G, keep, ...) best first, and their indices (G, keep).
    """
    if scores.shape != candidates.shape[:2] or not 1 <= keep <= scores.shape[1]:
        raise ValueError(
            f"Need scores (G, N) = {tuple(candidates.shape[:2])} and 1 <= keep <= N; "
            f"got scores {tuple(scores.shape)}, keep={keep}."
        )
    idx = scores.topk(keep, dim=1).indices  # (G, keep)
    return candidates[torch.arange(len(idx))[:, None], idx], idx


def diversity(classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Eq. 7.5 averaged over the classes present: mean pairwise feature distance within
    each class.
    """
    classifier.eval()
    f = _batched(classifier.features, images)  # (N, D)
    per = [
        torch.pdist(f[labels == c]).mean().item()
        for c in range(NUM_CLASSES)
        if (labels == c).sum() > 1
    ]
    return sum(per) / len(per)


# ---------------------------------------------------------------------------
# The digit classifier
# ---------------------------------------------------------------------------


class DigitClassifier(nn.Module):
    """conv 32 -> pool -> conv 64 -> pool -> FC 128 -> 10: (B, 1, 28, 28) in [-1, 1] ->
    logits (B, 10).
    """

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.fc, self.drop, self.out = (
            nn.Linear(64 * 7 * 7, 128),
            nn.Dropout(0.3),
            nn.Linear(128, NUM_CLASSES),
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate activations f(x), (B, 128): what FD (eq. 7.3) and diversity
        (eq. 7.5) compare.
        """
        h = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # (B, 32, 14, 14)
        h = F.max_pool2d(F.relu(self.bn2(self.conv2(h))), 2)  # (B, 64, 7, 7)
        return F.relu(self.fc(h.flatten(1)))  # (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.drop(self.features(x)))


def random_shift(
    x: torch.Tensor, max_shift: int = 2, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Move each image (B, C, H, W) by up to ``max_shift`` pixels in x and y, filling
    with background (-1).
    """
    B, C, H, W = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)  # (B, C, H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, B, 1), generator=generator)
    rows = (dy + torch.arange(H))[:, None, :, None].expand(B, C, H, W)
    cols = (dx + torch.arange(W))[:, None, None, :].expand(B, C, H, W)
    # (B, C, H, W)
    return padded[
        torch.arange(B)[:, None, None, None],
        torch.arange(C)[None, :, None, None],
        rows,
        cols,
    ]


def train_classifier(
    dataset: str = "mnist-5k",
    epochs: int = 12,
    seed: int = 0,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> tuple[DigitClassifier, float]:
    """Train on the ``train`` split with random shifts; return the model and its
    accuracy on the ``test`` split.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    x_train, y_train = load_digits(dataset, "train")
    x_test, y_test = load_digits(dataset, "test")
    model = DigitClassifier()
    steps = epochs * (len(y_train) // batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr / 3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for _epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=g)
        for i in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(
                model(random_shift(x_train[idx], 2, g)), y_train[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    accuracy = classifier_report(model, x_test, y_test)["accuracy"]
    return model.eval(), accuracy


def save_classifier(model: DigitClassifier, path: str | Path, meta: dict) -> Path:
    """torch.save {state_dict, meta} (meta: dataset, held_out_accuracy, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)
    return path


def load_classifier(
    path: str | Path = CLASSIFIER_PATH, device: str = "cpu"
) -> DigitClassifier:
    """The saved classifier in eval mode, its meta dict as ``.meta``; a clear error
    names the command that recreates it.
    """
    path, fix = Path(path), CLASSIFIER_COMMAND.format(path=path)
    if not path.is_file():
        raise EvaluationError(
            f"No digit classifier at {path}. Recreate it (about a minute on a CPU) "
            f"with: {fix}"
        )
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise EvaluationError(
            f"{path} is not a readable digit classifier ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:100]}). If it is damaged, recreate it "
            f"with: {fix}"
        ) from err
    kind = checkpoint_kind(blob)
    if kind != "classifier":
        raise EvaluationError(
            f"{path} is {KIND_NAMES.get(kind, 'not a digit classifier')}, not the "
            f"digit classifier. Give --classifier {CLASSIFIER_PATH.name} (the "
            "shipped one is the default)."
        )
    try:
        model = DigitClassifier()
        model.load_state_dict(blob["state_dict"])
    except Exception as err:
        raise EvaluationError(
            f"{path} is not a readable digit classifier ({type(err).__name__}: "
            f"{str(err).splitlines()[0][:100]}). If it is damaged, recreate it "
            f"with: {fix}"
        ) from err
    model.meta = dict(blob.get("meta", {}))
    return model.to(device).eval()


# ---------------------------------------------------------------------------
# CLIP: hub weights, a local file, or a digit-CLIP trained offline
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet():
    """Hide open_clip's "initialized randomly" warning while a model is built (its
    weights are loaded next).
    """
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def register_digit_clip(
    config: dict = DIGIT_CLIP_CONFIG, name: str = DIGIT_CLIP_NAME
) -> str:
    """Register ``config`` with open_clip under ``name``, so
    open_clip.create_model_and_transforms(name) builds it.
    """
    if open_clip.get_model_config(name) != config:
        path = cache_dir() / "open_clip" / f"{name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=1))
        open_clip.add_model_config(path)
    return name


def caption_tokens(tokenizer) -> torch.Tensor:
    """Token ids of every caption: PROMPTS filled in for each digit, (10, M,
    context_length).
    """
    return tokenizer(
        [t.format(digit=c, word=DIGIT_WORDS[c]) for c in range(10) for t in PROMPTS]
    ).view(10, len(PROMPTS), -1)


def new_digit_clip(
    config: dict = DIGIT_CLIP_CONFIG, name: str = DIGIT_CLIP_NAME, seed: int = 0
) -> Clip:
    """A randomly initialised CLIP of ``config``, built by open_clip from the registered
    config.

    Of the 49,408-row word table only the ~30 rows our captions use ever train (Adam
    leaves rows without gradient alone); the rest are set to zero, so a saved file keeps
    just the rows in use.
    """
    register_digit_clip(config, name)
    torch.manual_seed(seed)
    with _quiet():
        model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    with torch.no_grad():
        unused = torch.ones(len(model.token_embedding.weight), dtype=torch.bool)
        unused[caption_tokens(tokenizer).unique()] = False
        model.token_embedding.weight[unused] = 0
    return Clip(model.eval(), tokenizer, preprocess, f"{name} (randomly initialised)")


def _offline_reason(name: str, pretrained: str) -> str | None:
    """Why hub weights cannot be had right now (None: they can), decided in seconds,
    never a 46 s retry loop.
    """
    repo, file = os.path.split(
        open_clip.get_pretrained_cfg(name, pretrained).get("hf_hub", "")
    )
    for f in (
        [file]
        if file
        else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    ):
        if repo and isinstance(huggingface_hub.try_to_load_from_cache(repo, f), str):
            return None  # downloaded once already: works offline
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE=1 and the weights are not in the local cache"
    reached = []

    def probe():
        with contextlib.suppress(OSError):
            socket.create_connection(("huggingface.co", 443), timeout=3).close()
            reached.append(True)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(3.0)  # a stuck DNS look-up cannot hold us longer
    return None if reached else "huggingface.co cannot be reached (no network)"


def load_clip(
    name: str = "ViT-B-32",
    pretrained: str = "openai",
    weights: str | Path | None = None,
    device: str = "cpu",
) -> Clip:
    """A CLIP model: hub weights by name/tag, a local weight file (``weights``), or the
    digit-CLIP.

    ``name="digit-clip"`` loads a file written by ``train-clip`` (default
    checkpoints/clip-digits.pt).
    Any other name is an open_clip architecture: ``weights=PATH`` loads an open_clip
    .bin/.safetensors file exactly; otherwise the ``pretrained`` tag is fetched from the
    hub, and offline this fails at once.
    """
    if name == DIGIT_CLIP_NAME:
        path, fix = (
            Path(weights or DIGIT_CLIP_PATH),
            DIGIT_CLIP_COMMAND.format(path=weights or DIGIT_CLIP_PATH),
        )
        if not path.is_file():
            raise EvaluationError(
                f"No digit-CLIP weights at {path}. Train them (about 2 minutes on a "
                f"CPU) with: {fix}"
            )
        blob = None
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
            clip = new_digit_clip(blob["config"], blob["name"])
            # only the vocabulary rows the captions use were saved
            state = dict(blob["state_dict"])
            table = torch.zeros_like(clip.model.token_embedding.weight)
            table[state.pop("token_ids")] = state.pop("token_rows")
            clip.model.load_state_dict({**state, "token_embedding.weight": table})
            label = (
                f"digit-CLIP trained offline ({path.name}; zero-shot "
                f"{blob['meta']['zero_shot_accuracy']:.1%} on real held-out digits)"
            )
        except Exception as err:
            kind = checkpoint_kind(blob)
            if kind not in ("clip", "unknown"):
                raise EvaluationError(
                    f"{path} is {KIND_NAMES[kind]}, not digit-CLIP weights. Leave "
                    f"out --clip-weights to use the shipped {DIGIT_CLIP_PATH.name}."
                ) from err
            raise EvaluationError(
                f"{path} is not a readable digit-CLIP file ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:100]}). If it is damaged, train it "
                f"again with: {fix}"
            ) from err
        return Clip(
            clip.model.to(device).eval(), clip.tokenizer, clip.preprocess, label
        )
    if weights is not None:
        if not Path(weights).is_file():
            raise EvaluationError(
                f"No CLIP weight file at {weights}. Pass an open_clip "
                f".bin/.safetensors file for {name}."
            )
        source, label = str(weights), f"{name} weights from {weights}"
    elif (
        name not in open_clip.list_models()
        or pretrained not in open_clip.list_pretrained_tags_by_model(name)
    ):
        raise EvaluationError(
            f"open_clip knows no pretrained weights {name}/{pretrained}; tags for "
            f"{name}: "
            f"{open_clip.list_pretrained_tags_by_model(name) or 'none'}. Use "
            "--clip-model and a tag it lists."
        )
    else:
        reason = _offline_reason(name, pretrained)
        if reason:
            raise EvaluationError(
                f"Cannot fetch the CLIP weights {name}/{pretrained} from the Hugging "
                f"Face hub: {reason}. "
                "Pass a local weight file with --clip-weights PATH (load_clip(name, "
                "weights=PATH): an open_clip "
                f".bin/.safetensors file for {name}), or use the offline digit-CLIP "
                f"with --clip digit ({DIGIT_CLIP_PATH.name})."
            )
        source, label = pretrained, f"{name}/{pretrained}"
    quick_gelu = (open_clip.get_pretrained_cfg(name, pretrained) or {}).get(
        "quick_gelu", False
    )
    model, _, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=source, device=device, force_quick_gelu=quick_gelu
    )
    return Clip(model.eval(), open_clip.get_tokenizer(name), preprocess, label)


def clip_input(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Grey digits (B, 1, H, W) in [-1, 1] -> what this CLIP's image encoder expects:
    (B, 3, S, S), normalised.
    """
    cfg = model.visual.preprocess_cfg
    size = cfg["size"] if isinstance(cfg["size"], (tuple, list)) else (cfg["size"],) * 2
    x = to_unit(images)  # (B, 1, H, W) in [0, 1]
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(
            x, size=tuple(size), mode="bicubic", align_corners=False
        ).clamp(0, 1)
    x = x.expand(-1, 3, -1, -1)  # (B, 3, S, S): grey as RGB
    mean, std = (
        torch.tensor(cfg[k], dtype=x.dtype)[:, None, None] for k in ("mean", "std")
    )
    return (x - mean) / std


@torch.no_grad()
def clip_scores(
    model: nn.Module,
    tokenizer,
    preprocess,
    images: torch.Tensor,
    templates=PROMPTS,
    class_names=DIGIT_WORDS,
) -> torch.Tensor:
    """Eq. 7.7: zero-shot probabilities p_CLIP(c | x), (N, len(class_names)), averaged
    over the templates.

    ``preprocess=None`` converts the tensors with ``clip_input``; otherwise
    ``preprocess`` (open_clip's PIL transform) is applied to each image. Templates may
    use {digit} ("7") and {word} (class_names[c]).
    """
    model.eval()
    # M * K prompts
    texts = [
        t.format(digit=c, word=w) for t in templates for c, w in enumerate(class_names)
    ]
    g = F.normalize(model.encode_text(tokenizer(texts)), dim=-1)  # (M * K, E)
    if preprocess is None:
        encode = lambda x: model.encode_image(clip_input(model, x))  # noqa: E731
    else:
        # noqa: E731
        pil = lambda x: Image.fromarray((to_unit(x[0]) * 255).round().byte().numpy())
        encode = lambda x: model.encode_image(
            torch.stack([preprocess(pil(xi)) for xi in x])
        )  # noqa: E731
    f = F.normalize(_batched(encode, images, 256), dim=-1)  # (N, E)
    logits = model.logit_scale.exp() * f @ g.T  # s cos(f, g)
    # (N, K)
    return (
        logits.view(len(images), len(templates), len(class_names)).softmax(-1).mean(1)
    )


def train_digit_clip(
    dataset: str = "mnist-5k",
    steps: int = 1200,
    seed: int = 0,
    groups: int = 10,
    lr: float = 4e-3,
    config: dict = DIGIT_CLIP_CONFIG,
) -> tuple[Clip, float]:
    """Train a small CLIP on real digits and template captions with open_clip's ClipLoss
    (eq. 7.6).

    A CLIP batch treats every other caption as wrong; with only ten digits two "seven"
    captions would fight. So each batch is ``groups`` groups of ten images, one per
    digit, and the loss is averaged over the groups. Returns the model and its zero-shot
    accuracy (eq. 7.7) on the held-out ``test`` digits.
    """
    clip = new_digit_clip(config, seed=seed)
    model, tokenizer = clip.model, clip.tokenizer
    captions = caption_tokens(tokenizer)  # (10, M, L) token ids
    x_train, y_train = load_digits(dataset, "train")
    by_class = [(y_train == c).nonzero().flatten() for c in range(10)]
    g, loss_fn = torch.Generator().manual_seed(seed), open_clip.ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=steps, pct_start=0.1
    )
    model.train()
    for _ in range(steps):
        idx = torch.stack(
            [b[torch.randint(len(b), (groups,), generator=g)] for b in by_class], 1
        ).flatten()  # (groups*10,)
        y = y_train[idx]
        # one random caption each
        text = captions[y, torch.randint(len(PROMPTS), (len(y),), generator=g)]
        f, t, s = model(clip_input(model, random_shift(x_train[idx], 2, g)), text)
        # eq. 7.6
        loss = (
            sum(loss_fn(f[i : i + 10], t[i : i + 10], s) for i in range(0, len(y), 10))
            / groups
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    x_test, y_test = load_digits(dataset, "test")
    accuracy = (
        (clip_scores(model.eval(), tokenizer, None, x_test).argmax(-1) == y_test)
        .float()
        .mean()
        .item()
    )
    return clip._replace(
        label=f"digit-CLIP trained offline ({steps} steps, seed {seed})"
    ), accuracy


def save_digit_clip(
    clip: Clip,
    path: str | Path,
    meta: dict,
    config: dict = DIGIT_CLIP_CONFIG,
    name: str = DIGIT_CLIP_NAME,
) -> Path:
    """Save {name, config, state_dict, meta}; of the 49,408-row word table only the
    non-zero rows are kept.
    """
    state = clip.model.state_dict()
    table = state.pop("token_embedding.weight")
    ids = table.abs().sum(1).nonzero().flatten()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "name": name,
            "config": config,
            "meta": meta,
            "state_dict": {**state, "token_ids": ids, "token_rows": table[ids]},
        },
        path,
    )
    return path


# ---------------------------------------------------------------------------
# Evaluating a diffusion model
# ---------------------------------------------------------------------------


def evaluate_samples(
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier,
    clip: Clip | None = None,
    reference=None,
    dataset: str = "mnist-5k",
) -> dict:
    """Every number of this lesson for samples (N, 1, 28, 28) in [-1, 1] drawn for
    ``labels`` (N,).

    ``reference`` is (mu, Sigma) of the real training digits (computed from ``dataset``
    when None).
    Returns a dict: n, accuracy, per_class, confusion, mean_confidence,
    frechet_distance, frechet_floor (+ frechet_floor_n), classifier; with ``clip`` also
    clip_score (mean p_CLIP(y | x)), clip_per_class, clip_accuracy, clip_agreement (CLIP
    and the classifier name the same digit) and clip_weights.
    """
    reference = (
        reference
        if reference is not None
        else feature_stats(classifier, load_digits(dataset, "train")[0])
    )
    report = classifier_report(classifier, images, labels)
    report["frechet_distance"] = frechet_distance(
        *feature_stats(classifier, images), *reference
    )
    report["frechet_floor"], report["frechet_floor_n"] = frechet_floor(
        classifier, len(images), dataset, reference
    )
    report["classifier"] = dict(getattr(classifier, "meta", {}))
    if clip is not None:
        p = clip_scores(clip.model, clip.tokenizer, None, images)  # (N, 10)
        score = p[torch.arange(len(labels)), labels]
        report.update(
            clip_score=score.mean().item(),
            clip_accuracy=(p.argmax(-1) == labels).float().mean().item(),
            clip_per_class=[
                score[labels == c].mean().item() for c in range(NUM_CLASSES)
            ],
            clip_agreement=(
                p.argmax(-1) == predict_proba(classifier, images).argmax(-1)
            )
            .float()
            .mean()
            .item(),
            clip_weights=clip.label,
        )
    return report


def format_report(report: dict) -> str:
    """A plain-text table of ``evaluate_samples``' dict."""
    meta = report.get("classifier", {})
    held = (
        f"  (classifier: {meta['held_out_accuracy']:.1%} on held-out "
        f"{meta.get('dataset', '')})"
        if "held_out_accuracy" in meta
        else ""
    )
    rows = [
        ("samples", f"{report['n']}"),
        ("classifier accuracy", f"{report['accuracy']:.1%}{held}"),
        ("mean confidence", f"{report['mean_confidence']:.3f}"),
        (
            "Fréchet classifier distance",
            f"{report['frechet_distance']:.2f}  (floor, real held-out digits at n="
            f"{report['frechet_floor_n']}: {report['frechet_floor']:.2f})",
        ),
    ]
    if "clip_score" in report:
        rows += [
            (
                "CLIP score p(y|x)",
                f"{report['clip_score']:.3f}  ({report['clip_weights']})",
            ),
            ("CLIP accuracy", f"{report['clip_accuracy']:.1%}"),
            ("CLIP-classifier agreement", f"{report['clip_agreement']:.1%}"),
        ]
    lines = [f"{k:<29}{v}" for k, v in rows] + [
        "",
        "digit                        " + "".join(f"{d:>6}" for d in range(10)),
        "classifier accuracy          "
        + "".join(f"{a:6.0%}" for a in report["per_class"]),
    ]
    if "clip_per_class" in report:
        lines.append(
            "CLIP score                   "
            + "".join(f"{a:6.2f}" for a in report["clip_per_class"])
        )
    return "\n".join(lines)


def recognisability_curve(
    model,
    schedule,
    classifier,
    per_digit: int = 10,
    steps: int = 50,
    seed: int = 0,
    sampler: str = "ddim",
) -> dict:
    """Eq. 7.9: the classifier's accuracy per digit at every reverse step, on x0_pred
    and on x_t itself.

    Returns a dict: fraction (K,) = 1 - t/T done when x0_pred was made; accuracy (K, 10)
    on x0_pred; accuracy_xt (K, 10) on the state x_t after that step (what a person
    watching the chain sees); first50 / first90 (and *_xt): digit -> the fraction from
    which accuracy stays >= 50% / 90% to the end, or None. "Stays", because the early
    blurry x0_pred reads as one digit for every sample (often an 8). Also the final x0
    (N, 1, 28, 28) and labels (N,).
    """
    labels = digit_labels("0123456789", per_digit)
    x0, traj = sample(
        model,
        schedule,
        labels,
        sampler=sampler,
        steps=steps,
        trajectory=True,
        generator=torch.Generator().manual_seed(seed),
    )
    fraction = torch.tensor([1 - step["t"] / schedule.T for step in traj])  # (K,)
    out = {
        "fraction": fraction,
        "fraction_xt": torch.cat([fraction[1:], torch.ones(1)]),
        "x0": x0,
        "labels": labels,
    }
    for key, view in (("accuracy", "x0_pred"), ("accuracy_xt", "xt")):
        acc = torch.tensor(
            [
                per_class_accuracy(
                    predict_proba(classifier, step[view]).argmax(-1), labels
                )
                for step in traj
            ]
        )
        out[key] = acc  # (K, 10)
        frac = out["fraction" if view == "x0_pred" else "fraction_xt"]
        for level in (50, 90):
            # length of the final run above the level
            settled = (acc >= level / 100).flip(0).cumprod(0).sum(0)
            out[f"first{level}{key[8:]}"] = {
                d: frac[len(frac) - n].item() if n else None
                for d, n in enumerate(settled.tolist())
            }
    return out


def rerank_experiment(
    model,
    schedule,
    classifier,
    clip: Clip,
    per_digit: int = 8,
    candidates: int = 4,
    steps: int = 50,
    seed: int = 0,
) -> dict:
    """Draw ``per_digit * candidates`` samples per digit, keep the best ``per_digit`` by
    p_CLIP(y | x) (eq. 7.8).

    "before" is the first ``per_digit`` draws of each digit (an unfiltered sample of the
    same size). Returns before/after dicts with images, labels, accuracy, diversity (eq.
    7.5) and mean CLIP score.
    """
    n = per_digit * candidates
    labels = digit_labels("0123456789", n)
    # (10 n, 1, 28, 28)
    x = sample(
        model,
        schedule,
        labels,
        steps=steps,
        generator=torch.Generator().manual_seed(seed),
    )
    score = clip_scores(clip.model, clip.tokenizer, None, x)[
        torch.arange(len(labels)), labels
    ]
    kept, idx = rerank(x.view(10, n, *x.shape[1:]), score.view(10, n), per_digit)
    y = digit_labels("0123456789", per_digit)
    result = {"candidates": n}
    for name, images, s in (
        (
            "before",
            x.view(10, n, *x.shape[1:])[:, :per_digit],
            score.view(10, n)[:, :per_digit],
        ),
        ("after", kept, score.view(10, n).gather(1, idx)),
    ):
        images = images.reshape(-1, *x.shape[1:])
        result[name] = {
            "images": images,
            "labels": y,
            "clip_score": s.mean().item(),
            "diversity": diversity(classifier, images, y),
            "accuracy": classifier_report(classifier, images, y)["accuracy"],
        }
    return result


def finetune_on_top(
    model,
    schedule,
    top_images: torch.Tensor,
    top_labels: torch.Tensor,
    classifier,
    reference,
    finetune_steps: int = 100,
    lr: float = 2e-4,
    per_digit: int = 20,
    steps: int = 25,
    seed: int = 0,
) -> dict:
    """A feedback loop: fine-tune a copy of the model on CLIP's top
    samples only (eq. 5.2 on them), then sample both models with the same seed and
    compare classifier accuracy, FD and diversity.
    """
    tuned = copy.deepcopy(model).train()
    opt = torch.optim.AdamW(tuned.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(finetune_steps):
        idx = torch.randint(len(top_labels), (min(64, len(top_labels)),), generator=g)
        loss = diffusion_loss(
            tuned, top_images[idx], top_labels[idx], schedule, p_uncond=0.1, generator=g
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    labels, result = digit_labels("0123456789", per_digit), {}
    for name, m in (("before", model), ("after", tuned.eval())):
        x = sample(
            m,
            schedule,
            labels,
            steps=steps,
            generator=torch.Generator().manual_seed(seed + 1),
        )
        result[name] = {
            "accuracy": classifier_report(classifier, x, labels)["accuracy"],
            "diversity": diversity(classifier, x, labels),
            "frechet_distance": frechet_distance(
                *feature_stats(classifier, x), *reference
            ),
            "images": x,
        }
    return result


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def fig_confusion(
    confusion,
    title: str = "requested digit vs what the classifier reads",
    ylabel: str = "requested digit",
):
    """The 10x10 confusion matrix of eq. 7.1, rows = requested digit, with the counts
    written in.
    """
    c = torch.as_tensor(confusion)
    fig, ax = new_figure(size=(4.8, 4.2))
    ax.imshow(c.numpy(), cmap="Blues")
    for r in range(10):
        for k in range(10):
            if c[r, k]:
                ax.text(
                    k,
                    r,
                    int(c[r, k]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if c[r, k] > c.max() / 2 else "black",
                )
    ax.set(
        xticks=range(10),
        yticks=range(10),
        xlabel="classifier's reading",
        ylabel=ylabel,
        title=title,
    )
    ax.grid(False)
    return fig


def fig_clip_vs_classifier(
    clip_per_class,
    classifier_per_class,
    clip_label: str,
    what: str = "generated digits",
    clip_name: str = "CLIP score p(y|x)",
):
    """Per digit: a CLIP number beside the classifier's accuracy, titled with the CLIP
    weights used.
    """
    fig, ax = new_figure(size=(7.5, 3.2))
    d = torch.arange(10).float()
    ax.bar(
        d - 0.2,
        classifier_per_class,
        0.4,
        color=DIGIT_COLORS,
        label="classifier accuracy",
    )
    ax.bar(
        d + 0.2,
        clip_per_class,
        0.4,
        color=DIGIT_COLORS,
        alpha=0.45,
        hatch="//",
        label=clip_name,
    )
    ax.set(
        xticks=range(10),
        ylim=(0, 1.05),
        xlabel="digit",
        title=f"{what}; CLIP: {clip_label}",
    )
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    return fig


def fig_recognisability(curve: dict, source: str = ""):
    """Classifier accuracy vs the fraction of the reverse process done, one line per
    digit: on x0_pred and on x_t.
    """
    fig, axes = new_figure(1, 2, size=(10, 3.6), sharey=True)
    for ax, key, view in zip(
        axes,
        ("accuracy", "accuracy_xt"),
        ("the prediction x0_pred (eq. 6.1)", "the noisy state x_t"),
    ):
        for d in range(10):
            ax.plot(
                curve["fraction" if key == "accuracy" else "fraction_xt"],
                curve[key][:, d],
                color=DIGIT_COLORS[d],
                label=str(d),
            )
        for level in (0.5, 0.9):
            ax.axhline(level, color="grey", lw=0.8, ls="--")
        ax.set(
            xlabel="fraction of the reverse process done (1 - t/T)",
            title=f"classifier reading {view}",
            ylim=(-0.02, 1.02),
        )
    axes[0].set_ylabel("accuracy per requested digit")
    axes[1].legend(
        fontsize=7, title="digit", loc="center left", bbox_to_anchor=(1.01, 0.5)
    )
    fig.suptitle(
        f"When does a digit become recognisable? {source}".strip(), fontsize=10
    )
    return fig


def fig_rerank(result: dict, clip_label: str):
    """The unfiltered draws beside CLIP's top picks (one row per digit), with accuracy
    and diversity.
    """
    fig, axes = new_figure(1, 2, size=(9, 5))
    for ax, name in zip(axes, ("before", "after")):
        r = result[name]
        what = (
            f"the first {r['images'].shape[0] // 10} draws"
            if name == "before"
            else f"CLIP's top picks of {result['candidates']} draws"
        )
        show_images(
            ax,
            r["images"],
            nrow=len(r["images"]) // 10,
            title=f"{what}\naccuracy {r['accuracy']:.0%}, diversity "
            f"{r['diversity']:.1f}, CLIP score {r['clip_score']:.2f}",
        )
    fig.suptitle(f"re-ranking by CLIP ({clip_label})", fontsize=9, y=1.03)
    return fig


# ---------------------------------------------------------------------------
# Command line: train the evaluators, evaluate samples, run the lesson
# ---------------------------------------------------------------------------


def add_evaluate_arguments(
    parser: argparse.ArgumentParser, guidance: float = 0.0
) -> argparse.ArgumentParser:
    """The options of ``diffusion-lessons evaluate`` (see ``evaluate_command``);
    ``guidance`` is the default weight w (the command line passes lesson 08's).
    """
    src = parser.add_mutually_exclusive_group()
    src.add_argument(
        "--samples",
        help="an .npz written by `diffusion-lessons sample --out FILE.npz` (default: "
        "draw new samples from --checkpoint)",
    )
    src.add_argument(
        "--checkpoint",
        help="draw the samples from this checkpoint (default: "
        f"{SHIPPED.parent.name}/{SHIPPED.name})",
    )
    parser.add_argument(
        "--per-digit",
        type=opt.positive_int,
        default=20,
        help="samples of each digit to draw (default: 20)",
    )
    parser.add_argument(
        "--sampler",
        default="ddim",
        choices=["ddpm", "ddim"],
        help="how to draw them (default: ddim)",
    )
    parser.add_argument(
        "--steps",
        type=opt.positive_int,
        default=50,
        help="DDIM steps, 1..T (default: 50)",
    )
    parser.add_argument(
        "--seed", type=opt.seed, default=0, help="random seed (default: 0)"
    )
    parser.add_argument(
        "--guidance",
        type=opt.finite_float,
        default=guidance,
        help=f"guidance weight w (lesson 08; default: {guidance:g}, 0 = none)",
    )
    parser.add_argument(
        "--json",
        help="also write the numbers to this .json file (default: print them only)",
    )
    parser.add_argument(
        "--figure",
        help="also draw the per-digit accuracy and CLIP score of these samples "
        "(figure 7.4) to this .png (default: not drawn)",
    )
    parser.add_argument(
        "--classifier",
        default=str(CLASSIFIER_PATH),
        help=f"the digit classifier (default: the shipped {CLASSIFIER_PATH.name})",
    )
    parser.add_argument(
        "--dataset",
        default="mnist-5k",
        help="real data for the Fréchet reference and floor; use the classifier's "
        "dataset (default: mnist-5k)",
    )
    parser.add_argument(
        "--clip",
        default="digit",
        choices=["none", "digit", "hub"],
        help="which CLIP scores the samples (default: digit, the shipped digit-CLIP)",
    )
    parser.add_argument(
        "--clip-weights",
        help="a local CLIP weight file (digit-CLIP .pt, open_clip .bin/.safetensors) "
        f"(default: {DIGIT_CLIP_PATH.name} for --clip digit, the hub for --clip hub)",
    )
    parser.add_argument(
        "--clip-model",
        default="ViT-B-32",
        help="open_clip architecture for --clip hub, tag openai (default: ViT-B-32)",
    )
    return parser


def load_digit_samples(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a samples .npz (lesson 06's ``save_samples``) for evaluation: images
    (N, 28, 28) in [0, 1], labels (N,) in 0..9; anything else is an EvaluationError
    that says what is wrong.
    """
    path = Path(path)
    if path.is_file():
        try:
            with np.load(path) as data:
                images, labels = data["images"], data["labels"]
        except Exception as err:
            raise EvaluationError(
                f"{path} is not a samples file (an .npz with 'images' and 'labels', "
                f"as `diffusion-lessons sample --out FILE.npz` writes): {err}"
            ) from err
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) < 1:
            raise EvaluationError(
                f"{path}: images must be grey 28x28 digits, shape (N, 28, 28); got "
                f"{images.shape}. The classifier reads MNIST-sized digits only."
            )
        if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
            raise EvaluationError(
                f"{path}: labels must be {len(images)} whole numbers, shape "
                f"({len(images)},); got {labels.dtype} of shape {labels.shape}."
            )
        if not np.isfinite(images).all():
            raise EvaluationError(
                f"{path}: {int((~np.isfinite(images)).sum())} pixels are NaN or "
                "infinite; the model that drew them diverged. Sample again."
            )
        if labels.min() < 0 or labels.max() >= NUM_CLASSES:
            raise EvaluationError(
                f"{path}: labels must lie in 0..{NUM_CLASSES - 1}; got values from "
                f"{labels.min()} to {labels.max()}."
            )
    return load_samples(path)  # range checks, and the [-1, 1] tensors


def json_safe(value):
    """``value`` with every NaN or infinity replaced by None (JSON's null)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def evaluate_command(args: argparse.Namespace, guide=None) -> dict:
    """Run ``diffusion-lessons evaluate``: print format_report, optionally write --json.
    ``guide(model, w)`` wraps a model for guidance (cli.py passes lesson 08's
    GuidedModel; lesson 07 cannot import lesson 08).
    """
    if args.json:  # fail now, not after the work
        json_path = Path(args.json)
        if json_path.is_dir():
            raise EvaluationError(f"--json {json_path} is a folder; give a file name.")
        json_path.parent.mkdir(parents=True, exist_ok=True)
    if args.figure and Path(args.figure).suffix.lower() != ".png":
        raise EvaluationError(f"--figure {args.figure}: give a .png file name.")
    if args.figure and args.clip == "none":
        raise EvaluationError("--figure draws CLIP scores; drop --clip none.")
    classifier = load_classifier(args.classifier)
    if args.samples:
        images, labels = load_digit_samples(args.samples)
    else:
        model, schedule, _ = load_trained(args.checkpoint or SHIPPED)
        if args.guidance:
            if guide is None:
                raise ValueError(
                    "--guidance needs lesson 08's guided model: run `diffusion-lessons "
                    "evaluate`, not lesson 07's main."
                )
            model = guide(model, args.guidance)
        labels = digit_labels("0123456789", args.per_digit)
        images = sample(
            model,
            schedule,
            labels,
            sampler=args.sampler,
            steps=args.steps,
            generator=torch.Generator().manual_seed(args.seed),
        )
    clip = None
    if args.clip == "digit":
        clip = load_clip(DIGIT_CLIP_NAME, weights=args.clip_weights)
    elif args.clip == "hub":
        clip = load_clip(args.clip_model, "openai", weights=args.clip_weights)
    report = evaluate_samples(images, labels, classifier, clip, dataset=args.dataset)
    print(format_report(report))
    if args.json:
        text = json.dumps(json_safe(report), indent=1, allow_nan=False)
        Path(args.json).write_text(text)
    if args.figure and clip is not None:
        what = f"{report['n']:,} generated digits, w = {args.guidance:g}"
        fig = fig_clip_vs_classifier(
            report["clip_per_class"], report["per_class"], clip.label, what=what
        )
        savefig(fig, args.figure)
    return report


def get_evaluators() -> tuple[DigitClassifier, Clip]:
    """The shipped classifier and digit-CLIP, trained and saved on the spot if a file is
    missing (it says so).
    """
    if not CLASSIFIER_PATH.is_file():
        print(f"No {CLASSIFIER_PATH}; training the classifier now (about a minute).")
        _train_and_save("classifier", CLASSIFIER_PATH)
    if not DIGIT_CLIP_PATH.is_file():
        print(f"No {DIGIT_CLIP_PATH}; training digit-CLIP now (about two minutes).")
        _train_and_save("clip", DIGIT_CLIP_PATH)
    return load_classifier(), load_clip(DIGIT_CLIP_NAME)


def _train_and_save(
    what: str,
    out: Path,
    dataset: str = "mnist-5k",
    seed: int = 0,
    length: int | None = None,
) -> None:
    start = time.perf_counter()
    if what == "classifier":
        model, acc = train_classifier(dataset, epochs=length or 12, seed=seed)
        meta = {
            "dataset": dataset,
            "held_out_accuracy": acc,
            "epochs": length or 12,
            "seed": seed,
        }
        save_classifier(
            model, out, {**meta, "command": CLASSIFIER_COMMAND.format(path=out)}
        )
        print(f"classifier: {acc:.2%} on the held-out {dataset} digits; wrote {out}")
    else:
        clip, acc = train_digit_clip(dataset, steps=length or 1200, seed=seed)
        meta = {
            "dataset": dataset,
            "zero_shot_accuracy": acc,
            "steps": length or 1200,
            "seed": seed,
            "prompts": list(PROMPTS),
        }
        save_digit_clip(
            clip, out, {**meta, "command": DIGIT_CLIP_COMMAND.format(path=out)}
        )
        print(
            f"digit-CLIP: zero-shot {acc:.2%} on the held-out {dataset} digits; wrote "
            f"{out}"
        )
    print(
        f"({time.perf_counter() - start:.0f} s with {torch.get_num_threads()} CPU "
        "thread(s))"
    )


def _fraction_or_never(value: float | None) -> str:
    """A recognisability fraction for the printed table, or 'never'."""
    return "never" if value is None else f"{value:.2f}"


def run(out: Path | str = "figures", *, quick: bool = False) -> dict:
    """Print what this lesson shows, write its figures into ``out``, return the key
    numbers.
    """
    out, files = Path(out), []
    classifier, clip = get_evaluators()
    x_test, y_test = load_digits("mnist-5k", "test")
    real = classifier_report(classifier, x_test, y_test)
    p = clip_scores(clip.model, clip.tokenizer, None, x_test)
    clip_real = per_class_accuracy(p.argmax(-1), y_test)
    reference = feature_stats(classifier, load_digits("mnist-5k", "train")[0])
    print(f"classifier on {len(y_test)} real held-out digits: {real['accuracy']:.1%}")
    print(
        f"CLIP ({clip.label}) zero-shot on the same digits: "
        f"{(p.argmax(-1) == y_test).float().mean():.1%}"
    )
    print("  per digit: " + "  ".join(f"{d}: {a:.0%}" for d, a in enumerate(clip_real)))
    floor = frechet_floor(classifier, 1000 if not quick else 100, reference=reference)
    print(
        "Fréchet classifier distance, real held-out vs training digits (the floor): "
        f"{floor[0]:.2f} at n={floor[1]}"
    )
    files.extend(
        (
            savefig(
                fig_clip_vs_classifier(
                    clip_real,
                    real["per_class"],
                    clip.label,
                    "real held-out digits",
                    "CLIP zero-shot accuracy",
                ),
                out / "07_clip_real.png",
            ),
            savefig(
                fig_confusion(
                    real["confusion"],
                    "real held-out digits: label vs the classifier's reading",
                    "true label",
                ),
                out / "07_confusion_real.png",
            ),
        )
    )
    result = {
        "classifier_real": real["accuracy"],
        "clip_real": clip_real,
        "floor": floor,
        "files": files,
    }
    if not SHIPPED.is_file():
        print(
            f"No trained diffusion model at {SHIPPED}: only the real-data figures are "
            "written. "
            "Train one with `diffusion-lessons train --preset small --out runs/small` "
            "and copy its checkpoint.pt there."
        )
    else:
        model, schedule, _ = load_trained(SHIPPED)
        source = (
            f"({SHIPPED.parent.name}/{SHIPPED.name}, DDIM {10 if quick else 50} steps, "
            "seed 0)"
        )
        curve = recognisability_curve(
            model,
            schedule,
            classifier,
            per_digit=3 if quick else 10,
            steps=10 if quick else 50,
        )
        print(
            "fraction of the reverse process after which the classifier reads the "
            "digit (stays >= 50% / 90%):"
        )
        print("  digit  on x0_pred     on x_t")
        for d in range(10):
            print(
                f"  {d:>5}  "
                + "".join(
                    f"{'/'.join(_fraction_or_never(curve[k][d]) for k in pair):<15}"
                    for pair in (("first50", "first90"), ("first50_xt", "first90_xt"))
                )
            )
        report = evaluate_samples(
            curve["x0"], curve["labels"], classifier, clip, reference
        )
        print(format_report(report))
        ranked = rerank_experiment(
            model,
            schedule,
            classifier,
            clip,
            per_digit=2 if quick else 6,
            candidates=3 if quick else 4,
            steps=10 if quick else 25,
        )
        print(
            "re-ranking: "
            + ", ".join(
                f"{k} accuracy {ranked[k]['accuracy']:.1%}, diversity "
                f"{ranked[k]['diversity']:.2f}"
                for k in ("before", "after")
            )
        )
        files += [
            savefig(fig_confusion(report["confusion"]), out / "07_confusion.png"),
            savefig(fig_recognisability(curve, source), out / "07_recognisability.png"),
            savefig(fig_rerank(ranked, clip.label), out / "07_rerank.png"),
        ]
        result.update(
            report=report,
            **{k: v for k, v in curve.items() if k.startswith("first")},
            rerank={
                k: {m: ranked[k][m] for m in ("accuracy", "diversity", "clip_score")}
                for k in ("before", "after")
            },
        )
    for f in files:
        print(f"wrote {f}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Lesson 07: a digit classifier, a Fréchet distance and CLIP."
    )
    parser.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples and steps")
    sub = parser.add_subparsers(dest="command")
    for name, what, default, length in (
        ("train-classifier", "the digit classifier", CLASSIFIER_PATH, "--epochs"),
        ("train-clip", "the offline digit-CLIP", DIGIT_CLIP_PATH, "--steps"),
    ):
        p = sub.add_parser(name, help=f"train {what} and save it")
        p.add_argument("--out", default=str(default.relative_to(CHECKPOINTS.parent)))
        p.add_argument("--dataset", default="mnist-5k")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument(length, dest="length", type=int, default=None)
        p.add_argument(
            "--threads",
            type=int,
            default=1,
            help="CPU threads (1: the shipped file's setting)",
        )
    add_evaluate_arguments(
        sub.add_parser("evaluate", help="evaluate samples or a checkpoint")
    )
    args = parser.parse_args(argv)
    try:
        if args.command in ("train-classifier", "train-clip"):
            torch.set_num_threads(args.threads)
            _train_and_save(
                args.command.split("-")[1],
                Path(args.out),
                args.dataset,
                args.seed,
                args.length,
            )
        elif args.command == "evaluate":
            evaluate_command(args)
        else:
            run(args.out, quick=args.quick)
    except (CourseError, OSError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
