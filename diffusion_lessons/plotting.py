"""One figure style for the whole course, and the one place where pixel ranges are
converted.

The model works on images in [-1, 1]; people look at images in [0, 1]. ``to_unit`` and
``from_unit`` are the only conversions in the package, so a figure can never show the
wrong range. Figures are saved without timestamps or software metadata, so the same seed
gives the same bytes.

Every figure records how it will read on the page: ``savefig`` writes the size of its
smallest text and of its smallest digit tile, in image pixels, into the PNG
(``MinFontPx``, ``DigitTilePx``). The site's browser test scales them by the size at
which the image is shown and checks them against the body's small print (about 10 px)
and a legible digit (24 px).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # figures are written to files; no screen is needed

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import make_grid  # noqa: E402

# ---------------------------------------------------------------------------
# Style
# ---------------------------------------------------------------------------

plt.rcParams.update(
    {
        "figure.dpi": 100,
        "savefig.dpi": 100,
        "font.size": 10,
        "axes.titlesize": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.grid": True,
        "grid.alpha": 0.3,
        "image.cmap": "gray",
        "svg.hashsalt": "diffusion-lessons",
    }
)

#: one colour per digit class, used by every per-class plot
DIGIT_COLORS = [plt.get_cmap("tab10")(i) for i in range(10)]

# ---------------------------------------------------------------------------
# Pixel ranges
# ---------------------------------------------------------------------------


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map model pixels in [-1, 1] to display pixels in [0, 1] (clamped)."""
    return ((x + 1) / 2).clamp(0, 1)


def from_unit(x: torch.Tensor) -> torch.Tensor:
    """Map display pixels in [0, 1] to model pixels in [-1, 1]."""
    return x * 2 - 1


# ---------------------------------------------------------------------------
# Grids and figures
# ---------------------------------------------------------------------------


def image_grid(images: torch.Tensor, nrow: int = 10, padding: int = 2) -> torch.Tensor:
    """Tile model-range images (B, C, H, W) into one display image (H', W') or (H', W',
    3) in [0, 1].
    """
    grid = make_grid(
        to_unit(images.detach().float().cpu()),
        nrow=nrow,
        padding=padding,
        pad_value=1.0,
    )
    if images.shape[1] == 1:
        return grid[0]  # (H', W'): make_grid repeats grey images to 3 channels
    return grid.permute(1, 2, 0)  # (H', W', 3)


def show_images(
    ax,
    images: torch.Tensor,
    nrow: int = 10,
    title: str | None = None,
    col_labels: list[str] | None = None,
    row_labels: list[str] | None = None,
    padding: int = 2,
) -> None:
    """Draw a grid of model-range images (B, C, H, W) on a matplotlib axis, optionally
    labelling columns and rows.
    """
    im = ax.imshow(
        image_grid(images, nrow=nrow, padding=padding).numpy(),
        cmap="gray",
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    im.digit_tile = images.shape[-1]  # pixels per digit in the grid (see savefig)
    ax.set_axis_off()
    cell_h, cell_w = images.shape[-2] + padding, images.shape[-1] + padding
    for j, label in enumerate(col_labels or []):
        ax.text(
            padding + j * cell_w + cell_w / 2 - 1,
            -1,
            label,
            ha="center",
            va="bottom",
            fontsize=8,
        )
    for i, label in enumerate(row_labels or []):
        ax.text(
            -2,
            padding + i * cell_h + cell_h / 2 - 1,
            label,
            ha="right",
            va="center",
            fontsize=8,
        )
    if title:
        ax.set_title(title, pad=20 if col_labels else 6)


def new_figure(
    nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (6.0, 4.0), **kwargs
):
    """A figure and its axes in the course style (``plt.subplots``, fixed size)."""
    return plt.subplots(nrows, ncols, figsize=size, **kwargs)


def legibility(fig) -> dict[str, str]:
    """Sizes, in pixels of the saved image, of the figure's smallest drawn text and of
    its smallest digit tile (grids drawn by ``show_images``).
    """
    from matplotlib.image import AxesImage
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    dpi = plt.rcParams["savefig.dpi"]
    dpi = fig.dpi if dpi == "figure" else float(dpi)
    hidden = set()  # tick labels of axes that are switched off are never drawn
    for ax in fig.axes:
        if not ax.axison:
            hidden.update(ax.get_xticklabels(which="both"))
            hidden.update(ax.get_yticklabels(which="both"))
    sizes = [
        t.get_fontsize()
        for t in fig.findobj(Text)
        if t.get_visible()
        and t.get_text().strip()
        and t not in hidden
        and t.get_window_extent(renderer).overlaps(fig.bbox)
    ]
    out = {}
    if sizes:
        out["MinFontPx"] = f"{min(sizes) * dpi / 72:.1f}"
    tiles = [
        im.get_window_extent(renderer).width
        / im.get_array().shape[1]
        * im.digit_tile
        * dpi
        / fig.dpi
        for im in fig.findobj(AxesImage)
        if getattr(im, "digit_tile", None)
    ]
    if tiles:
        out["DigitTilePx"] = f"{min(tiles):.1f}"
    return out


def savefig(fig, path: str | Path) -> Path:
    """Save ``fig`` as a deterministic PNG (no software or time metadata, only
    ``legibility``), close it, return the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"Software": None, **legibility(fig)}
    fig.savefig(path, bbox_inches="tight", metadata=metadata)
    plt.close(fig)
    return path
