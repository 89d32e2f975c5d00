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
# # 02 · Noise schedules (notebook)
#
# The hands-on companion to [chapter 02](../../lessons/02-schedules/). In a few seconds on a CPU you
# will:
#
# 1. build the linear, cosine and sigmoid schedules and compare their $\bar\alpha_t$ at a few $t$;
# 2. plot their log-SNR, $\lambda_t = \log\big(\bar\alpha_t / (1-\bar\alpha_t)\big)$, and count how many of the
#    $T$ steps each one spends in each band of noise;
# 3. see the one step the $\beta_t \le 0.999$ clip changes;
# 4. measure, with the template-matching observer of notebook 01, for how many steps a digit stays
#    recognisable under each schedule.
#
# Everything here is the package's own code: `diffusion_lessons.lesson02_schedules`.

# %%
import torch

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson01_forward_noise import q_sample
from diffusion_lessons.lesson02_schedules import SCHEDULES, log_snr, make_schedule
from diffusion_lessons.plotting import DIGIT_COLORS, new_figure

# %% tags=["setup"]
# Set-up, not shown on the site: figures inline (the package's plotting module selects
# matplotlib's file backend, Agg), one CPU thread, and no notice from tqdm that
# ipywidgets is absent.
# %matplotlib inline
torch.set_num_threads(1)
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")

# %%
T = 1000
# linear, cosine, sigmoid
schedules = {name: make_schedule(name, T) for name in SCHEDULES}
print("schedules:", ", ".join(schedules))

# %% [markdown]
# ## 1. ᾱ at a few steps
#
# $\bar\alpha_t$ is the share of the signal's variance left at step $t$; $\sqrt{\bar\alpha_t}$ is the
# weight of $x_0$ in $x_t$, eq. (1.3).

# %%
steps = (1, 100, 250, 500, 750, 900, 999, 1000)
print(f"{'t':>5} " + " ".join(f"{name:>10}" for name in schedules))
for t in steps:
    print(
        f"{t:5d} "
        + " ".join(f"{s.alpha_bar[t].item():10.4g}" for s in schedules.values())
    )

# %% [markdown]
# ## 2. log-SNR, and where the steps go
#
# Plotting $\lambda_t$ against $t/T$ shows the schedule's shape; a histogram of the $T$ values
# $\lambda_1, \dots, \lambda_T$ shows how many steps the model will be trained at each noise level
# (training draws $t$ uniformly from $1..T$). The dashed curve is the density the chapter derives
# for the cosine schedule, eq. (2.7): $\frac{1}{2\pi}\operatorname{sech}(\lambda/2)$.

# %%
fig, (ax1, ax2) = new_figure(1, 2, size=(11, 3.4))
for i, (name, s) in enumerate(schedules.items()):
    lam = log_snr(s)  # (T,): lambda_1..lambda_T
    frac = torch.arange(1, T + 1) / T  # (T,): t / T
    ax1.plot(frac, lam, color=DIGIT_COLORS[i], label=name)
    ax2.hist(
        lam.numpy(),
        bins=60,
        range=(-20, 12),
        density=True,
        histtype="step",
        lw=1.5,
        color=DIGIT_COLORS[i],
        label=name,
    )
lam_grid = torch.linspace(-20, 12, 400)
ax2.plot(
    lam_grid,
    1 / (2 * torch.pi * torch.cosh(lam_grid / 2)),
    "k--",
    lw=1,
    label="sech density, eq. (2.7)",
)
ax1.axhline(0, color="k", lw=0.8, ls=":")
ax1.set_xlabel("t / T")
ax1.set_ylabel("log-SNR $\\lambda_t$")
ax1.legend()
ax2.set_xlabel("log-SNR $\\lambda$")
ax2.set_ylabel("share of steps (density)")
ax2.legend(fontsize=8)
fig.tight_layout()

# %%
bands = [(-float("inf"), -5), (-5, 0), (0, 5), (5, float("inf"))]
print("share of the T steps with lambda in each band")
print(
    f"{'schedule':>8}  " + "  ".join(f"{f'({lo:g}, {hi:g}]':>12}" for lo, hi in bands)
)
for name, s in schedules.items():
    lam = log_snr(s)
    shares = [((lam > lo) & (lam <= hi)).double().mean().item() for lo, hi in bands]
    print(f"{name:>8}  " + "  ".join(f"{share:12.1%}" for share in shares))

# %% [markdown]
# $\lambda = -5$ means $\bar\alpha_t \approx 0.0067$: the digit's weight in $x_t$ is about 0.08
# against noise of standard deviation 1. $\lambda > 5$ means almost no noise at all.

# %% [markdown]
# ## 3. The clip at β ≤ 0.999
#
# The cosine and sigmoid formulas reach $\bar\alpha_T = 0$ exactly, which would make
# $\beta_T = 1 - \bar\alpha_T / \bar\alpha_{T-1} = 1$. Eq. (2.4) clips it to 0.999. Count the clipped
# steps and look at the first and the last two ($\sqrt{\beta_1}$, the standard deviation of the first
# step's noise, is compared with the pixel step of 8-bit images):

# %%
print(
    f"{'schedule':>8} {'beta_1':>8} {'sqrt':>6} {'beta_T-1':>8} {'beta_T':>6} {'clipped':>7} {'alpha_bar_T':>11}"
)
for name, s in schedules.items():
    clipped = int((s.beta[1:] >= 0.999 - 1e-12).sum())
    print(
        f"{name:>8} {s.beta[1].item():8.2e} {s.beta[1].item() ** 0.5:6.4f} {s.beta[T - 1].item():8.3f} "
        f"{s.beta[T].item():6.3f} {clipped:7d} {s.alpha_bar[T].item():11.2e}"
    )
print(f"pixel bin size of 8-bit images in [-1, 1]: 1/127.5 = {1 / 127.5:.4f}")

# %% [markdown]
# ## 4. How long does a digit stay recognisable?
#
# The template-matching observer of notebook 01: ten class-mean templates from the training split;
# a noisy test digit gets the class whose scaled template $\sqrt{\bar\alpha_t}\,\mu_c$ is nearest.
# We run it every 20 steps for each schedule, with the same noise, and count the share of the
# $T$ steps at which it is right more than half the time, and the share at which it is near chance
# (below 15 %; chance is 10 %).

# %%
images, labels = load_digits("mnist-5k", split="train")
x_test, y_test = load_digits("mnist-5k", split="test")  # (1000, 1, 28, 28)
# (10, 784)
templates = torch.stack([images[labels == c].mean(0) for c in range(10)]).flatten(1)
eps = torch.randn(x_test.shape, generator=torch.Generator().manual_seed(0))

ts = torch.arange(20, T + 1, 20)
fig, ax = new_figure(size=(6.5, 3.4))
for i, (name, s) in enumerate(schedules.items()):
    acc = []
    for t in ts.tolist():
        xt = q_sample(x_test, t, s, eps=eps).flatten(1)  # (1000, 784)
        pred = torch.cdist(xt, s.alpha_bar[t].float().sqrt() * templates).argmin(1)
        acc.append((pred == y_test).float().mean().item())
    acc = torch.tensor(acc)
    ax.plot(ts / T, acc, color=DIGIT_COLORS[i], label=name)
    print(
        f"{name:>8}: accuracy > 50% on {(acc > 0.5).double().mean().item():.0%} of the steps, "
        f"below 15% on {(acc < 0.15).double().mean().item():.0%}"
    )
ax.axhline(0.1, color="k", lw=0.8, ls=":")
ax.set_xlabel("t / T")
ax.set_ylabel("template-matching accuracy")
ax.legend()
fig.tight_layout()

# %% [markdown]
# **Try it:** make a sigmoid schedule with a smaller temperature,
# `sigmoid_schedule(1000, tau=0.3)` (import it from `diffusion_lessons.lesson02_schedules`), add it
# to `schedules` and rerun the notebook. What happens to the histogram of $\lambda$, and why?
