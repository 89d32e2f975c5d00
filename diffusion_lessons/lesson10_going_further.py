"""Lesson 10: going further, to diffusers' schedulers and to many processes.

Chapter: docs/lessons/10-going-further.md

Part 1. The course numbers the steps t = 1..T and keeps T + 1 values alpha_bar_0..T,
with alpha_bar_0 = 1 ("no noise yet"). diffusers numbers them k = 0..T-1 and keeps T
values ``alphas_cumprod``. Given our betas, its table is ours shifted by one place:

    (10.1)   k = t - 1,   alphas_cumprod[k] = alpha_bar_{k+1} = alpha_bar_t
    (10.2)   final_alpha_cumprod = alpha_bar_0 = 1    (set_alpha_to_one=True)

A diffusers pipeline guides with a scale s; lesson 09's eq. 9.1 is the same line:

    (10.3)   eps = eps_∅ + s (eps_c - eps_∅),   s = 1 + w

DDIMScheduler with clip_sample=True and use_clipped_model_output=True is eqs. 6.1-6.3
(eps recomputed from the clipped x0_pred); DDPMScheduler ("fixed_small") is eq. 6.4.
Euler, Heun and DPM-Solver++ integrate the probability-flow ODE in the variable x =
x_t / sqrt(alpha_bar_t) = x0 + sigma_t eps, whose noise level is

    (10.4)   sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t),
            x_t = x / sqrt(1 + sigma_t^2)

(the second half is ``scale_model_input``). "trailing" timestep spacing starts at k =
T-1 (our t = T, pure noise) and lands every step on an integer k, the only kind our
U-Net takes. Part 2, the same training loop across processes, is in ``distributed.py``.

Builds on: lesson01_forward_noise (Schedule), lesson05_training (train, load_trained,
use_bf16, PRESETS), lesson06_sampling (sample, reverse_step, digit_labels, SHIPPED),
lesson09_guidance (GuidedModel, RECOMMENDED_W), distributed (spawn_local), plotting.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import inspect
import tempfile
import time
from pathlib import Path

import torch

from .distributed import shard, spawn_local  # noqa: F401 (shard: the exercise's)
from .lesson01_forward_noise import Schedule
from .lesson05_training import PRESETS, load_checkpoint, train, use_bf16
from .lesson06_sampling import SHIPPED, digit_labels, reverse_step, sample
from .lesson09_guidance import RECOMMENDED_W, GuidedModel
from .plotting import DIGIT_COLORS, new_figure, savefig, show_images

#: our sampler name -> the diffusers class that takes its place
SCHEDULERS = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
}
INSTALL = "pip install -e '.[diffusers]'"


def has_diffusers() -> bool:
    return importlib.util.find_spec("diffusers") is not None


# ---------------------------------------------------------------------------
# Part 1: the conventions, one function each
# ---------------------------------------------------------------------------


def guidance_scale(w: float) -> float:
    """Our guidance weight w (eq. 9.1) -> diffusers' ``guidance_scale`` s (eq. 10.3)."""
    return 1.0 + w


def guidance_weight(s: float) -> float:
    """diffusers' ``guidance_scale`` s -> our w; s = 1: the plain conditional model."""
    return s - 1.0


def diffusers_guidance(eps_cond, eps_uncond, s: float) -> torch.Tensor:
    """Eq. 10.3 as diffusers' pipelines write it: (B, C, H, W) each."""
    return eps_uncond + s * (eps_cond - eps_uncond)


def course_t(k) -> int:
    """diffusers' timestep k (0..T-1) -> our t (1..T), eq. 10.1."""
    if float(k) != int(k):
        raise ValueError(
            f"diffusers asked for the fractional timestep {float(k)}; the U-Net takes "
            "whole steps. Build the scheduler with timestep_spacing='trailing'."
        )
    return int(k) + 1


def make_scheduler(name: str, schedule: Schedule, clip: bool = True):
    """A diffusers scheduler on OUR noise levels (eqs. 10.1-10.2), clipping x0_pred to
    [-1, 1] as lesson 06 does (``clip``; Euler has no such option)."""
    if not has_diffusers():
        raise ImportError(f"This needs the diffusers library: {INSTALL}")
    if name not in SCHEDULERS:
        raise ValueError(
            f"Unknown scheduler {name!r}; choose one of {list(SCHEDULERS)}."
        )
    import diffusers

    common = dict(
        num_train_timesteps=schedule.T,
        trained_betas=schedule.beta[1:].tolist(),  # beta_1..beta_T, T values
        prediction_type="epsilon",
        timestep_spacing="trailing",
    )
    extra = {
        "ddpm": dict(variance_type="fixed_small", clip_sample=clip),
        "ddim": dict(clip_sample=clip, set_alpha_to_one=True, steps_offset=0),
        # static thresholding at 1 is clipping: the percentile s is clamped to [1, 1]
        "dpm++": dict(
            algorithm_type="dpmsolver++",
            solver_order=2,
            thresholding=clip,
            sample_max_value=1.0,
        ),
        "euler": {},
        "heun": dict(clip_sample=clip),
    }[name]
    return getattr(diffusers, SCHEDULERS[name])(**common, **extra)


# ---------------------------------------------------------------------------
# Part 1: our model, their update
# ---------------------------------------------------------------------------


@torch.no_grad()
def diffusers_sample(
    model,
    schedule: Schedule,
    labels: torch.Tensor,
    scheduler,
    steps: int,
    *,
    w: float = 0.0,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    precision: str = "auto",
) -> tuple[torch.Tensor, int]:
    """Draw one image per label with a diffusers ``scheduler`` doing every update.

    Our part is the network (with guidance w, lesson 09) and the conventions; the step
    itself is ``scheduler.step``. Returns x0 (B, C, H, W) in [-1, 1] and the number of
    network evaluations (NFE; a guided evaluation is one batched pass).
    """
    scheduler.set_timesteps(steps)
    guided = GuidedModel(model, w)
    device = next(model.parameters()).device
    cfg, labels = model.config, torch.as_tensor(labels, dtype=torch.long).to(device)
    shape = (len(labels), cfg.in_channels, cfg.image_size, cfg.image_size)
    x = torch.randn(shape, generator=generator).to(device) * scheduler.init_noise_sigma
    accepts = inspect.signature(scheduler.step).parameters
    kwargs = {"generator": generator} if "generator" in accepts else {}
    if "use_clipped_model_output" in accepts:  # DDIM: eps recomputed from the clip
        kwargs.update(eta=eta, use_clipped_model_output=scheduler.config.clip_sample)
    bf16 = use_bf16(precision, device)
    for k in scheduler.timesteps:
        xt = scheduler.scale_model_input(x, k)  # eq. 10.4: back to our x_t
        t = torch.full((len(labels),), course_t(k), device=device)  # eq. 10.1
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            eps_pred = guided(xt, t, labels)
        eps_pred = eps_pred.float() if bf16 else eps_pred  # float32 (or float64)
        x = scheduler.step(eps_pred, k, x, **kwargs).prev_sample
    return x.clamp(-1, 1), len(scheduler.timesteps)


@torch.no_grad()
def course_sample(
    model,
    schedule: Schedule,
    labels: torch.Tensor,
    ts: list[int],
    *,
    eta: float = 0.0,
    clip_x0: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Lesson 06's sampler (float32) on a given list of steps ``ts`` (T > ... >= 1)."""
    cfg, B = model.config, len(labels)
    xt = torch.randn(
        (B, cfg.in_channels, cfg.image_size, cfg.image_size), generator=generator
    )
    for t, s in zip(ts, list(ts[1:]) + [0]):
        eps_pred = model(xt, torch.full((B,), t), labels)
        xt, _ = reverse_step(xt, eps_pred, t, s, schedule, eta, clip_x0, generator)
    return xt.clamp(-1, 1)


def run_sampler(model, schedule, labels, name: str, steps: int, w: float, seed: int):
    """One row of the benchmark: lesson 06's DDIM (``ours``) or a diffusers scheduler;
    returns (images, NFE, seconds)."""
    gen, start = torch.Generator().manual_seed(seed), time.perf_counter()
    if name == "ours":
        # t_min = 1: every sampler runs its chain to the end, so the table is fair
        guided = GuidedModel(model, w)
        x = sample(guided, schedule, labels, steps=steps, t_min=1, generator=gen)
        nfe = steps
    else:
        sch = make_scheduler(name, schedule)
        x, nfe = diffusers_sample(
            model, schedule, labels, sch, steps, w=w, generator=gen
        )
    return x, nfe, time.perf_counter() - start


# ---------------------------------------------------------------------------
# Run the lesson
# ---------------------------------------------------------------------------


def fig_schedulers(results: list[tuple[str, torch.Tensor]]):
    """The same initial noise through each sampler, one row each."""
    fig, ax = new_figure(size=(6.88, 0.7 * len(results) + 0.5))
    images = torch.cat([x for _, x in results])
    show_images(ax, images, nrow=len(results[0][1]), row_labels=[n for n, _ in results])
    ax.set_title(
        "same initial noise in every row; only the update rule changes", fontsize=9
    )
    return fig


def fig_distributed(single: list[float], multi: list[float], nproc: int):
    """Training loss per step: one process vs ``nproc`` processes, same global batch."""
    fig, ax = new_figure(size=(6.5, 3.4))
    ax.plot(single, lw=2.5, alpha=0.5, color=DIGIT_COLORS[0], label="1 process")
    ax.plot(
        multi, "--", lw=1.2, color=DIGIT_COLORS[3], label=f"{nproc} processes (DDP)"
    )
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (eq. 5.2)")
    diff = max(abs(a - b) for a, b in zip(single, multi))
    ax.set_title(f"same global batch; largest difference {diff:.1e}", fontsize=9)
    ax.legend()
    return fig


def run(out: Path | str = "figures", *, quick: bool = False) -> dict:
    """Part 1 (with diffusers): the same noise through our and diffusers' samplers.
    Part 2: a tiny run on 1 and on 2 processes (gloo), and their loss curves."""
    out, files, numbers = Path(out), [], {}
    if SHIPPED.exists() and has_diffusers():
        from .lesson05_training import load_trained

        model, schedule, _ = load_trained(SHIPPED)
        labels, w, steps = (
            digit_labels("0123456789", 1),
            RECOMMENDED_W,
            10 if quick else 50,
        )
        # lesson 06's update and diffusers' DDIM on the same (trailing) steps, float32
        ddim = make_scheduler("ddim", schedule)
        theirs, _ = diffusers_sample(
            model,
            schedule,
            labels,
            ddim,
            steps,
            w=w,
            precision="fp32",
            generator=torch.Generator().manual_seed(0),
        )
        ours = course_sample(
            GuidedModel(model, w),
            schedule,
            labels,
            [course_t(k) for k in ddim.timesteps],
            generator=torch.Generator().manual_seed(0),
        )
        numbers["max |lesson 06 DDIM - diffusers DDIM|, shipped model"] = (
            (ours - theirs).abs().max().item()
        )
        alpha_bar_T = schedule.alpha_bar[-1].item()  # section 10.8: Heun's first step
        numbers["alpha_bar_T, shipped schedule"] = alpha_bar_T
        numbers["sigma_T, shipped schedule"] = ((1 - alpha_bar_T) / alpha_bar_T) ** 0.5
        results = [(f"lesson 06, {steps}", ours), (f"DDIMScheduler, {steps}", theirs)]
        for name, n in [("dpm++", 10), ("euler", 10), ("heun", 5)]:
            x, nfe, _ = run_sampler(model, schedule, labels, name, n, w, seed=0)
            results.append((f"{SCHEDULERS[name][:-9]}, {nfe}", x))
        files.append(savefig(fig_schedulers(results), out / "10_schedulers.png"))
    else:
        print(f"Part 1 needs diffusers and checkpoints/small.pt ({INSTALL}); skipped.")
    cfg = dataclasses.replace(
        PRESETS["tiny"],
        dataset="mnist-5k",
        steps=10 if quick else 40,
        warmup=5,
        precision="fp32",
        threads=1,
        checkpoint_every=1000,
    )
    with tempfile.TemporaryDirectory() as scratch:  # two throw-away run folders
        single = train(cfg, Path(scratch) / "one", progress=False)["losses"]
        spawn_local(2, cfg, Path(scratch) / "two")
        multi = load_checkpoint(Path(scratch) / "two" / "checkpoint.pt")["losses"]
    numbers["max |loss 1 process - loss 2 processes|"] = max(
        abs(a - b) for a, b in zip(single, multi)
    )
    files.append(savefig(fig_distributed(single, multi, 2), out / "10_distributed.png"))
    for k, v in numbers.items():
        print(f"{k}: {v:.2e}")
    for f in files:
        print(f"wrote {f}")
    return {"numbers": numbers, "files": files}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Lesson 10: diffusers' schedulers; training on N processes."
    )
    parser.add_argument("--out", default="figures", help="folder for the figures")
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
