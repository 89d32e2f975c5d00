"""Properties of the U-Net (lesson 04): shapes for every valid size, conditioning that
matters, clear errors.
"""

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from diffusion_lessons.lesson04_unet import (
    UNET_PRESETS,
    UNet,
    UNetConfig,
    conditioning_parameters,
    count_parameters,
    shape_table,
    shape_table_markdown,
)

fast = settings(max_examples=15, deadline=None)
# down_factor 4; tiny, so tests take milliseconds
MICRO = UNetConfig(channels=(4, 8, 8), groups=4, emb_dim=16)


def build(config: UNetConfig = MICRO, seed: int = 0) -> UNet:
    torch.manual_seed(seed)
    return UNet(config)


def perturb(model: UNet, seed: int = 0, scale: float = 0.05) -> UNet:
    """Add seeded noise to every weight, standing in for training.

    Untrained, the FiLM projections gamma and beta are zero (eq. 4.3 starts as the
    identity), so a fresh model ignores t and the label on purpose. Tests that check
    that t and y *can* change the output need those layers to be non-zero, as they are
    after the first optimizer step.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


def inputs(B=2, C=1, H=28, W=28, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn((B, C, H, W), generator=g),
        torch.randint(1, 1001, (B,), generator=g),
        torch.randint(0, 10, (B,), generator=g),
    )


_micro = build(MICRO)


@fast
@given(B=st.integers(1, 4), h=st.integers(1, 8), w=st.integers(1, 8))
def test_output_shape_equals_input_shape(B, h, w):
    """Any batch size and any H, W divisible by down_factor (here 4) keep their shape
    (eq. 4.5).
    """
    H, W = 4 * h, 4 * w
    xt, t, labels = inputs(B, 1, H, W)
    assert _micro(xt, t, labels).shape == (B, 1, H, W)


def test_done_when_default_model_on_mnist_shape():
    out = UNet(UNetConfig())(
        torch.randn(7, 1, 28, 28),
        torch.randint(1, 1001, (7,)),
        torch.randint(0, 10, (7,)),
    )
    assert out.shape == (7, 1, 28, 28)


def test_cifar_shape():
    model = build(
        UNetConfig(
            in_channels=3, image_size=32, channels=(8, 16, 32), groups=4, emb_dim=16
        )
    )
    assert model(*inputs(2, 3, 32, 32)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize("H, W", [(30, 28), (28, 26), (2, 4), (6, 6)])
def test_sizes_it_cannot_handle_are_rejected(H, W):
    with pytest.raises(ValueError, match="divisible by down_factor=4"):
        _micro(*inputs(1, 1, H, W))


def test_down_factor():
    assert UNetConfig(channels=(8,)).down_factor == 1
    assert UNetConfig(channels=(8, 8, 8)).down_factor == 4
    assert UNetConfig(channels=(8, 8, 8, 8), image_size=32).down_factor == 8


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"channels": (16, 20, 32)}, "groups=8 must divide"),
        ({"channels": ()}, "non-empty"),
        ({"emb_dim": 15}, "even"),
        ({"channels": (8, 8, 8, 8)}, "divisible by down_factor=8"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_bad_configs_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        UNetConfig(**kwargs)


def test_changing_the_label_changes_the_output():
    model = perturb(build())  # see perturb(): untrained FiLM layers are zero by design
    xt, t, _ = inputs(2)
    with torch.no_grad():
        a = model(xt, t, torch.tensor([3, 3]))
        b = model(xt, t, torch.tensor([8, 8]))
        null = model(xt, t, torch.tensor([10, 10]))
    assert not torch.allclose(a, b) and not torch.allclose(a, null)
    assert torch.equal(null, model(xt, t, None))  # None means the null class


def test_changing_t_changes_the_output():
    model = perturb(build())
    xt, _, labels = inputs(2)
    with torch.no_grad():
        assert not torch.allclose(
            model(xt, torch.tensor([10, 10]), labels),
            model(xt, torch.tensor([900, 900]), labels),
        )
        # an int means every image
        assert torch.equal(
            model(xt, 10, labels), model(xt, torch.tensor([10, 10]), labels)
        )


def test_fresh_model_starts_unconditioned():
    """Eq. 4.3 with zero-initialised gamma and beta is the identity: the label cannot
    matter yet.
    """
    model = build()
    xt, t, _ = inputs(2)
    with torch.no_grad():
        assert torch.equal(
            model(xt, t, torch.tensor([1, 1])), model(xt, t, torch.tensor([7, 7]))
        )


def test_disabling_skips_changes_the_output():
    """The same weights with use_skips=False: zeros replace each skip, and the output
    changes.
    """
    with_skips = build()
    without = UNet(dataclasses.replace(MICRO, use_skips=False))
    # same layers, same parameter count
    without.load_state_dict(with_skips.state_dict())
    assert count_parameters(with_skips) == count_parameters(without)
    with torch.no_grad():
        assert not torch.allclose(with_skips(*inputs(2)), without(*inputs(2)))


@pytest.mark.parametrize(
    "config",
    [MICRO, dataclasses.replace(MICRO, blocks_per_level=2), UNET_PRESETS["tiny"]],
    ids=["micro", "micro-2-blocks", "tiny"],
)
def test_every_parameter_gets_a_finite_gradient(config):
    model = build(config)
    xt, t, labels = inputs(3)
    F.mse_loss(model(xt, t, labels), torch.randn_like(xt)).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # Once gamma and beta are non-zero (after training starts), every parameter gets a
    # non-zero gradient:
    model = perturb(build(config))
    F.mse_loss(model(xt, t, labels), torch.randn_like(xt)).backward()
    # (the class table counts as alive when the rows of the labels used get gradient)
    dead = [name for name, p in model.named_parameters() if p.grad.abs().max() == 0]
    assert dead == [], dead


def test_same_seed_same_output():
    a, b = build(seed=3), build(seed=3)
    with torch.no_grad():
        assert torch.equal(a(*inputs(2)), b(*inputs(2)))
        assert not torch.equal(a(*inputs(2)), build(seed=4)(*inputs(2)))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda x, t, y: (x[0], t, y), ValueError, r"\(B, C, H, W\)"),
        (lambda x, t, y: (x.repeat(1, 3, 1, 1), t, y), ValueError, "3 channels"),
        (
            lambda x, t, y: (x, t, torch.tensor([0, 11])),
            ValueError,
            r"labels must lie in 0\.\.10",
        ),
        (lambda x, t, y: (x, t, torch.tensor([-1, 0])), ValueError, "null class"),
        (
            lambda x, t, y: (x, torch.tensor([1, 1001]), y),
            ValueError,
            r"0\.\.T = 0\.\.1000",
        ),
        (lambda x, t, y: (x, torch.tensor([-1, 5]), y), ValueError, r"0\.\.T"),
        (lambda x, t, y: (x, t.float(), y), TypeError, r"t\.long\(\)"),
        (lambda x, t, y: (x, t[:1], y), ValueError, "one step per image"),
        (lambda x, t, y: (x, t, y[:1]), ValueError, "one label per image"),
        (lambda x, t, y: (x, t, y.float()), TypeError, r"labels\.long\(\)"),
    ],
)
def test_bad_inputs_raise_clear_errors(make, error, match):
    xt, t, labels = inputs(2, 1, 8, 8)
    with pytest.raises(error, match=match):
        _micro(*make(xt, t, labels))


def test_presets_sizes():
    params = {name: count_parameters(UNet(cfg)) for name, cfg in UNET_PRESETS.items()}
    assert 50_000 <= params["tiny"] <= 150_000
    assert 400_000 <= params["small"] <= 1_500_000
    assert params["full"] > 5 * params["small"]
    assert UNET_PRESETS["small"] == UNetConfig()


@fast
@given(
    channels=st.lists(st.sampled_from([4, 8, 12]), min_size=1, max_size=3),
    blocks=st.integers(1, 2),
    emb=st.sampled_from([8, 16]),
)
def test_conditioning_parameters_count_every_gamma_and_beta(channels, blocks, emb):
    """Each residual block has two Linear(emb_dim, C_out) layers (eq. 4.3); the parts
    are disjoint pieces of the network, so they never exceed its total."""
    cfg = UNetConfig(
        channels=tuple(channels), groups=4, emb_dim=emb, blocks_per_level=blocks
    )
    model = UNet(cfg)
    parts = conditioning_parameters(model)
    outs = [b.conv1[2].out_channels for b in model.modules() if hasattr(b, "gamma")]
    assert parts["film_layers"] == 2 * len(outs) == 2 * (2 * blocks * len(channels) + 1)
    assert parts["film"] == sum(2 * (emb * c + c) for c in outs)
    assert parts["class_embedding"] == 11 * emb
    pieces = parts["film"] + parts["time_embedding"] + parts["class_embedding"]
    assert pieces < parts["total"] == count_parameters(model)


def test_shape_table_comes_from_the_real_model():
    rows = shape_table(build(UNetConfig()), batch=2)
    names = [name for name, _ in rows]
    assert (
        names[0] == "input xt"
        and names[1] == "stem"
        and names[-1] == "head"
        and "mid" in names
    )
    shapes = dict(rows)
    assert shapes["head"] == (2, 1, 28, 28)
    assert shapes["mid"] == (2, 64, 7, 7) and shapes["downsample.0"] == (2, 32, 14, 14)
    assert shapes["up.0.0"] == (2, 16, 28, 28)
    table = shape_table_markdown(UNetConfig())
    assert table.count("\n") == len(rows) + 2 and "`mid`" in table


def test_run_quick_writes_the_figures(tmp_path):
    from diffusion_lessons.lesson04_unet import run

    result = run(tmp_path, quick=True)
    for name in ("04_architecture.png", "04_skips.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert "| `mid` |" in (tmp_path / "04_shape_table.md").read_text()
    assert result["ablation_loss"]["with"] < result["ablation_loss"]["without"]
    assert 0 < result["conditioning"]["share"] < 1


def test_committed_tables_match_the_code():
    """The chapter's tables are generated files; a change to the presets that is not
    followed by `diffusion-lessons figures --lessons 4` fails here, not on the site."""
    from pathlib import Path

    from diffusion_lessons.lesson04_unet import (
        cost_table_markdown,
        presets_table_markdown,
    )

    figures = Path(__file__).resolve().parents[1] / "docs" / "figures"
    assert (figures / "04_presets.md").read_text() == presets_table_markdown()
    assert (figures / "04_cost_by_level.md").read_text() == cost_table_markdown(
        UNetConfig()
    )
    assert (figures / "04_shape_table.md").read_text() == shape_table_markdown(
        UNetConfig()
    )


def test_four_level_solution_counts():
    """Worked solution 04.6 quotes exact counts for a four-level 32 x 32 U-Net; they
    must be what eq. 4.6 gives for the code as it is."""
    from pathlib import Path

    from diffusion_lessons.lesson04_unet import cost_by_level

    four = UNet(UNetConfig(channels=(16, 32, 64, 128), image_size=32))
    cost = cost_by_level(four)
    macs = sum(level["macs"] for level in cost.values())
    convs = sum(level["params"] for level in cost.values())
    page = (
        Path(__file__).resolve().parents[1]
        / "docs"
        / "instructors"
        / "exercise-solutions.md"
    ).read_text()
    small = cost_by_level(UNet(UNetConfig()))
    small_macs = sum(level["macs"] for level in small.values())
    small_convs = sum(level["params"] for level in small.values())
    small_all = count_parameters(UNet(UNetConfig()))
    for number in (
        f"{macs / 1e6:.2f} M",
        f"{convs:,}",
        f"{count_parameters(four):,}",
        f"{cost[4]['params']:,}",
        f"{small_macs / 1e6:.2f} M multiply-adds; {small_convs:,} conv parameters, "
        f"{small_all:,} in all), that is {macs / small_macs:.2f}",
        f"{count_parameters(four) / small_all:.2f} times the",
        f"holds {100 * cost[4]['params'] / convs:.0f} % of the conv parameters",
        f"{100 * (macs / small_macs - 1):.0f} % more compute per step",
    ):
        assert number in page, number
