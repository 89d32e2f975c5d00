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
# # 03 · Time and class embeddings (notebook)
#
# The hands-on companion to [chapter 03](../../lessons/03-embeddings/). In a few seconds on a CPU you
# will:
#
# 1. measure how well the time step $t$ can be read off a noisy digit $x_t$ alone, with a simple
#    noise-level estimator: the reason the network is *told* $t$;
# 2. compute sinusoidal embeddings $\mathrm{PE}(t)$ and check that the similarity of two of them depends
#    only on $|t - s|$ (eq. 3.4);
# 3. see why the embedding needs cosines as well as sines;
# 4. show numerically that a one-hot vector through a linear layer (the one-hot `EmbedBlock`) *is* a
#    table lookup (`nn.Embedding`), and count the parameters of both designs.
#
# Everything here is the package's own code: `diffusion_lessons.lesson03_embeddings`.

# %%
import torch
import torch.nn.functional as F
from torch import nn

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson01_forward_noise import q_sample
from diffusion_lessons.lesson02_schedules import linear_schedule
from diffusion_lessons.lesson03_embeddings import (
    ClassEmbedding,
    EmbedBlock,
    TimeEmbedding,
    cosine_similarity_matrix,
    sinusoidal_embedding,
)
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
schedule = linear_schedule(1000)
noise_scale = (
    1 - schedule.alpha_bar
).sqrt()  # (T+1,): sqrt(1 - alpha_bar_t), the noise in x_t
print(
    f"noise to remove: {noise_scale[1]:.3f} at t = 1, {noise_scale[500]:.3f} at t = 500, {noise_scale[1000]:.3f} at t = 1000"
)

# %% [markdown]
# ## 1. Can a network read the time step off the image?
#
# The denoiser sees $x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon$. If it could measure
# the noise level $\sqrt{1-\bar\alpha_t}$ from $x_t$ itself, it would not need to be told $t$. Let us try
# with a classic blind noise estimator: MNIST backgrounds are flat, so the difference of two
# horizontally neighbouring pixels is mostly $\sqrt{1-\bar\alpha_t}\,(\epsilon_i - \epsilon_j)$, of standard
# deviation $\sqrt{2}\sqrt{1-\bar\alpha_t}$. The *median* absolute difference ignores the few pixel pairs on
# a stroke edge; for a Gaussian, median $|z| = 0.6745\,\sigma$.
#
# We calibrate the estimator on 500 training digits (its median value at every 5th step) and then
# read $\hat t$ off each of 500 test digits: the step whose calibrated value is closest.


# %%
def noise_estimate(xt):
    """Blind estimate of the noise std of each image: (B, 1, H, W) -> (B,)."""
    # (B, H * (W - 1)) neighbour differences
    d = (xt[..., :, 1:] - xt[..., :, :-1]).flatten(1)
    return d.abs().median(dim=1).values / (0.6745 * 2**0.5)


x_train, _ = load_digits("mnist-5k", split="train")
x_test, _ = load_digits("mnist-5k", split="test")
x_train, x_test = x_train[:500], x_test[:500]  # (500, 1, 28, 28) each
g = torch.Generator().manual_seed(0)
grid = torch.arange(0, 1001, 5)  # candidate steps
calibration = torch.stack(
    [
        noise_estimate(q_sample(x_train, int(t), schedule, generator=g)).median()
        for t in grid
    ]
)
calibration = torch.cummax(
    calibration, dim=0
).values  # (201,) make it non-decreasing in t: noise only grows

print("t read off x_t for 500 test digits: 10 % / median / 90 %")
print(
    f"{'t':>5} {'true noise':>10} {'estimated':>9} | {'10%':>6} {'median':>6} {'90%':>6}"
)
for t in (10, 50, 100, 200, 300, 400, 500, 600, 700, 800, 1000):
    est = noise_estimate(q_sample(x_test, t, schedule, generator=g))  # (500,)
    t_hat = grid[
        (est[:, None] - calibration[None, :]).abs().argmin(dim=1)
    ].float()  # (500,)
    lo, mid, hi = torch.quantile(t_hat, torch.tensor([0.1, 0.5, 0.9])).tolist()
    print(
        f"{t:5d} {noise_scale[t].item():10.3f} {est.median().item():9.3f} | {lo:6.0f} {mid:6.0f} {hi:6.0f}"
    )

# %% [markdown]
# Up to $t \approx 300$ this three-line observer reads the step to within about 10 %: the image does
# carry its noise level. From $t \approx 500$ on its guesses spread over hundreds of steps, because
# $\sqrt{1-\bar\alpha_t}$ is 0.96 at $t = 500$ and 1.000 at $t = 1000$: every $x_t$ there looks like
# static of the same strength, while the digit's weight $\sqrt{\bar\alpha_t}$ still changes from 0.28
# to 0.006. The image under-determines $t$ exactly where the network has to decide how faint a digit
# to look for. The time embedding removes the guesswork.

# %% [markdown]
# ## 2. Sinusoidal embeddings, and similarity as a function of the gap
#
# `sinusoidal_embedding(t, dim)` returns $\mathrm{PE}(t) = [\sin\omega_k t \,|\, \cos\omega_k t]$ with
# $\omega_k = 10000^{-k/(d/2)}$, eqs. (3.2)–(3.3).

# %%
dim = 64
t = torch.arange(0, 1001)  # (1001,): t = 0..T
pe = sinusoidal_embedding(t, dim)  # (1001, 64)
sim = cosine_similarity_matrix(pe)  # (1001, 1001)
k = torch.arange(dim // 2)
omega = 10_000 ** (-k / (dim // 2))  # (32,) eq. (3.2)
print(
    f"PE: shape {tuple(pe.shape)}, values in [{pe.min().item():.2f}, {pe.max().item():.2f}]"
)
print(f"|PE(t)|^2 = {pe[0].pow(2).sum().item():.1f} = dim/2, for every t")
print(
    f"periods 2 pi / omega_k: {2 * torch.pi / omega[0]:.1f} to {2 * torch.pi / omega[-1]:,.0f} steps"
)
print(
    f"pairs turning < 1 radian over t = 0..1000: {(omega * 1000 < 1).sum().item()} of {dim // 2}"
)

# Eq. (3.4): the similarity of PE(t) and PE(t + d) must not depend on t.
gaps = (1, 2, 5, 10, 50, 100, 200, 500)
print(f"{'|t - s|':>8} " + " ".join(f"{d:>6}" for d in gaps))
for t0 in (0, 300, 450):
    print(
        f"{'t = ' + str(t0):>8} "
        + " ".join(f"{sim[t0, t0 + d].item():6.3f}" for d in gaps)
    )
worst = max((sim.diagonal(d) - sim[0, d]).abs().max().item() for d in range(1001))
print(f"largest |sim(t, t + d) - sim(0, d)|, all t and d: {worst:.1e}")

# %%
fig, ax = new_figure(size=(7, 3.2))
d = torch.arange(0, 501)
ax.plot(d, sim[0, :501], lw=1.2, label="measured, from t = 0")
# (501,): (2/dim) sum_k cos(omega_k d)
theory = torch.cos(omega[None, :] * d[:, None].float()).mean(dim=1)
ax.plot(d, theory, "k--", lw=0.8, label="eq. (3.4): mean of cos(omega_k d)")
ax.set_xlabel("|t - s|")
ax.set_ylabel("cos-similarity of PE(t), PE(s)")
ax.legend()
fig.tight_layout()

# %% [markdown]
# The similarity drops fast over the first few steps (the fast frequencies decorrelate) and then
# slowly; it never falls below about 0.2 because the slowest pairs barely turn between $t = 0$ and
# $t = 1000$. Those slow pairs are, in effect, a smooth ramp $\sin\omega t \approx \omega t$: a
# "how far along" signal.

# %% [markdown]
# ## 3. Why cosines too?
#
# Build an embedding of sines only and compare. Two problems appear at once: $\mathrm{PE}(0)$ is the zero
# vector (so its cosine similarity is undefined), and similarity now depends on *where* you are,
# not only on the gap, because $\sin a \sin b = \tfrac12[\cos(a-b) - \cos(a+b)]$.

# %%
angles = t[:, None].float() * omega[None, :]  # (1001, 32)
sin_only = torch.sin(angles)  # (1001, 32)
print(f"sines only: |PE(0)| = {sin_only[0].norm().item():.1f}")
sim_sin = cosine_similarity_matrix(sin_only[1:])  # rows are t = 1..1000
for t0 in (1, 100, 400):
    print(
        f"t = {t0:3d} and t + 10: sines only {sim_sin[t0 - 1, t0 + 9].item():+.3f}, "
        f"sines and cosines {sim[t0, t0 + 10].item():+.3f}"
    )

# %% [markdown]
# With the cosines, one pair $(\sin\omega t, \cos\omega t)$ is a point on the unit circle at angle
# $\omega t$, and moving from $t$ to $t + \Delta$ *rotates* it by $\omega\Delta$, whatever $t$ is. That
# rotation is a fixed linear map, which a linear layer can learn once for all $t$.

# %% [markdown]
# ## 4. The time MLP
#
# `TimeEmbedding(dim, out_dim)` puts $\mathrm{PE}(t)$ through Linear → SiLU → Linear, eq. (3.5). With the
# `small` U-Net's width (128):

# %%
time_embed = TimeEmbedding(128, 128)
e_t = time_embed(torch.tensor([1, 500, 1000]))  # (3, 128)
print(
    "e_t:",
    tuple(e_t.shape),
    f"parameters: {sum(p.numel() for p in time_embed.parameters()):,}",
)
print(f"a table with one row per step: {1001 * 128:,} parameters")

# %% [markdown]
# ## 5. One-hot through a linear layer *is* a table lookup
#
# The one-hot `EmbedBlock` takes `F.one_hot(y, K).float()` through Linear → GELU → Linear. The first
# layer computes $W\,\mathrm{onehot}(y) + b$, and multiplying a matrix by the $y$-th unit vector picks
# its $y$-th column. So it is `nn.Embedding` with the table $W^\top$, plus a bias.

# %%
K, width = 10, 32
torch.manual_seed(0)
block = EmbedBlock(K, width)
labels = torch.arange(K)  # (10,): every digit once
one_hot = F.one_hot(labels, K).float()  # (10, 10)

first = block.model[0]  # nn.Linear(10, 32)
via_matmul = first(one_hot)  # (10, 32): W onehot(y) + b
via_lookup = first.weight.T[labels] + first.bias  # (10, 32): column y of W, plus b
print(
    f"first layer, matmul vs lookup: max difference {(via_matmul - via_lookup).abs().max().item():.1e}"
)

# The whole block only ever sees K different inputs, so it is a K-row table as well:
table = nn.Embedding.from_pretrained(block(one_hot).view(K, width))
gap = (block(one_hot).view(K, width) - table(labels)).abs().max().item()
print(f"whole block vs a {K}-row nn.Embedding: max difference {gap:.1e}")

# %% [markdown]
# Same function, different bookkeeping. Count the parameters, and look at "no class":

# %%
class_embed = ClassEmbedding(K, width)
print(
    f"EmbedBlock({K}, {width}):     {sum(p.numel() for p in block.parameters()):5,} parameters"
)
print(
    f"ClassEmbedding({K}, {width}): {sum(p.numel() for p in class_embed.parameters()):5,} parameters"
)
print(
    f"  a table of {K + 1} rows: digits 0..9 and the null class {class_embed.null_class}"
)

no_class_seed = block(
    torch.zeros(1, K)
).flatten()  # the one-hot design's "no class": all-zero one-hot
no_class_ours = class_embed(torch.tensor([class_embed.null_class]))[0]
print("one-hot 'no class' = W2 GELU(b1) + b2, made of shared biases:")
print("   ", [round(v, 3) for v in no_class_seed[:4].tolist()], "...")
print(f"our null class = row {K} of the table, parameters of its own:")
print("   ", [round(v, 3) for v in no_class_ours[:4].tolist()], "...")

# %% [markdown]
# Labels outside $0..K$ are refused with a message that says what to do:

# %%
try:
    class_embed(torch.tensor([3, 11]))
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# **Try it:** feed the embedding $t/T$ instead of $t$, as some course notebooks do:
# `sinusoidal_embedding(torch.arange(0, 1001) / 1000, 64)` (it accepts floats). Recompute the table of
# section 2. How many steps apart must two embeddings be before their similarity drops below 0.9?
