"""Lesson 07: a digit classifier and the Fréchet distance. Did the model draw the digit
we asked for, and do its digits look real?

Chapter: docs/lessons/07-classifier.md

A loss curve cannot say whether a "7" looks like a 7. Two instruments can, each with
its own blind spot (lesson 08 adds a third, CLIP).
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

   FD shrinks with the sample size n, so a score means little alone. The reference is
   the held-out digits, which no generator trains on; the score is shown beside the
   real-data floor, n real training digits against the same reference. Diversity is the
   mean pairwise feature distance within a class, D_c = mean_{i<j} ||f(x_i) - f(x_j)||
   (eq. 7.5).

A digit is "recognisable" from the fraction 1 - t/T of the reverse process on which the
classifier reads x0_pred(x_t) (or x_t itself) as the requested digit for at least 50%
(90%) of the samples, to the end (eq. 7.6). The same observer on the forward process:
the classifier's accuracy per digit on x_t ~ q(x_t | x0) for real held-out digits,
at the same t (eq. 7.7); a perfect model's reverse states have the same distribution.

Builds on: lesson01_forward_noise (q_sample), lesson05_training (load_trained,
checkpoint_kind), lesson06_sampling (sample, digit_labels, SHIPPED), data (load_digits,
NUM_CLASSES), plotting (to_unit, DIGIT_COLORS, new_figure, savefig). The command line
around ``evaluate_samples`` (options, reading a samples file, --json) is in evaluate.py.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import CourseError
from .data import NUM_CLASSES, load_digits
from .lesson01_forward_noise import q_sample
from .lesson05_training import OTHER_KINDS, checkpoint_kind, load_trained
from .lesson06_sampling import SHIPPED, digit_labels, sample
from .plotting import DIGIT_COLORS, new_figure, savefig, to_unit

# ---------------------------------------------------------------------------
# Constants and notation
# ---------------------------------------------------------------------------

CHECKPOINTS = Path(__file__).resolve().parents[1] / "checkpoints"
CLASSIFIER_PATH = CHECKPOINTS / "classifier.pt"
CLASSIFIER_COMMAND = (
    "python -m diffusion_lessons.lesson07_classifier train-classifier --out {path}"
)


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


# ---------------------------------------------------------------------------
# Pure functions: the metrics
# ---------------------------------------------------------------------------


@torch.no_grad()
def batched(fn, images: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """``fn`` on the images (N, ...) in batches of ``batch``, concatenated."""
    return torch.cat([fn(images[i : i + batch]) for i in range(0, len(images), batch)])


def predict_proba(classifier, images: torch.Tensor) -> torch.Tensor:
    """p_phi(c | x) for images (N, 1, 28, 28) in [-1, 1]: (N, 10)."""
    if isinstance(classifier, nn.Module):
        classifier.eval()
    return batched(lambda x: classifier(x).softmax(-1), images)


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
    f = batched(classifier.features, images).double()  # (N, D)
    return f.mean(0), torch.cov(f.T)


def frechet_floor(
    classifier, n: int = 1000, dataset: str = "mnist-5k", reference=None, seed: int = 0
) -> tuple[float, int]:
    """The real-data floor: FD between n real training digits (a fixed random pick) and
    the reference (default: every held-out digit). Returns (FD, n used).
    """
    mu_r, sigma_r = (
        reference
        if reference is not None
        else feature_stats(classifier, load_digits(dataset, "test")[0])
    )
    real, _ = load_digits(dataset, "train")
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


def diversity(classifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Eq. 7.5 averaged over the classes present: mean pairwise feature distance within
    each class.
    """
    classifier.eval()
    f = batched(classifier.features, images)  # (N, D)
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
# Evaluating a diffusion model
# ---------------------------------------------------------------------------


def evaluate_samples(
    images: torch.Tensor,
    labels: torch.Tensor,
    classifier,
    reference=None,
    dataset: str = "mnist-5k",
) -> dict:
    """Every number of this lesson for samples (N, 1, 28, 28) in [-1, 1] drawn for
    ``labels`` (N,).

    ``reference`` is (mu, Sigma) of the real held-out digits, which no generator trains
    on (computed from ``dataset`` when None).
    Returns a dict: n, accuracy, per_class, confusion, mean_confidence,
    frechet_distance, frechet_floor (+ frechet_floor_n), classifier. Lesson 08's
    ``evaluate_samples`` adds the CLIP numbers.
    """
    reference = (
        reference
        if reference is not None
        else feature_stats(classifier, load_digits(dataset, "test")[0])
    )
    report = classifier_report(classifier, images, labels)
    report["frechet_distance"] = frechet_distance(
        *feature_stats(classifier, images), *reference
    )
    report["frechet_floor"], report["frechet_floor_n"] = frechet_floor(
        classifier, len(images), dataset, reference
    )
    report["classifier"] = dict(getattr(classifier, "meta", {}))
    return report


def format_report(report: dict) -> str:
    """A plain-text table of ``evaluate_samples``' dict (with lesson 08's CLIP rows
    when it has them).
    """
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
            f"{report['frechet_distance']:.2f}  (floor, real training digits at n="
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
    """Eq. 7.6: the classifier's accuracy per digit at every reverse step, on x0_pred
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
        t_min=1,  # the whole chain, to compare with the whole forward process
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
            out[f"first{level}{key[8:]}"] = settled_from(acc, frac, level / 100)
    return out


def settled_from(
    accuracy: torch.Tensor, fraction: torch.Tensor, level: float
) -> dict[int, float | None]:
    """Eq. 7.6 for every digit: the fraction done from which ``accuracy`` (K, 10), in
    the order of ``fraction`` (K,), stays >= ``level`` to the end; None if it ends
    below the level.
    """
    run = (accuracy >= level).flip(0).cumprod(0).sum(0)  # (10,) final run's length
    return {
        d: fraction[len(fraction) - n].item() if n else None
        for d, n in enumerate(run.tolist())
    }


def forward_recognisability(
    classifier,
    schedule,
    x0: torch.Tensor,
    labels: torch.Tensor,
    steps: int = 50,
    seed: int = 0,
) -> dict:
    """Eq. 7.7: the classifier's accuracy per digit on forward-noised real digits,
    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, at steps + 1 evenly
    spaced t from T down to 0.

    Returns fraction (steps + 1,) = 1 - t/T, accuracy (steps + 1, 10), and first50 /
    first90 as in ``recognisability_curve``.
    """
    gen = torch.Generator().manual_seed(seed)
    ts = torch.linspace(schedule.T, 0, steps + 1).round().long()  # (K,) T ... 0
    accuracy = []
    for t in ts.tolist():
        xt = q_sample(x0, t, schedule, generator=gen)  # (N, 1, 28, 28)
        pred = predict_proba(classifier, xt).argmax(-1)
        accuracy.append(per_class_accuracy(pred, labels))
    out = {"fraction": 1 - ts / schedule.T, "accuracy": torch.tensor(accuracy)}
    for level in (50, 90):
        out[f"first{level}"] = settled_from(
            out["accuracy"], out["fraction"], level / 100
        )
    return out


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
                    fontsize=8,
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


def fig_recognisability(curve: dict, source: str = ""):
    """Classifier accuracy vs the fraction of the reverse process done, one line per
    digit: on x0_pred and on x_t.
    """
    fig, axes = new_figure(1, 2, size=(6.2, 3.6), sharey=True)
    for ax, key, view in zip(
        axes,
        ("accuracy", "accuracy_xt"),
        ("the prediction x0_pred", "the noisy state x_t"),
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
            xlabel="fraction done, 1 - t/T",
            title=f"reading {view}",
            ylim=(-0.02, 1.02),
        )
    axes[0].set_ylabel("accuracy per requested digit")
    axes[1].legend(fontsize=8, title="digit", ncol=2, loc="lower right")
    fig.suptitle(f"When does a digit become recognisable?\n{source}".strip())
    fig.tight_layout()
    return fig


def fig_forward_vs_reverse(curve: dict, forward: dict, n_real: int):
    """One panel per digit: the classifier's accuracy on the reverse process' x_t
    (generated) and on the forward process' x_t (``n_real`` real digits per class),
    against 1 - t/T.
    """
    fig, axes = new_figure(2, 5, size=(6.88, 3.6), sharex=True, sharey=True)
    for d, ax in enumerate(axes.flat):
        ax.plot(curve["fraction_xt"], curve["accuracy_xt"][:, d], color=DIGIT_COLORS[d])
        ax.plot(forward["fraction"], forward["accuracy"][:, d], "k--", lw=1)
        ax.set_title(f"digit {d}", fontsize=9)
        ax.set(ylim=(-0.03, 1.03), xticks=(0, 0.5, 1), yticks=(0, 0.5, 1))
        ax.tick_params(labelsize=8)
    for ax in axes[1]:
        ax.set_xlabel("1 - t/T", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy", fontsize=8)
    n_gen = len(curve["labels"]) // 10
    fig.suptitle(
        f"solid: reverse process, {n_gen} generated per digit; dashed: forward "
        f"process, {n_real} real digits",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------
# Command line: train the classifier, run the lesson (evaluate: evaluate.py)
# ---------------------------------------------------------------------------


def get_classifier() -> DigitClassifier:
    """The shipped classifier, trained and saved on the spot if the file is missing
    (it says so).
    """
    if not CLASSIFIER_PATH.is_file():
        print(f"No {CLASSIFIER_PATH}; training the classifier now (about a minute).")
        train_and_save_classifier(CLASSIFIER_PATH)
    return load_classifier()


def train_and_save_classifier(
    out: Path,
    dataset: str = "mnist-5k",
    seed: int = 0,
    epochs: int | None = None,
) -> None:
    """Train the classifier (``train_classifier``), save it with what made it, and say
    how long it took.
    """
    start, epochs = time.perf_counter(), epochs or 12
    model, acc = train_classifier(dataset, epochs=epochs, seed=seed)
    meta = {
        "dataset": dataset,
        "held_out_accuracy": acc,
        "epochs": epochs,
        "seed": seed,
        "command": CLASSIFIER_COMMAND.format(path=out),
    }
    save_classifier(model, out, meta)
    print(f"classifier: {acc:.2%} on the held-out {dataset} digits; wrote {out}")
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
    out = Path(out)
    classifier = get_classifier()
    x_test, y_test = load_digits("mnist-5k", "test")
    real = classifier_report(classifier, x_test, y_test)
    reference = feature_stats(classifier, x_test)  # the held-out digits
    print(f"classifier on {len(y_test)} real held-out digits: {real['accuracy']:.1%}")
    floor = frechet_floor(classifier, 1000 if not quick else 100, reference=reference)
    print(
        "Fréchet classifier distance, real training vs held-out digits (the floor): "
        f"{floor[0]:.2f} at n={floor[1]}"
    )
    files = [
        savefig(
            fig_confusion(
                real["confusion"],
                "real held-out digits: label vs the classifier's reading",
                "true label",
            ),
            out / "07_confusion_real.png",
        )
    ]
    result = {  # diffusion-lessons figures keeps these numbers in 07_run.json
        "classifier_real": real["accuracy"],
        "real": real,  # the classifier's report on the real held-out digits (fig. 7.1)
        "floor": floor,
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
        n_real = 10 if quick else 50  # real held-out digits per class for eq. 7.7
        keep = torch.cat([(y_test == d).nonzero()[:n_real, 0] for d in range(10)])
        forward = forward_recognisability(
            classifier, schedule, x_test[keep], y_test[keep], 10 if quick else 50
        )
        curve.update(first50_fwd=forward["first50"], first90_fwd=forward["first90"])
        table = [
            "fraction of the process after which the classifier reads the digit "
            "(stays >= 50% / 90%):",
            "         reverse, generated        forward, real",
            "  digit  on x0_pred     on x_t     on x_t",
        ]
        columns = (("first50", "first90"), ("first50_xt", "first90_xt"))
        for d in range(10):
            table.append(
                f"  {d:>5}  "
                + "".join(
                    f"{'/'.join(_fraction_or_never(curve[k][d]) for k in pair):<11}"
                    for pair in (*columns, ("first50_fwd", "first90_fwd"))
                ).rstrip()
            )
        print("\n".join(table))
        files.append(out / "07_recognisability.txt")  # the table chapter 07 shows
        files[-1].write_text("\n".join(table) + "\n")
        views = {
            "x0_pred": "",
            "xt": "_xt",
            "forward_xt": "_fwd",
        }  # for value() in docs
        files.append(out / "07_recognisability.json")
        files[-1].write_text(
            json.dumps(
                {
                    "generated_per_digit": len(curve["labels"]) // 10,
                    "real_per_digit": n_real,
                    **{
                        view: {
                            f"first{lv}": [
                                curve[f"first{lv}{sfx}"][d] for d in range(10)
                            ]
                            for lv in (50, 90)
                        }
                        for view, sfx in views.items()
                    },
                },
                indent=1,
            )
        )
        report = evaluate_samples(curve["x0"], curve["labels"], classifier, reference)
        print(format_report(report))
        files += [
            savefig(fig_confusion(report["confusion"]), out / "07_confusion.png"),
            savefig(fig_recognisability(curve, source), out / "07_recognisability.png"),
            savefig(
                fig_forward_vs_reverse(curve, forward, n_real),
                out / "07_forward_vs_reverse.png",
            ),
        ]
        result.update(
            report=report, **{k: v for k, v in curve.items() if k.startswith("first")}
        )
    for f in files:
        print(f"wrote {f}")
    return result


def main(argv: list[str] | None = None) -> None:
    # evaluate.py builds on this module, so it is imported here, not at the top
    from .evaluate import add_evaluate_arguments, evaluate_command

    parser = argparse.ArgumentParser(
        description="Lesson 07: a digit classifier and the Fréchet distance."
    )
    parser.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples and steps")
    sub = parser.add_subparsers(dest="command")
    p = sub.add_parser(
        "train-classifier", help="train the digit classifier and save it"
    )
    p.add_argument(
        "--out", default=str(CLASSIFIER_PATH.relative_to(CHECKPOINTS.parent))
    )
    p.add_argument("--dataset", default="mnist-5k")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (1: the shipped file's setting)",
    )
    add_evaluate_arguments(
        sub.add_parser("evaluate", help="evaluate samples or a checkpoint (no CLIP)"),
        clip=False,
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "train-classifier":
            torch.set_num_threads(args.threads)
            train_and_save_classifier(
                Path(args.out), args.dataset, args.seed, args.epochs
            )
        elif args.command == "evaluate":
            evaluate_command(args)
        else:
            run(args.out, quick=args.quick)
    except (CourseError, OSError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
