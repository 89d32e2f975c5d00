"""Lesson 05: training the noise predictor on a laptop CPU.

Chapter: docs/lessons/05-training.md

Training is supervised learning in disguise. Take a real digit x0, pick a step t and a
noise eps, make x_t with lesson 01's closed form, and ask the network for eps back (Ho
et al. 2020, "L_simple"):

    (5.1)   t ~ Uniform{1..T},  eps ~ N(0, I),  x_t = sqrt(alpha_bar_t) x0 + sqrt(1 -
                alpha_bar_t) eps
    (5.2)   L_simple = E || eps - eps_theta(x_t, t, y) ||^2

Optionally (Hang et al. 2023, "Min-SNR") each image's loss is weighted so that nearly
clean, easy steps do not dominate:

    (5.3)   w(t) = min(SNR(t), gamma) / SNR(t)

With probability p_uncond the label y is replaced by the null class ∅ (label dropout),
so the same network also learns the unconditional prediction eps_theta(x_t, t, ∅) that
lesson 08's guidance needs. The learning rate warms up linearly for ``warmup`` steps,
then decays along a cosine to 0 (eq. 5.4). The weights we sample with are an
exponential moving average (EMA) of the trained ones:

    (5.5)   theta_ema <- d * theta_ema + (1 - d) * theta

Builds on: lesson02_schedules (make_schedule, Schedule), lesson01_forward_noise
(q_sample), lesson04_unet (UNet, UNetConfig, UNET_PRESETS, count_parameters), data
(load_digits), plotting.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .data import load_digits
from .lesson01_forward_noise import q_sample
from .lesson02_schedules import Schedule, make_schedule
from .lesson04_unet import UNET_PRESETS, UNet, UNetConfig, count_parameters
from .plotting import new_figure, savefig

# ---------------------------------------------------------------------------
# Configuration and presets
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Presets below are named instances."""

    model: UNetConfig = field(default_factory=lambda: UNET_PRESETS["small"])
    schedule: str = "cosine"  # lesson 02: linear | cosine | sigmoid
    dataset: str = "auto"  # data.load_digits name
    steps: int = 3600  # optimiser steps
    batch_size: int = 128
    lr: float = 2e-3  # peak learning rate (AdamW)
    warmup: int = 200  # linear warm-up steps (eq. 5.4)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global gradient norm
    ema_decay: float = 0.995  # eq. 5.5
    p_uncond: float = 0.1  # label dropout to ∅ (lesson 08)
    sample_every: int = 600  # EMA snapshots for the quality-over-training grid
    checkpoint_every: int = 300
    min_snr_gamma: float | None = (
        5.0  # loss weight min(SNR, gamma) / SNR (eq. 5.3); None: plain L_simple
    )
    # auto | fp32 | bf16 (autocast; auto = bf16 where the CPU/GPU supports it)
    precision: str = "auto"
    seed: int = 0
    threads: int = 2  # CPU threads (a laptop has 2 to 8 real cores)

    def __post_init__(self):
        for name in (
            "steps",
            "batch_size",
            "sample_every",
            "checkpoint_every",
            "threads",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"TrainConfig.{name} must be >= 1; got {getattr(self, name)}."
                )
        if not 0 <= self.p_uncond < 1:
            raise ValueError(
                f"p_uncond must lie in [0, 1); got {self.p_uncond}. The course uses "
                "0.1."
            )
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must lie in [0, 1); got {self.ema_decay}.")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(
                f"precision must be auto, fp32 or bf16; got {self.precision!r}."
            )


PRESETS: dict[str, TrainConfig] = {
    # for the tests and the tour: about 2 minutes on 2 CPU cores
    "tiny": TrainConfig(
        model=UNET_PRESETS["tiny"],
        steps=600,
        batch_size=64,
        warmup=50,
        lr=3e-3,
        ema_decay=0.99,
        sample_every=200,
        checkpoint_every=200,
    ),
    # the default: the best digits we could reach in about 10 minutes on 2 CPU cores
    "small": TrainConfig(),
    # for a GPU: a wider model, a bigger batch, 10x the steps
    "full": TrainConfig(
        model=UNET_PRESETS["full"],
        steps=40_000,
        batch_size=256,
        lr=1e-3,
        warmup=1000,
        ema_decay=0.9995,
        sample_every=5000,
        checkpoint_every=2000,
        threads=8,
    ),
}


def config_to_dict(cfg: TrainConfig) -> dict:
    """A checkpoint-safe (plain types only) copy of the config."""
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    d["model"] = UNetConfig(**{**d["model"], "channels": tuple(d["model"]["channels"])})
    return TrainConfig(**d)


# ---------------------------------------------------------------------------
# The objective
# ---------------------------------------------------------------------------


def drop_labels(
    labels: torch.Tensor,
    p_uncond: float,
    null_class: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Replace each label by the null class with probability ``p_uncond`` (label
    dropout), (B,).
    """
    drop = torch.rand(labels.shape, generator=generator) < p_uncond
    return torch.where(
        drop.to(labels.device), torch.full_like(labels, null_class), labels
    )


def diffusion_loss(
    model: UNet,
    x0: torch.Tensor,
    labels: torch.Tensor,
    schedule: Schedule,
    p_uncond: float = 0.1,
    generator: torch.Generator | None = None,
    min_snr_gamma: float | None = None,
) -> torch.Tensor:
    """L_simple (eq. 5.2) on one batch x0 (B, C, H, W) in [-1, 1] with labels (B,),
    optionally Min-SNR weighted.
    """
    B = x0.shape[0]
    # t ~ U{1..T}
    t = torch.randint(1, schedule.T + 1, (B,), generator=generator).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)  # eps ~ N(0, I)
    xt = q_sample(x0, t, schedule, eps=eps)  # eq. 5.1
    # y or ∅
    labels = drop_labels(labels, p_uncond, model.config.num_classes, generator)
    eps_pred = model(xt, t, labels)  # (B, C, H, W)
    mse = ((eps - eps_pred.float()) ** 2).mean(dim=(1, 2, 3))  # (B,) eq. 5.2 per image
    if min_snr_gamma is None:
        return mse.mean()
    snr = (schedule.alpha_bar / (1 - schedule.alpha_bar))[t].to(mse)  # (B,) eq. 2.5
    return (snr.clamp(max=min_snr_gamma) / snr * mse).mean()  # eq. 5.3


@torch.no_grad()
def ema_update(
    ema_model: torch.nn.Module, model: torch.nn.Module, decay: float
) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, eq. 5.3."""
    for p_ema, p in zip(ema_model.parameters(), model.parameters()):
        p_ema.lerp_(p, 1 - decay)


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to ``cfg.lr``, then a cosine decay to 0 at ``cfg.steps`` (eq.
    5.4).
    """
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# ---------------------------------------------------------------------------
# Checkpoints that lose nothing
# ---------------------------------------------------------------------------


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or belongs to another configuration."""


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` atomically: to a temporary file first, then rename (a crash never
    leaves half a file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, expect: TrainConfig | None = None) -> dict:
    """Read a checkpoint safely (``weights_only=True``); if ``expect`` is given, its
    model must match.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"No checkpoint at {path}. Train one with `diffusion-lessons train --out "
            "DIR`, "
            "or use the shipped checkpoints/small.pt."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        cfg = config_from_dict(state["config"])
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable diffusion-lessons checkpoint "
            f"({type(err).__name__}: {err}). "
            "It may be truncated or from another program: delete it and train again."
        ) from err
    if expect is not None and cfg.model != expect.model:
        raise CheckpointError(
            f"{path} was trained with model {cfg.model}, but this run asks for "
            f"{expect.model}. "
            "Use the same --preset as the checkpoint, or a new --out folder."
        )
    return state


def export_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Keep only what sampling needs (EMA weights, config, loss history): a file a
    quarter the size, for sharing.
    """
    state = load_checkpoint(src)
    keep = {
        k: state[k]
        for k in ("ema", "config", "step", "losses", "seconds", "params")
        if k in state
    }
    return save_checkpoint(dst, {**keep, "exported_from": str(src)})


def load_trained(
    path: str | Path, device: str = "cpu", ema: bool = True
) -> tuple[UNet, Schedule, TrainConfig]:
    """The trained model (EMA weights by default) in eval mode, its schedule and its
    config.
    """
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"])
    model = UNet(cfg.model)
    model.load_state_dict(state["ema" if ema else "model"])
    return model.to(device).eval(), make_schedule(cfg.schedule, cfg.model.T), cfg


# ---------------------------------------------------------------------------
# The training loop
# ---------------------------------------------------------------------------


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu."""
    if device == "auto":
        device = (
            "cuda"
            if torch.cuda.is_available()
            else "mps"
            if torch.backends.mps.is_available()
            else "cpu"
        )
    if device not in ("cpu", "cuda", "mps"):
        raise ValueError(f"Unknown device {device!r}; use auto, cpu, cuda or mps.")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "--device cuda was asked for, but PyTorch sees no CUDA GPU here. Use "
            "--device cpu (or auto)."
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            "--device mps was asked for, but this machine has no Apple-silicon GPU. "
            "Use --device cpu (or auto)."
        )
    return torch.device(device)


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether to train under bf16 autocast: asked for, or ``auto`` on hardware with
    fast bf16 (AVX512-BF16, AMX, CUDA).
    """
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def batch_indices(step: int, n: int, batch_size: int, seed: int) -> torch.Tensor:
    """Which examples make batch ``step``: a fresh shuffle each epoch, fixed by (seed,
    epoch), so resuming is exact.
    """
    per_epoch = n // batch_size
    epoch, k = divmod(step, per_epoch)
    order = torch.randperm(
        n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)
    )
    return order[k * batch_size : (k + 1) * batch_size]


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    device: str = "auto",
    callback=None,
    progress: bool = True,
) -> dict:
    """Train a model with ``cfg``, writing ``out/checkpoint.pt`` (and EMA snapshots) as
    it goes.

    Args:
        cfg: the run's configuration (e.g. ``PRESETS["small"]``).
        out: the run folder.
        resume: continue from ``out/checkpoint.pt``; the result equals an uninterrupted
            run (on CPU).
        device: auto | cpu | cuda | mps.
        callback: called as ``callback(step, ema_model)`` every ``cfg.sample_every``
            steps (e.g. to draw samples).
        progress: show a tqdm bar with the running loss.
    Returns: {"losses": [...], "step": int, "seconds": float, "images_per_second":
        float, "stopped": str}
    """
    out, dev = Path(out), resolve_device(device)
    torch.set_num_threads(cfg.threads)
    x0_all, labels_all = load_digits(cfg.dataset, split="train")  # (N, C, H, W), (N,)
    x0_all, labels_all = x0_all.to(dev), labels_all.to(dev)
    C, H, W = x0_all.shape[1:]
    if (C, H) != (cfg.model.in_channels, cfg.model.image_size) or H != W:
        if H != W or H % cfg.model.down_factor:
            raise ValueError(
                f"{cfg.dataset} images are {C}x{H}x{W}; the U-Net needs square images "
                "with sides divisible "
                f"by {cfg.model.down_factor}. Resize the data or change "
                "UNetConfig.channels."
            )
        print(
            f"The data are {C}x{H}x{W}: building the U-Net with in_channels={C}, "
            f"image_size={H}."
        )
        cfg = dataclasses.replace(
            cfg, model=dataclasses.replace(cfg.model, in_channels=C, image_size=H)
        )
    schedule = make_schedule(cfg.schedule, cfg.model.T)
    torch.manual_seed(cfg.seed)
    model = UNet(cfg.model).to(dev)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    gen = torch.Generator().manual_seed(cfg.seed)  # t, eps and label dropout
    step, losses, seconds = 0, [], 0.0
    ckpt = out / "checkpoint.pt"
    if resume:
        state = load_checkpoint(ckpt, expect=cfg)
        if "optimizer" not in state:
            raise CheckpointError(
                f"{ckpt} was exported for sampling (EMA weights only) and cannot be "
                "resumed; "
                "resume from the run folder's own checkpoint.pt."
            )
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])  # noqa: E702
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"])  # noqa: E702
        step, losses, seconds = state["step"], list(state["losses"]), state["seconds"]
        print(f"Resuming {ckpt} at step {step}/{cfg.steps}.")

    def snapshot() -> dict:
        return {
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": gen.get_state(),
            "step": step,
            "losses": losses,
            "seconds": seconds,
            "config": config_to_dict(cfg),
            "params": count_parameters(model),
        }

    bf16 = use_bf16(cfg.precision, dev)
    print(
        f"Training {count_parameters(model):,} parameters on {dev} for {cfg.steps} "
        f"steps (batch {cfg.batch_size}, "
        f"{'bf16 autocast' if bf16 else 'fp32'}, {cfg.threads} threads); checkpoints "
        f"in {out}/"
    )
    stopped, last_good = "finished", None
    bar = tqdm(
        total=cfg.steps,
        initial=step,
        disable=None if progress else True,
        desc="train",
        unit="step",
    )
    old_handler = signal.getsignal(signal.SIGINT)
    try:
        while step < cfg.steps:
            start = time.perf_counter()
            idx = batch_indices(step, len(x0_all), cfg.batch_size, cfg.seed)
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, cfg)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
                loss = diffusion_loss(
                    model,
                    x0_all[idx],
                    labels_all[idx],
                    schedule,
                    cfg.p_uncond,
                    gen,
                    cfg.min_snr_gamma,
                )
            if not torch.isfinite(loss):
                stopped = f"loss became {loss.item()} at step {step}"
                break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            # short EMA memory early on
            ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
            step += 1
            seconds += time.perf_counter() - start
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                last_good = save_checkpoint(ckpt, snapshot())
            if step % cfg.sample_every == 0 or step == cfg.steps:
                save_checkpoint(
                    out / "snapshots" / f"ema_{step:06d}.pt",
                    {
                        "ema": ema.state_dict(),
                        "step": step,
                        "seconds": seconds,
                        "config": config_to_dict(cfg),
                    },
                )
                if callback is not None:
                    callback(step, ema.eval())
    except KeyboardInterrupt:
        # a second Ctrl-C must not interrupt the save
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        last_good = save_checkpoint(ckpt, snapshot())
        stopped = "interrupted"
        print(f"\nInterrupted: saved {ckpt} at step {step}; continue with --resume.")
    finally:
        signal.signal(signal.SIGINT, old_handler)
        bar.close()
    if stopped.startswith("loss became"):
        print(
            f"Stopped: the {stopped}. The last good checkpoint is kept"
            f"{f' at {last_good}' if last_good else ''}. Lower --lr or check the data "
            "range."
        )
    ips = (step * cfg.batch_size) / seconds if seconds else 0.0
    print(
        f"{step} steps in {seconds:.0f} s ({ips:.0f} images/s); final loss "
        f"{sum(losses[-100:]) / max(1, len(losses[-100:])):.4f}"
    )
    return {
        "losses": losses,
        "step": step,
        "seconds": seconds,
        "images_per_second": ips,
        "stopped": stopped,
    }


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def smooth(values: list[float], window: int = 50) -> list[float]:
    """Running mean over the last ``window`` values."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def fig_loss_curve(losses: list[float], title: str = ""):
    """The training loss (eq. 5.2) per step and its running mean."""
    fig, ax = new_figure(size=(6.5, 3.4))
    ax.plot(losses, alpha=0.3, lw=0.7, label="per batch")
    ax.plot(smooth(losses), lw=1.6, label="running mean (50 steps)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (eq. 5.2, Min-SNR weighted by eq. 5.3)")
    ax.set_title(title)
    ax.legend()
    return fig


# ---------------------------------------------------------------------------
# Run the lesson
# ---------------------------------------------------------------------------


def run(
    out: Path | str = "figures",
    *,
    quick: bool = False,
    dataset: str = "mnist-5k",
    preset: str = "tiny",
) -> dict:
    """Train the ``tiny`` preset (``quick``: 60 steps) and plot its loss; the shipped
    checkpoint's curve too.
    """
    out = Path(out)
    cfg = dataclasses.replace(
        PRESETS[preset],
        dataset=dataset,
        **({"steps": 60, "warmup": 10} if quick else {}),
    )
    # runs/ holds training runs, not figures
    result = train(cfg, Path("runs") / "lesson05-tiny", progress=True)
    files = [
        savefig(
            fig_loss_curve(
                result["losses"],
                f"preset {preset}, {result['step']} steps, seed {cfg.seed}",
            ),
            out / "05_loss_tiny.png",
        )
    ]
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "small.pt"
    if shipped.exists():
        state = load_checkpoint(shipped)
        files.append(
            savefig(
                fig_loss_curve(
                    state["losses"],
                    f"shipped checkpoint: preset small, seed {state['config']['seed']}",
                ),
                out / "05_loss_small.png",
            )
        )
    for f in files:
        print(f"wrote {f}")
    return {**result, "files": files}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Lesson 05: train the noise predictor (tiny preset by default)."
    )
    parser.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    parser.add_argument("--quick", action="store_true", help="60 steps only")
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick, preset=args.preset)


if __name__ == "__main__":
    main()
