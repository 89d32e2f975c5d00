"""Argument types for the command line: a bad value is refused while the arguments are
read (exit status 2, one line naming the option), before any work starts.

Nothing here imports torch, so building the parser stays fast.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

#: what ``sample --out`` can write
SAMPLE_SUFFIXES = (".png", ".npz")


def positive_int(text: str) -> int:
    """A whole number >= 1 (``--steps``, ``--per-digit``, ``--threads``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip().lstrip("+"):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {text!r}")
    return value


def seed(text: str) -> int:
    """A whole number >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0; got {text!r}")
    return value


def finite_float(text: str) -> float:
    """A real number, not nan or inf (``--guidance``)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number; got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (``--lr``)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0; got {text!r}")
    return value


def unit_interval(text: str) -> float:
    """A number in [0, 1] (``--eta``: 0 deterministic DDIM, 1 like DDPM)."""
    value = finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1]; got {text!r}")
    return value


def digits(text: str) -> str:
    """A non-empty string of the digits 0-9, e.g. 0123456789 or 777."""
    if not text or not set(text) <= set("0123456789"):
        raise argparse.ArgumentTypeError(
            f"must be digits 0-9 only, e.g. 0123456789 or 07; got {text!r}"
        )
    return text


def samples_file(text: str) -> str:
    """A file name ending in .png (a grid) or .npz (arrays), not a folder."""
    path = Path(text)
    if path.suffix not in SAMPLE_SUFFIXES:
        raise argparse.ArgumentTypeError(
            f"must end in .png (a grid) or .npz (arrays); got {text!r}"
        )
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a folder; give a file name")
    return text
