"""Lesson 05's properties: training.

They check the exercise functions of ``diffusion_lessons.lesson05_training``.
"""

from __future__ import annotations

import math
import types

import torch
from hypothesis import given
from hypothesis import strategies as st

from ._common import (
    Property,
    _as_tensor,
    _expect_close,
    _generator,
    _settings,
    _show,
    _steep,
    registrar,
)

MODULE = "lesson05_training"
FUNCTIONS = ("drop_labels", "diffusion_loss", "ema_update", "learning_rate")
# how the properties call each function: (positional arguments, keywords)
CALLS = {
    "drop_labels": (4, ()),
    "diffusion_loss": (6, ("min_snr_gamma",)),
    "ema_update": (3, ()),
    "learning_rate": (2, ()),
}
PROPERTIES: list[Property] = []
prop = registrar(PROPERTIES)


class _NoiseOracle(torch.nn.Module):
    """Stands in for the U-Net in the loss checks. It knows x0, so it reads the true
    noise off x_t (eq. 1.3 solved for eps) and returns it plus ``offset``: the loss must
    then be exactly mean(offset²). It records every call.
    """

    def __init__(
        self,
        x0: torch.Tensor,
        schedule,
        offset: float | torch.Tensor = 0.0,
        num_classes: int = 10,
    ):
        super().__init__()
        self.x0, self.schedule, self.offset = x0, schedule, offset
        self.config = types.SimpleNamespace(
            num_classes=num_classes,
            T=schedule.T,
            in_channels=x0.shape[1],
            image_size=x0.shape[-1],
        )
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.calls: list[dict] = []

    def forward(self, xt, t, labels):
        B, T = len(self.x0), self.schedule.T
        assert torch.is_tensor(xt) and xt.shape == self.x0.shape, (
            f"the model got x_t {_show(xt)}; expected the shape of x0, "
            f"{tuple(self.x0.shape)}"
        )
        assert torch.is_tensor(t) and t.shape == (B,) and not t.is_floating_point(), (
            f"the model got t = {_show(t)}; pass a ({B},) integer tensor, one step per "
            "image"
        )
        assert 1 <= t.min().item() and t.max().item() <= T, (
            f"the model got t from {t.min().item()} to {t.max().item()}; training "
            f"steps are t = 1..T = 1..{T} "
            "(torch.randint(1, T + 1, ...): t = 0 has no noise to predict)"
        )
        assert torch.is_tensor(labels) and labels.shape == (B,), (
            f"the model got labels {labels!r:.60}; pass the ({B},) labels (after "
            "dropout)"
        )
        ab = self.schedule.alpha_bar[t].to(xt.dtype).view(-1, 1, 1, 1)
        eps = (xt - ab.sqrt() * self.x0.to(xt.dtype)) / (
            1 - ab
        ).sqrt()  # eq. 1.3 solved for eps
        self.calls.append(
            {
                "t": t.detach().clone(),
                "labels": labels.detach().clone(),
                "eps": eps.detach().clone(),
            }
        )
        return eps + self.offset + 0 * self.weight


def _loss_setup(B=32, seed=0, size=4, T=20, offset=0.0, num_classes=10):
    g = _generator(seed)
    x0 = torch.rand((B, 1, size, size), generator=g) * 2 - 1
    labels = torch.randint(0, num_classes, (B,), generator=g)
    sch = _steep(T)
    return _NoiseOracle(x0, sch, offset, num_classes), x0, labels, sch


_HINT_LOSS = (
    "Eq. 5.1-5.2: t = torch.randint(1, T + 1, (B,), generator=generator); eps = "
    "torch.randn(x0.shape, generator="
    "generator); xt = q_sample(x0, t, schedule, eps=eps); eps_pred = model(xt, t, "
    "drop_labels(labels, p_uncond, "
    "model.config.num_classes, generator)); return ((eps - eps_pred) ** 2).mean(). The "
    "SAME eps makes x_t and is "
    "the target."
)


@prop(
    "diffusion_loss is 0 when the model predicts the true noise; a scalar that "
    "backward() can train",
    _HINT_LOSS,
    uses=("diffusion_loss",),
)
def loss_zero_for_true_noise(impl):
    @_settings(6)
    @given(seed=st.integers(0, 1000), p_uncond=st.sampled_from([0.0, 0.1, 0.5]))
    def check(seed, p_uncond):
        model, x0, labels, sch = _loss_setup(seed=seed)
        loss = _as_tensor(
            impl.diffusion_loss(model, x0, labels, sch, p_uncond, _generator(seed)),
            "diffusion_loss(...)",
        )
        assert model.calls, "diffusion_loss never called the model"
        assert loss.ndim == 0, (
            f"the loss has shape {tuple(loss.shape)}; return one number, a 0-dim "
            "tensor (.mean() over everything)"
        )
        assert loss.requires_grad, (
            "the loss is not connected to the model's output (no .item(), .detach() or "
            "torch.no_grad() "
            "inside diffusion_loss), so loss.backward() cannot train the model"
        )
        assert abs(loss.item()) < 1e-6, (
            "the model predicted the noise in x_t exactly, yet the loss is "
            f"{loss.item():.4g}, not 0: "
            "x_t was not made with eq. 5.1 for the t given to the model, or the loss "
            "compares "
            "eps_pred with something other than the eps that made x_t"
        )

    check()


@prop(
    "diffusion_loss is the mean squared error of eps over every pixel and image (eq. "
    "5.2)",
    "L_simple = ((eps - eps_pred) ** 2).mean(): the mean over batch, channels and "
    "pixels; not a sum, not an "
    "absolute value, not its square root.",
    uses=("diffusion_loss",),
)
def loss_is_mse(impl):
    offset = (
        torch.linspace(-1, 1, 16).view(1, 1, 4, 4) * 0.5 + 0.3
    )  # the model's error, the same in every image
    expected = offset.square().mean().item()
    model, x0, labels, sch = _loss_setup(B=8, offset=offset)
    loss = _as_tensor(
        impl.diffusion_loss(model, x0, labels, sch, 0.0, _generator(0)),
        "diffusion_loss(...)",
    ).reshape(-1)
    assert loss.numel() == 1, (
        f"the loss has shape {tuple(loss.shape)}; return the mean, one number"
    )
    _expect_close(
        loss[0],
        expected,
        "the loss when eps_pred = eps + e for a known error e (so the MSE is mean(e²))",
        rtol=1e-4,
        diagnoses={
            "the SUM of squares over everything (use the mean)": expected * x0.numel(),
            "the sum over pixels, mean over images (use the mean over pixels too)": (
                expected * 16
            ),
            "the mean absolute error (square the differences)": offset.abs()
            .mean()
            .item(),
            "the root mean square error (drop the square root)": math.sqrt(expected),
        },
    )


@prop(
    "diffusion_loss draws one t per image, uniformly from 1..T (every step, never 0)",
    "t = torch.randint(1, T + 1, (B,), generator=generator): randint's upper bound is "
    "exclusive, so T + 1 makes T possible; "
    "one t per image, not one per batch.",
    uses=("diffusion_loss",),
)
def loss_draws_t(impl):
    model, x0, labels, sch = _loss_setup(B=300, size=2, T=5)
    for seed in (0, 1):
        impl.diffusion_loss(model, x0, labels, sch, 0.0, _generator(seed))
    assert model.calls, "diffusion_loss never called the model"
    t = torch.cat([c["t"] for c in model.calls])
    assert all(len(c["t"].unique()) > 1 for c in model.calls), (
        "every image of a batch got the same t: draw one step per image"
    )
    counts = torch.bincount(t, minlength=6)[1:].double() / len(t)
    missing = [s for s in range(1, 6) if counts[s - 1] == 0]
    assert not missing, f"with T = 5, t = {missing} never came up in {len(t)} draws" + (
        " (randint's upper bound is exclusive: use T + 1)" if missing == [5] else ""
    )
    assert (counts - 0.2).abs().max() < 0.06, (
        "t should be uniform on 1..5; its frequencies were "
        f"{[round(c, 3) for c in counts.tolist()]}"
    )


@prop(
    "diffusion_loss draws the noise eps from a standard normal (mean 0, standard "
    "deviation 1)",
    "eps = torch.randn(x0.shape, generator=generator): randn is N(0, 1); rand is "
    "uniform on [0, 1).",
    uses=("diffusion_loss",),
)
def loss_noise_standard_normal(impl):
    model, x0, labels, sch = _loss_setup(B=256)
    impl.diffusion_loss(model, x0, labels, sch, 0.0, _generator(3))
    assert model.calls, "diffusion_loss never called the model"
    eps = model.calls[0]["eps"]
    mean, std = eps.mean().item(), eps.std().item()
    assert abs(mean) < 0.08 and abs(std - 1) < 0.08, (
        f"the noise in x_t has mean {mean:.3f} and standard deviation {std:.3f}; eps ~ "
        "N(0, I) has 0 and 1"
    )


@prop(
    "diffusion_loss drops labels to ∅ = model.config.num_classes at rate p_uncond and "
    "passes the others unchanged",
    "Before calling the model: labels = drop_labels(labels, p_uncond, "
    "model.config.num_classes, generator). Use "
    "model.config.num_classes for ∅ (not a hard-coded 10), and do not change the "
    "caller's labels tensor in place.",
    uses=("diffusion_loss",),
)
def loss_label_dropout(impl):
    K = 7  # an unusual number of classes, so a hard-coded 10 shows
    model, x0, labels, sch = _loss_setup(B=2000, size=1, num_classes=K)
    before = labels.clone()
    impl.diffusion_loss(model, x0, labels, sch, 0.0, _generator(0))
    assert model.calls, "diffusion_loss never called the model"
    assert torch.equal(model.calls[-1]["labels"], before), (
        "with p_uncond = 0 the model must get the labels unchanged"
    )
    impl.diffusion_loss(model, x0, labels, sch, 0.5, _generator(1))
    assert torch.equal(labels, before), (
        "diffusion_loss changed the caller's labels tensor in place; work on a copy "
        "(torch.where)"
    )
    seen = model.calls[-1]["labels"]
    dropped = seen == K
    rate = dropped.double().mean().item()
    assert abs(rate - 0.5) < 0.05, (
        f"with p_uncond = 0.5, {rate:.1%} of the labels the model got were ∅ = "
        f"num_classes = {K}"
        + ("; is ∅ hard-coded as 10?" if (seen == 10).any() else "")
    )
    assert torch.equal(seen[~dropped], before[~dropped]), (
        "labels that are not dropped must reach the model unchanged"
    )


@prop(
    "diffusion_loss is reproducible: the same generator seed gives the same loss",
    "Draw t, eps and the label dropout from the generator argument (torch.randint(..., "
    "generator=generator), "
    "torch.randn(..., generator=generator)), never from the global random state.",
    uses=("diffusion_loss",),
)
def loss_deterministic(impl):
    model, x0, labels, sch = _loss_setup(offset=0.5)
    model.offset = torch.linspace(0, 1, 16).view(
        1, 1, 4, 4
    )  # an error that depends on the pixel, so t and eps matter
    torch.manual_seed(0)
    a = impl.diffusion_loss(model, x0, labels, sch, 0.3, _generator(5))
    torch.manual_seed(1)
    b = impl.diffusion_loss(model, x0, labels, sch, 0.3, _generator(5))
    assert torch.equal(model.calls[0]["t"], model.calls[1]["t"]) and torch.equal(
        model.calls[0]["eps"], model.calls[1]["eps"]
    ), "the same generator seed gave different t or eps"
    assert torch.equal(model.calls[0]["labels"], model.calls[1]["labels"]), (
        "the same generator seed dropped different labels"
    )
    _expect_close(b, a.detach(), "the loss for the same generator seed", atol=0)


@prop(
    "diffusion_loss with min_snr_gamma weights each image by min(SNR(t), γ) / SNR(t) "
    "(eq. 5.3)",
    "snr = alpha_bar[t] / (1 - alpha_bar[t]) per image; mse = ((eps - eps_pred) ** "
    "2).mean(dim=(1, 2, 3)), one per image; "
    "return (snr.clamp(max=gamma) / snr * mse).mean(). min_snr_gamma=None means plain "
    "L_simple.",
    uses=("diffusion_loss",),
)
def loss_min_snr(impl):
    @_settings(20)
    @given(
        gamma=st.one_of(st.none(), st.floats(0.05, 20.0)),
        B=st.integers(2, 32),
        seed=st.integers(0, 1000),
    )
    def check(gamma, B, seed):
        # each image gets its own error e_i, so the weights must multiply each one
        errors = 0.1 + 2 * torch.rand(B, generator=_generator(seed + 1))  # (B,)
        model, x0, labels, sch = _loss_setup(B=B, seed=seed)
        model.offset = errors.view(B, 1, 1, 1)
        loss = _as_tensor(
            impl.diffusion_loss(
                model, x0, labels, sch, 0.0, _generator(seed), min_snr_gamma=gamma
            ),
            "diffusion_loss(...)",
        )
        assert model.calls, "diffusion_loss never called the model"
        t = model.calls[-1]["t"]
        mse = errors.double() ** 2  # (B,) each image's mean squared error
        snr = sch.alpha_bar[t] / (1 - sch.alpha_bar[t])
        weight = torch.ones_like(snr) if gamma is None else snr.clamp(max=gamma) / snr
        diagnoses = {}
        if gamma is not None:
            diagnoses = {
                "the mean weight times the mean error: weight each image's own "
                "error, (weight * mse_per_image).mean()": weight.mean() * mse.mean(),
                "the weight min(SNR, γ) without dividing by SNR": (
                    snr.clamp(max=gamma) * mse
                ).mean(),
                "the unweighted loss: min_snr_gamma was ignored": mse.mean(),
            }
        _expect_close(
            loss,
            (weight * mse).mean(),
            f"the loss with min_snr_gamma={gamma} when image i's error is e_i "
            f"(B = {B})",
            rtol=1e-5,
            diagnoses=diagnoses,
        )

    check()


@prop(
    "drop_labels replaces each label by null_class with probability p_uncond and "
    "leaves the others alone",
    "drop = torch.rand(labels.shape, generator=generator) < p_uncond; return "
    "torch.where(drop, "
    "torch.full_like(labels, null_class), labels). A '>' drops 1 - p of them.",
    uses=("drop_labels",),
)
def drop_labels_rate(impl):
    @_settings(10)
    @given(p=st.floats(0.0, 0.9), seed=st.integers(0, 1000))
    def check(p, seed):
        labels = torch.randint(0, 10, (20_000,), generator=_generator(seed))
        out = _as_tensor(
            impl.drop_labels(labels, p, 10, _generator(seed + 1)), "drop_labels(...)"
        )
        assert out.shape == labels.shape, (
            f"drop_labels returned shape {tuple(out.shape)}; expected "
            f"{tuple(labels.shape)}"
        )
        rate = (out == 10).double().mean().item()
        assert abs(rate - p) < 0.02, (
            f"with p_uncond = {p:.3f}, {rate:.1%} of the labels became ∅"
            + (
                ": that is 1 - p_uncond (use '<', not '>')"
                if abs(rate - (1 - p)) < 0.02
                else ""
            )
        )
        kept = out != 10
        assert torch.equal(out[kept], labels[kept]), (
            "labels that are not dropped must stay as they were"
        )

    check()


@prop(
    "drop_labels is reproducible for a generator and does not change its input",
    "Draw with torch.rand(labels.shape, generator=generator) and build a new tensor "
    "(torch.where); assigning "
    "labels[drop] = null_class changes the caller's labels.",
    uses=("drop_labels",),
)
def drop_labels_pure(impl):
    labels = torch.randint(0, 10, (500,), generator=_generator(0))
    before = labels.clone()
    a = impl.drop_labels(labels, 0.3, 10, _generator(1))
    assert torch.equal(labels, before), (
        "drop_labels changed its input in place; return a new tensor"
    )
    b = impl.drop_labels(labels, 0.3, 10, _generator(1))
    assert torch.equal(a, b), (
        "the same generator seed dropped different labels: draw from the generator "
        "argument"
    )
    assert a.dtype == labels.dtype, (
        f"drop_labels turned {labels.dtype} labels into {a.dtype}"
    )


@prop(
    "ema_update: theta_ema <- d · theta_ema + (1 - d) · theta, in place, the model "
    "untouched (eq. 5.5)",
    "The EMA keeps most of its OWN weights (d is close to 1): under torch.no_grad(), "
    "p_ema.mul_(d).add_(p, alpha=1 - d) "
    "or p_ema.lerp_(p, 1 - d) for each pair of parameters.",
    uses=("ema_update",),
)
def ema_convex(impl):
    @_settings(15)
    @given(decay=st.floats(0.0, 0.999), seed=st.integers(0, 100))
    def check(decay, seed):
        torch.manual_seed(seed)
        ema, model = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
        before = [p.detach().clone() for p in ema.parameters()]
        theta = [p.detach().clone() for p in model.parameters()]
        impl.ema_update(ema, model, decay)
        for (name, p_ema), p0, p in zip(ema.named_parameters(), before, theta):
            _expect_close(
                p_ema,
                decay * p0 + (1 - decay) * p,
                f"the EMA's {name} after ema_update(decay={decay:.4g})",
                atol=1e-6,
                diagnoses={
                    "(1 - d) · theta_ema + d · theta: d and 1 - d are swapped": (
                        1 - decay
                    )
                    * p0
                    + decay * p,
                    "the EMA unchanged: update the parameters in place": p0,
                },
            )
        for (name, p), p0 in zip(model.named_parameters(), theta):
            assert torch.equal(p, p0), (
                f"ema_update changed the trained model's {name}; only the EMA copy "
                "changes"
            )

    check()


@prop(
    "learning_rate warms up linearly (lr · (step + 1) / warmup), then decays along a "
    "cosine to 0 at cfg.steps (eq. 5.4)",
    "Steps count from 0: for step < warmup return lr * (step + 1) / warmup (so step 0 "
    "trains with lr / warmup, not 0); "
    "after it, progress = (step - warmup) / (steps - warmup) and lr * 0.5 * (1 + "
    "cos(pi * progress)).",
    uses=("learning_rate",),
)
def lr_schedule(impl):
    from ..lesson05_training import TrainConfig

    @_settings(10)
    @given(
        steps=st.integers(50, 2000),
        warmup=st.integers(1, 40),
        lr=st.sampled_from([1e-3, 2e-3, 0.1]),
    )
    def check(steps, warmup, lr):
        cfg = TrainConfig(steps=steps, warmup=warmup, lr=lr)
        f = lambda step: float(impl.learning_rate(step, cfg))  # noqa: E731
        for step in (0, warmup // 2, warmup - 1):
            _expect_close(
                f(step),
                lr * (step + 1) / warmup,
                f"learning_rate(step={step}) with warmup={warmup}, lr={lr}",
                rtol=1e-6,
                diagnoses={
                    "lr · step / warmup: steps count from 0, so use step + 1": lr
                    * step
                    / warmup
                },
            )
        _expect_close(
            f(warmup), lr, f"learning_rate(step=warmup={warmup}), the peak", rtol=1e-6
        )
        quarter = warmup + (steps - warmup) // 4
        progress = (quarter - warmup) / (steps - warmup)
        _expect_close(
            f(quarter),
            lr * 0.5 * (1 + math.cos(math.pi * progress)),
            f"learning_rate(step={quarter}), a quarter into the decay",
            rtol=1e-6,
            diagnoses={
                "a linear decay: eq. 5.4 decays along a cosine": lr * (1 - progress)
            },
        )
        assert abs(f(steps)) < 1e-6 * lr, (
            f"learning_rate(step=steps={steps}) = {f(steps):.3g}; the decay ends at 0"
        )
        values = [
            f(step) for step in range(warmup, steps + 1, max(1, (steps - warmup) // 50))
        ]
        assert all(b <= a + 1e-15 for a, b in zip(values, values[1:])), (
            "after the warm-up the learning rate must never rise"
        )
        assert all(0 <= v <= lr * (1 + 1e-9) for v in values), (
            f"the learning rate must stay in [0, lr]; got {min(values):.3g} .. "
            f"{max(values):.3g}"
        )

    check()
