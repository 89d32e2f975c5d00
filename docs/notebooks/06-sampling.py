# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Sampling (notebook)
#
# The hands-on companion to [chapter 06](../../lessons/06-sampling/). With the shipped checkpoint
# (`checkpoints/small.pt`, EMA weights) and in a few seconds on a CPU you will:
#
# 1. draw ten digits, one of each class, with DDIM in 25 steps;
# 2. walk through the reverse process yourself and watch the prediction $\hat x_0$ (eq. 6.1) settle;
# 3. check that one DDIM update with $\eta = 1$ and every step *is* DDPM's ancestral step (eq. 6.4);
# 4. compare sampling with and without clipping $\hat x_0$, in numbers.
#
# Everything here is the package's own code: `diffusion_lessons.lesson06_sampling`.

# %%
import time

import torch

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson05_training import load_trained, use_bf16
from diffusion_lessons.lesson06_sampling import (
    SHIPPED,
    SHIPPED_EPS,
    chain_steps,
    default_t_min,
    digit_labels,
    reverse_step,
    sample,
)
from diffusion_lessons.plotting import new_figure, show_images

# %% tags=["setup"]
# Set-up, not shown on the site: figures inline (the package's plotting module selects
# matplotlib's file backend, Agg), one CPU thread, and no notice from tqdm that
# ipywidgets is absent.
# %matplotlib inline
torch.set_num_threads(1)
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")

# %%
# EMA weights, eval mode, and the schedule it was trained with
model, schedule, cfg = load_trained(SHIPPED)
print(f"{SHIPPED.name}: preset small, schedule {cfg.schedule}, T = {schedule.T}")

# %% [markdown]
# ## 1. Ten digits in 25 steps
#
# `sample` starts from $x_T \sim \mathcal{N}(0, I)$ and applies the update of eqs. 6.1–6.3 at 25 evenly
# spaced steps, from $T$ down to $t_\text{min} = T/10$, and returns the $\hat x_0$ made there (section
# 6.6). With $\eta = 0$ (the default) all the randomness is in $x_T$: the same seed gives the same digits.

# %%
labels = digit_labels("0123456789", 1)  # (10,) = 0, 1, ..., 9
start = time.perf_counter()
x0 = sample(
    model,
    schedule,
    labels,
    sampler="ddim",
    steps=25,
    generator=torch.Generator().manual_seed(0),
)
print(
    f"10 digits, DDIM 25 steps: {time.perf_counter() - start:.2f} s; shape {tuple(x0.shape)}, "
    f"range [{x0.min().item():.2f}, {x0.max().item():.2f}]"
)
print("the 25 steps:", chain_steps(schedule.T, 25, default_t_min(schedule.T)))
fig, ax = new_figure(size=(8, 1.2))
show_images(ax, x0, nrow=10)

# %% [markdown]
# ## 2. The reverse process by hand, and the predicted digit along the way
#
# The loop inside `sample` is short enough to write out. At each step the network predicts the noise
# (under bfloat16 autocast where the CPU has fast bfloat16, exactly as `sample` and training do); eq. 6.1
# turns that into a guess $\hat x_0$ of the finished digit; eq. 6.3 moves $x_t$ to the next, earlier
# step. We keep $\hat x_0$ at a few steps.

# %%
ts = chain_steps(schedule.T, 25, default_t_min(schedule.T))  # 1000, ..., 100
g = torch.Generator().manual_seed(0)
# x_T, (10, 1, 28, 28): the same noise as above
xt = torch.randn((10, 1, 28, 28), generator=g)
kept, changes, previous = {}, [], None
bf16 = use_bf16("auto", torch.device("cpu"))
print("network under bf16 autocast:", bf16)
with torch.no_grad():
    for t, s in zip(ts, ts[1:] + [0]):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            eps_pred = model(
                xt, torch.full((10,), t), labels
            ).float()  # (10, 1, 28, 28)
        xt, x0_pred = reverse_step(
            xt, eps_pred, t, s, schedule, eta=0.0, clip_x0=True, generator=g
        )
        if previous is not None:
            changes.append((t, (x0_pred - previous).abs().mean().item()))
        previous = x0_pred
        if t in (ts[0], ts[4], ts[8], ts[12], ts[16], ts[24]):
            kept[t] = x0_pred
print("identical to sample():", torch.equal(xt.clamp(-1, 1), x0))
print("mean |change of x0_pred| from one step to the next:")
print("  " + "  ".join(f"t={t}: {c:.3f}" for t, c in changes[::3]))
fig, ax = new_figure(size=(8, 5.4))
show_images(
    ax,
    torch.cat(list(kept.values())),
    nrow=10,
    row_labels=[f"t = {t}" for t in kept],
    title="the prediction x0_pred (eq. 6.1) at six of the 25 steps",
)

# %% [markdown]
# The very first $\hat x_0$, at $t = 1000$, is already a blurred digit: the shipped network predicts $v$, and
# $\hat x_0 = \sqrt{\bar\alpha_t}\,x_t - \sqrt{1-\bar\alpha_t}\,v_\theta$ (eqs. 6.1 and 5.7) needs no division by
# $\sqrt{\bar\alpha_{1000}}$, about $5 \times 10^{-5}$. A noise predictor gives speckle there (section 4). The next
# predictions are blurry averages of the requested digit. After the first few steps
# $\hat x_0$ changes less and less: the shape is fixed long before the end, and the last steps sharpen strokes.
#
# ## 3. DDPM is a special case of the DDIM update
#
# With $s = t - 1$ and $\eta = 1$, eq. 6.2 gives $\sigma_t^2 = \tilde\beta_t$ and eq. 6.3 becomes DDPM's
# step, eq. 6.4. Check it on one step with random numbers in double precision:

# %%
t = 500
xt_, eps_ = (
    torch.randn(2, 1, 28, 28, dtype=torch.float64),
    torch.randn(2, 1, 28, 28, dtype=torch.float64),
)
ddim, _ = reverse_step(
    xt_,
    eps_,
    t,
    t - 1,
    schedule,
    eta=1.0,
    clip_x0=False,
    generator=torch.Generator().manual_seed(1),
)
a, ab, ab_prev, b = (
    schedule.alpha[t].item(),
    schedule.alpha_bar[t].item(),
    schedule.alpha_bar[t - 1].item(),
    schedule.beta[t].item(),
)
beta_tilde = (1 - ab_prev) / (1 - ab) * b
z = torch.randn(xt_.shape, generator=torch.Generator().manual_seed(1)).double()
ddpm = (xt_ - b / (1 - ab) ** 0.5 * eps_) / a**0.5 + beta_tilde**0.5 * z  # eq. 6.4
print(f"t = {t}: beta_t = {b:.5f}, beta~_t = {beta_tilde:.5f}")
print(
    f"largest difference between the two updates: {(ddim - ddpm).abs().max().item():.2e}"
)

# %% [markdown]
# The two agree to about $10^{-8}$, the rounding of the fresh noise $z$, which `reverse_step` draws (and scales) in
# float32 while everything else here is float64.
#
# ## 4. Clipping the predicted digit, on and off
#
# Same labels, same starting noise: 20 digits (two of each class), 25 DDIM steps, once with $\hat x_0$
# clipped to $[-1, 1]$ at every step and once without, first with the $\epsilon$ model of chapter 05
# (`checkpoints/small-eps.pt`), then with the shipped $v$ model. How far outside the pixel range do the
# unclipped predictions go, and what does it do to the final images?

# %%
labels20 = digit_labels("0123456789", 2)
real, _ = load_digits("mnist-5k", split="test")
print(
    f"real digits : mean {real.mean().item():+.3f}, {(real < -0.9).float().mean().item():.0%} background, "
    f"{(real.abs() > 0.99).float().mean().item():.0%} of pixels at +-1"
)
eps_net, eps_schedule, _ = load_trained(SHIPPED_EPS)
stats = {}
for name, net, sched in (
    ("eps", eps_net, eps_schedule),
    ("v", model, schedule),
):
    for clip in (True, False):
        x, traj = sample(
            net,
            sched,
            labels20,
            steps=25,
            clip_x0=clip,
            generator=torch.Generator().manual_seed(0),
            trajectory=True,
        )
        peak = max(e["x0_pred"].abs().max().item() for e in traj)
        first = traj[0]["x0_pred"].abs().max().item()
        # share of pixels that are (nearly) black background
        background = (x < -0.9).float().mean().item()
        saturated = (
            (x.abs() > 0.99).float().mean()
        ).item()  # share of pixels at the ends of the range, +-1
        stats[name, clip] = x
        print(
            f"{name:>3} model, clip {str(clip):5}: |x0_pred| at t = 1000 up to {first:8.2f}, "
            f"largest over all steps {peak:8.2f}"
        )
        print(
            f"   final images: mean {x.mean().item():+.3f}, {background:.0%} background, "
            f"{saturated:.0%} of pixels at +-1"
        )
    gap = (stats[name, True] - stats[name, False]).abs().mean().item()
    print(
        f"{name:>3} model: mean |difference| between the two sets of final images: {gap:.3f}"
    )
fig, axes = new_figure(2, 2, size=(8, 4.2))
for ax, key in zip(axes.flat, stats):
    show_images(ax, stats[key], nrow=10, title=f"{key[0]} model, clipped: {key[1]}")

# %% [markdown]
# **Try it:** repeat section 4 with `steps=10` and with `steps=100`. Does clipping matter more or less
# when the steps are large? (Hint: with few steps, each update leans harder on $\hat x_0$.)
