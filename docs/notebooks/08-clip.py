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
# # 08 · CLIP scoring and re-ranking (notebook)
#
# The hands-on companion to [chapter 08](../../lessons/08-clip/). In a few seconds on a CPU you
# will:
#
# 1. load the two judges the course ships, the digit classifier and the offline digit-CLIP, and let
#    them read 20 real held-out digits;
# 2. look inside CLIP: the similarity matrix its loss (eq. 8.1) works on, zero-shot classification with
#    prompt templates (eq. 8.2), and a prompt it was never trained on;
# 3. ask whether low CLIP scores for some generated digits are the digit's fault or the judge's;
# 4. draw 10 digits from the shipped checkpoint and score them.
#
# Everything here is the package's own code: `diffusion_lessons.lesson08_clip`, with the
# classifier of `diffusion_lessons.lesson07_classifier`.

# %%
import json

import open_clip
import torch
import torch.nn.functional as F

from diffusion_lessons.data import load_digits
from diffusion_lessons.lesson05_training import load_trained
from diffusion_lessons.lesson06_sampling import SHIPPED, digit_labels, sample
from diffusion_lessons.lesson07_classifier import load_classifier, predict_proba
from diffusion_lessons.lesson08_clip import (
    DIGIT_WORDS,
    PROMPTS,
    clip_input,
    clip_scores,
    load_clip,
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
# ## 2. Inside CLIP
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
# ## 3. Is it the digit or the judge?
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
# (chapter 07's notebook, section 2). That is why the chapter's numbers come from 1,000 samples.
#
# **Try it:** draw 20 candidates per digit instead of one and keep the one CLIP likes best
# (`rerank`, eq. 8.3). Does the classifier agree with CLIP's choices more often than with the first
# draw?
