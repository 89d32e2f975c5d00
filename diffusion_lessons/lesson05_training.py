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
lesson 09's guidance needs. The learning rate warms up linearly for ``warmup`` steps,
then decays along a cosine to 0 (eq. 5.4). The weights we sample with are an
exponential moving average (EMA) of the trained ones:

    (5.5)   theta_ema <- d * theta_ema + (1 - d) * theta

The network may instead be asked for v (Salimans & Ho 2022), a mix of noise and image
that stays well scaled at both ends of the chain; eq. 5.7 turns it back into eps, so
lessons 06-09 sample it unchanged. With Min-SNR the matching weight divides by SNR + 1
instead of SNR, because ||v - v_theta||^2 = (SNR + 1) / SNR * ||eps - eps_theta||^2:

    (5.6)   v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0
    (5.7)   eps = sqrt(alpha_bar_t) v + sqrt(1 - alpha_bar_t) x_t

Instead of uniform t, the steps may be drawn through their noise level sigma(t) =
sqrt((1 - alpha_bar_t) / alpha_bar_t) (Karras et al. 2022), so that training visits some
noise levels more often; the ``small`` preset centres them higher than uniform t does:

    (5.8)   ln sigma ~ N(P_mean, P_std^2),  t = the first step with sigma(t) >= sigma

The loop is built from small pieces that a distributed variant can reuse: ``train_step``
(one optimiser step), ``training_state`` / ``resume_from`` (checkpoints) and
``capture_rng`` / ``restore_rng`` (every random state). Run folders (a lock, a test
write at start-up, Ctrl-C between steps) are handled by ``runs.py``.

Builds on: lesson02_schedules (make_schedule, Schedule), lesson01_forward_noise
(q_sample), lesson04_unet (UNet, UNetConfig, UNET_PRESETS, count_parameters), data
(load_digits, resolve_name), runs (claim_run_folder, stop_on_ctrl_c, temporary_file),
plotting.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from . import CourseError
from .data import load_digits, resolve_name
from .lesson01_forward_noise import _gather, q_sample
from .lesson02_schedules import Schedule, log_snr, make_schedule
from .lesson04_unet import UNET_PRESETS, UNet, UNetConfig, count_parameters
from .plotting import new_figure, savefig
from .runs import claim_run_folder, disk_error, stop_on_ctrl_c, temporary_file

# ---------------------------------------------------------------------------
# Configuration and presets
# ---------------------------------------------------------------------------


#: what the network may be trained to predict: the noise (eq. 5.2) or v (eq. 5.6)
PREDICTIONS = ("eps", "v")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Presets below are named instances."""

    model: UNetConfig = field(default_factory=lambda: UNET_PRESETS["small"])
    schedule: str = "cosine"  # lesson 02: linear | cosine | sigmoid
    dataset: str = "auto"  # data.load_digits name
    steps: int = 7200  # optimiser steps
    batch_size: int = 64  # at equal time, more small steps beat fewer large ones
    lr: float = 2e-3  # peak learning rate (AdamW)
    warmup: int = 400  # linear warm-up steps (eq. 5.4)
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max global gradient norm
    ema_decay: float = 0.995  # eq. 5.5
    p_uncond: float = 0.1  # label dropout to ∅ (lesson 09)
    sample_every: int = 1200  # EMA snapshots for the quality-over-training grid
    checkpoint_every: int = 600
    min_snr_gamma: float | None = (
        2.0  # loss weight min(SNR, gamma) / SNR (eq. 5.3); None: plain L_simple
    )
    prediction: str = "eps"  # what the network outputs: eps (eq. 5.2) | v (eq. 5.6)
    # which steps to train on: None for t ~ U{1..T} (eq. 5.1), or (mean, std) to draw t
    # so that ln sigma(t) ~ N(mean, std^2) (eq. 5.8)
    noise_levels: tuple[float, float] | None = None
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
        if self.prediction not in PREDICTIONS:
            raise ValueError(
                f"prediction must be eps or v; got {self.prediction!r}. The small "
                "preset uses v."
            )
        if self.noise_levels is not None and (
            len(self.noise_levels) != 2
            or not all(math.isfinite(x) for x in self.noise_levels)
            or not self.noise_levels[1] > 0
        ):
            raise ValueError(
                "noise_levels must be None (uniform t) or finite (mean, std) with "
                "std > 0; "
                f"got {self.noise_levels!r}. The small preset uses (0.4, 1.4)."
            )
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
        min_snr_gamma=5.0,
    ),
    # the default: the best digits we could reach in about 10 minutes on 2 CPU cores
    # (its levers measured in chapter 05, benchmarks/recipe/); predicts v (eq. 5.6) and
    # trains more often at high noise, median t about 620 instead of 500 (eq. 5.8)
    "small": TrainConfig(prediction="v", noise_levels=(0.4, 1.4)),
    # for a GPU: a wider model, a bigger batch, 10x the steps
    # (measured on one GPU: benchmarks/gpu_full.py)
    "full": TrainConfig(
        model=UNET_PRESETS["full"],
        steps=40_000,
        batch_size=256,
        lr=1e-3,
        warmup=1000,
        ema_decay=0.9995,
        sample_every=5000,
        checkpoint_every=2000,
        min_snr_gamma=5.0,
        prediction="v",
        threads=8,
    ),
}


def presets_table_markdown() -> str:
    """Chapter 05's table of the training presets, written from ``PRESETS``."""

    def tex(x: float) -> str:  # 0.002 -> \( 2\times10^{-3} \)
        mantissa, exponent = f"{x:.0e}".split("e")
        return f"\\( {mantissa}\\times10^{{{int(exponent)}}} \\)"

    rows = [
        "| preset | U-Net channels | parameters | schedule | steps | batch | peak lr "
        "| warm-up | EMA \\( d \\) | Min-SNR \\( \\gamma \\) | predicts "
        "| steps drawn |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    target = {"eps": "\\( \\epsilon \\) (5.2)", "v": "\\( v \\) (5.6)"}

    def drawn(levels) -> str:  # uniform (5.1) or the log-normal of eq. 5.8
        if levels is None:
            return "uniform (5.1)"
        mean, std = levels
        return f"\\( \\ln\\sigma \\sim \\mathcal{{N}}({mean:g}, {std:g}^2) \\) (5.8)"

    for name, cfg in PRESETS.items():
        gamma = "none" if cfg.min_snr_gamma is None else f"{cfg.min_snr_gamma:g}"
        params = count_parameters(UNet(cfg.model))
        rows.append(
            f"| `{name}` | {cfg.model.channels} | {params:,} "
            f"| {cfg.schedule} | {cfg.steps:,} | {cfg.batch_size} | {tex(cfg.lr)} "
            f"| {cfg.warmup:,} | {cfg.ema_decay:g} | {gamma} "
            f"| {target[cfg.prediction]} | {drawn(cfg.noise_levels)} |"
        )
    return "\n".join(rows) + "\n"


def config_to_dict(cfg: TrainConfig) -> dict:
    """A checkpoint-safe (plain types only) copy of the config."""
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict) -> TrainConfig:
    d = dict(d)
    d["model"] = UNetConfig(**{**d["model"], "channels": tuple(d["model"]["channels"])})
    if d.get("noise_levels") is not None:
        d["noise_levels"] = tuple(d["noise_levels"])
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


def v_target(
    x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor | int, schedule: Schedule
) -> torch.Tensor:
    """v of eq. 5.6 for clean images x0 (B, C, H, W), their noise eps and steps t."""
    alpha_bar_t = _gather(schedule.alpha_bar, t, x0)  # (B, 1, 1, 1)
    return alpha_bar_t.sqrt() * eps - (1 - alpha_bar_t).sqrt() * x0


def eps_from_v(
    v: torch.Tensor, xt: torch.Tensor, t: torch.Tensor | int, schedule: Schedule
) -> torch.Tensor:
    """Eq. 5.7: the noise in x_t (B, C, H, W) that a prediction of v implies."""
    alpha_bar_t = _gather(schedule.alpha_bar, t, xt)  # (B, 1, 1, 1)
    return alpha_bar_t.sqrt() * v + (1 - alpha_bar_t).sqrt() * xt


class EpsFromV(nn.Module):
    """A network trained to predict v, seen from outside as a noise predictor (eq.
    5.7), so that every sampler of lessons 06-09 uses it unchanged.
    """

    def __init__(self, net: nn.Module, schedule: Schedule):
        super().__init__()
        self.net, self.schedule, self.config = net, schedule, net.config

    def forward(self, xt, t, labels):
        v = self.net(xt, t, labels).float()  # (B, C, H, W)
        return eps_from_v(v, xt.float(), t, self.schedule)


def eps_model(net: nn.Module, cfg: TrainConfig, schedule: Schedule) -> nn.Module:
    """The trained network as a noise predictor: itself, or wrapped if it predicts v."""
    return net if cfg.prediction == "eps" else EpsFromV(net, schedule)


def per_image_loss(
    pred: torch.Tensor,
    x0: torch.Tensor,
    eps: torch.Tensor,
    t: torch.Tensor,
    schedule: Schedule,
    min_snr_gamma: float | None = None,
    prediction: str = "eps",
) -> torch.Tensor:
    """Eq. 5.2 for each image, (B,): the squared error of the network's output pred
    (B, C, H, W) against its target (eps, or v of eq. 5.6), Min-SNR weighted (eq. 5.3).
    """
    target = eps if prediction == "eps" else v_target(x0, eps, t, schedule)
    mse = ((target - pred.float()) ** 2).mean(dim=(1, 2, 3))  # (B,) eq. 5.2 per image
    if min_snr_gamma is None:
        return mse
    snr = (schedule.alpha_bar / (1 - schedule.alpha_bar))[t.cpu()].to(mse)  # eq. 2.5
    # v's error is (SNR + 1) / SNR times eps's (eq. 5.7): its weight divides by SNR + 1
    return snr.clamp(max=min_snr_gamma) / (snr + 1 if prediction == "v" else snr) * mse


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


def draw_steps(
    schedule: Schedule,
    n: int,
    generator: torch.Generator | None = None,
    noise_levels: tuple[float, float] | None = None,
) -> torch.Tensor:
    """n training steps t in 1..T, (n,): uniform (eq. 5.1), or with ``noise_levels`` =
    (mean, std) drawn so that ln sigma(t) ~ N(mean, std^2) (eq. 5.8): each drawn sigma
    becomes the first step whose sigma(t) = sqrt((1 - alpha_bar_t) / alpha_bar_t)
    reaches it.
    """
    if noise_levels is None:
        return torch.randint(1, schedule.T + 1, (n,), generator=generator)
    mean, std = noise_levels
    log_sigma = -0.5 * log_snr(schedule).double()  # (T,) ln sigma(t), increasing in t
    drawn = mean + std * torch.randn(n, generator=generator).double()  # (n,) ln sigma
    return torch.searchsorted(log_sigma, drawn).clamp(max=schedule.T - 1) + 1


def training_loss(
    model: UNet,
    x0: torch.Tensor,
    labels: torch.Tensor,
    schedule: Schedule,
    p_uncond: float = 0.1,
    generator: torch.Generator | None = None,
    min_snr_gamma: float | None = None,
    prediction: str = "eps",
    noise_levels: tuple[float, float] | None = None,
) -> torch.Tensor:
    """What ``train_step`` minimises: ``diffusion_loss`` (the same draws in the same
    order, the same number for ``prediction="eps"`` and uniform t), or its v twin (eq.
    5.6), with t drawn by ``draw_steps``.
    """
    B = x0.shape[0]
    t = draw_steps(schedule, B, generator, noise_levels).to(x0.device)  # (B,)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)  # (B, C, H, W)
    xt = q_sample(x0, t, schedule, eps=eps)  # eq. 5.1
    labels = drop_labels(labels, p_uncond, model.config.num_classes, generator)
    pred = model(xt, t, labels)  # (B, C, H, W): eps, or v
    return per_image_loss(pred, x0, eps, t, schedule, min_snr_gamma, prediction).mean()


@torch.no_grad()
def ema_update(
    ema_model: torch.nn.Module, model: torch.nn.Module, decay: float
) -> None:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, eq. 5.5."""
    for p_ema, p in zip(ema_model.parameters(), model.parameters()):
        p_ema.lerp_(p, 1 - decay)


def ema_decay_at(step: int, cfg: TrainConfig) -> float:
    """The EMA decay of eq. 5.5 at ``step``: min(d, (1 + k) / (10 + k)), a short memory
    at first so that the average is not dragged back towards the random start.
    """
    return min(cfg.ema_decay, (1 + step) / (10 + step))


def recipe_facts(cfg: TrainConfig) -> dict:
    """The numbers chapter 05 quotes about a recipe, computed from its config: the SNR
    weight (eq. 2.5) that L_simple puts on x0_hat at a few steps, and how much of the
    random initial network is left in the EMA after k steps, with the decay's warm-up
    and with a fixed d.
    """
    alpha_bar = make_schedule(cfg.schedule, cfg.model.T).alpha_bar.double()
    snr = alpha_bar / (1 - alpha_bar)  # (T + 1,)
    decays = [ema_decay_at(k, cfg) for k in range(cfg.steps)]
    full = next((k for k, d in enumerate(decays) if d >= cfg.ema_decay), None)
    gamma = cfg.min_snr_gamma
    return {
        "schedule": cfg.schedule,
        "min_snr_gamma": gamma,
        # SNR > gamma <=> alpha_bar > gamma / (1 + gamma): the steps eq. 5.3 scales down
        "alpha_bar_scaled_above": None if gamma is None else gamma / (1 + gamma),
        "snr": {str(t): snr[t].item() for t in (1, 10, 500, 900)},
        "snr_1_over_500": (snr[1] / snr[500]).item(),
        "ema_full_decay_step": full,
        "ema_start_share": {  # product of the decays so far
            str(k): {
                "warmup": math.prod(decays[:k]),
                "fixed": cfg.ema_decay**k,
            }
            for k in (10, 100, 600)
            if k <= cfg.steps
        },
    }


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


class CheckpointError(CourseError):
    """A checkpoint is missing, corrupt, of another kind, or belongs to another
    configuration.
    """


#: files of lesson 07 that a learner may pass where a diffusion checkpoint belongs
OTHER_KINDS = {
    "classifier": "lesson 07's digit classifier (for `evaluate --classifier`)",
    "clip": "lesson 08's digit-CLIP weights (for `evaluate --clip-weights`)",
}


def checkpoint_kind(state) -> str:
    """What a loaded file holds: ``run`` (resumable), ``sampling`` (an export or an EMA
    snapshot), ``classifier``, ``clip`` or ``unknown``.
    """
    if not isinstance(state, dict):
        return "unknown"
    config = state.get("config")
    if isinstance(config, dict) and "model" in config:
        return "run" if "optimizer" in state else "sampling"
    if isinstance(state.get("state_dict"), dict) and "meta" in state:
        return "clip" if "token_ids" in state["state_dict"] else "classifier"
    return "unknown"


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` atomically: to a temporary file of its own first, then rename (a
    crash never leaves half a file, and two writers never share a temporary file).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with temporary_file(path) as (fd, tmp):
        with os.fdopen(os.dup(fd), "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())  # on the disk, not only in a buffer
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Read a diffusion model checkpoint safely (``weights_only=True``); a missing,
    damaged or wrong kind of file is a ``CheckpointError`` that says what it is.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}. Train one with `diffusion-lessons train --out "
            "DIR`, or use the shipped checkpoints/small.pt."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a readable diffusion-lessons checkpoint "
            f"({type(err).__name__}: {str(err).splitlines()[0][:100]}). It may be "
            "truncated or from another program: give a run's checkpoint.pt or the "
            "shipped checkpoints/small.pt."
        ) from err
    kind = checkpoint_kind(state)
    if kind in OTHER_KINDS:
        raise CheckpointError(
            f"{path} is {OTHER_KINDS[kind]}, not a diffusion model. Give a run's "
            "checkpoint.pt or the shipped checkpoints/small.pt here."
        )
    try:
        config_from_dict(state["config"])
        state["ema"], state["step"]  # noqa: B018 (every checkpoint has them)
    except Exception as err:
        missing = f"no {err}" if isinstance(err, KeyError) else str(err)[:100]
        raise CheckpointError(
            f"{path} is not a complete diffusion-lessons checkpoint ({missing}). Give "
            "a run's checkpoint.pt or the shipped checkpoints/small.pt."
        ) from err
    return state


#: settings that may change when a run is resumed (they decide how long it runs and
#: how fast, not what each step computes)
MAY_CHANGE_ON_RESUME = ("steps", "threads", "sample_every", "checkpoint_every")


def check_same_run(
    stored: TrainConfig, given: TrainConfig, path: Path, skip: tuple[str, ...] = ()
) -> None:
    """Refuse to resume ``path`` with a configuration that would compute other steps
    (fields in ``skip`` are not compared).
    """
    differ = [
        f.name
        for f in dataclasses.fields(TrainConfig)
        if f.name not in MAY_CHANGE_ON_RESUME + skip
        and getattr(stored, f.name) != getattr(given, f.name)
    ]
    if differ:
        as_text = lambda cfg: ", ".join(f"{n}={getattr(cfg, n)!r}" for n in differ)
        raise CheckpointError(
            f"{path} was trained with {as_text(stored)}, but this run asks for "
            f"{as_text(given)}. To resume, use the same --preset and options as the "
            "stored run (with --resume, leave them out); to start again, give a new "
            "--out (or --overwrite)."
        )


def export_checkpoint(src: str | Path, dst: str | Path, *, force: bool = False) -> Path:
    """Keep only what sampling needs (EMA weights, config, loss history): a file a
    quarter the size, for sharing. An existing ``dst`` is replaced only with ``force``.
    """
    state = load_checkpoint(src)
    if Path(dst).exists() and not force:
        itself = Path(dst).resolve() == Path(src).resolve()
        raise CheckpointError(
            f"{dst} already exists"
            + (" (it is the run's own checkpoint: exported, it cannot be resumed)"
               if itself else "")
            + ". Choose another file name, or pass --force to replace it."
        )  # fmt: skip
    keep = {
        k: state[k]
        for k in ("ema", "config", "step", "losses", "seconds", "params")
        if k in state
    }
    return save_checkpoint(dst, {**keep, "exported_from": str(src)})


def load_trained(
    path: str | Path, device: str = "cpu", ema: bool = True
) -> tuple[nn.Module, Schedule, TrainConfig]:
    """The trained model (EMA weights by default) in eval mode, as a noise predictor
    (``eps_model``), its schedule and its config.
    """
    state = load_checkpoint(path)
    cfg = config_from_dict(state["config"])
    model = UNet(cfg.model)
    try:
        model.load_state_dict(state["ema" if ema else "model"])
    except (KeyError, RuntimeError) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise CheckpointError(
            f"{path}: the weights do not fit the model configuration stored with them "
            f"({lines[-1][:100]}). The file was changed after training; give a run's "
            "own checkpoint.pt."
        ) from err
    schedule = make_schedule(cfg.schedule, cfg.model.T)
    return eps_model(model.to(device).eval(), cfg, schedule), schedule, cfg


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


def fit_to_data(cfg: TrainConfig, x0_all: torch.Tensor) -> TrainConfig:
    """``cfg`` with the U-Net's in_channels and image_size of the data (N, C, H, W)."""
    C, H, W = x0_all.shape[1:]
    if (C, H) == (cfg.model.in_channels, cfg.model.image_size) and H == W:
        return cfg
    if H != W or H % cfg.model.down_factor:
        raise ValueError(
            f"{cfg.dataset} images are {C}x{H}x{W}; the U-Net needs square images "
            f"with sides divisible by {cfg.model.down_factor}. Resize the data or "
            "change UNetConfig.channels."
        )
    print(
        f"The data are {C}x{H}x{W}: building the U-Net with in_channels={C}, "
        f"image_size={H}."
    )
    return dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, in_channels=C, image_size=H)
    )


def capture_rng(generator: torch.Generator) -> dict:
    """Every random state a run draws from: its own generator (t, eps, label dropout),
    torch's global one and, where used, CUDA's. (The data order needs none: it is
    recomputed from the seed and the epoch by ``batch_indices``.)
    """
    rng = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng, generator: torch.Generator) -> None:
    """Put back what ``capture_rng`` saved (an old checkpoint holds only the
    generator's state).
    """
    if isinstance(rng, torch.Tensor):
        generator.set_state(rng)
        return
    generator.set_state(rng["generator"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


def training_state(model, ema, opt, generator, step, losses, seconds, cfg) -> dict:
    """Everything that decides the rest of a run, as a checkpoint dict."""
    return {
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": opt.state_dict(),
        "rng": capture_rng(generator),
        "step": step,
        "losses": losses,
        "seconds": seconds,
        "config": config_to_dict(cfg),
        "params": count_parameters(model),
    }


def ema_snapshot(ema, step: int, seconds: float, cfg: TrainConfig) -> dict:
    """The EMA weights at ``step``: enough to sample (lesson 06), not to resume."""
    return {
        "ema": ema.state_dict(),
        "step": step,
        "seconds": seconds,
        "config": config_to_dict(cfg),
    }


def resumable(path: Path, cfg: TrainConfig) -> dict:
    """The checkpoint at ``path``, if a run with ``cfg`` may continue it (the model is
    compared later, once the data have fixed its shape).
    """
    state = load_checkpoint(path)
    if "optimizer" not in state:
        raise CheckpointError(
            f"{path} was exported for sampling (EMA weights only) and cannot be "
            "resumed; resume from the run folder's own checkpoint.pt."
        )
    check_same_run(config_from_dict(state["config"]), cfg, path, skip=("model",))
    return state


def resume_from(state: dict, path, cfg: TrainConfig, model, ema, opt, generator):
    """Load a checkpoint ``state`` into the model, EMA, optimiser and generator."""
    check_same_run(config_from_dict(state["config"]), cfg, path)
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["optimizer"])
    restore_rng(state["rng"], generator)


def train_step(
    model, ema, opt, x0, labels, schedule, cfg, step, generator, bf16=False
) -> float:
    """One optimiser step on x0 (B, C, H, W), labels (B,): eqs. 5.1-5.5. Returns the
    loss; a loss that is not finite is returned *before* it can touch the weights.
    """
    for group in opt.param_groups:
        group["lr"] = learning_rate(step, cfg)  # eq. 5.4
    with torch.autocast(x0.device.type, dtype=torch.bfloat16, enabled=bf16):
        loss = training_loss(
            model, x0, labels, schedule, cfg.p_uncond, generator, cfg.min_snr_gamma,
            cfg.prediction, cfg.noise_levels,
        )  # fmt: skip
    if not torch.isfinite(loss):
        return loss.item()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    # short EMA memory early on
    ema_update(ema, model, ema_decay_at(step, cfg))
    return loss.item()


def train(
    cfg: TrainConfig,
    out: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    callback=None,
    progress: bool = True,
) -> dict:
    """Train a model with ``cfg``, writing ``out/checkpoint.pt`` (and EMA snapshots) as
    it goes.

    Args:
        cfg: the run's configuration (e.g. ``PRESETS["small"]``).
        out: the run folder. One that holds a run already is refused unless
            ``resume`` or ``overwrite``; one another training is using is refused.
        resume: continue from ``out/checkpoint.pt``; the result equals an uninterrupted
            run (on CPU). The stored configuration must equal ``cfg`` (except steps,
            threads and how often to save).
        overwrite: delete the run in ``out`` and start again.
        device: auto | cpu | cuda | mps.
        callback: called as ``callback(step, ema_model)`` every ``cfg.sample_every``
            steps (e.g. to draw samples).
        progress: show a tqdm bar with the running loss.
    Returns: {"losses": [...], "step": int, "seconds": float, "images_per_second":
        float, "stopped": str, "saved_step": int | None}. Ctrl-C stops after the
        current step, saves, and returns with ``stopped == "interrupted"``.
    """
    out, dev = Path(out), resolve_device(device)
    torch.set_num_threads(cfg.threads)
    ckpt = out / "checkpoint.pt"
    with claim_run_folder(out, resume=resume, overwrite=overwrite):
        # "auto" becomes the dataset actually used, so a resumed run uses it too
        cfg = dataclasses.replace(cfg, dataset=resolve_name(cfg.dataset))
        # a changed configuration is refused before any data are loaded
        state = resumable(ckpt, cfg) if resume else None
        x0_all, labels_all = load_digits(cfg.dataset, split="train")  # (N, C, H, W)
        x0_all, labels_all = x0_all.to(dev), labels_all.to(dev)
        cfg = fit_to_data(cfg, x0_all)
        schedule = make_schedule(cfg.schedule, cfg.model.T)
        torch.manual_seed(cfg.seed)
        model = UNet(cfg.model).to(dev)
        ema = copy.deepcopy(model).requires_grad_(False)
        opt = torch.optim.AdamW(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        gen = torch.Generator().manual_seed(cfg.seed)  # t, eps and label dropout
        step, losses, seconds, saved_step = 0, [], 0.0, None
        if resume:
            resume_from(state, ckpt, cfg, model, ema, opt, gen)
            step, seconds, losses = state["step"], state["seconds"], state["losses"]
            saved_step = step
            print(f"Resuming {ckpt} at step {step}/{cfg.steps}.")
        bf16 = use_bf16(cfg.precision, dev)
        print(
            f"Training {count_parameters(model):,} parameters on {dev} for "
            f"{cfg.steps} steps (batch {cfg.batch_size}, "
            f"{'bf16 autocast' if bf16 else 'fp32'}, {cfg.threads} threads); "
            f"checkpoints in {out}/"
        )
        stopped = "finished"
        bar = tqdm(
            total=cfg.steps,
            initial=step,
            disable=None if progress else True,
            desc="train",
            unit="step",
        )
        with stop_on_ctrl_c() as stop, bar:
            while step < cfg.steps:
                start = time.perf_counter()
                idx = batch_indices(step, len(x0_all), cfg.batch_size, cfg.seed)
                loss = train_step(
                    model, ema, opt, x0_all[idx], labels_all[idx], schedule, cfg,
                    step, gen, bf16,
                )  # fmt: skip
                if not math.isfinite(loss):
                    stopped = f"loss became {loss} at step {step}"
                    break
                step += 1
                seconds += time.perf_counter() - start
                losses.append(loss)
                bar.update(1)
                bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
                last = step == cfg.steps
                if callback is not None and (step % cfg.sample_every == 0 or last):
                    callback(step, eps_model(ema.eval(), cfg, schedule))
                # read the flag once: a Ctrl-C after this line stops a step later
                stopping = stop.requested
                try:  # a full disk stops the run; the last good checkpoint stays
                    if step % cfg.checkpoint_every == 0 or last or stopping:
                        state = training_state(
                            model, ema, opt, gen, step, losses, seconds, cfg
                        )
                        save_checkpoint(ckpt, state)
                        saved_step = step
                    if step % cfg.sample_every == 0 or last:
                        save_checkpoint(
                            out / "snapshots" / f"ema_{step:06d}.pt",
                            ema_snapshot(ema, step, seconds, cfg),
                        )
                except OSError as err:
                    stopped = f"could not save step {step}: {disk_error(out, err)}"
                    break
                if stopping:
                    stopped = "interrupted"
                    break
    ips = (step * cfg.batch_size) / seconds if seconds else 0.0
    print(
        f"{step} steps in {seconds:.0f} s ({ips:.0f} images/s); final loss "
        f"{sum(losses[-100:]) / max(1, len(losses[-100:])):.4f}"
    )
    if stopped == "interrupted":
        print(f"Interrupted: saved {ckpt} at step {step}; continue with --resume.")
    elif stopped != "finished":
        kept = (
            f"The last good checkpoint is kept: {saved_step} steps are saved in {ckpt}."
            if saved_step
            else "No checkpoint had been saved yet."
        )
        if stopped.startswith("loss became"):
            print(
                f"Stopped: the {stopped}. {kept} Train again with a lower learning "
                f"rate (--lr, e.g. half of {cfg.lr:g}) into a new --out (or with "
                "--overwrite), and check that the data lie in [-1, 1]."
            )
        else:
            print(f"Stopped: {stopped}. {kept} Free some space, then --resume.")
    return {
        "losses": losses,
        "step": step,
        "seconds": seconds,
        "images_per_second": ips,
        "stopped": stopped,
        "saved_step": saved_step,
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
    out.mkdir(parents=True, exist_ok=True)
    (out / "05_presets.md").write_text(presets_table_markdown())
    cfg = dataclasses.replace(
        PRESETS[preset],
        dataset=dataset,
        **({"steps": 60, "warmup": 10} if quick else {}),
    )
    # runs/ holds training runs, not figures
    result = train(cfg, Path("runs") / "lesson05-tiny", overwrite=True, progress=True)
    files = [
        out / "05_presets.md",
        savefig(
            fig_loss_curve(
                result["losses"],
                f"preset {preset}, {result['step']} steps, seed {cfg.seed}",
            ),
            out / "05_loss_tiny.png",
        ),
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
    facts = {name: recipe_facts(PRESETS[name]) for name in ("tiny", "small")}
    losses = result["losses"]
    window = min(50, len(losses))  # mean loss of the first and the last 50 steps
    result["loss_windows"] = {
        "first": sum(losses[:window]) / window,
        "last": sum(losses[-window:]) / window,
        "steps": window,
    }
    return {**result, "facts": facts, "files": files}


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
