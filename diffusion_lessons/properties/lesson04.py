"""Lesson 04's properties: the U-Net.

They check the exercise functions of ``diffusion_lessons.lesson04_unet``.
"""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from ._common import (
    Property,
    _as_tensor,
    _expect_close,
    _expect_raises,
    _generator,
    _perturb,
    _settings,
    registrar,
)

MODULE = "lesson04_unet"
FUNCTIONS = ("ResBlock", "UNet")
# how the properties call each function: (positional arguments, keywords)
CALLS = {
    "ResBlock": {"__init__": (4, ()), "forward": (3, ())},
    "UNet": {"__init__": (1, ()), "forward": (3, ())},
}
PROPERTIES: list[Property] = []
prop = registrar(PROPERTIES)


_HINT_RESBLOCK = (
    "Eq. 4.2-4.3: h = conv_block(x) (GroupNorm -> SiLU -> Conv3x3, padding=1); h = h * "
    "(1 + gamma(e_y)) + "
    "beta(e_t) with gamma, beta = nn.Linear(emb_dim, c_out) reshaped to (B, C, 1, 1); "
    "out = conv_block(h) + "
    "shortcut(x), the shortcut a 1x1 Conv2d when c_in != c_out (else nn.Identity())."
)


def _micro_config(**changes):
    from ..lesson04_unet import UNetConfig

    return UNetConfig(**{"channels": (4, 8, 8), "groups": 4, "emb_dim": 16, **changes})


def _unet_inputs(B, H, W, seed=0, C=1):
    g = _generator(seed)
    return (
        torch.randn((B, C, H, W), generator=g),
        torch.randint(1, 1001, (B,), generator=g),
        torch.randint(0, 10, (B,), generator=g),
    )


@prop(
    "ResBlock(c_in, c_out, emb_dim, groups) maps (B, c_in, H, W) to (B, c_out, H, W), "
    "also when c_in ≠ c_out",
    _HINT_RESBLOCK,
    uses=("ResBlock",),
)
def resblock_shape(impl):
    @_settings(10)
    @given(
        B=st.integers(1, 3),
        c_in=st.sampled_from([4, 8]),
        c_out=st.sampled_from([4, 8]),
        H=st.integers(2, 8),
        W=st.integers(2, 8),
    )
    def check(B, c_in, c_out, H, W):
        torch.manual_seed(0)
        block = impl.ResBlock(c_in, c_out, 16, 4)
        out = _as_tensor(
            block(torch.randn(B, c_in, H, W), torch.randn(B, 16), torch.randn(B, 16)),
            "ResBlock(...)(x, e_t, e_y)",
        )
        assert out.shape == (B, c_out, H, W), (
            f"ResBlock({c_in}, {c_out}, 16, 4) turned x of shape {(B, c_in, H, W)} "
            f"into {tuple(out.shape)}; "
            f"expected {(B, c_out, H, W)}"
        )

    check()


@prop(
    "a fresh ResBlock ignores e_t and e_y (zero-initialised gamma and beta) yet trains "
    "every one of its layers",
    "Zero-initialise the Linear layers that make gamma and beta (nn.init.zeros_ on "
    "weight and bias), so eq. 4.3 starts as "
    "the identity; and write h * (1 + gamma) + beta: with h * gamma a zero gamma wipes "
    "out h and the first convolution "
    "gets no gradient.",
    uses=("ResBlock",),
)
def resblock_fresh(impl):
    torch.manual_seed(0)
    block = impl.ResBlock(4, 8, 16, 4)
    g = _generator(1)
    x, e_t, e_y = (
        torch.randn((2, 4, 5, 5), generator=g),
        torch.randn((2, 16), generator=g),
        torch.randn((2, 16), generator=g),
    )
    a = block(x, e_t, e_y)
    with torch.no_grad():
        b = block(
            x,
            3 * torch.randn((2, 16), generator=g),
            3 * torch.randn((2, 16), generator=g),
        )
    _expect_close(
        b,
        a.detach(),
        "a freshly built ResBlock's output for other e_t and e_y",
        atol=1e-6,
    )
    a.square().mean().backward()
    dead = [
        name
        for name, p in block.named_parameters()
        if p.grad is None or p.grad.abs().max() == 0
    ]
    assert not dead, (
        f"in a fresh ResBlock these parameters get no gradient: {', '.join(dead)}"
    )


@prop(
    "ResBlock uses the conditioning: once trained, changing e_t or e_y changes the "
    "output, image by image",
    _HINT_RESBLOCK,
    uses=("ResBlock",),
)
def resblock_conditioning(impl):
    torch.manual_seed(0)
    block = _perturb(
        impl.ResBlock(8, 8, 16, 2)
    )  # 4 channels per GroupNorm group (with 1, the next norm cancels FiLM)
    g = _generator(2)
    x, e_t, e_y = (
        torch.randn((2, 8, 6, 6), generator=g),
        torch.randn((2, 16), generator=g),
        torch.randn((2, 16), generator=g),
    )
    with torch.no_grad():
        base = block(x, e_t, e_y)
        for name, (et, ey) in (
            ("e_t", (e_t.clone(), e_y)),
            ("e_y", (e_t, e_y.clone())),
        ):
            (et if name == "e_t" else ey)[0] += 2.0  # change image 0's embedding only
            out = block(x, et, ey)
            assert not torch.allclose(out[0], base[0], atol=1e-5), (
                f"changing {name} of image 0 did not change its output: is {name} used?"
            )
            assert torch.allclose(out[1], base[1], atol=1e-6), (
                f"changing {name} of image 0 changed image 1's output: reshape the "
                "embedding's projection to (B, C, 1, 1), one row per image"
            )


@prop(
    "UNet keeps the input shape (B, C, H, W) for any batch size and any H, W divisible "
    "by the down factor (eq. 4.5)",
    "Each level halves H and W (a stride-2 convolution) and the way up doubles them "
    "back (ConvTranspose2d(..., 2, stride=2)); "
    "concatenate the skip of the same size (eq. 4.4): channels add up, so the first up "
    "block of a level takes 2 * ch[l] "
    "channels. The head maps back to config.in_channels.",
    uses=("UNet",),
)
def unet_shape(impl):
    torch.manual_seed(0)
    model = impl.UNet(_micro_config())

    @_settings(10)
    @given(B=st.integers(1, 3), h=st.integers(1, 7), w=st.integers(1, 7))
    def check(B, h, w):
        xt, t, labels = _unet_inputs(B, 4 * h, 4 * w)
        with torch.no_grad():
            out = _as_tensor(model(xt, t, labels), "UNet(config)(xt, t, labels)")
        assert out.shape == xt.shape, (
            f"UNet with channels (4, 8, 8) (down factor 4) turned {tuple(xt.shape)} "
            f"into {tuple(out.shape)}"
        )

    check()


@prop(
    "UNet refuses H or W not divisible by the down factor with a ValueError",
    "In forward, check H % config.down_factor and W % config.down_factor before "
    "anything else and raise ValueError "
    "naming down_factor and the fix (pad or resize the images); otherwise a skip "
    "concatenation fails deep inside.",
    uses=("UNet",),
)
def unet_rejects_bad_sizes(impl):
    torch.manual_seed(0)
    model = impl.UNet(_micro_config())
    for H, W in ((30, 28), (28, 26), (6, 6)):
        with torch.no_grad():
            _expect_raises(
                lambda H=H, W=W: model(*_unet_inputs(1, H, W)),
                f"UNet (down factor 4) on a {H}x{W} image",
            )


@prop(
    "UNet depends on t and on the label; labels=None means the null class; an int t "
    "means every image",
    "Embed t with TimeEmbedding and the label with ClassEmbedding (row K is ∅) and "
    "give both to every ResBlock. "
    "labels=None: torch.full((B,), config.num_classes); an int t: t.expand(B).",
    uses=("UNet",),
)
def unet_conditioning(impl):
    torch.manual_seed(0)
    model = _perturb(impl.UNet(_micro_config()))
    xt, t, _ = _unet_inputs(2, 8, 8)
    with torch.no_grad():
        a = model(xt, t, torch.tensor([3, 3]))
        assert not torch.allclose(a, model(xt, t, torch.tensor([8, 8])), atol=1e-5), (
            "changing the label (3 -> 8) did not change the output"
        )
        null = model(xt, t, torch.tensor([10, 10]))
        assert not torch.allclose(a, null, atol=1e-5), (
            "the null class ∅ (label 10) gives the same output as label 3"
        )
        _expect_close(
            model(xt, t, None),
            null,
            "UNet(xt, t, labels=None), which means ∅ for every image",
            atol=1e-6,
        )
        labels = torch.tensor([1, 2])
        assert not torch.allclose(
            model(xt, torch.tensor([10, 10]), labels),
            model(xt, torch.tensor([900, 900]), labels),
            atol=1e-5,
        ), "changing t (10 -> 900) did not change the output"
        _expect_close(
            model(xt, 10, labels),
            model(xt, torch.tensor([10, 10]), labels),
            "UNet(xt, t=10 (an int), labels)",
            atol=1e-6,
        )


@prop(
    "UNet: every parameter gets a gradient (no layer built but left out of forward)",
    "A layer created in __init__ but never called in forward, or a skip that is never "
    "concatenated, gets no gradient; "
    "list the parameters named in the message and follow the data through forward.",
    uses=("UNet",),
)
def unet_gradients(impl):
    for config in (_micro_config(), _micro_config(channels=(4, 8), blocks_per_level=2)):
        torch.manual_seed(0)
        model = _perturb(impl.UNet(config))
        xt, t, labels = _unet_inputs(3, 8, 8)
        out = model(xt, t, labels)
        torch.nn.functional.mse_loss(
            out, torch.randn(out.shape, generator=_generator(5))
        ).backward()
        dead = [
            name
            for name, p in model.named_parameters()
            if p.grad is None or not p.grad.abs().max() > 0
        ]
        assert not dead, (
            f"with channels {config.channels}, blocks_per_level "
            f"{config.blocks_per_level}: no gradient reaches {', '.join(dead[:6])}"
        )


@prop(
    "UNet: the skips carry fine detail, so the output depends on more of the input "
    "than the coarsest level can hold (eq. 4.4)",
    "Keep each down level's output d_l and concatenate it with the up path at the same "
    "size: h = torch.cat([h, d_l], dim=1) before the up level's ResBlocks (eq. 4.4). "
    "Zeros, or nothing, in place of d_l squeeze all detail through the bottleneck.",
    uses=("UNet",),
)
def unet_uses_skips(impl):
    # channels (4, 4, 4) on 8x8 images: the bottleneck holds 4 x 2 x 2 = 16 numbers, so
    # without skips the Jacobian of the 64 output pixels has rank <= 16
    config = _micro_config(channels=(4, 4, 4), groups=2, image_size=8)
    bottleneck = config.channels[-1] * (8 // config.down_factor) ** 2
    torch.manual_seed(0)
    model = _perturb(impl.UNet(config), seed=3)
    t, labels = torch.tensor([500]), torch.tensor([3])
    x = torch.randn((1, 1, 8, 8), generator=_generator(4))

    def f(z):
        return _as_tensor(model(z, t, labels), "UNet(config)(xt, t, labels)").flatten()

    jac = torch.autograd.functional.jacobian(f, x).reshape(64, 64).double()
    values = torch.linalg.svdvals(jac)
    rank = int((values > 1e-4 * values[0]).sum())
    assert rank > bottleneck, (
        f"the output's Jacobian with respect to the input has rank {rank} of 64, no "
        f"more than the {bottleneck} numbers of the bottleneck: fine detail does not "
        "reach the output, so the skips are missing or zero"
    )
