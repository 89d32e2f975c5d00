"""Lesson 08: CLIP scoring and re-ranking. What does a judge trained on captions say
about our digits, and does keeping its favourites help?

Chapter: docs/lessons/08-clip.md

CLIP: an image encoder f and a text encoder g trained so that matching (image, caption)
pairs have the highest cosine similarity in a batch. Zero-shot, it classifies by
comparing an image with one prompt per digit, averaging over M prompt templates:

    (8.1)   L_CLIP = 1/2 [ CE(s F G^T, I) + CE(s G F^T, I) ]  (F, G: normalised image /
                caption features of a batch)
    (8.2)   p_CLIP(c | x) = (1/M) sum_m softmax_c( s cos(f(x), g(template_m(c))) )

Hub CLIP weights need a network; offline, the lesson trains a small digit-CLIP with
open_clip's own classes and loss (eq. 8.1). Re-ranking keeps the best k of N candidates
by p_CLIP(y | x) (eq. 8.3), judged afterwards by lesson 07's classifier, accuracy and
diversity (eq. 7.5).

Builds on: lesson05_training (diffusion_loss, checkpoint_kind), lesson06_sampling
(sample, digit_labels, SHIPPED), lesson07_classifier (the classifier and its metrics),
data (load_digits, cache_dir, NUM_CLASSES), plotting. The ``diffusion-lessons
evaluate`` command around ``load_clip`` and ``evaluate_samples`` (its options, --json,
--figure) is in evaluate.py.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import NamedTuple

import huggingface_hub
import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from . import CourseError
from .data import NUM_CLASSES, cache_dir, load_digits
from .lesson05_training import checkpoint_kind, diffusion_loss, load_trained
from .lesson06_sampling import DEFAULT_STEPS, SHIPPED, digit_labels, sample
from .lesson07_classifier import (
    CHECKPOINTS,
    KIND_NAMES,
    EvaluationError,
    batched,
    classifier_report,
    diversity,
    feature_stats,
    frechet_distance,
    get_classifier,
    per_class_accuracy,
    predict_proba,
    random_shift,
)
from .lesson07_classifier import evaluate_samples as classifier_evaluation
from .plotting import DIGIT_COLORS, new_figure, savefig, show_images, to_unit

# ---------------------------------------------------------------------------
# Constants and notation
# ---------------------------------------------------------------------------

DIGIT_CLIP_PATH = CHECKPOINTS / "clip-digits.pt"
DIGIT_CLIP_COMMAND = "python -m diffusion_lessons.lesson08_clip train-clip --out {path}"
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
# : prompt templates for eq. 8.2 (and the captions digit-CLIP is trained on): {digit} =
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


class Clip(NamedTuple):
    """An open_clip model with its tokenizer, its (PIL) preprocess and ``label``: which
    weights these are.
    """

    model: nn.Module
    tokenizer: object
    preprocess: object
    label: str


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
    """Eq. 8.2: zero-shot probabilities p_CLIP(c | x), (N, len(class_names)), averaged
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
    f = F.normalize(batched(encode, images, 256), dim=-1)  # (N, E)
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
    (eq. 8.1).

    A CLIP batch treats every other caption as wrong; with only ten digits two "seven"
    captions would fight. So each batch is ``groups`` groups of ten images, one per
    digit, and the loss is averaged over the groups. Returns the model and its zero-shot
    accuracy (eq. 8.2) on the held-out ``test`` digits.
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
        # eq. 8.1
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
# Re-ranking, and evaluating with CLIP
# ---------------------------------------------------------------------------


def rerank(
    candidates: torch.Tensor, scores: torch.Tensor, keep: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 8.3: in each group keep the ``keep`` candidates with the highest scores.

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


def evaluate_samples(
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier,
    clip: Clip | None = None,
    reference=None,
    dataset: str = "mnist-5k",
) -> dict:
    """Lesson 07's numbers for samples (N, 1, 28, 28) in [-1, 1] drawn for ``labels``
    (N,), and with ``clip`` the CLIP ones.

    Returns lesson 07's dict (n, accuracy, per_class, confusion, mean_confidence,
    frechet_distance, frechet_floor, ...); with ``clip`` also clip_score (mean
    p_CLIP(y | x)), clip_per_class, clip_accuracy, clip_agreement (CLIP and the
    classifier name the same digit) and clip_weights.
    """
    report = classifier_evaluation(images, labels, classifier, reference, dataset)
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


def rerank_experiment(
    model,
    schedule,
    classifier,
    clip: Clip,
    per_digit: int = 8,
    candidates: int = 4,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
) -> dict:
    """Draw ``per_digit * candidates`` samples per digit, keep the best ``per_digit`` by
    p_CLIP(y | x) (eq. 8.3).

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
# Command line: train digit-CLIP, run the lesson (evaluate: evaluate.py)
# ---------------------------------------------------------------------------


def get_evaluators() -> tuple[nn.Module, Clip]:
    """The shipped classifier and digit-CLIP, trained and saved on the spot if a file is
    missing (it says so).
    """
    classifier = get_classifier()
    if not DIGIT_CLIP_PATH.is_file():
        print(f"No {DIGIT_CLIP_PATH}; training digit-CLIP now (about two minutes).")
        train_and_save_clip(DIGIT_CLIP_PATH)
    return classifier, load_clip(DIGIT_CLIP_NAME)


def train_and_save_clip(
    out: Path,
    dataset: str = "mnist-5k",
    seed: int = 0,
    steps: int | None = None,
) -> None:
    """Train digit-CLIP (``train_digit_clip``), save it with what made it, and say how
    long it took.
    """
    start, steps = time.perf_counter(), steps or 1200
    clip, acc = train_digit_clip(dataset, steps=steps, seed=seed)
    meta = {
        "dataset": dataset,
        "zero_shot_accuracy": acc,
        "steps": steps,
        "seed": seed,
        "prompts": list(PROMPTS),
        "command": DIGIT_CLIP_COMMAND.format(path=out),
    }
    save_digit_clip(clip, out, meta)
    print(
        f"digit-CLIP: zero-shot {acc:.2%} on the held-out {dataset} digits; wrote {out}"
    )
    print(
        f"({time.perf_counter() - start:.0f} s with {torch.get_num_threads()} CPU "
        "thread(s))"
    )


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
    print(f"classifier on {len(y_test)} real held-out digits: {real['accuracy']:.1%}")
    print(
        f"CLIP ({clip.label}) zero-shot on the same digits: "
        f"{(p.argmax(-1) == y_test).float().mean():.1%}"
    )
    print("  per digit: " + "  ".join(f"{d}: {a:.0%}" for d, a in enumerate(clip_real)))
    files.append(
        savefig(
            fig_clip_vs_classifier(
                clip_real,
                real["per_class"],
                clip.label,
                "real held-out digits",
                "CLIP zero-shot accuracy",
            ),
            out / "08_clip_real.png",
        )
    )
    result = {  # the numbers chapter 08 quotes (diffusion-lessons figures: 08_run.json)
        "classifier_real": real["accuracy"],
        "classifier_real_per_class": real["per_class"],
        "clip_real_accuracy": (p.argmax(-1) == y_test).float().mean().item(),
        "clip_real": clip_real,
        # the mean CLIP score p(y|x) of the real digits of each class
        "clip_score_real": [p[y_test == d, d].mean().item() for d in range(10)],
        # parameters besides the word table (token_embedding)
        "clip_parameters": sum(
            q.numel()
            for name, q in clip.model.named_parameters()
            if "token_embedding" not in name
        ),
        "files": files,
    }
    if not SHIPPED.is_file():
        print(
            f"No trained diffusion model at {SHIPPED}: only the real-data figure is "
            "written. "
            "Train one with `diffusion-lessons train --preset small --out runs/small` "
            "and copy its checkpoint.pt there."
        )
    else:
        model, schedule, _ = load_trained(SHIPPED)
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
        files.append(savefig(fig_rerank(ranked, clip.label), out / "08_rerank.png"))
        result["rerank"] = {
            k: {m: float(ranked[k][m]) for m in ("accuracy", "diversity", "clip_score")}
            for k in ("before", "after")
        }
        files.append(out / "08_rerank.json")  # the numbers the chapter quotes
        files[-1].write_text(json.dumps(result["rerank"], indent=1))
    for f in files:
        print(f"wrote {f}")
    return result


def main(argv: list[str] | None = None) -> None:
    # evaluate.py builds on this module, so it is imported here, not at the top
    from .evaluate import add_evaluate_arguments, evaluate_command

    parser = argparse.ArgumentParser(
        description="Lesson 08: CLIP scoring and re-ranking."
    )
    parser.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples and steps")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser("train-clip", help="train the offline digit-CLIP and save it")
    p.add_argument(
        "--out", default=str(DIGIT_CLIP_PATH.relative_to(CHECKPOINTS.parent))
    )
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=None)
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
        if args.command == "train-clip":
            torch.set_num_threads(args.threads)
            train_and_save_clip(Path(args.out), args.dataset, args.seed, args.steps)
        elif args.command == "evaluate":
            evaluate_command(args)
        else:
            run(args.out, quick=args.quick)
    except (CourseError, OSError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
