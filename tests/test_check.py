"""The exercise checker (`diffusion-lessons check N FILE`): it passes correct code,
flags broken code usefully.

For every lesson with an exercise:
(a) a file that re-exports the course's own functions passes every property (exit status
    0), and so does a learner's own, independent correct implementation (GOOD[n]);
(b) the untouched template is all TODO, never FAIL (exit status 1);
(c) deliberately broken variants of the learner's implementation FAIL the property that
    pins the bug, with a message that names it, and with the property's hint;
(d) files that cannot be loaded (syntax error, failing import, missing file) give exit
status 2 and a clear message;
(e) the JSON report is valid and complete;
(f) hostile files (sys.exit, os._exit, endless loops, floods of prints, patching the
    checker) end in a report and a JSON file within the time limit, never exit 0.
Most tests run the checks in this process (``isolate=False``) for speed; the hostile
ones run them as the command does, in a separate process.
Also: the templates have the course's signatures, copy_template and list_properties
work.
"""

# ruff: noqa: E501 - the learner-style sources in strings keep their long lines

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import inspect
import io
import json
import math
import subprocess
import sys
import textwrap
import time

import pytest

from diffusion_lessons import properties
from diffusion_lessons.check import (
    add_check_arguments,
    batch_check,
    check_command,
    copy_template,
    list_properties,
    run_check,
    template_path,
)

LESSONS = properties.lessons()
EXERCISES = {n: properties.load(n) for n in LESSONS}


def check(
    tmp_path, lesson: int, source: str, name: str = "mine.py"
) -> tuple[int, dict, str]:
    """Write ``source`` to a file, check it; returns (exit status, JSON report, printed
    report).
    """
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    out = io.StringIO()
    status = run_check(lesson, path, tmp_path / f"{name}.json", out=out, isolate=False)
    return status, json.loads((tmp_path / f"{name}.json").read_text()), out.getvalue()


def by_name(report: dict) -> dict[str, dict]:
    return {r["name"]: r for r in report["results"]}


# ---------------------------------------------------------------------------
# Correct implementations written as a learner would (not copies of the course's code)
# ---------------------------------------------------------------------------

GOOD = {
    1: """
        import torch
        from diffusion_lessons.lesson01_forward_noise import Schedule

        def schedule_from_betas(beta, name="custom"):
            beta = torch.as_tensor(beta, dtype=torch.float64).flatten()
            if len(beta) == 0 or not torch.isfinite(beta).all() or (beta <= 0).any() or (beta >= 1).any():
                raise ValueError("every beta must lie strictly between 0 and 1")
            beta = torch.cat([torch.zeros(1, dtype=torch.float64), beta])
            alpha = 1 - beta
            return Schedule(beta=beta, alpha=alpha, alpha_bar=torch.cumprod(alpha, 0), name=name)

        def forward_step(x_prev, t, schedule, generator=None):
            b = schedule.beta[t].item()
            eps = torch.randn(x_prev.shape, generator=generator, dtype=x_prev.dtype)
            return (1 - b) ** 0.5 * x_prev + b ** 0.5 * eps

        def q_sample(x0, t, schedule, eps=None, generator=None):
            if eps is None:
                eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
            t = torch.as_tensor(t).long().expand(x0.shape[0])
            if (t < 0).any() or (t > schedule.T).any():
                raise ValueError("t must lie in 0..T")
            ab = schedule.alpha_bar[t].to(x0.dtype).view(-1, 1, 1, 1)
            return ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    """,
    2: """
        import math
        import torch
        from diffusion_lessons.lesson01_forward_noise import schedule_from_betas

        def linear_schedule(T=1000, beta_start=1e-4, beta_end=0.02):
            if int(T) != T or T < 1 or not 0 < beta_start <= beta_end < 1:
                raise ValueError("need T >= 1 and 0 < beta_start <= beta_end < 1")
            return schedule_from_betas(torch.linspace(beta_start, beta_end, int(T), dtype=torch.float64), "linear")

        def schedule_from_alpha_bar(alpha_bar, name, max_beta=0.999):
            alpha_bar = torch.as_tensor(alpha_bar, dtype=torch.float64)
            if len(alpha_bar) < 2 or alpha_bar[0] != 1:
                raise ValueError("alpha_bar must start with alpha_bar_0 = 1")
            beta = 1 - alpha_bar[1:] / alpha_bar[:-1]
            return schedule_from_betas(beta.clamp(1e-12, max_beta), name)

        def cosine_schedule(T=1000, s=0.008, max_beta=0.999):
            if int(T) != T or T < 1 or s < 0:
                raise ValueError("need a whole T >= 1 and s >= 0")
            t = torch.arange(int(T) + 1, dtype=torch.float64)
            f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
            return schedule_from_alpha_bar(f / f[0], "cosine", max_beta)

        def log_snr(schedule):
            ab = schedule.alpha_bar[1:]
            return torch.log(ab / (1 - ab))
    """,
    3: """
        import torch
        from torch import nn

        def sinusoidal_embedding(t, dim, max_period=10_000):
            if dim < 2 or dim % 2:
                raise ValueError("dim must be even")
            t = torch.as_tensor(t).reshape(-1).float()
            half = dim // 2
            omega = max_period ** (-torch.arange(half) / half)
            angles = t[:, None] * omega[None]
            return torch.cat([angles.sin(), angles.cos()], 1)

        class ClassEmbedding(nn.Module):
            def __init__(self, num_classes, dim):
                super().__init__()
                self.num_classes, self.dim, self.null_class = num_classes, dim, num_classes
                self.table = nn.Embedding(num_classes + 1, dim)

            def forward(self, labels):
                return self.table(labels)
    """,
    4: """
        import torch
        import torch.nn.functional as F
        from torch import nn
        from diffusion_lessons.lesson03_embeddings import ClassEmbedding, TimeEmbedding
        from diffusion_lessons.lesson04_unet import conv_block

        class ResBlock(nn.Module):
            def __init__(self, c_in, c_out, emb_dim, groups):
                super().__init__()
                self.conv1, self.conv2 = conv_block(c_in, c_out, groups), conv_block(c_out, c_out, groups)
                self.gamma, self.beta = nn.Linear(emb_dim, c_out), nn.Linear(emb_dim, c_out)
                for layer in (self.gamma, self.beta):
                    nn.init.zeros_(layer.weight); nn.init.zeros_(layer.bias)
                self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

            def forward(self, x, e_t, e_y):
                h = self.conv1(x)
                h = h * (1 + self.gamma(e_y)[:, :, None, None]) + self.beta(e_t)[:, :, None, None]
                return self.conv2(h) + self.shortcut(x)

        class UNet(nn.Module):
            def __init__(self, config):
                super().__init__()
                self.config = c = config
                ch, e, g = c.channels, c.emb_dim, c.groups
                self.time, self.label = TimeEmbedding(e, e), ClassEmbedding(c.num_classes, e)
                self.stem = nn.Conv2d(c.in_channels, ch[0], 3, padding=1)
                self.down = nn.ModuleList(nn.ModuleList(ResBlock(ch[l], ch[l], e, g) for _ in range(c.blocks_per_level))
                                          for l in range(len(ch)))
                self.shrink = nn.ModuleList(nn.Conv2d(ch[l], ch[l + 1], 3, 2, 1) for l in range(len(ch) - 1))
                self.grow = nn.ModuleList(nn.ConvTranspose2d(ch[l + 1], ch[l], 2, 2) for l in range(len(ch) - 1))
                self.up = nn.ModuleList(nn.ModuleList(ResBlock(ch[l] * (2 if i == 0 else 1), ch[l], e, g)
                                                      for i in range(c.blocks_per_level)) for l in range(len(ch)))
                self.head = conv_block(ch[0], c.in_channels, g)

            def forward(self, xt, t, labels):
                B, _, H, W = xt.shape
                if H % self.config.down_factor or W % self.config.down_factor:
                    raise ValueError("H and W must be divisible by down_factor")
                t = torch.as_tensor(t).expand(B) if torch.as_tensor(t).ndim == 0 else t
                labels = torch.full((B,), self.config.num_classes) if labels is None else labels
                e_t, e_y = F.silu(self.time(t)), F.silu(self.label(labels))
                h, skips = self.stem(xt), []
                for l, blocks in enumerate(self.down):
                    for block in blocks:
                        h = block(h, e_t, e_y)
                    skips.append(h)
                    if l < len(self.shrink):
                        h = self.shrink[l](h)
                for l in reversed(range(len(self.up))):
                    if l < len(self.grow):
                        h = self.grow[l](h)
                    h = torch.cat([h, skips[l]], 1)
                    for block in self.up[l]:
                        h = block(h, e_t, e_y)
                return self.head(h)
    """,
    5: """
        import math
        import torch
        from diffusion_lessons.lesson01_forward_noise import q_sample

        def drop_labels(labels, p_uncond, null_class, generator=None):
            keep = torch.rand(labels.shape, generator=generator) >= p_uncond
            return torch.where(keep, labels, torch.full_like(labels, null_class))

        def diffusion_loss(model, x0, labels, schedule, p_uncond=0.1, generator=None, min_snr_gamma=None):
            B = len(x0)
            t = torch.randint(1, schedule.T + 1, (B,), generator=generator)
            eps = torch.randn(x0.shape, generator=generator)
            xt = q_sample(x0, t, schedule, eps=eps)
            eps_pred = model(xt, t, drop_labels(labels, p_uncond, model.config.num_classes, generator))
            per_image = ((eps_pred - eps) ** 2).flatten(1).mean(1)
            if min_snr_gamma is not None:
                snr = schedule.alpha_bar[t] / (1 - schedule.alpha_bar[t])
                per_image = per_image * (torch.minimum(snr, torch.tensor(float(min_snr_gamma))) / snr).float()
            return per_image.mean()

        @torch.no_grad()
        def ema_update(ema_model, model, decay):
            for p_ema, p in zip(ema_model.parameters(), model.parameters()):
                p_ema.mul_(decay).add_(p, alpha=1 - decay)

        def learning_rate(step, cfg):
            if step < cfg.warmup:
                return cfg.lr * (step + 1) / cfg.warmup
            progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
            return cfg.lr * (1 + math.cos(math.pi * progress)) / 2
    """,
    6: """
        import torch

        def reverse_step(xt, eps_pred, t, s, schedule, eta=0.0, clip_x0=True, generator=None):
            ab_t, ab_s = schedule.alpha_bar[t].item(), schedule.alpha_bar[s].item()
            x0_pred = (xt - (1 - ab_t) ** 0.5 * eps_pred) / ab_t ** 0.5
            if clip_x0:
                x0_pred = x0_pred.clamp(-1, 1)
                eps_pred = (xt - ab_t ** 0.5 * x0_pred) / (1 - ab_t) ** 0.5
            var = eta ** 2 * (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
            x_s = ab_s ** 0.5 * x0_pred + (1 - ab_s - var) ** 0.5 * eps_pred
            if var > 0:
                x_s = x_s + var ** 0.5 * torch.randn(xt.shape, generator=generator, dtype=xt.dtype)
            return x_s, x0_pred

        def sampling_timesteps(T, steps):
            if not 1 <= steps <= T:
                raise ValueError("need 1 <= steps <= T")
            if steps == 1:
                return [T]
            return [round(T - i * (T - 1) / (steps - 1)) for i in range(steps)]
    """,
    7: """
        import torch

        def frechet_distance(mu1, sigma1, mu2, sigma2):
            mu1, mu2, s1, s2 = (torch.as_tensor(a, dtype=torch.float64) for a in (mu1, mu2, sigma1, sigma2))
            lam, V = torch.linalg.eigh(s1)
            root = V @ torch.diag(lam.clamp(min=0).sqrt()) @ V.T
            middle = root @ s2 @ root
            tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
            return max(0.0, ((mu1 - mu2) ** 2).sum().item() + s1.trace().item() + s2.trace().item() - 2 * tr_sqrt.item())
    """,
    8: """
        import torch

        def rerank(candidates, scores, keep):
            idx = scores.argsort(dim=1, descending=True)[:, :keep]
            return candidates[torch.arange(len(idx))[:, None], idx], idx
    """,
    9: """
        import torch

        def guided_eps(model, xt, t, labels, w):
            cond = model(xt, t, labels)
            uncond = model(xt, t, torch.full_like(labels, model.config.num_classes))
            return cond + w * (cond - uncond)
    """,
    10: """
        def course_t(k):
            if k != int(k):
                raise ValueError("whole timesteps only: use timestep_spacing='trailing'")
            return int(k) + 1

        def guidance_scale(w):
            return w + 1

        def diffusers_guidance(eps_cond, eps_uncond, s):
            return s * eps_cond + (1 - s) * eps_uncond

        def shard(batch_size, rank, nproc):
            if batch_size % nproc != 0:
                raise ValueError("the batch must split into equal shards")
            size = batch_size // nproc
            return slice(rank * size, rank * size + size)
    """,
}

# (lesson, what is broken, replace this, by this, {property name: text its message must
# contain})
BROKEN = [
    (
        1,
        "q_sample reads alpha_bar[t-1]",
        "schedule.alpha_bar[t]",
        "schedule.alpha_bar[t - 1]",
        {"q_sample_zero_noise": "off by one"},
    ),
    (
        1,
        "q_sample weights eps by the variance",
        "(1 - ab).sqrt() * eps",
        "(1 - ab) * eps",
        {"q_sample_noise_scale": "that is the variance"},
    ),
    (
        1,
        "q_sample does not check t",
        'raise ValueError("t must lie in 0..T")',
        "pass",
        {"q_sample_rejects_bad_t": "accepted without an error"},
    ),
    (
        1,
        "schedule_from_betas forgets beta_0",
        "beta = torch.cat([torch.zeros(1, dtype=torch.float64), beta])",
        "pass",
        {"schedule_arrays": "expected (T+1,)"},
    ),
    (
        1,
        "forward_step uses beta as the standard deviation",
        "b ** 0.5 * eps",
        "b * eps",
        {
            "forward_step_moments": "that is beta_t itself",
            "chain_matches_closed_form": "the chain",
        },
    ),
    (
        1,
        "forward_step forgets the square root of 1 - beta",
        "(1 - b) ** 0.5 * x_prev",
        "(1 - b) * x_prev",
        {"forward_step_moments": "the square root is missing"},
    ),
    (
        2,
        "linear_schedule is one step off",
        "torch.linspace(beta_start, beta_end, int(T), dtype=torch.float64)",
        "torch.linspace(beta_start, beta_end, int(T) + 1, dtype=torch.float64)[1:]",
        {"linear_endpoints": "linear_schedule("},
    ),
    (
        2,
        "cosine_schedule without the square",
        "math.pi / 2) ** 2",
        "math.pi / 2)",
        {"cosine_formula": "without the square"},
    ),
    (
        2,
        "log_snr includes t = 0",
        "ab = schedule.alpha_bar[1:]",
        "ab = schedule.alpha_bar",
        {"log_snr_property": "you included t = 0"},
    ),
    (
        2,
        "schedule_from_alpha_bar does not clip",
        "beta.clamp(1e-12, max_beta)",
        "beta",
        {"alpha_bar_clipping": "ValueError"},
    ),
    (
        3,
        "sin and cos interleaved",
        "torch.cat([angles.sin(), angles.cos()], 1)",
        "torch.stack([angles.sin(), angles.cos()], 2).flatten(1)",
        {"embedding_layout": "interleaved"},
    ),
    (
        3,
        "frequencies max_period^(-k/dim)",
        "(-torch.arange(half) / half)",
        "(-torch.arange(half) / (2 * half))",
        {"embedding_layout": "divide k by dim/2"},
    ),
    (
        3,
        "no row for the null class",
        "nn.Embedding(num_classes + 1, dim)",
        "nn.Embedding(num_classes, dim)",
        {"class_embedding_null_row": "IndexError"},
    ),
    (
        4,
        "FiLM as h * gamma",
        "h * (1 + self.gamma(e_y)[:, :, None, None])",
        "h * self.gamma(e_y)[:, :, None, None]",
        {"resblock_fresh": "no gradient"},
    ),
    (
        4,
        "gamma and beta not zero-initialised",
        "nn.init.zeros_(layer.weight); nn.init.zeros_(layer.bias)",
        "pass",
        {"resblock_fresh": "freshly built"},
    ),
    (
        4,
        "the time shift averaged over the batch",
        "self.beta(e_t)[:, :, None, None]",
        "self.beta(e_t).mean(0)[None, :, None, None]",
        {"resblock_conditioning": "changed image 1"},
    ),
    (
        4,
        "the U-Net ignores the label",
        "e_t, e_y = F.silu(self.time(t)), F.silu(self.label(labels))",
        "e_t, e_y = F.silu(self.time(t)), 0 * F.silu(self.label(labels))",
        {"unet_conditioning": "did not change the output"},
    ),
    (
        4,
        "a layer built but never used",
        "self.head = conv_block(ch[0], c.in_channels, g)",
        "self.head = conv_block(ch[0], c.in_channels, g); self.spare = nn.Linear(e, e)",
        {"unet_gradients": "no gradient reaches spare.weight"},
    ),
    (
        4,
        "the U-Net does not check the size",
        'raise ValueError("H and W must be divisible by down_factor")',
        "pass",
        {"unet_rejects_bad_sizes": "UNet (down factor 4)"},
    ),
    (
        5,
        "t drawn from 0..T-1",
        "torch.randint(1, schedule.T + 1, (B,), generator=generator)",
        "torch.randint(0, schedule.T, (B,), generator=generator)",
        {"loss_draws_t": "t = 1..T", "loss_zero_for_true_noise": "t = 1..T"},
    ),
    (
        5,
        "the loss is a sum",
        "return per_image.mean()",
        "return per_image.sum() * 16",
        {"loss_is_mse": "the SUM of squares"},
    ),
    (
        5,
        "label dropout never drops",
        "eps_pred = model(xt, t, drop_labels(labels, p_uncond, "
        "model.config.num_classes, generator))",
        "eps_pred = model(xt, t, labels)",
        {"loss_label_dropout": "p_uncond = 0.5"},
    ),
    (
        5,
        "the noise is uniform",
        "eps = torch.randn(x0.shape, generator=generator)",
        "eps = torch.rand(x0.shape, generator=generator)",
        {"loss_noise_standard_normal": "mean"},
    ),
    (
        5,
        "drop_labels keeps with probability p",
        "keep = torch.rand(labels.shape, generator=generator) >= p_uncond",
        "keep = torch.rand(labels.shape, generator=generator) < p_uncond",
        {"drop_labels_rate": "1 - p_uncond"},
    ),
    (
        5,
        "the EMA decay is swapped",
        "p_ema.mul_(decay).add_(p, alpha=1 - decay)",
        "p_ema.mul_(1 - decay).add_(p, alpha=decay)",
        {"ema_convex": "swapped"},
    ),
    (
        5,
        "warm-up starts at 0",
        "cfg.lr * (step + 1) / cfg.warmup",
        "cfg.lr * step / cfg.warmup",
        {"lr_schedule": "step + 1"},
    ),
    (
        6,
        "DDIM's noise term has the wrong sign",
        "x_s = ab_s ** 0.5 * x0_pred + (1 - ab_s - var) ** 0.5 * eps_pred",
        "x_s = ab_s ** 0.5 * x0_pred - (1 - ab_s - var) ** 0.5 * eps_pred",
        {"ddim_lands_on_q_sample": "sign"},
    ),
    (
        6,
        "x0_pred reads alpha_bar[t-1]",
        "ab_t, ab_s = schedule.alpha_bar[t].item()",
        "ab_t, ab_s = schedule.alpha_bar[t - 1].item()",
        {"x0_pred_inverts_q_sample": "ZeroDivisionError"},
    ),
    (
        6,
        "eps not recomputed after clipping",
        "eps_pred = (xt - ab_t ** 0.5 * x0_pred) / (1 - ab_t) ** 0.5",
        "pass",
        {"clip_recomputes_eps": "recompute eps_pred"},
    ),
    (
        6,
        "sigma squared used as the noise scale",
        "var ** 0.5 * torch.randn",
        "var * torch.randn",
        {"ddpm_step": "sigma_t²"},
    ),
    (
        6,
        "the steps go down to 0",
        "round(T - i * (T - 1) / (steps - 1))",
        "round(T - i * T / (steps - 1))",
        {"sampling_timesteps_property": "t = 0 is the clean image"},
    ),
    (
        7,
        "no matrix square root",
        ".clamp(min=0).sqrt().sum()",
        ".clamp(min=0).sum()",
        {"fd_zero_for_identical": "not 0", "fd_one_dimension": "square root"},
    ),
    (
        8,
        "rerank keeps the worst",
        "scores.argsort(dim=1, descending=True)",
        "scores.argsort(dim=1)",
        {"rerank_keeps_best": "lowest scores"},
    ),
    (
        9,
        "c and ∅ swapped",
        "return cond + w * (cond - uncond)",
        "return uncond + w * (uncond - cond)",
        {"guidance_w0_conditional": "swapped"},
    ),
    (
        9,
        "w used as diffusers' guidance scale",
        "return cond + w * (cond - uncond)",
        "return uncond + w * (cond - uncond)",
        {"guidance_affine_in_w": "guidance_scale"},
    ),
    (
        9,
        "∅ hard-coded as 10",
        "torch.full_like(labels, model.config.num_classes)",
        "torch.full_like(labels, 10)",
        {"guidance_w_minus1_unconditional": "hard-coded"},
    ),
    (
        9,
        "label dropout at sampling time",
        "cond = model(xt, t, labels)",
        "cond = model(xt, t, torch.where(torch.rand(labels.shape) < 0.5, "
        "torch.full_like(labels, model.config.num_classes), labels))",
        {"guidance_deterministic_per_image": "called twice"},
    ),
]


# ---------------------------------------------------------------------------
# (a) correct code passes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lesson", LESSONS)
def test_the_course_own_functions_pass(tmp_path, lesson):
    exercise = EXERCISES[lesson]
    status, report, text = check(
        tmp_path,
        lesson,
        f"from diffusion_lessons.{exercise.module} import "
        f"{', '.join(exercise.functions)}\n",
    )
    assert status == 0, text
    assert report["passed"] == report["total"] == len(exercise.properties) > 0
    assert set(report["functions"].values()) == {"course (imported)"}
    assert "the course's own (imported" in text
    # every result line says whose code it ran
    lines = [line for line in text.splitlines() if line.startswith("  PASS")]
    assert len(lines) == report["total"]
    assert all("course's" in line and "imported" in line for line in lines), text


@pytest.mark.parametrize("lesson", LESSONS)
def test_a_learner_own_correct_code_passes(tmp_path, lesson):
    status, report, text = check(tmp_path, lesson, GOOD[lesson])
    assert status == 0, text
    assert set(report["functions"].values()) == {"yours"}
    assert f"{report['total']} passed, 0 failed, 0 to do" in text


# ---------------------------------------------------------------------------
# (b) the untouched template is all TODO
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("lesson", LESSONS)
def test_untouched_template_is_all_todo(tmp_path, lesson):
    status, report, text = check(
        tmp_path,
        lesson,
        template_path(lesson).read_text(),
        name=f"lesson{lesson:02d}_exercise.py",
    )
    assert status == 1
    assert (
        report["todo"] == report["total"] and report["failed"] == report["passed"] == 0
    ), text
    assert all(
        r["status"] == "todo" and f"Task {lesson}." in r["message"]
        for r in report["results"]
    ), text
    assert f"0 passed, 0 failed, {report['total']} to do" in text


@pytest.mark.parametrize("lesson", LESSONS)
def test_templates_have_the_course_signatures(lesson):
    """A learner's function must be callable exactly like the course's: same parameters,
    same defaults.
    """
    exercise = EXERCISES[lesson]
    course = importlib.import_module(f"diffusion_lessons.{exercise.module}")
    spec = importlib.util.spec_from_file_location(
        f"_template_{lesson}", template_path(lesson)
    )
    template = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(template)

    def params(obj):
        return [
            (p.name, p.kind, p.default)
            for p in inspect.signature(obj).parameters.values()
        ]

    for name in exercise.functions:
        mine, theirs = getattr(template, name), getattr(course, name)
        if inspect.isclass(theirs):
            assert params(mine.__init__) == params(theirs.__init__), name
            assert params(mine.forward) == params(theirs.forward), name
        else:
            assert params(mine) == params(theirs), name
        assert (mine.__doc__ or "").strip(), f"{name} in the template needs a docstring"


# ---------------------------------------------------------------------------
# (c) broken code fails where it should, with a useful message
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lesson, what, old, new, expected", BROKEN, ids=[f"{b[0]}-{b[1]}" for b in BROKEN]
)
def test_broken_variant_fails_with_a_useful_message(
    tmp_path, lesson, what, old, new, expected
):
    source = textwrap.dedent(GOOD[lesson])
    assert textwrap.dedent(old) in source, (
        f"the test's replacement for {what!r} does not apply"
    )
    status, report, text = check(tmp_path, lesson, source.replace(old, new))
    assert status == 1, text
    results = by_name(report)
    for name, needle in expected.items():
        result = results[name]
        assert result["status"] == "fail", f"{what}: {name} should fail\n{text}"
        assert needle in result["message"], (
            f"{what}: {name}'s message lacks {needle!r}\n{result['message']}"
        )
        assert result["hint"] and f"Hint: {result['hint']}" in text
        assert f"FAIL     {result['description']}" in text


def test_crash_in_learner_code_names_the_line(tmp_path):
    source = textwrap.dedent(GOOD[1]).replace(
        "ab = schedule.alpha_bar[t].to(x0.dtype).view(-1, 1, 1, 1)",
        "ab = schedule.alpha_bar[t].to(x0.dtype).view(-1, 2)",
    )
    status, report, text = check(tmp_path, 1, source)
    assert status == 1
    message = by_name(report)["q_sample_zero_noise"]["message"]
    assert (
        "your code raised RuntimeError" in message
        and "mine.py, line" in message
        and "view(-1, 2)" in message
    )
    assert "Falsifying example:" in message


def test_partial_file_uses_the_course_for_the_rest(tmp_path):
    """Only q_sample written: its properties run; properties of missing functions are
    TODO; mixed ones say whose is whose.
    """
    source = textwrap.dedent(GOOD[1])
    source = source[source.index("def q_sample") :]
    status, report, text = check(tmp_path, 1, "import torch\n" + source)
    assert status == 1
    results = by_name(report)
    assert report["functions"] == {
        "schedule_from_betas": "course",
        "forward_step": "course",
        "q_sample": "yours",
    }
    assert results["q_sample_zero_noise"]["status"] == "pass"
    assert (
        results["schedule_arrays"]["status"] == "todo"
        and "not in your file" in results["schedule_arrays"]["message"]
    )
    assert results["chain_matches_closed_form"]["status"] == "pass"
    assert "(course's forward_step; your q_sample)" in text


# ---------------------------------------------------------------------------
# (d) files that cannot be loaded
# ---------------------------------------------------------------------------


def test_syntax_error_gives_status_2_and_the_line(tmp_path):
    status, report, text = check(
        tmp_path,
        1,
        "import torch\n\ndef q_sample(x0, t, schedule, eps=None, generator=None:\n    "
        "return x0\n",
    )
    assert status == 2 and report["exit_status"] == 2
    assert "line 3" in text and "SyntaxError" in text and "Fix this line" in text
    assert report["error"] and report["results"] == []


def test_failing_import_gives_status_2(tmp_path):
    status, report, text = check(
        tmp_path, 1, "import torch\nimport no_such_module_here\n"
    )
    assert status == 2
    assert "ModuleNotFoundError" in text and "line 2" in text and "__main__" in text


def test_missing_file_and_unknown_lesson(tmp_path):
    out = io.StringIO()
    assert run_check(1, tmp_path / "nope.py", out=out) == 2
    assert "No file" in out.getvalue() and "--template" in out.getvalue()
    (tmp_path / "ok.py").write_text("x = 1\n")
    out = io.StringIO()
    assert run_check(42, tmp_path / "ok.py", out=out) == 2
    assert "No exercise for lesson 42" in out.getvalue()


# ---------------------------------------------------------------------------
# (e) JSON report, templates, listing, the command's arguments
# ---------------------------------------------------------------------------


def test_json_report_is_complete(tmp_path):
    source = textwrap.dedent(GOOD[1]).replace("(1 - ab).sqrt() * eps", "(1 - ab) * eps")
    status, report, _ = check(tmp_path, 1, source)
    assert set(report) == {
        "lesson",
        "title",
        "file",
        "exit_status",
        "error",
        "timeout",
        "functions",
        "wrapped",
        "notes",
        "output",
        "results",
        "passed",
        "failed",
        "todo",
        "timeout_count",
        "exited",
        "crashed",
        "total",
    }
    assert (
        report["lesson"] == 1
        and report["exit_status"] == status == 1
        and report["error"] is None
    )
    assert report["file"].endswith("mine.py")
    assert (
        report["passed"] + report["failed"] + report["todo"]
        == report["total"]
        == len(EXERCISES[1].properties)
    )
    assert [r["name"] for r in report["results"]] == [
        p.name for p in EXERCISES[1].properties
    ]
    for r in report["results"]:
        assert set(r) == {
            "name",
            "description",
            "status",
            "message",
            "hint",
            "functions",
        }
        assert r["status"] in ("pass", "fail", "todo") and r["hint"]
        assert set(r["functions"].values()) == {"yours"}
        assert (r["message"] == "") == (r["status"] == "pass")


def test_copy_template(tmp_path):
    path = copy_template(3, tmp_path)
    assert (
        path == tmp_path / "lesson03_exercise.py"
        and path.read_text() == template_path(3).read_text()
    )
    with pytest.raises(FileExistsError, match="already exists"):
        copy_template(3, path)
    assert copy_template(3, path, overwrite=True) == path
    assert copy_template(1, tmp_path / "sub" / "my_forward.py").exists()
    with pytest.raises(ValueError, match=r"\.py"):
        copy_template(1, tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="No exercise for lesson 99"):
        copy_template(99, tmp_path)


def test_list_properties_names_every_property():
    for lesson in LESSONS:
        text = list_properties(lesson)
        assert all(p.name in text for p in EXERCISES[lesson].properties)
        assert f"check {lesson} --template" in text


def test_check_command_arguments(tmp_path, capsys):
    parser = add_check_arguments(argparse.ArgumentParser())
    assert check_command(parser.parse_args(["2", "--list"])) == 0
    assert "cosine_formula" in capsys.readouterr().out
    dest = tmp_path / "l8.py"
    assert check_command(parser.parse_args(["8", "--template", str(dest)])) == 0
    assert dest.exists() and "diffusion-lessons check 8" in capsys.readouterr().out
    assert (
        check_command(
            parser.parse_args(["8", str(dest), "--json", str(tmp_path / "r.json")])
        )
        == 1
    )
    assert json.loads((tmp_path / "r.json").read_text())["todo"] == len(
        EXERCISES[8].properties
    )
    assert check_command(parser.parse_args(["8"])) == 2
    assert "Name the file" in capsys.readouterr().err


def test_docs_page_lists_every_property():
    """docs/exercises.md lists the registry; a property added here must be added there
    too.
    """
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "exercises.md").read_text()
    missing = [
        p.name
        for lesson in LESSONS
        for p in EXERCISES[lesson].properties
        if f"`{p.name}`" not in page
    ]
    assert not missing, f"add these properties to docs/exercises.md: {missing}"


def test_signatures_are_checked_by_how_the_checks_call_them(tmp_path):
    """Positional parameters may have any name; keyword-passed ones (eps, generator,
    eta) must have the template's name, and the message says which.
    """
    renamed = textwrap.dedent(GOOD[1]).replace(
        "def q_sample(x0, t, schedule, eps=None, generator=None):",
        "def q_sample(x_start, timesteps, sched, eps=None, generator=None):\n"
        "    x0, t, schedule = x_start, timesteps, sched",
    )
    status, report, text = check(tmp_path, 1, renamed)
    assert status == 0, text
    noise = textwrap.dedent(GOOD[1]).replace(
        "def q_sample(x0, t, schedule, eps=None, generator=None):",
        "def q_sample(x0, t, schedule, noise=None, generator=None):\n    eps = noise",
    )
    status, report, text = check(tmp_path, 1, noise, name="noise.py")
    assert status == 1
    result = by_name(report)["q_sample_zero_noise"]
    assert result["status"] == "fail"
    assert "has no parameter named 'eps'" in result["message"]
    assert "Name that parameter eps" in result["message"]
    assert by_name(report)["schedule_arrays"]["status"] == "pass"
    too_few = textwrap.dedent(GOOD[1]).replace(
        "def q_sample(x0, t, schedule, eps=None, generator=None):",
        "def q_sample(x0, t, eps=None, generator=None):\n    schedule = None",
    )
    status, report, text = check(tmp_path, 1, too_few, name="few.py")
    message = by_name(report)["q_sample_zero_noise"]["message"]
    assert "with 3 positional arguments" in message
    extra = textwrap.dedent(GOOD[1]).replace(
        "def q_sample(x0, t, schedule, eps=None, generator=None):",
        "def q_sample(x0, t, schedule, eps=None, generator=None, verbose=False):",
    )
    assert check(tmp_path, 1, extra, name="extra.py")[0] == 0


def test_a_module_forward_with_other_names_passes(tmp_path):
    source = textwrap.dedent(GOOD[3]).replace(
        "def forward(self, labels):\n        return self.table(labels)",
        "def forward(self, class_ids):\n        return self.table(class_ids)",
    )
    assert "class_ids" in source
    status, report, text = check(tmp_path, 3, source)
    assert status == 0, text


def test_a_float32_cosine_schedule_as_diffusers_computes_it_passes(tmp_path):
    source = textwrap.dedent(GOOD[2]).replace(
        'return schedule_from_alpha_bar(f / f[0], "cosine", max_beta)',
        "ab = (f / f[0]).float()\n"
        "    beta = (1 - ab[1:] / ab[:-1]).clamp(max=max_beta)\n"
        "    beta = torch.cat([torch.zeros(1), beta])\n"
        "    return Schedule(beta=beta, alpha=1 - beta, "
        "alpha_bar=torch.cumprod(1 - beta, 0))",
    )
    source = source.replace(
        "from diffusion_lessons.lesson01_forward_noise import schedule_from_betas",
        "from diffusion_lessons.lesson01_forward_noise import Schedule, "
        "schedule_from_betas",
    )
    status, report, text = check(tmp_path, 2, source)
    assert by_name(report)["cosine_formula"]["status"] == "pass", text


# ---------------------------------------------------------------------------
# (f) messages about whose code ran; hostile files
# ---------------------------------------------------------------------------


def test_a_near_miss_name_gets_did_you_mean(tmp_path):
    source = textwrap.dedent(GOOD[9]).replace("def guided_eps(", "def guided_esp(")
    status, report, text = check(tmp_path, 9, source)
    assert status == 1
    assert "did you mean guided_eps?" in text
    assert "did you mean guided_eps?" in report["notes"]["guided_eps"]


def test_a_wrapper_of_the_course_function_is_reported(tmp_path):
    source = """
        from diffusion_lessons.lesson09_guidance import guided_eps as course_version

        def guided_eps(model, xt, t, labels, w):
            return course_version(model, xt, t, labels, w)
    """
    status, report, text = check(tmp_path, 9, source)
    assert report["wrapped"] == ["guided_eps"]
    assert "only call the course's function" in text
    lines = [line for line in text.splitlines() if line.startswith("  PASS")]
    assert lines and all("yours only calls the course's" in line for line in lines)
    module_form = """
        import diffusion_lessons.lesson09_guidance as course

        def guided_eps(model, xt, t, labels, w):
            return course.guided_eps(model, xt, t, labels, w)
    """
    assert check(tmp_path, 9, module_form, name="m.py")[1]["wrapped"] == ["guided_eps"]
    assert check(tmp_path, 9, GOOD[9], name="own.py")[1]["wrapped"] == []


def run_isolated(tmp_path, lesson, source, timeout, name="hostile.py"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    out = io.StringIO()
    start = time.monotonic()
    status = run_check(lesson, path, tmp_path / "r.json", out=out, timeout=timeout)
    elapsed = time.monotonic() - start
    report = json.loads((tmp_path / "r.json").read_text())
    return status, report, out.getvalue(), elapsed


def test_exits_endless_loops_and_floods_are_reported_not_obeyed(tmp_path):
    source = """
        import os
        import sys
        import torch

        for i in range(5000):
            print("debug line", i)

        def guided_eps(model, xt, t, labels, w):
            if w == 0.0:
                sys.exit(0)
            if w == -1.0:
                os._exit(0)
            while True:
                pass
    """
    status, report, text, elapsed = run_isolated(tmp_path, 9, source, timeout=3)
    assert status == 1 and report["exit_status"] == 1, text
    results = by_name(report)
    assert results["guidance_w0_conditional"]["status"] == "exited"
    assert "sys.exit(0)" in results["guidance_w0_conditional"]["message"]
    assert results["guidance_w_minus1_unconditional"]["status"] == "exited"
    assert "exit code 0" in results["guidance_w_minus1_unconditional"]["message"]
    assert results["guidance_affine_in_w"]["status"] in ("exited", "timeout")
    assert results["guidance_deterministic_per_image"]["status"] == "timeout"
    assert "TIMEOUT" in text and "EXITED" in text
    assert "debug line 4999" not in text and report["output"]["bytes"] > 50_000
    assert "your code printed" in text
    assert elapsed < 120


def test_patching_the_checker_fails_every_property(tmp_path):
    source = """
        import torch
        import diffusion_lessons.properties._common as common

        common._expect_close = lambda *args, **kwargs: None
        torch.allclose = lambda *args, **kwargs: True

        def guided_eps(model, xt, t, labels, w):
            return torch.zeros_like(xt)
    """
    status, report, text, _ = run_isolated(tmp_path, 9, source, timeout=30)
    assert status == 1
    assert report["passed"] == 0 and report["failed"] == report["total"]
    assert all("changes the checker's" in r["message"] for r in report["results"])


def test_exit_at_import_is_a_load_error_with_json(tmp_path):
    status, report, text, _ = run_isolated(
        tmp_path, 8, "import os\nos._exit(0)\n", timeout=30
    )
    assert status == 2 and report["exit_status"] == 2
    assert "exit code 0" in report["error"] and "Cannot check" in text


# ---------------------------------------------------------------------------
# Batch grading and a fast --list
# ---------------------------------------------------------------------------


def test_batch_grades_a_folder_into_csv_and_json(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    (folder / "alice.py").write_text(textwrap.dedent(GOOD[9]))
    broken = textwrap.dedent(GOOD[9]).replace(
        "return cond + w * (cond - uncond)", "return uncond + w * (uncond - cond)"
    )
    (folder / "bob.py").write_text(broken)
    (folder / "carol.py").write_text("def guided_eps(:\n")
    (folder / "dan.py").write_text(
        "from diffusion_lessons.lesson09_guidance import guided_eps\n"
    )
    out = io.StringIO()
    reports = tmp_path / "grades"
    status = batch_check(9, folder, reports, out=out, isolate=False)
    assert status == 1
    rows = list(csv.DictReader((reports / "summary.csv").open()))
    assert [r["file"] for r in rows] == ["alice.py", "bob.py", "carol.py", "dan.py"]
    by_file = {r["file"]: r for r in rows}
    assert by_file["alice.py"]["exit_status"] == "0"
    assert by_file["alice.py"]["score"] == "1.000"
    assert by_file["bob.py"]["exit_status"] == "1"
    assert "guidance_w0_conditional:fail" in by_file["bob.py"]["not_passed"]
    assert by_file["carol.py"]["exit_status"] == "2" and by_file["carol.py"]["error"]
    assert by_file["dan.py"]["course_code"] == "guided_eps"
    summary = json.loads((reports / "summary.json").read_text())
    assert len(summary["submissions"]) == 4
    assert (reports / "bob.json").exists() and (reports / "bob.txt").exists()
    # nothing is overwritten
    assert batch_check(9, folder, reports, out=io.StringIO(), isolate=False) == 2


def test_list_starts_without_torch(tmp_path):
    code = (
        "import sys, time; start = time.perf_counter(); "
        "from diffusion_lessons.check import main\n"
        "try:\n    main(['6', '--list'])\nexcept SystemExit:\n    pass\n"
        "print('heavy', [m for m in ('torch', 'hypothesis', 'matplotlib') "
        "if m in sys.modules])"
    )
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        best = min(best, time.perf_counter() - start)
    assert "noise_scale_any_eta" in done.stdout
    assert "heavy []" in done.stdout, done.stdout
    assert best < 1.0, f"check 6 --list took {best:.2f} s"
