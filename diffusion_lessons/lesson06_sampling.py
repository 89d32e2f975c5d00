"""Lesson 06: sampling, from pure noise back to a digit.

Chapter: docs/lessons/06-sampling.md

The trained network predicts the noise eps in x_t. Inverting lesson 01's closed form
(eq. 1.3) turns that into a guess of the clean image:

    (6.1)   x0_pred = (x_t - sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_bar_t)

One update moves from step t to an earlier step s < t (DDIM, Song et al. 2021, their eq.
12):

    sigma = eta * sqrt( (1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t /
    alpha_bar_s) )  (eq. 6.2)
    (6.3)   x_s = sqrt(alpha_bar_s) x0_pred + sqrt(1 - alpha_bar_s - sigma^2) eps_pred +
                sigma z

With every step (s = t - 1) and eta = 1, eq. 6.3 is exactly DDPM's ancestral step (Ho et
al. 2020, Algorithm 2, with sigma_t^2 = beta~_t = (1 - alpha_bar_{t-1}) / (1 -
alpha_bar_t) beta_t):

    (6.4)   x_{t-1} = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps_pred) / sqrt(alpha_t) +
                sigma_t z

With eta = 0 the update is deterministic and can skip steps: 25 steps instead of 1,000.
Clipping x0_pred to [-1, 1] (and recomputing eps_pred from it) keeps early, wild guesses
in the range real images live in; without it samples often end as saturated noise.

``sample`` also takes DPM-Solver++(2M), which replaces x0_pred in eq. 6.3 by an
extrapolation from the last two guesses (``multistep_x0``; chapter 10, section 10.8).

Builds on: lesson01_forward_noise (Schedule), lesson02_schedules (log_snr),
lesson05_training (load_trained, train,
PRESETS), lesson04_unet (UNet), data, plotting.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from .lesson01_forward_noise import Schedule
from .lesson02_schedules import log_snr
from .lesson05_training import PRESETS, load_trained, train, use_bf16
from .plotting import from_unit, image_grid, new_figure, savefig, show_images, to_unit

SHIPPED = Path(__file__).resolve().parents[1] / "checkpoints" / "small.pt"
#: the same recipe predicting eps (chapter 05's ablation): figure 6.3 needs a noise
#: predictor, whose x0_pred (eq. 6.1) can leave the pixel range
SHIPPED_EPS = SHIPPED.with_name("small-eps.pt")
SAMPLERS = ("ddpm", "ddim", "dpm++2m")
#: DDIM's steps unless told otherwise: for the shipped model 25 read as many digits
#: right as 50, at the same distance and haze (section 6.6), for half the network calls
DEFAULT_STEPS = 25

# ---------------------------------------------------------------------------
# One reverse step
# ---------------------------------------------------------------------------


def sampling_timesteps(T: int, steps: int) -> list[int]:
    """``steps`` distinct steps from T down to 1, evenly spaced (DDIM's subsequence)."""
    if not 1 <= steps <= T:
        raise ValueError(f"steps must lie in 1..T = 1..{T}; got {steps}.")
    return sorted(
        {round(T - i * (T - 1) / max(1, steps - 1)) for i in range(steps)}, reverse=True
    )


def default_t_min(T: int, sampler: str = "ddim") -> int:
    """Where the chain ends unless told otherwise: for DDIM t = T / 10, 100 of 1,000
    steps; for DDPM t = 1, Ho et al.'s Algorithm 2.

    Min-SNR weighting (lesson 05) barely trains the nearly clean steps below T / 10, and
    stopping there lowers the background haze (section 6.6 measures it).
    """
    return 1 if sampler == "ddpm" else max(1, T // 10)


def chain_steps(T: int, steps: int, t_min: int = 1) -> list[int]:
    """The steps ``sample`` takes: ``steps`` distinct steps from T down to ``t_min``,
    evenly spaced (``sampling_timesteps`` of the T - t_min + 1 levels, shifted)."""
    if not 1 <= t_min <= T:
        raise ValueError(f"t_min must lie in 1..T = 1..{T}; got {t_min}.")
    return [t + t_min - 1 for t in sampling_timesteps(T - t_min + 1, steps)]


def check_eta(eta: float) -> None:
    """Refuse an eta outside [0, 1], the range of Song et al.'s family.

    eta = 1 gives fresh noise of the true reverse step's variance (DDPM); eta > 1 would
    add more, and past the point where 1 - alpha_bar_s - sigma^2 = 0 eq. 6.3 would need
    the square root of a negative number.
    """
    if not 0.0 <= eta <= 1.0:
        raise ValueError(
            f"eta must be between 0 (DDIM, no fresh noise) and 1 (DDPM's noise level); "
            f"got {eta}."
        )


def reverse_step(
    xt: torch.Tensor,
    eps_pred: torch.Tensor,
    t: int,
    s: int,
    schedule: Schedule,
    eta: float = 0.0,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move x_t (B, C, H, W) to x_s, s < t, by eqs. 6.1-6.3; returns (x_s, x0_pred)."""
    check_eta(eta)
    ab_t, ab_s = schedule.alpha_bar[t].item(), schedule.alpha_bar[s].item()
    x0_pred = (xt - (1 - ab_t) ** 0.5 * eps_pred) / ab_t**0.5  # eq. 6.1
    if clip_x0:
        x0_pred = x0_pred.clamp(-1, 1)
        eps_pred = (xt - ab_t**0.5 * x0_pred) / (
            1 - ab_t
        ) ** 0.5  # eps consistent with the clip
    sigma = eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)) ** 0.5  # eq. 6.2
    z = torch.randn(xt.shape, generator=generator).to(xt.device) if sigma > 0 else 0.0
    # eq. 6.3
    x_s = ab_s**0.5 * x0_pred + (1 - ab_s - sigma**2) ** 0.5 * eps_pred + sigma * z
    return x_s, x0_pred


def multistep_x0(
    x0_pred: torch.Tensor,
    x0_prev: torch.Tensor | None,
    t_prev: int | None,
    t: int,
    s: int,
    schedule: Schedule,
) -> torch.Tensor:
    """DPM-Solver++(2M)'s clean-image estimate D for the step t -> s (chapter 10,
    section 10.8).

    DDIM holds x0_pred fixed over the step. DPM-Solver++(2M) (Lu et al. 2022) also uses
    the guess made one step earlier, at t_prev > t, and extrapolates linearly in
    lambda = log sqrt(SNR) (half of lesson 02's log-SNR) to the middle of the step:

                D = x0_pred + (x0_pred - x0_prev) / (2 r),
                r = (lambda_t - lambda_{t_prev}) / (lambda_s - lambda_t)

    Eq. 6.3 with D in place of x0_pred (and eta = 0) is DPM-Solver++(2M)'s update. The
    first step has no earlier guess, and the jump to s = 0 has lambda_s = +inf, so both
    keep D = x0_pred: DDIM's step.
    """
    if x0_prev is None or s == 0:
        return x0_pred
    lam = log_snr(schedule) / 2  # lambda_t = log(sqrt(SNR)) at index t - 1 (eq. 2.5)
    lam_prev, lam_t, lam_s = (lam[k - 1].item() for k in (t_prev, t, s))
    r = (lam_t - lam_prev) / (lam_s - lam_t)
    return x0_pred + (x0_pred - x0_prev) / (2 * r)


# ---------------------------------------------------------------------------
# Samplers
# ---------------------------------------------------------------------------


@torch.no_grad()
def sample(
    model,
    schedule: Schedule,
    labels: torch.Tensor,
    *,
    sampler: str = "ddim",
    steps: int = DEFAULT_STEPS,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    clip_x0: bool = True,
    t_min: int | None = None,
    trajectory: bool = False,
    precision: str = "auto",
):
    """Draw one image per label, starting from x_T ~ N(0, I).

    Args:
        model: any callable (xt, t, labels) -> eps_pred with a ``config`` (a UNet, or
            lesson 09's guided wrapper).
        labels: (B,) int64 classes (``model.config.num_classes`` is ∅, the unconditional
            model).
        sampler: ``ddpm`` (all T steps, eta = 1: eq. 6.4), ``ddim`` (``steps`` steps,
            ``eta``) or ``dpm++2m`` (``steps`` steps of DPM-Solver++(2M), section 10.8).
        t_min: the last step to take before the jump to t = 0: the ``steps`` steps are
            spread evenly from T down to ``t_min``, and the sample is the x0_pred made
            at ``t_min``. 1 is the textbook chain; the default is ``default_t_min``:
            T / 10 for DDIM and DPM-Solver++, 1 for DDPM.
        trajectory: also return every step's {"t", "xt", "x0_pred"} (for figures).
        precision: the network runs under bf16 autocast where that is fast (``auto``, as
            in training) or ``bf16``; ``fp32`` turns it off. The update itself (eqs.
            6.1-6.3) is always float32.
    Returns:
        x0 (B, C, H, W) in [-1, 1], or (x0, trajectory) when ``trajectory`` is true.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"Unknown sampler {sampler!r}; use {', '.join(SAMPLERS)}.")
    check_eta(eta)
    if sampler == "dpm++2m" and eta != 0:
        raise ValueError(f"dpm++2m is deterministic: eta must be 0; got {eta}.")
    if t_min is None:
        t_min = default_t_min(schedule.T, sampler)
    if sampler == "ddpm":
        steps, eta = schedule.T - t_min + 1, 1.0
    cfg = model.config
    device = next(model.parameters()).device
    labels = torch.as_tensor(labels, dtype=torch.long).to(device)
    shape = (len(labels), cfg.in_channels, cfg.image_size, cfg.image_size)
    xt = torch.randn(shape, generator=generator).to(device)  # x_T ~ N(0, I)
    ts = chain_steps(schedule.T, steps, t_min)  # T, ..., t_min
    bf16 = use_bf16(precision, device)
    traj = []
    x0_prev = t_prev = None  # DPM-Solver++(2M)'s previous guess (multistep_x0)
    for t, s in zip(ts, ts[1:] + [0]):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            eps_pred = model(
                xt, torch.full((len(labels),), t, device=device), labels
            ).float()
        if sampler == "dpm++2m":  # eq. 6.3 with multistep_x0's D for x0_pred
            _, x0_pred = reverse_step(xt, eps_pred, t, s, schedule, 0.0, clip_x0)
            D = multistep_x0(x0_pred, x0_prev, t_prev, t, s, schedule)
            ab_t, ab_s = schedule.alpha_bar[t].item(), schedule.alpha_bar[s].item()
            eps_D = (xt - ab_t**0.5 * D) / (1 - ab_t) ** 0.5  # the eps that goes with D
            xt = ab_s**0.5 * D + (1 - ab_s) ** 0.5 * eps_D
            x0_prev, t_prev = x0_pred, t
        else:
            xt, x0_pred = reverse_step(
                xt, eps_pred, t, s, schedule, eta, clip_x0, generator
            )
        if trajectory:
            traj.append({"t": t, "xt": xt.cpu(), "x0_pred": x0_pred.cpu()})
    x0 = xt.clamp(-1, 1)  # s = 0: x_0 = x0_pred
    return (x0, traj) if trajectory else x0


def digit_labels(digits: str = "0123456789", per_digit: int = 10) -> torch.Tensor:
    """Labels for ``per_digit`` samples of each requested digit, grouped by digit,
    (len(digits) * per_digit,).
    """
    if not digits or not digits.isdigit():
        raise ValueError(
            f"digits must be a string of digits such as 0123456789; got {digits!r}."
        )
    return torch.tensor([int(d) for d in digits for _ in range(per_digit)])


# ---------------------------------------------------------------------------
# Files: .png grids and .npz arrays
# ---------------------------------------------------------------------------


def save_samples(
    path: str | Path, images: torch.Tensor, labels: torch.Tensor, nrow: int = 10
) -> Path:
    """Write samples (B, C, H, W) in [-1, 1] as a .png grid or an .npz {images (N, H, W)
    float32 in [0, 1], labels}.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npz":
        pics = to_unit(images).cpu().float().numpy()
        # (N, H, W) or (N, H, W, 3)
        pics = pics[:, 0] if pics.shape[1] == 1 else pics.transpose(0, 2, 3, 1)
        np.savez_compressed(
            path,
            images=pics.astype(np.float32),
            labels=labels.cpu().numpy().astype(np.int64),
        )
    elif path.suffix == ".png":
        from PIL import Image

        grid = (image_grid(images, nrow=nrow).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(grid).save(path)
    else:
        raise ValueError(
            f"Cannot write {path}: use a .png (a grid) or .npz (arrays) file name."
        )
    return path


def load_samples(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an .npz written by ``save_samples``: images (N, C, H, W) in [-1, 1] and
    labels (N,).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No samples at {path}. Make some with: diffusion-lessons sample --out "
            f"{path}"
        )
    try:
        data = np.load(path)
        images, labels = data["images"], data["labels"]
    except Exception as err:
        raise ValueError(
            f"{path} is not a samples file (.npz with 'images' and 'labels'): {err}"
        ) from err
    if images.ndim not in (3, 4) or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{path}: images must be (N, H, W) with N labels; got {images.shape} and "
            f"{labels.shape}."
        )
    if images.min() < 0 or images.max() > 1:
        raise ValueError(
            f"{path}: images must lie in [0, 1]; got [{images.min():.2f}, "
            f"{images.max():.2f}]."
        )
    x = torch.from_numpy(images).float()
    x = x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)
    return from_unit(x), torch.from_numpy(labels).long()


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def pick(traj: list[dict], n: int = 8) -> list[dict]:
    """``n`` evenly spaced entries of a trajectory, always including the last."""
    idx = sorted({round(i * (len(traj) - 1) / (n - 1)) for i in range(n)})
    return [traj[i] for i in idx]


def fig_denoising(traj: list[dict], T: int, n: int = 8):
    """x_t (top row of each pair) and the predicted x0 (bottom) along the reverse
    process.
    """
    shown = pick(traj, n)
    B = shown[0]["xt"].shape[0]
    rows = [
        torch.stack([e[key][b] for e in shown])
        for b in range(B)
        for key in ("xt", "x0_pred")
    ]
    fig, ax = new_figure(size=(1.1 * len(shown) + 0.6, 1.1 * len(rows) + 0.4))
    show_images(
        ax,
        torch.cat(rows),
        nrow=len(shown),
        row_labels=["x_t", "x0_pred"] * B,
        col_labels=[f"{1 - e['t'] / T:.0%}" for e in shown],
    )
    ax.set_title(
        "x_t and the predicted x0 (eq. 6.1) as the reverse process runs (% of the "
        "process done)",
        fontsize=9,
        pad=20,
    )
    return fig


def save_reverse_gif(
    traj: list[dict], path: str | Path, frames: int = 40, nrow: int = 5, scale: int = 2
) -> Path:
    """An animated GIF of the reverse process: x_t above, the predicted x0 below, each
    a grid of ``nrow`` digits per row, every pixel drawn ``scale`` times larger.
    """
    from PIL import Image

    shown = pick(traj, frames)
    pics = []
    for e in shown:
        top, bottom = image_grid(e["xt"], nrow), image_grid(e["x0_pred"], nrow)
        both = torch.cat([top, torch.ones(8, top.shape[1]), bottom], dim=0)
        pics.append(
            Image.fromarray((both.numpy() * 255).astype(np.uint8)).resize(
                (both.shape[1] * scale, both.shape[0] * scale), Image.NEAREST
            )
        )
    path = Path(path)
    pics[0].save(
        path,
        save_all=True,
        append_images=pics[1:] + [pics[-1]] * 10,
        duration=80,
        loop=0,
        comment=f"DigitTilePx={traj[0]['xt'].shape[-1] * scale}",
    )
    return path


def compare_samplers(
    model,
    schedule: Schedule,
    labels: torch.Tensor,
    settings: list[tuple[str, int]],
    seed: int = 0,
):
    """Sample the same labels with each (sampler, steps); returns [(name, images,
    seconds)].
    """
    results = []
    for sampler, steps in settings:
        start = time.perf_counter()
        x = sample(
            model,
            schedule,
            labels,
            sampler=sampler,
            steps=steps,
            generator=torch.Generator().manual_seed(seed),
        )
        name = "DDPM, 1000 steps" if sampler == "ddpm" else f"DDIM, {steps} steps"
        results.append((name, x, time.perf_counter() - start))
    return results


def fig_samplers(results: list[tuple[str, torch.Tensor, float]], per_row: int = 10):
    """One grid per sampler, two grids side by side: each column is a digit class.

    The titles name the sampler only: the times (the third entry of each result) are
    printed by ``run`` and depend on the machine, the images do not.
    """
    cols = 2
    nrows = -(-len(results) // cols)
    fig, axes = new_figure(nrows, cols, size=(6.8, 2.0 * nrows + 0.2))
    axes = np.atleast_1d(axes).ravel()
    for ax, (name, x, _sec) in zip(axes, results):
        # labels come as 0,0,...,1,1,...: reorder so that column j holds digit j
        per_class = len(x) // per_row
        by_column = x.reshape(per_row, per_class, *x.shape[1:]).transpose(0, 1)
        show_images(
            ax,
            by_column.reshape(x.shape),
            nrow=per_row,
            title=f"{name}, {len(x)} digits",
        )
    for ax in axes[len(results) :]:
        ax.set_axis_off()
    fig.tight_layout(h_pad=0.6, w_pad=1.0)
    return fig


def fig_clipping(
    model,
    schedule: Schedule,
    labels: torch.Tensor,
    steps: int = 50,
    seed: int = 0,
    name: str = "",
):
    """The same noise sampled with and without clipping x0_pred to [-1, 1] (one grid
    above the other, so that each column compares the same start); ``name`` heads
    each grid.
    """
    fig, axes = new_figure(2, 1, size=(6.8, 3.9))
    for ax, clip in zip(axes, (True, False)):
        x = sample(
            model,
            schedule,
            labels,
            steps=steps,
            clip_x0=clip,
            generator=torch.Generator().manual_seed(seed),
        )
        # labels come as 0,0,1,1,...: reorder so that column j holds digit j
        per_class = len(x) // 10
        x = x.reshape(10, per_class, *x.shape[1:]).transpose(0, 1).reshape(x.shape)
        show_images(ax, x, nrow=10, title=f"{name}clip x0_pred: {clip}")
    fig.tight_layout(h_pad=0.8)
    return fig


# ---------------------------------------------------------------------------
# Run the lesson
# ---------------------------------------------------------------------------


def get_model(quick: bool = False):
    """The shipped checkpoint (EMA weights), or, if it is missing, a tiny model trained
    on the spot.
    """
    if SHIPPED.exists():
        print(
            f"Using the shipped checkpoint {SHIPPED.relative_to(SHIPPED.parents[1])} "
            "(preset small)."
        )
        return load_trained(SHIPPED)[:2] + ("shipped checkpoint checkpoints/small.pt",)
    cfg = (
        PRESETS["tiny"]
        if not quick
        else dataclasses.replace(PRESETS["tiny"], steps=60, warmup=10)
    )
    print(
        f"No shipped checkpoint at {SHIPPED}; training the tiny preset ({cfg.steps} "
        "steps) instead."
    )
    run_dir = Path("runs") / "lesson06-tiny"
    train(dataclasses.replace(cfg, dataset="mnist-5k"), run_dir, overwrite=True)
    return load_trained(run_dir / "checkpoint.pt")[:2] + (
        f"tiny preset, {cfg.steps} steps",
    )


def run(out: Path | str = "figures", *, quick: bool = False) -> dict:
    """Sample digits, show the reverse process, compare DDPM with DDIM, write the
    figures and the GIF.
    """
    out = Path(out)
    model, schedule, source = get_model(quick)
    labels = digit_labels("0123456789", 1)
    x0, traj = sample(
        model,
        schedule,
        labels,
        sampler="ddim",
        steps=DEFAULT_STEPS,
        generator=torch.Generator().manual_seed(0),
        trajectory=True,
    )
    columns = 5 if quick else 8
    files = [
        savefig(fig_denoising(traj, schedule.T, columns), out / "06_denoising.png"),
        save_reverse_gif(traj, out / "06_reverse_process.gif"),
    ]
    settings = (
        [("ddim", 10), ("ddim", 50)]
        if quick
        else [("ddim", 10), ("ddim", 25), ("ddim", 50), ("ddim", 100), ("ddpm", 1000)]
    )
    results = compare_samplers(
        model, schedule, digit_labels("0123456789", 2 if quick else 5), settings
    )
    for name, _, sec in results:
        print(f"{name:>18}: {sec:5.1f} s")
    files.append(savefig(fig_samplers(results), out / "06_samplers.png"))
    # clipping matters for a noise predictor; the shipped model predicts v (ch. 05)
    clip_model, clip_schedule, title = model, schedule, ""
    if SHIPPED_EPS.exists():
        clip_model, clip_schedule = load_trained(SHIPPED_EPS)[:2]
        title = f"{SHIPPED_EPS.name}, predicts eps: "
        print(f"06_clipping.png is drawn by checkpoints/{SHIPPED_EPS.name} (eps).")
    files.append(
        savefig(
            fig_clipping(
                clip_model,
                clip_schedule,
                digit_labels("0123456789", 2),
                steps=10 if quick else 50,
                name=title,
            ),
            out / "06_clipping.png",
        )
    )
    for f in files:
        print(f"wrote {f}")
    print(f"Model: {source}.")
    return {
        "timings": {name: sec for name, _, sec in results},
        "denoising_steps": [e["t"] for e in pick(traj, columns)],  # figure 6.1's
        "files": files,
        "model": source,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Lesson 06: DDPM and DDIM sampling.")
    parser.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer samples and steps")
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
