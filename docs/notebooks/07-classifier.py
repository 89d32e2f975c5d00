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
# # 07 · A digit classifier and the Fréchet distance (notebook)
#
# The hands-on companion to [chapter 07](../../lessons/07-classifier/). In a few seconds on a CPU you
# will:
#
# 1. load the judge the course ships, the digit classifier, and let it read 20 real held-out digits;
# 2. check the Fréchet distance (eq. 7.3) on a case you can do by hand, then measure how the distance
#    between two sets of *real* digits shrinks with their size: it is 0 only in the limit;
# 3. build a "generator" with perfect accuracy and no diversity, and see which metric catches it;
# 4. draw 10 digits from the shipped checkpoint and score them.
#
# Everything here is the package's own code: `diffusion_lessons.lesson07_classifier`.

# %%
import torch

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson05_training import load_trained
from diffusion_lessons.lesson06_sampling import SHIPPED, digit_labels, sample
from diffusion_lessons.lesson07_classifier import (
    classifier_report,
    diversity,
    frechet_distance,
    frechet_floor,
    load_classifier,
    predict_proba,
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
classifier = load_classifier()  # checkpoints/classifier.pt
print(
    f"classifier: {classifier.meta['held_out_accuracy']:.1%} on the held-out {classifier.meta['dataset']} digits"
)

x_train, y_train = load_digits("mnist-5k", "train")  # (4000, 1, 28, 28) in [-1, 1]
x_test, y_test = load_digits("mnist-5k", "test")  # (1000, 1, 28, 28), 100 of each digit

# %% [markdown]
# ## 1. The classifier reads 20 real digits
#
# `predict_proba` gives the classifier's $p_\phi(c \mid x)$. On real digits any mistake is the
# judge's. (The held-out split is sorted by digit, so we draw 20 at random.)

# %%
pick = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(7))[:20]
x20, y20 = x_test[pick], y_test[pick]
p_cls = predict_proba(classifier, x20)  # (20, 10)
fig, ax = new_figure(size=(10, 2.3))
show_images(ax, x20, nrow=10)
print("label  classifier (p)")
for y, pc in zip(y20.tolist(), p_cls):
    flag = "" if pc.argmax() == y else "   <- a mistake"
    print(f"{y:>5}  {pc.argmax().item():>6} ({pc.max():.2f}){flag}")

# %% [markdown]
# ## 2. The Fréchet distance
#
# First a case you can do by hand. In one dimension, with variances $a$ and $b$, eq. (7.3) is
# $(\mu_1 - \mu_2)^2 + (\sqrt a - \sqrt b)^2$: the squared difference of the means plus that of the
# standard deviations.

# %%
m1, a, m2, b = 0.5, 4.0, -1.0, 1.0
print(
    f"frechet_distance: {frechet_distance(torch.tensor([m1]), torch.tensor([[a]]), torch.tensor([m2]), torch.tensor([[b]])):.4f}"
)
print(f"by hand:          {(m1 - m2) ** 2 + (a**0.5 - b**0.5) ** 2:.4f}")

# %% [markdown]
# Now two sets of **real** digits. Both halves of a random split of the 4,000 training digits come
# from the same distribution, so their true Fréchet distance is 0. What the estimate from $n$ digits
# per set gives is something else: a positive number that shrinks roughly like $1/n$ (the dashed line).
# The second column is the floor the course prints beside every score: $n$ real *training* digits
# against the reference, all 1,000 held-out digits, which no generator trains on (`frechet_floor`).

# %%
with torch.no_grad():
    f_train = classifier.features(x_train).double()  # (4000, 128) eq. 7.2's f(x)
with torch.no_grad():
    f_test = classifier.features(x_test).double()  # (1000, 128)
reference = (f_test.mean(0), torch.cov(f_test.T))  # mu, Sigma of the held-out digits
perm = torch.randperm(len(f_train), generator=torch.Generator().manual_seed(0))


def stats(f):
    return f.mean(0), torch.cov(f.T)


sizes = [50, 100, 200, 500, 1000, 2000]
split_fd = []
print("    n   real vs real     floor")
for n in sizes:
    # two disjoint sets of n training digits
    A, B = (
        f_train[perm[:n]],
        f_train[perm[n : 2 * n]],
    )
    split_fd.append(frechet_distance(*stats(A), *stats(B)))
    floor = (
        f"{frechet_floor(classifier, n, reference=reference)[0]:9.1f}"
        if 2 * n <= len(x_train)
        else ""
    )
    print(f"{n:5d}   {split_fd[-1]:12.1f} {floor}")

fig, ax = new_figure(size=(5.5, 3.4))
ax.loglog(sizes, split_fd, "o-", label="two halves of the training digits")
ax.loglog(
    sizes,
    [split_fd[0] * sizes[0] / n for n in sizes],
    "k--",
    lw=0.8,
    label="proportional to 1/n",
)
ax.set(
    xlabel="digits per set, n",
    ylabel="Fréchet classifier distance",
    title="real vs real: 0 only as n grows without end",
)
ax.legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## 3. Perfect accuracy, no diversity
#
# A "generator" that returns the same real training digit every time a class is requested. Each
# sample is a genuine MNIST digit, so the classifier is happy; the set is not. Compare it with 1,000
# real training digits on the three numbers of `diffusion-lessons evaluate` (FD against the
# held-out reference; the diversity of real held-out digits is printed for comparison).

# %%
# one training digit per class
first = torch.stack([(y_train == c).nonzero()[0, 0] for c in range(10)])
labels = digit_labels("0123456789", 100)  # (1000,)
copies = x_train[first][labels]  # (1000, 1, 28, 28)
real_div = diversity(classifier, x_test, y_test)
print(f"{'':>24} {'accuracy':>9} {'FD':>7} {'diversity':>10}")
for name, x, y in (
    ("1,000 real training", x_train[perm[:1000]], y_train[perm[:1000]]),
    ("1 digit per class x100", copies, labels),
):
    acc = classifier_report(classifier, x, y)["accuracy"]
    with torch.no_grad():
        fd = frechet_distance(*stats(classifier.features(x).double()), *reference)
    print(f"{name:>24} {acc:9.1%} {fd:7.1f} {diversity(classifier, x, y):10.2f}")
print(f"{'real held-out digits':>24} {'':>9} {'':>7} {real_div:10.2f}")

# %% [markdown]
# The copies score at least as well as real digits on accuracy, and diversity (eq. 7.5) drops to 0.
# FD sees it too: with $\Sigma_1 = 0$, eq. (7.3) leaves the whole $\operatorname{Tr}\Sigma_2$ of the
# real digits to pay.

# %% [markdown]
# ## 4. Sample 10 digits and score them
#
# The shipped model (`checkpoints/small.pt`), one digit of each class, DDIM with 20 steps, no guidance.

# %%
diffusion, schedule, _ = load_trained(SHIPPED)
y10 = digit_labels("0123456789", 1)
# (10, 1, 28, 28)
x10 = sample(
    diffusion, schedule, y10, steps=20, generator=torch.Generator().manual_seed(0)
)
p_cls = predict_proba(classifier, x10)
fig, ax = new_figure(size=(10, 1.4))
show_images(ax, x10, nrow=10)
print("asked  classifier reads (p)")
for y, pc in zip(y10.tolist(), p_cls):
    print(f"{y:>5}  {pc.argmax().item():>14} ({pc.max():.2f})")

# %% [markdown]
# Where the classifier reads another digit, look at the image yourself: do you agree with it?
#
# Ten samples are far too few for an FD: with $n = 10$ the floor would dwarf any difference
# (section 2). That is why the chapter's numbers come from 1,000 samples. Chapter 08's notebook
# adds a second judge, CLIP.
