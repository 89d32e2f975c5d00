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
# # 09 · Classifier-free guidance (notebook)
#
# The hands-on companion to [chapter 09](../../lessons/09-guidance/). In a few seconds on a CPU you
# will:
#
# 1. load the shipped checkpoint, one network that is both a conditional and an unconditional model;
# 2. check numerically that the guided prediction (eq. 9.1) at $w = 0$ *is* the conditional prediction
#    and at $w = -1$ the unconditional one, and that the two conventions $w$ and $s = 1 + w$ agree;
# 3. sample one digit of each class at $w = 0, 1, 3$ from the same noise (DDIM, 20 steps), and ask the
#    classifier how sure it is;
# 4. look at what guidance pushes: the clean-image estimates of eq. (9.8), and the size of
#    $\epsilon_c - \epsilon_\varnothing$, the implicit classifier's gradient (eq. 9.5), over $t$.
#
# Everything here is the package's own code: `diffusion_lessons.lesson09_guidance`.

# %%
import time

import torch

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson01_forward_noise import q_sample
from diffusion_lessons.lesson05_training import load_trained
from diffusion_lessons.lesson06_sampling import SHIPPED, sample
from diffusion_lessons.lesson07_classifier import load_classifier, predict_proba
from diffusion_lessons.lesson09_guidance import RECOMMENDED_W, GuidedModel, guided_eps
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
model, schedule, cfg = load_trained(SHIPPED)  # EMA weights, eval mode
null = model.config.num_classes  # the label of ∅
print(
    f"{SHIPPED.name}: {cfg.steps} training steps on {cfg.dataset}, label dropout p_uncond = {cfg.p_uncond}"
)
print(
    f"labels 0..{null - 1} are digits, label {null} is the null class ∅; recommended w = {RECOMMENDED_W:g}"
)

# %% [markdown]
# ## 1. One network, two predictions, and eq. (9.1) at its limits
#
# Take one held-out digit of each class, noise it to $t = 500$ with eq. (1.3), and ask the network for
# $\epsilon_\theta(x_t, t, c)$ (the true label) and $\epsilon_\theta(x_t, t, \varnothing)$ (label 10), in two separate
# calls. Then compute `guided_eps`, which gets both from one batched call, for several $w$.

# %%
x_test, y_test = load_digits("mnist-5k", split="test")
# the first 0, 1, ..., 9
idx = torch.stack([(y_test == d).nonzero()[0, 0] for d in range(10)])
x0, y = x_test[idx], y_test[idx]  # (10, 1, 28, 28), (10,)
t = torch.full((10,), 500)  # (10,)
xt = q_sample(x0, t, schedule, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    eps_c = model(xt, t, y)  # (10, 1, 28, 28) conditional
    eps_u = model(xt, t, torch.full_like(y, null))  # (10, 1, 28, 28) unconditional
    print(f"the label matters: max |eps_c - eps_u| = {(eps_c - eps_u).abs().max():.3f}")
    print(
        f"{'w':>5} {'|eps_w - eps_c|':>16} {'|eps_w - eps_u|':>16} {'|eps_w - eq. 9.2|':>18}"
    )
    for w in (0.0, -1.0, 1.0, 3.0):
        eps_w = guided_eps(model, xt, t, y, w)
        s = 1 + w
        print(
            f"{w:5.1f} {(eps_w - eps_c).abs().max():16.2e} {(eps_w - eps_u).abs().max():16.2e} "
            f"{(eps_w - (eps_u + s * (eps_c - eps_u))).abs().max():18.2e}"
        )

# %% [markdown]
# At $w = 0$ the guided prediction equals the conditional one and at $w = -1$ the unconditional one, up to
# float32 rounding (a batch of 20 and a batch of 10 may be computed in a slightly different order, so the
# last digits can differ); the last column checks that eq. (9.2) with $s = 1 + w$ is the same rule. At
# $w = 1$ and $w = 3$ the guided prediction differs from both: it is an *extrapolation*, beyond the
# conditional prediction.

# %% [markdown]
# ## 2. Same noise, three guidance weights
#
# One digit of each class, from the same initial noise (seed 0), DDIM with 20 steps, at $w = 0, 1, 3$.
# The classifier of chapter 07 then reads each sample; $p(c \mid x)$ is its probability for the *requested*
# digit: eq. (9.7) says guidance should raise it.

# %%
labels = torch.arange(10)
# {w: (10, 1, 28, 28)}
samples = {
    w: sample(
        GuidedModel(model, w),
        schedule,
        labels,
        steps=20,
        generator=torch.Generator().manual_seed(0),
    )
    for w in (0.0, 1.0, 3.0)
}

fig, ax = new_figure(size=(8.3, 2.9))
show_images(
    ax,
    torch.cat(list(samples.values())),
    nrow=10,
    row_labels=[f"w = {w:g}" for w in samples],
)
ax.set_title("same initial noise in every row; DDIM 20 steps", fontsize=9)
fig.tight_layout()

classifier = load_classifier()
print(f"{'w':>4} {'read as requested':>18} {'mean p(c|x)':>12} {'min p(c|x)':>11}")
for w, x in samples.items():
    probs = predict_proba(classifier, x)  # (10, 10)
    p = probs[torch.arange(10), labels]  # (10,) probability of the requested digit
    hits = (probs.argmax(-1) == labels).sum().item()
    print(f"{w:4g} {hits:>15}/10 {p.mean():12.3f} {p.min():11.3f}")

# %% [markdown]
# Ten samples are far too few to measure accuracy (the chapter uses 1,000 per $w$), but two things are
# visible already. Along a column the noise is the same, so the digit keeps its rough pose while guidance
# fixes it, thickens and simplifies it. And the classifier's probability for the requested digit rises, as
# eq. (9.7) predicts.
#
# What does a guided step cost? Time one network call for the 10 images, unguided and guided (one batched
# call on 20 images), and two separate calls for comparison; the best of 20 repeats filters out the noise of
# a shared machine.


# %%
def best_time(fn, repeats=20):
    """The fastest of ``repeats`` runs of fn(), in milliseconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


xt10, t10 = (
    torch.randn(10, 1, 28, 28, generator=torch.Generator().manual_seed(3)),
    torch.full((10,), 500),
)
with torch.no_grad():
    plain = best_time(lambda: model(xt10, t10, labels))
    batched = best_time(lambda: guided_eps(model, xt10, t10, labels, 1.0))
    two_calls = best_time(
        lambda: (
            model(xt10, t10, labels),
            model(xt10, t10, torch.full_like(labels, null)),
        )
    )
print(
    f"one step for 10 images: unguided {plain:.1f} ms, guided in one batched call {batched:.1f} ms "
    f"({batched / plain:.2f}x), guided in two calls {two_calls:.1f} ms ({two_calls / plain:.2f}x)"
)

# %% [markdown]
# The guided step does twice the arithmetic, but the batched call costs less than twice the unguided one:
# the per-call work (the embeddings, Python, allocating memory) is paid once, and a batch of 20 keeps the
# CPU's vector units busier than a batch of 10. Two separate calls pay for everything twice.


# %% [markdown]
# ## 3. What guidance pushes: the clean-image estimates (eq. 9.8)
#
# From $\epsilon$ the sampler estimates the clean image, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}$
# (eq. 6.1). For the held-out 4 at three noise levels, compare the estimate from the unconditional
# prediction, from the conditional one, and from the guided one at $w = 3$; eq. (9.8) says the last is
# $(1 + w)\,\hat x_0(c) - w\,\hat x_0(\varnothing)$.

# %%
digit, w = 4, 3.0
rows, names = [], []
for t_show in (800, 500, 200):
    ab = schedule.alpha_bar[t_show]
    tt = torch.tensor([t_show])
    # (1, 1, 28, 28)
    xt1 = q_sample(
        x0[digit : digit + 1], tt, schedule, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        e_c, e_u = (
            model(xt1, tt, y[digit : digit + 1]),
            model(xt1, tt, torch.tensor([null])),
        )
        e_w = guided_eps(model, xt1, tt, y[digit : digit + 1], w)
    # eq. 6.1, three times
    x0_hat = [(xt1 - (1 - ab).sqrt() * e) / ab.sqrt() for e in (e_u, e_c, e_w)]
    gap = (x0_hat[2] - ((1 + w) * x0_hat[1] - w * x0_hat[0])).abs().max().item()
    print(
        f"t = {t_show}: eq. 9.8 holds to {gap:.1e}; guided estimate spans [{x0_hat[2].min():.2f}, {x0_hat[2].max():.2f}]"
    )
    rows += [xt1] + x0_hat
names = ["x_t", "x0 from ∅", "x0 from c", f"x0, w = {w:g}"]
fig, ax = new_figure(size=(4.2, 3.6))
show_images(
    ax,
    torch.cat(rows),
    nrow=4,
    col_labels=names,
    row_labels=["t = 800", "t = 500", "t = 200"],
)
fig.tight_layout()

# %% [markdown]
# The unconditional estimate is "whichever digit this noisy image suggests": when this notebook was written
# it was a 9 at $t = 800$, the classic 4/9 confusion, and a 4 once less noise hid the open top. The
# conditional estimate is a 4 at every $t$. The guided one exaggerates exactly what separates the two: more ink where a 4 has ink and the
# average digit does not, less where the average digit has ink and a 4 does not. Its range goes beyond
# $[-1, 1]$ (the printed ranges; the figure can only show $[-1, 1]$), which is why the sampler clips
# $\hat x_0$ (chapter 06) before every step.

# %% [markdown]
# ## 4. The size of the push over $t$
#
# How large is $\epsilon_c - \epsilon_\varnothing$ at each noise level? Noise 30 held-out digits (3 per class)
# at steps across the schedule and measure, per image, the root-mean-square over pixels of
# $\epsilon_c - \epsilon_\varnothing$, next to that of $\epsilon_c$ itself (left). By eq. (9.8), one unit of $w$ moves
# the sampler's guess of the clean image by $\hat x_0(c) - \hat x_0(\varnothing) = -\sqrt{(1-\bar\alpha_t)/\bar\alpha_t}\,
# (\epsilon_c - \epsilon_\varnothing)$ (right; $t = 1000$ is left out, where $\bar\alpha_T \approx 2 \cdot 10^{-9}$ and
# $\hat x_0$ means nothing before it is clipped).

# %%
pick = torch.cat([(y_test == d).nonzero()[:3, 0] for d in range(10)])  # (30,)
xs, ys = x_test[pick], y_test[pick]  # (30, 1, 28, 28), (30,)
steps = [1, 10, 25, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 950, 990, 1000]
diff_rms, eps_rms, push_rms = [], [], []
g = torch.Generator().manual_seed(2)
for t_val in steps:
    tt = torch.full((len(ys),), t_val)
    xt_b = q_sample(xs, tt, schedule, generator=g)
    with torch.no_grad():  # one batched call, as in guided_eps
        out = model(
            torch.cat([xt_b, xt_b]),
            torch.cat([tt, tt]),
            torch.cat([ys, torch.full_like(ys, null)]),
        )
    e_c, e_u = out.chunk(2)  # (30, 1, 28, 28) each
    ab = schedule.alpha_bar[t_val]
    # per image, then averaged
    rms = lambda v: v.pow(2).mean(dim=(1, 2, 3)).sqrt().mean().item()
    diff_rms.append(rms(e_c - e_u))
    eps_rms.append(rms(e_c))
    # |x0_hat(c) - x0_hat(∅)|, eq. 9.8
    push_rms.append(rms(((1 - ab) / ab).sqrt() * (e_c - e_u)))

fig, axes = new_figure(1, 2, size=(10, 3.4))
axes[0].plot(steps, diff_rms, "o-", label=r"RMS of $\epsilon_c - \epsilon_\varnothing$")
axes[0].plot(steps, eps_rms, "s--", color="grey", label=r"RMS of $\epsilon_c$")
axes[0].set_yscale("log")
axes[0].set_xlabel("step t")
axes[0].legend(fontsize=8)
axes[0].set_title("what guidance adds to eps, per unit of w", fontsize=9)
axes[1].plot(steps[:-1], push_rms[:-1], "o-", color="tab:red")
axes[1].set_yscale("log")
axes[1].set_xlabel("step t")
axes[1].set_title(
    r"what it moves the clean-image guess: RMS of $\hat x_0(c) - \hat x_0(\varnothing)$",
    fontsize=9,
)
fig.tight_layout()
print(
    f"{'t':>5} {'RMS(eps_c - eps_u)':>19} {'RMS(eps_c)':>11} {'RMS(x0(c) - x0(u))':>19}"
)
for s_, d, e, p in zip(steps, diff_rms, eps_rms, push_rms):
    if s_ in (1, 100, 300, 500, 700, 800, 900, 990):
        print(f"{s_:5d} {d:19.3f} {e:11.3f} {p:19.3f}")

# %% [markdown]
# Two views of the same quantity; the table above prints both. **Left:** the label changes the noise
# prediction by a roughly constant amount over most of the process, a few per cent of $\epsilon$ itself,
# and by much less near $t = T$, where $x_t$ is almost pure noise and the best guess of $\epsilon$ is
# nearly $x_t$, whatever the digit. **Right:** in terms of the image the sampler is heading for, the push
# grows steeply with $t$: compare the last column at $t = 100$ and at $t = 800$. Guidance does its work
# early, in the noisy steps where the sampler decides
# *which* digit and what shape (section 3: at $t = 800$ the unconditional guess of our 4 was a 9); in the
# last few hundred steps it barely changes the image.
#
# **Try it:** apply guidance only on part of the schedule (for example only for $t > 500$) by writing a
# wrapper like `GuidedModel` whose `forward` looks at `t`, and compare the samples of section 2 (chapter 09,
# exercise 4, measures it properly).
