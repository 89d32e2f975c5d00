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
# # 10 · Going further (notebook)
#
# The hands-on companion to [chapter 10](../../lessons/10-going-further/). In a few seconds on a CPU
# you will:
#
# 1. put our noise table next to diffusers' and see the shift by one place (eq. 10.1);
# 2. list the steps of the three timestep spacings in our numbering;
# 3. sample ten guided digits with lesson 06's update and with `DDIMScheduler` on the same steps,
#    and measure how far apart they end;
# 4. check eqs. (10.5)–(10.6): the shard losses of two processes average to lesson 05's loss.
#
# Parts 1 and 3 need the optional extra (`pip install -e '.[diffusers]'`); without it they say so
# and the rest runs.

# %%
import importlib.util
import warnings

import torch

# tqdm.auto (imported by lesson 05) warns inside Jupyter when ipywidgets is absent; the course keeps ipywidgets out
warnings.filterwarnings("ignore", message="IProgress not found")

from diffusion_lessons.distributed import shard, shard_loss
from diffusion_lessons.lesson05_training import diffusion_loss, load_trained
from diffusion_lessons.lesson06_sampling import SHIPPED, digit_labels
from diffusion_lessons.lesson09_guidance import RECOMMENDED_W, GuidedModel
from diffusion_lessons.lesson10_going_further import (
    course_sample,
    course_t,
    guidance_scale,
)
from diffusion_lessons.plotting import new_figure, show_images

# The package's plotting module selects matplotlib's file backend (Agg); show figures inline here:
# %matplotlib inline
torch.set_num_threads(1)
HAVE_DIFFUSERS = importlib.util.find_spec("diffusers") is not None
model, schedule, cfg = load_trained(SHIPPED)
print(
    f"{SHIPPED.name}: schedule {schedule.name}, T = {schedule.T}; diffusers installed: {HAVE_DIFFUSERS}"
)
print(
    f"our w = {RECOMMENDED_W:g} is diffusers' guidance_scale = {guidance_scale(RECOMMENDED_W):g}"
)

# %% [markdown]
# ## 1. Two tables of noise levels
#
# `schedule.alpha_bar` holds $\bar\alpha_0, \dots, \bar\alpha_T$, with $\bar\alpha_0 = 1$. diffusers, given our
# $\beta_1, \dots, \beta_T$, rebuilds `alphas_cumprod` with $T$ entries for its $k = 0, \dots, T-1$.

# %%
if HAVE_DIFFUSERS:
    from diffusion_lessons.lesson10_going_further import (
        diffusers_sample,
        make_scheduler,
    )

    ddim = make_scheduler("ddim", schedule)
    theirs = ddim.alphas_cumprod.double()
    print(f"lengths: ours {len(schedule.alpha_bar)}, diffusers {len(theirs)}")
    print(
        f"{'t':>5} {'alpha_bar[t]':>14} {'alphas_cumprod[t-1]':>20} {'relative diff':>14}"
    )
    for t in (1, 2, 500, 900, 999, 1000):
        ours = schedule.alpha_bar[t].item()
        print(
            f"{t:5d} {ours:14.6e} {theirs[t - 1].item():20.6e} {abs(theirs[t - 1].item() / ours - 1):14.1e}"
        )
    print(
        f"final_alpha_cumprod = {ddim.final_alpha_cumprod.item()} = alpha_bar[0] = {schedule.alpha_bar[0].item()}"
    )
else:
    print("diffusers is not installed: pip install -e '.[diffusers]'")

# %% [markdown]
# The relative difference grows towards $t = T$: diffusers multiplies float32 betas in float32,
# and $\bar\alpha_T \approx 2 \times 10^{-9}$ is where the products have lost most digits.
#
# ## 2. Three spacings, in our step numbers

# %%
if HAVE_DIFFUSERS:
    import diffusers

    for spacing in ("leading", "linspace", "trailing"):
        sch = diffusers.DDIMScheduler(
            num_train_timesteps=schedule.T,
            timestep_spacing=spacing,
            steps_offset=1 if spacing == "leading" else 0,
        )
        sch.set_timesteps(10)
        print(f"{spacing:>9}: our t = {[course_t(k) for k in sch.timesteps]}")

# %% [markdown]
# Only `trailing` and `linspace` start at $t = T$, where $x_T$ is pure noise; only `trailing`
# follows DDIM's fixed stride $\lfloor T/n \rfloor$.
#
# ## 3. Lesson 06's update against `DDIMScheduler`
#
# Ten digits, guided with the recommended $w$, 10 trailing steps, the same initial noise, float32.

# %%
if HAVE_DIFFUSERS:
    labels, w = digit_labels("0123456789", 1), RECOMMENDED_W
    ddim = make_scheduler("ddim", schedule)
    x_theirs, nfe = diffusers_sample(
        model,
        schedule,
        labels,
        ddim,
        10,
        w=w,
        precision="fp32",
        generator=torch.Generator().manual_seed(0),
    )
    ts = [course_t(k) for k in ddim.timesteps]
    x_ours = course_sample(
        GuidedModel(model, w),
        schedule,
        labels,
        ts,
        generator=torch.Generator().manual_seed(0),
    )
    print(f"steps (our t): {ts}; network evaluations: {nfe}")
    print(f"largest pixel difference: {(x_ours - x_theirs).abs().max():.2e}")
    fig, ax = new_figure(size=(8, 2))
    show_images(
        ax,
        torch.cat([x_ours, x_theirs]),
        nrow=10,
        row_labels=["lesson 06", "diffusers"],
    )

# %% [markdown]
# ## 4. Two shards, one loss
#
# Two "processes" (here: two calls) each compute eq. (10.5) on half of a batch of 64 training-like
# images, drawing the random numbers of the whole batch from the same seed. Their mean is lesson
# 05's loss on the whole batch (eq. 10.6), up to rounding.

# %%
x0, y = torch.rand(64, 1, 28, 28) * 2 - 1, torch.randint(0, 10, (64,))
with torch.no_grad():
    full = diffusion_loss(
        model, x0, y, schedule, 0.1, torch.Generator().manual_seed(0), 5.0
    )
    parts = [
        shard_loss(
            model,
            x0,
            y,
            schedule,
            shard(64, r, 2),
            0.1,
            torch.Generator().manual_seed(0),
            5.0,
        )
        for r in range(2)
    ]
print(
    f"one process: {full:.6f}; two shards: {parts[0]:.6f}, {parts[1]:.6f}; their mean {sum(parts) / 2:.6f}"
)

# %% [markdown]
# ## 5. Why Heun fails with our schedule
#
# Follow $x$ through Heun's first steps (5 steps, 9 evaluations, ten guided digits). In the variable
# $x = x_0 + \sigma\epsilon$ its spread should be about $\sqrt{1 + \sigma^2}$; watch what the correction of
# the first interval, from $\sigma_T$ to the next $\sigma$, does to it.

# %%
if HAVE_DIFFUSERS:
    heun = make_scheduler("heun", schedule)
    heun.set_timesteps(5)
    x = (
        torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        * heun.init_noise_sigma
    )
    guided = GuidedModel(model, RECOMMENDED_W)
    print(
        f"{'evaluation':>10} {'t':>5} {'x now at sigma':>15} {'std of x':>9} {'about':>6}"
    )
    with torch.no_grad():
        for i, k in enumerate(heun.timesteps[:4]):
            xt = heun.scale_model_input(x, k)
            eps = guided(xt, torch.full((10,), course_t(k)), labels)
            x = heun.step(eps, k, x).prev_sample
            sigma = heun.sigmas[i + 1].item()  # sigmas: sigma_T, s1, s1, s2, s2, ..., 0
            print(
                f"{i + 1:10d} {course_t(k):5d} {sigma:15.3g} {x.std().item():9.3g} {(1 + sigma**2) ** 0.5:6.3g}"
            )

# %% [markdown]
# To run the real thing on two processes of your CPU (a few seconds):
#
# ```bash
# torchrun --nproc_per_node 2 -m diffusion_lessons train --preset tiny --dataset mnist-5k --steps 20 --out runs/ddp
# ```
