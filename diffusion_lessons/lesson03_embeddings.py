"""Lesson 03: embeddings, telling the network the time and the digit.

Chapter: docs/lessons/03-embeddings.md

The denoiser gets three inputs: the noisy image x_t, the step t and the class label y. A
network eats vectors, so t and y must become vectors first. This lesson builds both
translations.

Why the network needs t at all: by eq. 1.3, x_t = sqrt(alpha_bar_t) x0 + sqrt(1 -
alpha_bar_t) eps. The amount of noise to remove, sqrt(1 - alpha_bar_t), runs from 0.01
to 1.0 over t = 1..T, while the pixel spread of x_t changes much less (0.7 to 1.0: the
process is variance preserving). A time-blind denoiser must use one noise scale c for
every input; the best single value (least squared error) is

    (3.1)   c* = mean over t = 1..T of sqrt(1 - alpha_bar_t)

which removes too much noise at small t and too little at large t (fig_without_time). A
real network can partly read the noise level off the image (how grainy it looks); the
embedding hands it the exact number for free and settles the cases where the image alone
is ambiguous.

Time. Each timestep t becomes sines and cosines of t at dim/2 geometrically spaced
frequencies (the Transformer positional encoding, used by DDPM), then a small MLP (with
SiLU) adapts it:

    (3.2)   omega_k = max_period^(-k / (dim/2)),  k = 0 .. dim/2 - 1
    (3.3)   PE(t) = [sin(omega_0 t), ..., sin(omega_{dim/2-1} t), cos(omega_0 t), ...,
                cos(omega_{dim/2-1} t)]
    (3.4)   PE(t) . PE(s) = sum_k cos(omega_k (t - s))  (depends only on t - s: nearby
                steps look alike)
    (3.5)   e_t = W_2 SiLU(W_1 PE(t) + b_1) + b_2

Class. Two ways to turn a label y in {0..K-1} into a vector, compared in the chapter:

    (3.6)   one-hot vector through an MLP (EmbedBlock):  c = onehot(y);  e_y = W_2
                GELU(W_1 c + b_1) + b_2
    (3.7)   lookup table (nn.Embedding):  e_y = E[y],  E has K + 1 rows

A linear layer applied to a one-hot vector just picks one column of its weight, so eq.
3.7 is eq. 3.6's first layer without the multiply. Row K of E is the "null" class
(written ∅): the label that means "no label", which classifier-free guidance (lesson 09)
trains with and samples with.

Builds on: lesson01_forward_noise (q_sample), lesson02_schedules (linear_schedule),
data (load_digits), plotting (new_figure, savefig, show_images).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import load_digits
from .lesson01_forward_noise import q_sample
from .lesson02_schedules import linear_schedule
from .plotting import new_figure, savefig, show_images

# ---------------------------------------------------------------------------
# Notation
# ---------------------------------------------------------------------------

# eq. 3.2: the slowest frequency is about 1 / max_period (the Transformer's value)
MAX_PERIOD = 10_000

# ---------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------


def sinusoidal_embedding(
    t: torch.Tensor | int, dim: int, max_period: float = MAX_PERIOD
) -> torch.Tensor:
    """The sinusoidal embedding of timesteps, eqs. 3.2-3.3, layout [sin(all freqs) |
    cos(all freqs)].

    Args:
        t: timesteps, a (B,) tensor (int or float) or a python int.
        dim: embedding width, even (half sines, half cosines).
        max_period: sets the slowest frequency, max_period in eq. 3.1.
    Returns:
        (B, dim) float32 on t's device, every value in [-1, 1].
    """
    if int(dim) != dim or dim < 2 or dim % 2:
        raise ValueError(
            f"dim must be an even number >= 2 (half sines, half cosines); got {dim!r}. "
            f"Use an even dim such as {max(2, int(dim) + int(dim) % 2)}."
        )
    t = torch.as_tensor(t)
    if t.ndim == 0:
        t = t[None]  # python int -> (1,)
    if t.ndim != 1:
        raise ValueError(
            "t must be a (B,) tensor of timesteps or an int; got shape "
            f"{tuple(t.shape)}. Flatten it with t.flatten()."
        )
    half = dim // 2
    k = torch.arange(half, dtype=torch.float32, device=t.device)
    omega = max_period ** (-k / half)  # (dim/2,) eq. 3.2
    angles = t.float()[:, None] * omega[None, :]  # (B, dim/2): omega_k t
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (B, dim) eq. 3.3


def check_labels(
    labels: torch.Tensor, num_classes: int, batch: int | None = None
) -> torch.Tensor:
    """Validate class labels: a (B,) integer tensor with values in 0..num_classes
    (num_classes is ∅).

    Returns the labels unchanged; raises ValueError/TypeError naming the problem and the
    fix.
    """
    if not torch.is_tensor(labels) or labels.ndim != 1:
        shape = (
            tuple(labels.shape) if torch.is_tensor(labels) else type(labels).__name__
        )
        raise ValueError(
            f"labels must be a (B,) tensor of class indices; got {shape}. Use "
            "torch.tensor([...]) or labels.flatten()."
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(
            f"labels must be integers (torch.long); got {labels.dtype}. Convert with "
            "labels.long()."
        )
    if batch is not None and len(labels) != batch:
        raise ValueError(
            f"labels has {len(labels)} entries but the batch has {batch} images; give "
            "one label per image."
        )
    if len(labels) and (labels.min() < 0 or labels.max() > num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes} (0..{num_classes - 1} are digits, "
            f"{num_classes} is the null class ∅); "
            f"got values from {labels.min().item()} to {labels.max().item()}."
        )
    return labels


def cosine_similarity_matrix(emb: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between every pair of rows of emb (N, D) -> (N, N)."""
    unit = F.normalize(emb, dim=1)
    return unit @ unit.T


# ---------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------


class TimeEmbedding(nn.Module):
    """Timestep -> vector: sinusoidal features (eq. 3.3) through Linear -> SiLU ->
    Linear (eq. 3.5).

    Args:
        dim: width of the sinusoidal features (even).
        out_dim: width of the output vector (default: dim).
    """

    def __init__(
        self, dim: int, out_dim: int | None = None, max_period: float = MAX_PERIOD
    ):
        super().__init__()
        sinusoidal_embedding(0, dim)  # fail early on an odd dim
        self.dim, self.out_dim, self.max_period = dim, out_dim or dim, max_period
        self.mlp = nn.Sequential(
            nn.Linear(dim, self.out_dim),
            nn.SiLU(),
            nn.Linear(self.out_dim, self.out_dim),
        )

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: (B,) timesteps -> e_t: (B, out_dim)."""
        # (B, dim)
        pe = sinusoidal_embedding(t, self.dim, self.max_period).to(
            self.mlp[0].weight.dtype
        )
        return self.mlp(pe)  # (B, out_dim)


class EmbedBlock(nn.Module):
    """A one-hot-style conditioning block (eq. 3.6): a vector through Linear -> GELU
    -> Linear, reshaped to (B, C, 1, 1) so it broadcasts over a feature map (B, C, H,
    W).

    For classes the input is a one-hot vector, ``F.one_hot(y, K).float()``; an all-zero
    vector is how that notebook spells "no class".

    Args:
        in_dim: length of the input vector (K for a one-hot label).
        out_channels: C, the channel count of the feature map it will meet.
    """

    def __init__(self, in_dim: int, out_channels: int):
        super().__init__()
        self.in_dim, self.out_channels = in_dim, out_channels
        self.model = nn.Sequential(
            nn.Linear(in_dim, out_channels),
            nn.GELU(),
            nn.Linear(out_channels, out_channels),
        )

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """c: (B, in_dim) float -> (B, out_channels, 1, 1)."""
        if c.ndim != 2 or c.shape[1] != self.in_dim:
            raise ValueError(
                f"EmbedBlock expects a (B, {self.in_dim}) float vector; got shape "
                f"{tuple(c.shape)}. "
                f"For labels use F.one_hot(labels, {self.in_dim}).float()."
            )
        return self.model(c.float()).view(-1, self.out_channels, 1, 1)  # (B, C, 1, 1)


class ClassEmbedding(nn.Module):
    """Label -> vector by table lookup (eq. 3.7), with one extra row for the null class
    ∅.

    Args:
        num_classes: K, the number of real classes (10 digits); label K means ∅ (no
            label).
        dim: width of each class vector.
    """

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1; got {num_classes}.")
        self.num_classes, self.dim = num_classes, dim
        self.null_class = (
            num_classes  # the index of ∅, used by classifier-free guidance (lesson 09)
        )
        # (K + 1, dim): rows 0..K-1 digits, row K = ∅
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        """labels: (B,) in 0..num_classes -> e_y: (B, dim)."""
        return self.table(check_labels(labels, self.num_classes))


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def fig_time_embedding(T: int = 1000, dim: int = 64):
    """Heat map of PE(t) (eq. 3.3) for t = 1..T: fast sines on the left, slow ones on
    the right.
    """
    pe = sinusoidal_embedding(torch.arange(1, T + 1), dim)  # (T, dim)
    fig, ax = new_figure(size=(7.5, 4.0))
    im = ax.imshow(
        pe.numpy(),
        aspect="auto",
        cmap="RdBu_r",
        vmin=-1,
        vmax=1,
        interpolation="nearest",
        extent=(-0.5, dim - 0.5, T + 0.5, 0.5),
    )
    ax.axvline(dim / 2 - 0.5, color="k", lw=1)
    ax.set_xlabel(
        f"embedding index (0..{dim // 2 - 1}: sin, {dim // 2}..{dim - 1}: cos; "
        "frequency falls to the right)"
    )
    ax.set_ylabel("timestep t")
    ax.set_title(f"Sinusoidal time embedding PE(t), dim = {dim} (eq. 3.3)")
    ax.grid(False)
    fig.colorbar(im, ax=ax, label="value")
    return fig


def fig_time_similarity(T: int = 1000, dim: int = 64):
    """Cosine similarity between PE(t) and PE(s): high near the diagonal, low far from
    it (eq. 3.4).
    """
    t = torch.arange(1, T + 1)
    sim = cosine_similarity_matrix(sinusoidal_embedding(t, dim))  # (T, T)
    fig, (ax0, ax1) = new_figure(
        2, 1, size=(6.4, 7.6), gridspec_kw={"height_ratios": [1.25, 1], "hspace": 0.4}
    )
    im = ax0.imshow(
        sim.numpy(),
        cmap="viridis",
        vmin=-0.2,
        vmax=1,
        extent=(0.5, T + 0.5, T + 0.5, 0.5),
    )
    ax0.set_xlabel("timestep s")
    ax0.set_ylabel("timestep t")
    ax0.set_title("cos-similarity of PE(t) and PE(s)")
    ax0.grid(False)
    fig.colorbar(im, ax=ax0, fraction=0.046)
    for t0 in (100, 500, 900):
        ax1.plot(t.numpy(), sim[t0 - 1].numpy(), lw=1.2, label=f"t = {t0}")
    ax1.set_xlabel("timestep s")
    ax1.set_ylabel("similarity to PE(t)")
    ax1.set_title("rows of the matrix: same shape, shifted (eq. 3.4)")
    ax1.set_ylim(-0.4, 1.05)
    ax1.legend(loc="lower center", ncol=3)
    return fig


def fig_without_time(
    x0: torch.Tensor, steps=(10, 100, 250, 500, 750), T: int = 1000, seed: int = 0
):
    """What a time-blind denoiser does to one digit, even when it knows the exact noise
    eps.

    Row 1: x_t. Row 2: x0 recovered with the true scales of step t (eq. 1.3 solved for
        x0).
    Row 3: x0 recovered with the one compromise noise scale c* of eq. 3.1, the best a
    net that never sees t can use. Right: the noise scale sqrt(1 - alpha_bar_t) against
    t, c*, and the pixel spread of x_t.
    """
    schedule = linear_schedule(T)
    g = torch.Generator().manual_seed(seed)
    # (1, C, H, W), the same noise at every t
    eps = torch.randn(x0[:1].shape, generator=g)
    # (T,) sqrt(1 - alpha_bar_t), t = 1..T
    noise_scale = (1 - schedule.alpha_bar[1:]).sqrt().float()
    c_star = noise_scale.mean().item()  # eq. 3.1
    rows = {"x_t": [], "knows t": [], "time-blind": []}
    for t in steps:
        xt = q_sample(x0[:1], t, schedule, eps=eps)  # (1, C, H, W) eq. 1.3
        ab = schedule.alpha_bar[t].item()
        rows["x_t"].append(xt)
        rows["knows t"].append((xt - math.sqrt(1 - ab) * eps) / math.sqrt(ab))
        rows["time-blind"].append((xt - c_star * eps) / math.sqrt(1 - c_star**2))
    fig, (ax_img, ax) = new_figure(
        2, 1, size=(6.8, 7.6), gridspec_kw={"height_ratios": [1.1, 1], "hspace": 0.3}
    )
    show_images(
        ax_img,
        torch.cat([torch.cat(images) for images in rows.values()]),
        nrow=len(steps),
        col_labels=[f"t = {t}" for t in steps],
        row_labels=list(rows),
    )
    ts = torch.arange(1, T + 1)
    spread = [
        q_sample(x0[:1], int(t), schedule, eps=eps).std().item() for t in ts[::20]
    ]
    ax.plot(ts.numpy(), noise_scale.numpy(), label="noise to remove, sqrt(1 - ᾱ_t)")
    ax.axhline(
        c_star,
        color="k",
        ls="--",
        lw=1,
        label=f"time-blind compromise c* = {c_star:.2f}",
    )
    ax.plot(
        ts[::20].numpy(),
        spread,
        "o",
        ms=3,
        label="pixel std of x_t (what the net sees)",
    )
    ax.set_xlabel("timestep t")
    ax.set_ylim(0, 1.15)
    ax.set_title("x_t's pixel spread changes little; the noise in it grows 100x")
    ax.legend(loc="lower right", fontsize=8)
    return fig


# ---------------------------------------------------------------------------
# Measurements: can the image tell its own step? (section 3.1)
# ---------------------------------------------------------------------------


def noise_estimate(xt: torch.Tensor) -> torch.Tensor:
    """A blind estimate of the noise std of each image, (B, 1, H, W) -> (B,).

    MNIST backgrounds are flat, so the difference of two horizontal neighbours is
    mostly noise, of std sqrt(2) sigma; its median absolute value ignores the few
    pairs on a stroke edge (for a Gaussian, median |z| = 0.6745 sigma).
    """
    d = (xt[..., :, 1:] - xt[..., :, :-1]).flatten(1)  # (B, H * (W - 1))
    return d.abs().median(dim=1).values / (0.6745 * 2**0.5)


def read_time_steps(
    x_calib: torch.Tensor,
    x_test: torch.Tensor,
    steps=(10, 50, 100, 200, 300, 400, 500, 600, 700, 800, 1000),
    T: int = 1000,
    every: int = 5,
    seed: int = 0,
) -> dict:
    """Read the step off the noisy image alone (section 3.1): calibrate
    ``noise_estimate`` on x_calib (its median at every ``every``-th step, made
    non-decreasing: noise only grows), then give each image of x_test, noised at each
    true step, the calibrated step whose value is closest.

    Returns {"plateau": the step where the calibration stops rising, "by_t": {t:
    {noise, estimate, low, median, high}}}, with the 10 %, 50 % and 90 % quantiles
    of the steps read.
    """
    schedule = linear_schedule(T)
    g = torch.Generator().manual_seed(seed)
    grid = torch.arange(0, T + 1, every)  # candidate steps
    calibration = torch.stack(
        [
            noise_estimate(q_sample(x_calib, int(t), schedule, generator=g)).median()
            for t in grid
        ]
    )
    calibration = torch.cummax(calibration, dim=0).values  # (len(grid),)
    by_t = {}
    for t in steps:
        est = noise_estimate(q_sample(x_test, t, schedule, generator=g))  # (N,)
        # (N,) the calibrated step nearest to each image's estimate
        t_hat = grid[(est[:, None] - calibration[None, :]).abs().argmin(dim=1)]
        low, median, high = torch.quantile(
            t_hat.float(), torch.tensor([0.1, 0.5, 0.9])
        ).tolist()
        by_t[t] = {
            "noise": (1 - schedule.alpha_bar[t]).sqrt().item(),
            "estimate": est.median().item(),
            "low": low,
            "median": median,
            "high": high,
        }
    plateau = grid[(calibration == calibration[-1]).nonzero()[0, 0]].item()
    return {"plateau": plateau, "by_t": by_t}


def time_steps_table(result: dict, n_calib: int, n_test: int) -> str:
    """The observer's table of section 3.1 as Markdown."""
    lines = [
        r"| true \( t \) | \( \sqrt{1-\bar\alpha_t} \) | \( \hat t \), median "
        r"| \( \hat t \), 10 %–90 % of the digits |",
        "|---:|---:|---:|---:|",
    ]
    for t, r in result["by_t"].items():
        lines.append(
            f"| {t} | {r['noise']:.3f} | {r['median']:.0f} "
            f"| {r['low']:.0f}–{r['high']:.0f} |"
        )
    lines.append(
        f"\n*The step read off the noisy image alone: `noise_estimate` calibrated on "
        f"{n_calib} training digits of mnist-5k (its median at every 5th step), then "
        f"applied to {n_test} held-out digits at each true step (linear schedule, "
        f"noise seed 0). {result['plateau']} is where the calibration curve stops "
        "rising: past it, every step gives the same reading. Made by "
        "`diffusion-lessons run 3` "
        "(`read_time_steps`).*"
    )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Run the lesson
# ---------------------------------------------------------------------------


def run(
    out: Path | str = "figures", *, quick: bool = False, dataset: str = "mnist-5k"
) -> dict:
    """Print what this lesson shows, write its figures into ``out``, return the key
    numbers.
    """
    out = Path(out)
    pe = sinusoidal_embedding(torch.tensor([1, 2, 500, 1000]), 64)  # (4, 64)
    sim = cosine_similarity_matrix(pe)
    print(
        f"PE(t) with dim 64: cos-sim(t=1, t=2) = {sim[0, 1]:.3f}, cos-sim(t=1, t=500) "
        f"= {sim[0, 2]:.3f}, "
        f"cos-sim(t=500, t=1000) = {sim[2, 3]:.3f}"
    )
    # One-hot through a Linear (eq. 3.6, first layer) is a table lookup (eq. 3.7):
    K, dim = 10, 32
    linear = nn.Linear(K, dim, bias=False)
    labels = torch.arange(K)
    lookup_gap = (
        (linear(F.one_hot(labels, K).float()) - linear.weight.T[labels])
        .abs()
        .max()
        .item()
    )
    params = {
        "EmbedBlock(10, 32)": sum(p.numel() for p in EmbedBlock(K, dim).parameters()),
        "ClassEmbedding(10, 32)": sum(
            p.numel() for p in ClassEmbedding(K, dim).parameters()
        ),
    }
    print(
        f"one-hot @ W vs. row lookup: largest difference {lookup_gap:.1e} (the same "
        "numbers)"
    )
    print(
        "parameters: "
        + ", ".join(f"{k} = {v:,}" for k, v in params.items())
        + " (the table has a row for ∅)"
    )
    images, digit_labels = load_digits(dataset, split="train")
    # (1, 1, 28, 28): one digit "3"
    x0 = images[(digit_labels == 3).nonzero()[0, 0]][None]
    noise_scale = (1 - linear_schedule(1000).alpha_bar[1:]).sqrt()
    c_star = noise_scale.mean().item()
    print(
        f"noise to remove sqrt(1 - alpha_bar_t): {noise_scale[0]:.3f} at t=1, "
        f"{noise_scale[-1]:.3f} at t=1000; "
        f"a time-blind net must use one value, at best c* = {c_star:.3f} (eq. 3.1)"
    )
    files = [
        savefig(fig_time_embedding(), out / "03_time_embedding.png"),
        savefig(fig_time_similarity(), out / "03_time_similarity.png"),
        savefig(fig_without_time(x0), out / "03_without_time.png"),
    ]
    schedule = linear_schedule(1000)
    # the pixel spread of x_t for fig_without_time's digit and noise (seed 0)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    spread = {t: q_sample(x0, t, schedule, eps=eps).std().item() for t in (1, 1000)}
    x_calib = load_digits(dataset, split="train")[0][:500]  # (500, 1, 28, 28)
    x_test = load_digits(dataset, split="test")[0][:500]
    steps_read = read_time_steps(x_calib, x_test)
    files.append(out / "03_time_estimator.md")
    files[-1].write_text(time_steps_table(steps_read, len(x_calib), len(x_test)))
    print("t read off x_t alone (10 % / median / 90 % of 500 held-out digits):")
    for t, r in steps_read["by_t"].items():
        print(
            f"  t = {t:4d}: noise {r['noise']:.3f}, read {r['low']:.0f} / "
            f"{r['median']:.0f} / {r['high']:.0f}"
        )
    # eq. 3.4 on all of t = 0..1000, and what the sines alone would give
    pe_all = sinusoidal_embedding(torch.arange(0, 1001), 64)  # (1001, 64)
    sim_all = cosine_similarity_matrix(pe_all)  # (1001, 1001)
    sim_sines = cosine_similarity_matrix(pe_all[1:, :32])  # t = 1..1000, sines only
    gaps = (1, 2, 5, 10, 50, 100, 200, 500)
    drift = max(
        (sim_all.diagonal(d) - sim_all[0, d]).abs().max().item() for d in range(1001)
    )
    print(
        "PE similarity by gap |t - s|: "
        + ", ".join(f"{d}: {sim_all[0, d]:.3f}" for d in gaps)
        + f"; largest departure from a function of the gap alone {drift:.0e}"
    )
    for f in files:
        print(f"wrote {f}")
    return {
        "sim_t1_t2": sim[0, 1].item(),
        "sim_t1_t500": sim[0, 2].item(),
        "similarity_by_gap": {d: sim_all[0, d].item() for d in gaps},
        "similarity_drift": drift,
        "sines_only": {
            "1_11": sim_sines[0, 10].item(),
            "100_110": sim_sines[99, 109].item(),
        },
        "sines_and_cosines": {
            "1_11": sim_all[1, 11].item(),
            "100_110": sim_all[100, 110].item(),
        },
        "one_hot_lookup_gap": lookup_gap,
        "params": params,
        "c_star": c_star,
        # sqrt(1 - alpha_bar_t), the noise to remove, and sqrt(alpha_bar_t), the
        # digit's weight, of the linear schedule
        "noise_scale": {
            t: (1 - schedule.alpha_bar[t]).sqrt().item()
            for t in (1, 10, 250, 300, 500, 600, 1000)
        },
        "digit_weight": {
            t: schedule.alpha_bar[t].sqrt().item() for t in (10, 500, 600, 1000)
        },
        # how much the noise level still changes from t to T, as a share
        "noise_change": {
            f"{t}_1000": ((1 - schedule.alpha_bar[1000]) / (1 - schedule.alpha_bar[t]))
            .sqrt()
            .item()
            - 1
            for t in (500, 600)
        },
        # at t = 10 the time-blind denoiser leaves (noise_scale - c*) eps behind
        "time_blind_at_10": {
            "left": (1 - schedule.alpha_bar[10]).sqrt().item() - c_star,
            "times_the_noise": (c_star - (1 - schedule.alpha_bar[10]).sqrt().item())
            / (1 - schedule.alpha_bar[10]).sqrt().item(),
        },
        "pixel_spread": spread,
        "time_steps_read": steps_read,
        "files": files,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Lesson 03: time and class embeddings."
    )
    parser.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    parser.add_argument("--quick", action="store_true", help="a faster run, for checks")
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
