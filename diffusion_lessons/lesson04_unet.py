"""Lesson 04: the conditional U-Net, the network that predicts the noise.

Chapter: docs/lessons/04-unet.md

The model is eps_pred = eps_theta(x_t, t, y): it takes the noisy image, the step and the
label and returns an image-shaped guess of the noise. The U-Net shrinks the image (28 ->
14 -> 7) to see the whole digit, then grows it back, and concatenates each down level's
features into the up level of the same size (skip connections), so the fine detail that
eps lives in does not have to squeeze through the 7x7 bottleneck.

    (4.1)   conv block:  h = Conv3x3(SiLU(GroupNorm(x)))
    (4.2)   residual block:  h = conv block(x);  h = FiLM(h);  out = conv block(h) +
                shortcut(x)
    (4.3)   FiLM:  h <- h * (1 + gamma(e_y)) + beta(e_t),  gamma, beta: (B, C, 1, 1)
    (4.4)   skip connection: u_l <- ResBlock(concat[u_l, d_l])  (channels add up: C_u +
                C_d)
    (4.5)   sizes:  H_l = H / 2^l,  so H and W must be divisible by 2^(levels - 1)

Why eq. 4.3 has this form. The time embedding is ADDED: it shifts every channel by an
amount that depends on how much noise there is. The class embedding MULTIPLIES: a
per-channel gain lets the label switch feature detectors up or down ("strengthen loop
detectors for an 8"), which a shift cannot do. gamma and beta come from zero-initialised
linear layers, so at the start eq. 4.3 is the identity and the untrained net is a plain
U-Net; conditioning grows in as training finds it useful, which keeps the first steps
stable.

(4.6)   Speed. A 3x3 convolution costs H * W * 9 * C_in * C_out multiply-adds per image
so one channel pair at 28x28 costs 16 times as much as at 7x7. The CPU presets keep few
channels at 28x28 and double them at each level down; resampling is a stride-2 conv down
and a 2x2 transposed conv up (a ninth of the cost of nearest-neighbour upsampling
followed by a 3x3 conv).

Builds on: lesson03_embeddings (TimeEmbedding, ClassEmbedding, check_labels), data
(load_digits), lesson01_forward_noise (q_sample), lesson02_schedules (linear_schedule),
plotting (new_figure, savefig, show_images).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .data import load_digits
from .lesson01_forward_noise import q_sample
from .lesson02_schedules import linear_schedule
from .lesson03_embeddings import ClassEmbedding, TimeEmbedding, check_labels
from .plotting import new_figure, savefig, show_images

# ---------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UNetConfig:
    """Everything that fixes the U-Net's shape. The defaults are the ``small`` CPU
    preset.

    Attributes:
        in_channels: C of the images (1 for digits, 3 for CIFAR).
        image_size: H = W of the training images (any multiple of ``down_factor`` also
            works).
        channels: channels per resolution level; level l works at H / 2^l (eq. 4.5).
        blocks_per_level: residual blocks per level, on the way down and on the way up.
        emb_dim: width of the time and class embeddings (eqs. 3.5, 3.7).
        num_classes: K; label K is the null class ∅.
        T: number of diffusion steps; t may be 0..T.
        groups: GroupNorm groups; must divide every channel count.
        use_skips: False replaces every skip (eq. 4.4) by zeros: the same layers, no
            shortcut (the ablation).
    """

    in_channels: int = 1
    image_size: int = 28
    channels: tuple[int, ...] = (16, 32, 64)
    blocks_per_level: int = 1
    emb_dim: int = 128
    num_classes: int = 10
    T: int = 1000
    groups: int = 8
    use_skips: bool = True

    def __post_init__(self):
        object.__setattr__(self, "channels", tuple(self.channels))
        for name in ("in_channels", "blocks_per_level", "num_classes", "T", "groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1; got {getattr(self, name)}.")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(
                "channels must be a non-empty tuple of positive ints, one per level; "
                f"got {self.channels}."
            )
        if bad := [c for c in self.channels if c % self.groups]:
            raise ValueError(
                f"groups={self.groups} must divide every channel count, but not {bad}; "
                f"choose groups from the common divisors of {self.channels} (e.g. 8 "
                "with multiples of 8)."
            )
        if self.emb_dim < 2 or self.emb_dim % 2:
            raise ValueError(
                "emb_dim must be even (sines and cosines, eq. 3.3); got "
                f"{self.emb_dim}."
            )
        if self.image_size % self.down_factor:
            raise ValueError(
                f"image_size={self.image_size} is not divisible by "
                f"down_factor={self.down_factor} "
                f"({len(self.channels)} levels); use fewer levels or a multiple of "
                f"{self.down_factor}."
            )

    @property
    def down_factor(self) -> int:
        """How much the image shrinks from the top level to the bottleneck: 2^(levels -
        1).
        """
        return 2 ** (len(self.channels) - 1)


UNET_PRESETS: dict[str, UNetConfig] = {
    # ~0.12M: tests, figures, seconds of training
    "tiny": UNetConfig(channels=(8, 16, 32), groups=4, emb_dim=64),
    "small": UNetConfig(),  # ~0.47M: the CPU model of lesson 05
    # ~10M: for a GPU
    "full": UNetConfig(channels=(64, 128, 256), blocks_per_level=2, emb_dim=256),
}

# ---------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------


def conv_block(c_in: int, c_out: int, groups: int) -> nn.Sequential:
    """GroupNorm -> SiLU -> Conv3x3 (eq. 4.1): (B, C_in, H, W) -> (B, C_out, H, W)."""
    return nn.Sequential(
        nn.GroupNorm(groups, c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1)
    )


class ResBlock(nn.Module):
    """Two conv blocks with the conditioning between them and a residual shortcut (eq.
    4.2).
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        self.conv1 = conv_block(c_in, c_out, groups)
        self.conv2 = conv_block(c_out, c_out, groups)
        self.gamma = nn.Linear(emb_dim, c_out)  # class -> per-channel gain
        self.beta = nn.Linear(emb_dim, c_out)  # time -> per-channel shift
        for p in [*self.gamma.parameters(), *self.beta.parameters()]:
            nn.init.zeros_(p)  # zero init: eq. 4.3 starts as the identity
        self.shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def _condition(
        self, h: torch.Tensor, e_t: torch.Tensor, e_y: torch.Tensor
    ) -> torch.Tensor:
        """Eq. 4.3, the one place where t and y enter the feature maps: h * (1 +
        gamma_y) + beta_t.
        """
        gamma = self.gamma(e_y)[:, :, None, None]  # (B, C, 1, 1)
        beta = self.beta(e_t)[:, :, None, None]  # (B, C, 1, 1)
        return h * (1 + gamma) + beta

    def forward(
        self, x: torch.Tensor, e_t: torch.Tensor, e_y: torch.Tensor
    ) -> torch.Tensor:
        h = self._condition(self.conv1(x), e_t, e_y)  # (B, C_out, H, W)
        return self.conv2(h) + self.shortcut(x)


# ---------------------------------------------------------------------------
# The U-Net
# ---------------------------------------------------------------------------


class UNet(nn.Module):
    """eps_theta(x_t, t, y): a U-Net with FiLM conditioning (eq. 4.3) and concatenating
    skips (eq. 4.4).
    """

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = cfg = config
        ch, g, e, n = cfg.channels, cfg.groups, cfg.emb_dim, cfg.blocks_per_level
        self.time_embed = TimeEmbedding(e, e)  # t -> e_t (eq. 3.5)
        # y -> e_y (eq. 3.7), row K = ∅
        self.class_embed = ClassEmbedding(cfg.num_classes, e)
        self.stem = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down = nn.ModuleList(
            nn.ModuleList(ResBlock(ch[l], ch[l], e, g) for _ in range(n))
            for l in range(len(ch))
        )
        # down: stride-2 Conv3x3, (B, ch[l], H, W) -> (B, ch[l+1], H/2, W/2)
        self.downsample = nn.ModuleList(
            nn.Conv2d(ch[l], ch[l + 1], 3, stride=2, padding=1)
            for l in range(len(ch) - 1)
        )
        self.mid = ResBlock(ch[-1], ch[-1], e, g)  # the bottleneck, at H / down_factor
        # up: transposed Conv2x2, stride 2 (each pixel paints its own 2x2 patch; a ninth
        # of the cost of nearest x2 + Conv3x3: H_out W_out C_in C_out, not 9 times it)
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(ch[l + 1], ch[l], 2, stride=2)
            for l in range(len(ch) - 1)
        )
        self.up = nn.ModuleList(
            nn.ModuleList(
                ResBlock(2 * ch[l] if i == 0 else ch[l], ch[l], e, g) for i in range(n)
            )
            for l in range(len(ch))
        )
        self.head = conv_block(ch[0], cfg.in_channels, g)

    def _check(self, xt, t, labels):
        cfg = self.config
        if not torch.is_tensor(xt) or xt.ndim != 4:
            shape = tuple(xt.shape) if torch.is_tensor(xt) else type(xt).__name__
            raise ValueError(
                f"xt must be a (B, C, H, W) tensor; got {shape}. Add a batch axis with "
                "xt[None]."
            )
        B, C, H, W = xt.shape
        if C != cfg.in_channels:
            raise ValueError(
                f"xt has {C} channels but the model was built for "
                f"in_channels={cfg.in_channels}; "
                f"convert the images or build UNetConfig(in_channels={C})."
            )
        if H % cfg.down_factor or W % cfg.down_factor:
            raise ValueError(
                f"H and W must be divisible by down_factor={cfg.down_factor} "
                f"({len(cfg.channels)} levels, eq. 4.5); "
                f"got {H}x{W}. Pad or resize the images, or use fewer levels in "
                "channels."
            )
        t = torch.as_tensor(t, device=xt.device)
        # an int means the same step for every image
        t = t.expand(B) if t.ndim == 0 else t
        if t.ndim != 1 or len(t) != B:
            raise ValueError(
                f"t must hold one step per image, shape ({B},); got shape "
                f"{tuple(t.shape)}."
            )
        if t.is_floating_point():
            raise TypeError(
                f"t must be integer steps (torch.long); got {t.dtype}. Convert with "
                "t.long()."
            )
        if (t < 0).any() or (t > cfg.T).any():
            raise ValueError(
                f"t must lie in 0..T = 0..{cfg.T}; got values from {t.min().item()} to "
                f"{t.max().item()}."
            )
        if labels is None:
            labels = torch.full((B,), cfg.num_classes, device=xt.device)  # None means ∅
        return t, check_labels(labels, cfg.num_classes, batch=B)

    def forward(
        self, xt: torch.Tensor, t: torch.Tensor | int, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """Predict the noise in x_t.

        Args:
            xt: noisy images, (B, C, H, W), H and W divisible by ``config.down_factor``.
            t: steps, (B,) int64 in 0..T (an int is used for every image).
            labels: classes, (B,) int64 in 0..num_classes (num_classes = ∅); None means
                ∅ for all.
        Returns:
            eps_pred, (B, C, H, W).
        """
        t, labels = self._check(xt, t, labels)
        e_t = F.silu(self.time_embed(t))  # (B, emb_dim)
        e_y = F.silu(self.class_embed(labels))  # (B, emb_dim)
        h = self.stem(xt)  # (B, ch[0], H, W)
        skips = []
        for l, blocks in enumerate(self.down):
            for block in blocks:
                h = block(h, e_t, e_y)
            skips.append(h)  # d_l: (B, ch[l], H / 2^l, W / 2^l)
            if l < len(self.downsample):
                h = self.downsample[l](h)
        h = self.mid(h, e_t, e_y)
        for l in reversed(range(len(self.up))):
            if l < len(self.upsample):
                h = self.upsample[l](h)  # (B, ch[l], H / 2^l, W / 2^l)
            d = skips[l] if self.config.use_skips else torch.zeros_like(skips[l])
            h = torch.cat([h, d], dim=1)  # (B, 2 ch[l], ...) eq. 4.4
            for block in self.up[l]:
                h = block(h, e_t, e_y)
        return self.head(h)  # (B, C, H, W)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def conditioning_parameters(model: UNet) -> dict[str, int]:
    """What carrying t and y costs: the parameters of the time embedding (eq. 3.5), the
    class embedding (eq. 3.7) and the FiLM layers gamma, beta of every block (eq. 4.3),
    beside the network's total.
    """
    blocks = [b for b in model.modules() if isinstance(b, ResBlock)]
    return {
        "time_embedding": count_parameters(model.time_embed),
        "class_embedding": count_parameters(model.class_embed),
        "film": sum(
            count_parameters(b.gamma) + count_parameters(b.beta) for b in blocks
        ),
        "film_layers": 2 * len(blocks),
        "total": count_parameters(model),
    }


def shape_table(model: UNet, batch: int = 1) -> list[tuple[str, tuple]]:
    """(block name, output shape) for every block in the order they run, read off a real
    forward pass.
    """
    cfg = model.config
    rows, hooks = (
        [("input xt", (batch, cfg.in_channels, cfg.image_size, cfg.image_size))],
        [],
    )
    for name, module in model.named_modules():
        if (
            isinstance(module, ResBlock)
            or name in ("stem", "head")
            or name.startswith(("downsample.", "upsample."))
        ):
            hooks.append(
                module.register_forward_hook(
                    lambda m, i, o, name=name: rows.append((name, tuple(o.shape)))
                )
            )
    try:
        with torch.no_grad():
            p = next(model.parameters())
            model(
                torch.zeros(rows[0][1], device=p.device),
                torch.ones(batch, dtype=torch.long, device=p.device),
                torch.zeros(batch, dtype=torch.long, device=p.device),
            )
    finally:
        for h in hooks:
            h.remove()
    return rows


# ---------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------


def fig_architecture(config: UNetConfig = UNetConfig()):
    """Boxes for the blocks with their output shapes, top to bottom in the order they
    run, shifted right by resolution level (a U on its side); green = skips.
    """
    from matplotlib.patches import FancyBboxPatch

    rows = shape_table(UNet(config))[1:]
    fig, ax = new_figure(size=(6.4, 0.42 * len(rows) + 0.6))
    # the blocks that get e_t and e_y
    colors = {
        "down": "#cfe3f5",
        "mid": "#e0d4ef",
        "up": "#f7dcc3",
    }
    labels = {"stem": "stem conv", "head": "head", "mid": "bottleneck"}
    column, width, height = 1.15, 1.6, 0.72  # data units: one row = 1
    pos = {}
    for i, (name, shape) in enumerate(rows):
        level = (
            config.image_size // shape[-1]
        ).bit_length() - 1  # H = image_size / 2^level
        pos[name] = (0.9 + level * column, -i)
        x, y = pos[name]
        ax.add_patch(
            FancyBboxPatch(
                (x - width / 2, y - height / 2),
                width,
                height,
                boxstyle="round,pad=0.02",
                lw=0.8,
                ec="0.3",
                fc=colors.get(name.split(".")[0], "#e8e8e8"),
            )
        )
        ax.text(
            x - width / 2 + 0.07,
            y,
            labels.get(name, name),
            ha="left",
            va="center",
            fontsize=8.5,
        )
        ax.text(
            x + width / 2 - 0.07,
            y,
            "x".join(map(str, shape[1:])),
            ha="right",
            va="center",
            fontsize=8,
            family="monospace",
        )
        if i:  # the data flow from the previous block
            px, py = pos[rows[i - 1][0]]
            ax.annotate(
                "",
                (x, y + height / 2),
                (px, py - height / 2),
                arrowprops={"arrowstyle": "->", "lw": 0.8},
            )
    if config.use_skips:
        for l in range(len(config.channels)):
            (x0, y0), (x1, y1) = (
                pos[f"down.{l}.{config.blocks_per_level - 1}"],
                pos[f"up.{l}.0"],
            )
            ax.annotate(
                "",
                (x1 - width / 2, y1),
                (x0 - width / 2, y0),
                arrowprops={
                    "arrowstyle": "->",
                    "color": "tab:green",
                    "lw": 1.2,
                    "connectionstyle": "arc3,rad=0.25",
                },
            )
        ax.text(
            0.05,
            (pos["down.0.0"][1] + pos["up.0.0"][1]) / 2,
            "skip: concatenate (eq. 4.4)",
            color="tab:green",
            rotation=90,
            ha="center",
            va="center",
            fontsize=9,
        )
    ax.text(
        0.9 + width / 2 + 0.15,
        -len(rows) + 3.4,
        "blue, purple, orange: residual\nblocks, each gets t and y (eq. 4.3)\n"
        "grey: stem, resampling, head\ngreen: skip connections",
        fontsize=8.5,
        va="top",
    )
    ax.set_xlim(-0.35, 0.9 + (len(config.channels) - 1) * column + width / 2 + 0.05)
    ax.set_ylim(-len(rows) + 0.4, 0.5)
    ax.set_axis_off()
    ax.set_title(
        f"U-Net {config.channels}: block name and output C x H x W,\n"
        "read from shape_table()",
        fontsize=10,
    )
    return fig


def skip_ablation(
    x0: torch.Tensor,
    steps: int = 40,
    t_range=(50, 150),
    lr: float = 5e-3,
    seed: int = 0,
) -> dict:
    """Fit two tiny U-Nets, with and without skips, to predict eps on one batch of noisy
    digits.

    Returns loss curves and, for the first digit at the middle t, x_t and each net's x0
    estimate.
    """
    schedule = linear_schedule(1000)
    out = {}
    for use_skips in (True, False):
        # the same initial weights for both nets, global RNG untouched
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = UNet(dataclasses.replace(UNET_PRESETS["tiny"], use_skips=use_skips))
        opt, losses = torch.optim.Adam(model.parameters(), lr=lr), []
        g = torch.Generator().manual_seed(seed)  # the same noisy batches for both nets
        for _ in range(steps):
            t = torch.randint(t_range[0], t_range[1] + 1, (len(x0),), generator=g)
            eps = torch.randn(x0.shape, generator=g)
            loss = F.mse_loss(model(q_sample(x0, t, schedule, eps=eps), t, None), eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        t_show = (t_range[0] + t_range[1]) // 2
        eps = torch.randn(
            x0[:1].shape, generator=torch.Generator().manual_seed(seed + 1)
        )
        xt = q_sample(x0[:1], t_show, schedule, eps=eps)
        ab = schedule.alpha_bar[t_show].float()
        with torch.no_grad():
            x0_hat = (
                xt - (1 - ab).sqrt() * model(xt, t_show, None)
            ) / ab.sqrt()  # eq. 1.3 solved for x0
        out[use_skips] = {"losses": losses, "x0_hat": x0_hat}
    return {
        "with": out[True],
        "without": out[False],
        "xt": xt,
        "x0": x0[:1],
        "t": t_show,
    }


def fig_skips(result: dict):
    """Loss curves of the skip ablation and one digit denoised by each net."""
    fig = new_figure(size=(10, 3.6))[0]
    fig.clf()
    grid = fig.add_gridspec(2, 3, width_ratios=[2.4, 1, 1], wspace=0.1, hspace=0.3)
    ax = fig.add_subplot(grid[:, 0])
    for key, color in (("with", "tab:green"), ("without", "tab:red")):
        ax.plot(
            range(1, len(result[key]["losses"]) + 1),
            result[key]["losses"],
            color=color,
            label=f"{key} skips",
        )
    ax.set_xlabel("Adam step on one batch of digits, t in 50..150")
    ax.set_ylabel("loss  mean (eps - eps_pred)^2")
    ax.set_title("after 40 steps, only the net with skips carries per-pixel noise")
    ax.legend()
    panels = [
        ("x0", result["x0"]),
        (f"x_t, t = {result['t']}", result["xt"]),
        ("x0_hat, with skips", result["with"]["x0_hat"]),
        ("x0_hat, without", result["without"]["x0_hat"]),
    ]
    for i, (title, image) in enumerate(panels):
        show_images(
            fig.add_subplot(grid[i // 2, 1 + i % 2]), image, nrow=1, title=title
        )
    return fig


# ---------------------------------------------------------------------------
# What it costs: eq. 4.6, counted on the real model
# ---------------------------------------------------------------------------


def cost_by_level(model: UNet) -> dict[int, dict[str, int]]:
    """Eq. 4.6 for every convolution of ``model``, summed by resolution: multiply-adds
    per image and parameters, {resolution: {"macs": ..., "params": ...}}.

    A convolution is counted at the resolution of its output. It computes each output
    pixel once; a transposed convolution visits each input pixel once.
    """
    cost: dict[int, dict[str, int]] = {}

    def hook(module, inputs, output):
        kh, kw = module.kernel_size
        transposed = isinstance(module, nn.ConvTranspose2d)
        pixels = (inputs[0] if transposed else output).shape[-2:].numel()
        level = cost.setdefault(output.shape[-1], {"macs": 0, "params": 0})
        level["macs"] += pixels * kh * kw * module.in_channels * module.out_channels
        level["params"] += count_parameters(module)

    convs = (nn.Conv2d, nn.ConvTranspose2d)
    hooks = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, convs)
    ]
    size, cfg = model.config.image_size, model.config
    with torch.no_grad():
        model(torch.zeros(1, cfg.in_channels, size, size), 1, torch.tensor([0]))
    for h in hooks:
        h.remove()
    return cost


def cost_table_markdown(config: UNetConfig) -> str:
    """Chapter 04's table of multiply-adds and parameters per level of ``config``."""
    model = UNet(config)
    cost, total = cost_by_level(model), count_parameters(model)
    macs = sum(level["macs"] for level in cost.values())
    rows = [
        "| level, resolution | channels | multiply-adds per image | share "
        "| conv parameters | share of all |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for l, c in enumerate(config.channels):
        res = config.image_size // 2**l
        m, n = cost[res]["macs"], cost[res]["params"]
        rows.append(
            f"| {l}, {res} × {res} | {c} | {m / 1e6:.2f} M | {100 * m / macs:.0f} % "
            f"| {n:,} | {100 * n / total:.0f} % |"
        )
    return "\n".join(rows) + "\n"


def presets_table_markdown() -> str:
    """Chapter 04's table of the three presets: shape, parameters and compute."""
    rows = [
        "| preset | channels | blocks per level | embedding width | parameters "
        "| conv multiply-adds per image |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, cfg in UNET_PRESETS.items():
        model = UNet(cfg)
        macs = sum(level["macs"] for level in cost_by_level(model).values())
        rows.append(
            f"| `{name}` | {cfg.channels} | {cfg.blocks_per_level} | {cfg.emb_dim} "
            f"| {count_parameters(model):,} | {macs / 1e6:,.2f} M |"
        )
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------------------
# Run the lesson
# ---------------------------------------------------------------------------


def shape_table_markdown(config: UNetConfig) -> str:
    """The shape table of ``config`` as a markdown table (the chapter includes it)."""
    rows = [
        f"| {i} | `{name}` | {shape} |"
        for i, (name, shape) in enumerate(shape_table(UNet(config)))
    ]
    return (
        "\n".join(["| # | block | output shape (B, C, H, W) |", "|---|---|---|", *rows])
        + "\n"
    )


def run(
    out: Path | str = "figures", *, quick: bool = False, dataset: str = "mnist-5k"
) -> dict:
    """Print what this lesson shows, write its figures into ``out``, return the key
    numbers.
    """
    out = Path(out)
    params = {name: count_parameters(UNet(cfg)) for name, cfg in UNET_PRESETS.items()}
    print("parameters: " + ", ".join(f"{k} = {v:,}" for k, v in params.items()))
    conditioning = conditioning_parameters(UNet(UNET_PRESETS["small"]))
    embeddings = conditioning["time_embedding"] + conditioning["class_embedding"]
    conditioning["share"] = (conditioning["film"] + embeddings) / conditioning["total"]
    print(
        f"small: FiLM {conditioning['film']:,} + embeddings {embeddings:,} = "
        f"{conditioning['share']:.0%} of the parameters"
    )
    cost = {}
    for name in ("tiny", "small"):
        model = UNet(UNET_PRESETS[name])
        levels = cost_by_level(model)
        cost[name] = {
            "macs": sum(level["macs"] for level in levels.values()),
            "param_share": {  # share of ALL the parameters held by each level's convs
                str(res): level["params"] / params[name]
                for res, level in levels.items()
            },
        }
    cost["small_over_tiny"] = {
        "params": params["small"] / params["tiny"],
        "macs": cost["small"]["macs"] / cost["tiny"]["macs"],
    }
    print(
        "conv multiply-adds per image: "
        + ", ".join(f"{k} {cost[k]['macs'] / 1e6:.2f} M" for k in ("tiny", "small"))
    )
    for name, shape in shape_table(UNet(UNetConfig())):
        print(f"  {name:<12} {shape}")
    images, _ = load_digits(dataset, split="train")
    result = skip_ablation(images[:24], steps=15 if quick else 40)
    final = {k: sum(result[k]["losses"][-5:]) / 5 for k in ("with", "without")}
    print(
        "skip ablation, mean loss of the last 5 steps: with skips "
        f"{final['with']:.3f}, without {final['without']:.3f}"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "04_shape_table.md").write_text(shape_table_markdown(UNetConfig()))
    (out / "04_cost_by_level.md").write_text(cost_table_markdown(UNetConfig()))
    (out / "04_presets.md").write_text(presets_table_markdown())
    files = [
        savefig(fig_architecture(UNetConfig()), out / "04_architecture.png"),
        out / "04_shape_table.md",
        out / "04_cost_by_level.md",
        out / "04_presets.md",
        savefig(fig_skips(result), out / "04_skips.png"),
    ]
    for f in files:
        print(f"wrote {f}")
    return {
        "params": params,
        "conditioning": conditioning,
        "cost": cost,
        "ablation_loss": final,
        "files": files,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Lesson 04: the conditional U-Net.")
    parser.add_argument(
        "--out", default="figures", help="folder for the figures (default: figures)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer ablation steps, for a fast check"
    )
    args = parser.parse_args(argv)
    run(args.out, quick=args.quick)


if __name__ == "__main__":
    main()
