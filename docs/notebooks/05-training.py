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
# # 05 · Training (notebook)
#
# The hands-on companion to [chapter 05](../../lessons/05-training/). Training the `small` preset
# takes minutes, so this notebook does not train it: it opens the **shipped checkpoint**
# (`checkpoints/small.pt`, the EMA weights, the configuration and the loss of every step) and takes
# the training loop apart. In a few seconds on a CPU you will:
#
# 1. compute the loss of one batch by hand, line by line (eqs. 5.1, 5.2 and 5.3), and check it
#    against the package's `diffusion_loss`;
# 2. measure the trained model's loss by noise level, and see why one number hides most of it;
# 3. see what the Min-SNR weight (eq. 5.3) changes, and which steps have the largest gradients;
# 4. draw the learning-rate schedule (eq. 5.4) and the EMA decay with its warm-up (eq. 5.5);
# 5. watch gradient clipping at work in the first steps of a fresh model;
# 6. plot the shipped checkpoint's loss history and read it.
#
# Everything here is the package's own code: `diffusion_lessons.lesson05_training`.

# %%
import math

import torch

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson01_forward_noise import q_sample
from diffusion_lessons.lesson04_unet import UNET_PRESETS, UNet
from diffusion_lessons.lesson05_training import (
    config_from_dict,
    diffusion_loss,
    drop_labels,
    ema_decay_at,
    learning_rate,
    load_checkpoint,
    load_trained,
    smooth,
)
from diffusion_lessons.lesson06_sampling import SHIPPED
from diffusion_lessons.plotting import new_figure

# %% tags=["setup"]
# Set-up, not shown on the site: figures inline (the package's plotting module selects
# matplotlib's file backend, Agg), one CPU thread, and no notice from tqdm that
# ipywidgets is absent.
# %matplotlib inline
torch.set_num_threads(1)
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")

# %%
state = load_checkpoint(SHIPPED)
cfg = config_from_dict(state["config"])
# EMA weights, eval mode, the cosine schedule
model, schedule, _ = load_trained(SHIPPED)
print(
    f"{SHIPPED.name}: {state['params']:,} parameters, {state['step']} steps, "
    f"{state['seconds'] / 60:.1f} min of training, {len(state['losses'])} recorded losses"
)
print(
    f"preset small: batch {cfg.batch_size}, lr {cfg.lr:g}, warm-up {cfg.warmup}, EMA {cfg.ema_decay}, "
    f"p_uncond {cfg.p_uncond}, Min-SNR gamma {cfg.min_snr_gamma}, schedule {cfg.schedule}, T = {schedule.T}"
)

# %% [markdown]
# ## 1. One batch of the loss, by hand
#
# `diffusion_loss` draws, from one generator and in this order: a step $t$ per image, the noise
# $\epsilon$, and the label dropout. We repeat its lines one by one with the same generator seed, so
# we must land on exactly the same number.

# %%
# (4000, 1, 28, 28) in [-1, 1], (4000,)
images, labels = load_digits("mnist-5k", split="train")
x0, y = images[:128], labels[:128]  # one batch (B = 128)
gen = torch.Generator().manual_seed(0)

# (B,)  t ~ U{1..T}: the upper bound is exclusive
t = torch.randint(1, schedule.T + 1, (128,), generator=gen)
eps = torch.randn(x0.shape, generator=gen)  # (B, 1, 28, 28)  eps ~ N(0, I)
xt = q_sample(x0, t, schedule, eps=eps)  # (B, 1, 28, 28)  eq. 5.1 = eq. 1.3
y_in = drop_labels(y, cfg.p_uncond, 10, gen)  # (B,)  10 = the null class
with torch.no_grad():
    eps_pred = model(xt, t, y_in)  # (B, 1, 28, 28)
mse = ((eps - eps_pred) ** 2).mean(dim=(1, 2, 3))  # (B,)  eq. 5.2, one number per image
snr = (schedule.alpha_bar / (1 - schedule.alpha_bar))[
    t
].float()  # (B,)  SNR(t), eq. 2.5
weight = snr.clamp(max=cfg.min_snr_gamma) / snr  # (B,)  eq. 5.3

print(f"labels dropped to the null class: {(y_in == 10).sum().item()} of 128")
print(f"plain L_simple     (eq. 5.2): {mse.mean().item():.6f}")
print(
    f"Min-SNR-{cfg.min_snr_gamma:g} weighted (eq. 5.3): {(weight * mse).mean().item():.6f}"
)
with torch.no_grad():
    package = diffusion_loss(
        model,
        x0,
        y,
        schedule,
        cfg.p_uncond,
        torch.Generator().manual_seed(0),
        min_snr_gamma=cfg.min_snr_gamma,
    )
print(f"diffusion_loss with the same seed:  {package.item():.6f}")

# %% [markdown]
# The training loop records the **weighted** loss (the preset caps at gamma, eq. 5.3), so the loss history
# of section 6 is on that scale, not on the scale of plain $L_\text{simple}$.
#
# ## 2. The loss by noise level
#
# The loss is an average over every $t$ at once. Split it by band of $t$, on every third of the 1,000
# held-out digits (334 digits never seen in training), and it tells a much more detailed story.

# %%
x_test, y_test = load_digits("mnist-5k", split="test")  # (1000, 1, 28, 28)
x_test, y_test = x_test[::3], y_test[::3]  # (334, 1, 28, 28): all ten classes
bands = [(1, 20), (21, 100), (101, 300), (301, 600), (601, 1000)]


def band_losses(net, lo, hi, labels_in, seed=0):
    """Plain per-image MSE of eps on the held-out digits, t uniform in lo..hi (same noise for every call)."""
    g = torch.Generator().manual_seed(seed)
    tb = torch.randint(lo, hi + 1, (len(x_test),), generator=g)  # (334,)
    e = torch.randn(x_test.shape, generator=g)  # (334, 1, 28, 28)
    with torch.no_grad():
        pred = net(q_sample(x_test, tb, schedule, eps=e), tb, labels_in)
    return ((e - pred) ** 2).mean(dim=(1, 2, 3)), tb


torch.manual_seed(0)
fresh = UNet(UNET_PRESETS["small"])  # untrained, for comparison
print(
    f"{'t in':>10} {'SNR range':>17} {'trained':>8} {'untrained':>9} {'trained, null label':>20}"
)
for lo, hi in bands:
    ab = schedule.alpha_bar
    s_hi, s_lo = (ab[lo] / (1 - ab[lo])).item(), (ab[hi] / (1 - ab[hi])).item()
    trained, _ = band_losses(model, lo, hi, y_test)
    untrained, _ = band_losses(fresh, lo, hi, y_test)
    null, _ = band_losses(model, lo, hi, torch.full_like(y_test, 10))
    print(
        f"{lo:4d}-{hi:<5d} {s_lo:8.2g} - {s_hi:<7.2g} {trained.mean():8.4f} {untrained.mean():9.4f} {null.mean():20.4f}"
    )

# %% [markdown]
# Three things to notice. The trained loss is nowhere near 0 at small $t$: there, the "noise" is a
# faint grain on an almost clean digit, and part of it cannot be told apart from the digit's own
# fine detail. At large $t$ it is small, because $x_t$ is almost all noise and $\epsilon \approx x_t$ is
# a good guess. And the label changes the loss very little: most at high noise ($t > 600$), where $x_t$ says
# least about which digit it is and the digit is being decided, hardly at all elsewhere.
#
# ## 3. Min-SNR: what the weight changes
#
# Eq. 6.1 turns a noise prediction into a clean-image prediction $\hat x_0$, and
# $\lVert\epsilon - \epsilon_\theta\rVert^2 = \mathrm{SNR}(t)\,\lVert x_0 - \hat x_0\rVert^2$. So measured in
# errors of the clean image, plain $L_\text{simple}$ weighs step $t$ by $\mathrm{SNR}(t)$. How large
# does that get, and how many steps does the shipped run's Min-SNR weight touch?

# %%
snr_all = (schedule.alpha_bar / (1 - schedule.alpha_bar))[1:]  # (T,) SNR(1..T)
gamma = cfg.min_snr_gamma  # the shipped run's cap
for tt in (1, 10, 50, 100, 250, 500, 900):
    s = snr_all[tt - 1].item()
    print(
        f"t = {tt:4d}: SNR = {s:10.4g}, Min-SNR-{gamma:g} weight on the eps-loss = "
        f"{min(s, gamma) / s:.4f}"
    )
print(
    f"steps with SNR > {gamma:g} (down-weighted): {(snr_all > gamma).sum().item()} of "
    f"{schedule.T}"
)

# %% [markdown]
# Which steps push the weights hardest? The gradient norm of the plain loss of the trained model,
# on 64 held-out digits, all at one step $t$:


# %%
def grad_norm_at(net, tt, weighted=False):
    g = torch.Generator().manual_seed(1)
    x, lab = x_test[:64], y_test[:64]
    e = torch.randn(x.shape, generator=g)
    tb = torch.full((64,), tt)
    net.zero_grad()
    loss = ((e - net(q_sample(x, tb, schedule, eps=e), tb, lab)) ** 2).mean()
    if weighted:
        s = snr_all[tt - 1].item()
        loss = loss * min(s, gamma) / s
    loss.backward()
    norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in net.parameters())).item()
    net.zero_grad()
    return loss.item(), norm


print(f"{'t':>5} {'plain loss':>10} {'grad norm':>9} {'weighted grad norm':>19}")
for tt in (2, 10, 50, 150, 300, 500, 800):
    loss_p, g_p = grad_norm_at(model, tt)
    _, g_w = grad_norm_at(model, tt, weighted=True)
    print(f"{tt:5d} {loss_p:10.4f} {g_p:9.3f} {g_w:19.3f}")

# %% [markdown]
# ## 4. The learning rate (eq. 5.4) and the EMA decay (eq. 5.5)
#
# The learning rate climbs linearly for `warmup` steps, then follows half a cosine down to 0. The EMA
# decay is $\min(0.995, (1+k)/(10+k))$ at step $k$: a short memory at first, so that the average is not
# dragged back towards the random initial weights.

# %%
steps = range(cfg.steps)
lrs = [learning_rate(k, cfg) for k in steps]
decay = [ema_decay_at(k, cfg) for k in steps]  # min(0.995, (1 + k) / (10 + k))
fig, (ax1, ax2) = new_figure(1, 2, size=(10, 3.2))
ax1.plot(list(steps), lrs)
ax1.set_xlabel("step")
ax1.set_ylabel("learning rate")
ax1.set_title("eq. 5.4: warm-up, then cosine decay", fontsize=9)
ax2.plot(list(steps), decay)
ax2.set_xlabel("step")
ax2.set_ylabel("EMA decay d")
ax2.set_ylim(0.9, 1.0)
ax2.set_title("eq. 5.5: min(0.995, (1+k)/(10+k))", fontsize=9)
fig.tight_layout()
reach = next(k for k in steps if decay[k] >= cfg.ema_decay)
print(
    f"lr at steps 0, {cfg.warmup - 1}, {cfg.warmup}, {cfg.steps // 2}, {cfg.steps - 1}: "
    + ", ".join(
        f"{learning_rate(k, cfg):.2e}"
        for k in (0, cfg.warmup - 1, cfg.warmup, cfg.steps // 2, cfg.steps - 1)
    )
)
print(
    f"the decay reaches {cfg.ema_decay} at step {reach}; memory 1/(1-d) = {1 / (1 - cfg.ema_decay):.0f} steps after that"
)

# %% [markdown]
# How much of the *initial*, random network is left in the EMA after $k$ steps? Its weight is the
# product of the decays so far. With the warm-up it vanishes at once; with a fixed 0.995 it would
# linger:

# %%
for k in (10, 100, 600, 1200, 3600):
    with_warmup = math.prod(decay[:k])
    print(
        f"after {k:4d} steps: initial weights' share {with_warmup:.1e} with the warm-up, "
        f"{cfg.ema_decay**k:.3f} with a fixed {cfg.ema_decay}"
    )

# %% [markdown]
# ## 5. Gradient clipping in the first steps
#
# `clip_grad_norm_` rescales the whole gradient to norm 1.0 whenever it is longer, and returns the
# norm it measured *before* clipping. Train a fresh `tiny` U-Net for 30 steps with the `small`
# preset's peak learning rate (no warm-up, on purpose) and watch the norms.

# %%
torch.manual_seed(0)
tiny = UNet(UNET_PRESETS["tiny"])
opt = torch.optim.AdamW(tiny.parameters(), lr=cfg.lr)
g = torch.Generator().manual_seed(0)
norms, losses_tiny = [], []
for _ in range(30):
    idx = torch.randint(0, len(images), (64,), generator=g)
    loss = diffusion_loss(tiny, images[idx], labels[idx], schedule, 0.1, g)
    opt.zero_grad()
    loss.backward()
    norms.append(torch.nn.utils.clip_grad_norm_(tiny.parameters(), 1.0).item())
    opt.step()
    losses_tiny.append(loss.item())
print("gradient norm before clipping, steps 1-30:")
print(" ".join(f"{n:.2f}" for n in norms))
print(
    f"clipped on {sum(n > 1 for n in norms)} of 30 steps; loss {losses_tiny[0]:.3f} -> {losses_tiny[-1]:.3f}"
)

# %% [markdown]
# ## 6. The shipped checkpoint's loss history
#
# The loss of every training step is stored in the checkpoint. Each point is one
# batch of 128 images at 128 random steps $t$, so single points jump around; the running mean shows
# the trend.

# %%
losses = state["losses"]
fig, ax = new_figure(size=(8, 3.4))
ax.plot(losses, alpha=0.3, lw=0.7, label="per batch")
ax.plot(smooth(losses, 100), lw=1.6, label="running mean (100 steps)")
ax.set_yscale("log")
ax.set_xlabel("step")
ax.set_ylabel(f"Min-SNR-{gamma:g} weighted loss")
ax.legend()
fig.tight_layout()
n_steps = len(losses)
for lo in (0, 250, 550, n_steps // 3, n_steps // 2, 5 * n_steps // 6, n_steps - 50):
    hi = lo + 50
    window = losses[lo:hi]
    print(f"steps {lo + 1:4d}-{hi:4d}: mean loss {sum(window) / len(window):.4f}")

# %% [markdown]
# The loss falls steeply for a few hundred steps and then creeps. Chapter 05 puts this next to the
# samples drawn during the same run, which keep improving long after the curve looks flat.
#
# **Try it:** train a run of your own (`diffusion-lessons train --preset small --out runs/mine`), load
# its first EMA snapshot with `load_trained("runs/mine/snapshots/ema_001200.pt")` and compare its
# `band_losses` with the shipped model's, band by band. In which band does the model improve most
# between the first snapshot and the last?
