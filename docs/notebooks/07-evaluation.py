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
# # 07 · Evaluation (notebook)
#
# The hands-on companion to [chapter 07](../../lessons/07-evaluation/). In a few seconds on a CPU you
# will:
#
# 1. load the two judges the course ships, the digit classifier and the offline digit-CLIP, and let
#    them read 20 real held-out digits;
# 2. check the Fréchet distance (eq. 7.3) on a case you can do by hand, then measure how the distance
#    between two sets of *real* digits shrinks with their size: it is 0 only in the limit;
# 3. build a "generator" with perfect accuracy and no diversity, and see which metric catches it;
# 4. look inside CLIP: the similarity matrix its loss (eq. 8.1) works on, zero-shot classification with
#    prompt templates (eq. 8.2), and a prompt it was never trained on;
# 5. ask whether low CLIP scores for some generated digits are the digit's fault or the judge's;
# 6. draw 10 digits from the shipped checkpoint and score them.
#
# Everything here is the package's own code: `diffusion_lessons.lesson07_evaluation`.

# %%
import json

import open_clip
import torch
import torch.nn.functional as F

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson05_training import load_trained
from diffusion_lessons.lesson06_sampling import SHIPPED, digit_labels, sample
from diffusion_lessons.lesson07_evaluation import (
    DIGIT_WORDS,
    PROMPTS,
    classifier_report,
    clip_input,
    clip_scores,
    diversity,
    frechet_distance,
    frechet_floor,
    load_classifier,
    load_clip,
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
# checkpoints/clip-digits.pt: hub weights cannot be downloaded offline
clip = load_clip("digit-clip")
print(
    f"classifier: {classifier.meta['held_out_accuracy']:.1%} on the held-out {classifier.meta['dataset']} digits"
)
print("CLIP weights:", clip.label)

x_train, y_train = load_digits("mnist-5k", "train")  # (4000, 1, 28, 28) in [-1, 1]
x_test, y_test = load_digits("mnist-5k", "test")  # (1000, 1, 28, 28), 100 of each digit

# %% [markdown]
# ## 1. Two judges read 20 real digits
#
# `predict_proba` gives the classifier's $p_\phi(c \mid x)$; `clip_scores` gives CLIP's zero-shot
# $p_\text{CLIP}(c \mid x)$, eq. (8.2), averaged over the six prompt templates. On real digits any
# mistake is the judge's. (The held-out split is sorted by digit, so we draw 20 at random.)

# %%
pick = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(7))[:20]
x20, y20 = x_test[pick], y_test[pick]
p_cls = predict_proba(classifier, x20)  # (20, 10)
p_clip = clip_scores(clip.model, clip.tokenizer, None, x20)  # (20, 10)
fig, ax = new_figure(size=(10, 2.3))
show_images(ax, x20, nrow=10)
print("label  classifier (p)   CLIP (p)")
for y, pc, pk in zip(y20.tolist(), p_cls, p_clip):
    flag = "" if pc.argmax() == y == pk.argmax() else "   <- a judge disagrees"
    print(
        f"{y:>5}  {pc.argmax().item():>6} ({pc.max():.2f})   {pk.argmax().item():>3} ({pk.max():.2f}){flag}"
    )

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
# The second column is the floor the course prints beside every score: $n$ real *held-out* digits
# against all 4,000 training digits (`frechet_floor`).

# %%
with torch.no_grad():
    f_train = classifier.features(x_train).double()  # (4000, 128) eq. 7.2's f(x)
reference = (f_train.mean(0), torch.cov(f_train.T))  # mu, Sigma of the training digits
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
        if n <= len(x_test)
        else "   (only 1,000 held out)"
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
# real held-out digits on the three numbers of `diffusion-lessons evaluate`.

# %%
# one training digit per class
first = torch.stack([(y_train == c).nonzero()[0, 0] for c in range(10)])
labels = digit_labels("0123456789", 100)  # (1000,)
copies = x_train[first][labels]  # (1000, 1, 28, 28)
real_div = diversity(classifier, x_test, y_test)
print(f"{'':>24} {'accuracy':>9} {'FD':>7} {'diversity':>10}")
for name, x, y in (
    ("1,000 real held-out", x_test, y_test),
    ("1 digit per class x100", copies, labels),
):
    acc = classifier_report(classifier, x, y)["accuracy"]
    with torch.no_grad():
        fd = frechet_distance(*stats(classifier.features(x).double()), *reference)
    print(f"{name:>24} {acc:9.1%} {fd:7.1f} {diversity(classifier, x, y):10.2f}")

# %% [markdown]
# The copies score at least as well as real digits on accuracy, and diversity (eq. 7.5) drops to 0.
# FD sees it too: with $\Sigma_1 = 0$, eq. (7.3) leaves the whole $\operatorname{Tr}\Sigma_2$ of the
# real digits to pay.

# %% [markdown]
# ## 4. Inside CLIP
#
# CLIP's loss, eq. (8.1), works on the matrix of scaled cosines between every image and every caption
# of a batch. Here is one such batch: ten held-out digits, one per class, and the captions
# "a handwritten digit zero." … "a handwritten digit nine.". Training pushes the diagonal up and
# everything else down, row-wise (which caption?) and column-wise (which image?).

# %%
idx = torch.stack([(y_test == c).nonzero()[0, 0] for c in range(10)])
model = clip.model.eval()
with torch.no_grad():
    # (10, 64)
    f = F.normalize(model.encode_image(clip_input(model, x_test[idx])), dim=-1)
    # (10, 64)
    g = F.normalize(
        model.encode_text(
            clip.tokenizer([f"a handwritten digit {w}." for w in DIGIT_WORDS])
        ),
        dim=-1,
    )
    s = model.logit_scale.exp()
    logits = s * f @ g.T  # (10, 10)
    loss = open_clip.ClipLoss()(f, g, s)
print(
    f"learned temperature s = exp(logit_scale) = {s.item():.1f} (CLIP starts at 1/0.07 = 14.3)"
)
print(
    f"ClipLoss on this batch: {loss.item():.3f}   (chance: log 10 = {torch.log(torch.tensor(10.0)).item():.3f})"
)
fig, ax = new_figure(size=(4.6, 4))
ax.imshow(logits.numpy(), cmap="viridis")
ax.set(
    xticks=range(10),
    yticks=range(10),
    xlabel="caption: a handwritten digit …",
    ylabel="image of digit",
    title="s · cos(image, caption)",
)
ax.grid(False)

# %% [markdown]
# **Zero-shot with prompt templates.** Eq. (8.2) applies the softmax per template and averages. Each
# template's probability of the true digit, for three held-out digits, then the ensemble:

# %%
for c in (1, 5, 8):
    x = x_test[idx[c]][None]
    row = [
        clip_scores(model, clip.tokenizer, None, x, templates=(t,))[0, c].item()
        for t in PROMPTS
    ]
    print(
        f"digit {c}: "
        + "  ".join(f"{p:.2f}" for p in row)
        + f"   ensemble {clip_scores(model, clip.tokenizer, None, x)[0, c].item():.2f}"
    )
print("templates, in that order:")
for t in PROMPTS:
    print("  ", t)

# %% [markdown]
# Every template gives nearly the same number, and for this 5 a wrong one: it is one of digit-CLIP's 63
# mistakes on the held-out digits, and averaging cannot fix a mistake that all templates share.
#
# Digit-CLIP was trained on exactly those six templates. How does it do with wordings it has never seen?

# %%
print("zero-shot accuracy on the 1,000 held-out digits with the templates ...")
for templates in (
    PROMPTS,
    ("an image of a {word}",),
    ("{digit}",),
    ("a photo of a cat",),
):
    p = clip_scores(model, clip.tokenizer, None, x_test, templates=templates)
    name = "the six training templates" if templates == PROMPTS else repr(templates[0])
    print(f"{(p.argmax(-1) == y_test).float().mean().item():6.1%}  {name}")

# %% [markdown]
# New wordings cost nothing, as long as they contain the digit's word or numeral: the six templates
# share their other words across all ten digits, so the only thing digit-CLIP ever needed to learn
# from a caption was that one token. Its text encoder is a lookup of ten concepts, not an
# understanding of language. The last "template" names no digit at all, so all ten prompts are
# identical, the softmax is uniform, and accuracy falls to chance.
#
# ## 5. Is it the digit or the judge?
#
# A common observation is that CLIP scores the 1, 0 and 7 high and the 5, 3 and 8 low. For the shipped model
# `diffusion-lessons evaluate` wrote the per-class CLIP score $p_\text{CLIP}(y \mid x)$ of 1,000 generated
# digits to `docs/figures/07_evaluate_w0.json`. Put it beside the same score on *real* held-out digits
# (where no low score can be the generator's fault) and beside the classifier's accuracy on the
# generated digits ("CLIP" below is the mean $p_\text{CLIP}(y \mid x)$ per requested digit).

# %%
report = json.loads(
    (SHIPPED.parents[1] / "docs" / "figures" / "07_evaluate_w0.json").read_text()
)
p_real = clip_scores(model, clip.tokenizer, None, x_test)
clip_real = [p_real[y_test == c, c].mean().item() for c in range(10)]
gen, acc = report["clip_per_class"], report["per_class"]
print("digit           " + "".join(f"{c:>5}" for c in range(10)))
print("CLIP, real      " + "".join(f"{v:5.2f}" for v in clip_real))
print("CLIP, generated " + "".join(f"{v:5.2f}" for v in gen))
print("classifier, gen." + "".join(f"{v:5.2f}" for v in acc))
for name, v in (("real", clip_real), ("generated", gen)):
    order = sorted(range(10), key=lambda c: -v[c])
    print(f"CLIP on {name:>9} digits: highest {order[:3]}, lowest {order[-3:]}")
r = torch.corrcoef(torch.tensor([clip_real, gen]))[0, 1].item()
print(f"correlation of the two CLIP lines across the ten digits: {r:.2f}")
print(
    "CLIP weights:",
    report["clip_weights"].split(" (")[0],
    "(checkpoints/clip-digits.pt)",
)

# %% [markdown]
# ## 6. Sample 10 digits and score them
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
p_clip = clip_scores(model, clip.tokenizer, None, x10)
fig, ax = new_figure(size=(10, 1.4))
show_images(ax, x10, nrow=10)
print("asked  classifier reads (p)   CLIP score p(y|x)")
for y, pc, pk in zip(y10.tolist(), p_cls, p_clip):
    print(f"{y:>5}  {pc.argmax().item():>14} ({pc.max():.2f})   {pk[y]:.2f}")

# %% [markdown]
# Where the two judges disagree, look at the image yourself: which judge would you believe?
#
# Ten samples are far too few for an FD: with $n = 10$ the floor would dwarf any difference
# (section 2). That is why the chapter's numbers come from 1,000 samples.
#
# **Try it:** draw 20 candidates per digit instead of one and keep the one CLIP likes best
# (`rerank`, eq. 8.3). Does the classifier agree with CLIP's choices more often than with the first
# draw?
