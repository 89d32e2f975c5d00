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
# # 01 · Forward noise (notebook)
#
# The hands-on companion to [chapter 01](../../lessons/01-forward-noise/). In a few seconds on a CPU you
# will:
#
# 1. load a few real MNIST digits and noise them with the closed form $q(x_t \mid x_0)$ (`q_sample`);
# 2. look at a finer noise progression than the chapter's figure;
# 3. check numerically that $t$ small steps of the chain land on the same distribution as one jump;
# 4. check the variance bookkeeping $\operatorname{Var}[x_t] = \bar\alpha_t \operatorname{Var}[x_0] + 1 - \bar\alpha_t$;
# 5. measure *when* each digit stops being recognisable, with a simple template-matching observer.
#
# Everything here is the package's own code: `diffusion_lessons.lesson01_forward_noise`.
# Download this notebook with the link at the top of the page, or open the `.py` file with Jupyter
# (via jupytext) and run it yourself.

# %%
import torch

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson01_forward_noise import (
    forward_chain,
    linear_schedule,
    q_sample,
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
# the DDPM schedule: beta from 1e-4 to 0.02 over T = 1000 steps
schedule = linear_schedule(1000)
print(
    f"T = {schedule.T}, arrays of length {len(schedule.alpha_bar)}, alpha_bar[0] = {schedule.alpha_bar[0].item()}"
)

# %% [markdown]
# ## 1. A few digits, noised in one jump
#
# `load_digits("mnist-5k")` returns real MNIST digits bundled with the course (no download), as a
# float tensor of shape `(N, 1, 28, 28)` with pixels in $[-1, 1]$. We take the first 1, 7, 8 and 5
# (the digits chapter 01 compares in section 1.9) and noise them at
# $t = 0, 100, 200, \dots, 700$ with `q_sample`, eq. (1.3):
# $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$.
# Each row uses one fixed $\epsilon$, so only $t$ changes from column to column.

# %%
images, labels = load_digits("mnist-5k", split="train")
digits = (1, 7, 8, 5)
# (4, 1, 28, 28)
x0 = torch.stack([images[(labels == d).nonzero()[0, 0]] for d in digits])
print(
    "x0:", tuple(x0.shape), f"pixels in [{x0.min().item():.0f}, {x0.max().item():.0f}]"
)

steps = list(range(0, 701, 100))
# (4, 1, 28, 28)
eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
# (4, 8, 1, 28, 28)
cols = torch.stack([q_sample(x0, t, schedule, eps=eps) for t in steps], dim=1)

fig, ax = new_figure(size=(1.2 * len(steps), 1.3 * len(digits)))
show_images(ax, cols.flatten(0, 1), nrow=len(steps))
# label each column: tiles are 28 pixels wide plus 2 of padding
for k, t in enumerate(steps):
    ax.text(2 + 30 * k + 14, -2, f"t={t}", ha="center", va="bottom", fontsize=9)

for t in steps:
    ab = schedule.alpha_bar[t].item()
    print(f"t = {t:3d}: x_t = {ab**0.5:.3f} * x0 + {(1 - ab) ** 0.5:.3f} * eps")

# %% [markdown]
# Between $t = 200$ (signal weight 0.81) and $t = 500$ (0.28) the strokes sink into the noise.
# Which digit do *you* lose first? Write your answer down before you read section 4.

# %% [markdown]
# ## 2. The chain and the closed form agree
#
# `forward_chain` applies the one-step kernel, eq. (1.1), $t$ times; `q_sample` jumps there at
# once. Run both many times from the same four pixels (two on the stroke, $x_0 = +1$, two on the
# background, $x_0 = -1$) and compare the sample mean and standard deviation of each pixel with
# eq. (1.2): mean $\sqrt{\bar\alpha_t}\,x_0$, standard deviation $\sqrt{1-\bar\alpha_t}$.

# %%
t, n = 300, 20_000
# (1, 1, 2, 2): stroke, stroke, background, background
pixels = torch.tensor([1.0, 1.0, -1.0, -1.0]).view(1, 1, 2, 2)
batch = pixels.expand(n, 1, 2, 2).clone()  # (n, 1, 2, 2): the same four pixels n times
g = torch.Generator().manual_seed(0)
chain = forward_chain(batch, t, schedule, generator=g)  # t small steps, eq. (1.1)
closed = q_sample(batch, t, schedule, generator=g)  # one jump, eq. (1.3)

ab = schedule.alpha_bar[t].item()
print(f"t = {t}, alpha_bar_t = {ab:.4f}, {n} draws per pixel")
print(
    f"{'x0':>5} | {'theory mean':>11} {'chain':>7} {'closed':>7} | {'theory std':>10} {'chain':>7} {'closed':>7}"
)
for i, x in enumerate(pixels.flatten().tolist()):
    c, q = chain.flatten(1)[:, i], closed.flatten(1)[:, i]
    print(
        f"{x:+5.0f} | {ab**0.5 * x:+11.3f} {c.mean().item():+7.3f} {q.mean().item():+7.3f} | "
        f"{(1 - ab) ** 0.5:10.3f} {c.std().item():7.3f} {q.std().item():7.3f}"
    )

# %% [markdown]
# With 20,000 draws the sampling error of a mean is about $0.78 / \sqrt{20000} \approx 0.006$, so
# agreement to two decimals is all we can ask for, and we get it. The chain took 300 passes over
# the batch; the closed form took one. That is why training uses `q_sample`.

# %% [markdown]
# ## 3. Variance preserving, but MNIST is not unit-variance
#
# Eq. (1.3) gives $\operatorname{Var}[x_t] = \bar\alpha_t \operatorname{Var}[x_0] + (1-\bar\alpha_t)$
# (eq. 1.4 of the chapter). If $\operatorname{Var}[x_0] = 1$ this is 1 for every $t$. MNIST
# pixels in $[-1, 1]$ are mostly background ($-1$), so their variance is well below 1. Measure it:

# %%
x0_all = images[:1000]  # (1000, 1, 28, 28)
var0 = x0_all.var().item()
print(
    f"MNIST (mnist-5k, 1000 digits): pixel mean {x0_all.mean().item():+.3f}, variance {var0:.3f}"
)
g = torch.Generator().manual_seed(1)
for t in (0, 100, 250, 500, 1000):
    xt = q_sample(x0_all, t, schedule, generator=g)
    ab = schedule.alpha_bar[t].item()
    print(
        f"t = {t:4d}: measured Var[x_t] = {xt.var().item():.3f}, eq. (1.4) predicts {ab * var0 + 1 - ab:.3f}"
    )

# %% [markdown]
# ## 4. When does a digit stop being recognisable?
#
# "Recognisable" needs an observer. The simplest honest one is a **template matcher**: average the
# 400 training images of each class into ten templates $\mu_0, \dots, \mu_9$; label a noisy test
# image $x_t$ with the class whose *scaled* template $\sqrt{\bar\alpha_t}\,\mu_c$ is nearest.
# (Under eq. 1.3 the mean of a noisy digit of class $c$ is exactly $\sqrt{\bar\alpha_t}\,\mu_c$.)
# It is a weak classifier (about 80 % on clean digits) but it sees every pixel at once,
# and it never gets tired. We run it on the 1,000 held-out test digits (100 per class), all noised
# with the same seed.

# %%
x_test, y_test = load_digits("mnist-5k", split="test")  # (1000, 1, 28, 28)
# (10, 784)
templates = torch.stack([images[labels == c].mean(0) for c in range(10)]).flatten(1)
eps_test = torch.randn(x_test.shape, generator=torch.Generator().manual_seed(0))

print(
    f"{'t':>4} {'alpha_bar':>9} {'all':>5} | " + " ".join(f"{c:>4}" for c in range(10))
)
for t in (0, 200, 300, 400, 500, 600, 700, 800):
    xt = q_sample(x_test, t, schedule, eps=eps_test).flatten(1)  # (1000, 784)
    pred = torch.cdist(xt, schedule.alpha_bar[t].float().sqrt() * templates).argmin(1)
    per_class = [(pred[y_test == c] == c).float().mean().item() for c in range(10)]
    print(
        f"{t:4d} {schedule.alpha_bar[t].item():9.4f} {(pred == y_test).float().mean().item():5.2f} | "
        + " ".join(f"{a:4.2f}" for a in per_class)
    )

# %% [markdown]
# Read the columns for 1, 7, 8 and 5 (chance level is 0.10). The chapter discusses what this says
# about the common guess that 1 and 7 stay readable longer than 8 and 5, and why the
# forward process itself treats every digit the same.
#
# Why do some classes fade first? One ingredient is how close each class's template is to the
# nearest other template (Euclidean distance, in pixel units of $[-1, 1]$); another might be how
# much ink a digit has (pixels brighter than mid-grey):

# %%
# (10, 10)
dist = torch.cdist(templates, templates) + torch.diag(torch.full((10,), float("inf")))
for c in range(10):
    nearest = dist[c].argmin().item()
    ink = (images[labels == c] > 0).float().sum((1, 2, 3)).mean().item()
    print(
        f"digit {c}: nearest template {nearest} at {dist[c, nearest].item():.1f}, ink {ink:5.1f} pixels"
    )

# %% [markdown]
# **Try it:** change `schedule` to `cosine_schedule(1000)` from `diffusion_lessons.lesson02_schedules`
# and rerun the accuracy cell above. How much later does each digit fade? (Chapter 02 explains why.)
