"""The datasets: one format for every source, and clear errors for bad input."""

import gzip

import pytest
import torch

from diffusion_lessons.data import DatasetError, load_digits, make_loader, read_idx


def test_offline_digits_format_and_split():
    x, y = load_digits("mnist-5k", "train")
    xt, yt = load_digits("mnist-5k", "test")
    assert x.shape == (4000, 1, 28, 28) and x.dtype == torch.float32
    assert xt.shape == (1000, 1, 28, 28)
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    assert torch.bincount(yt).tolist() == [100] * 10
    assert x.min().item() == -1.0 and x.max().item() == 1.0


def test_auto_falls_back_to_offline_digits_with_one_line(capsys):
    x, y = load_digits("auto", "test")
    assert x.shape == (1000, 1, 28, 28)
    assert "offline digits" in capsys.readouterr().out


def test_limit_and_loader():
    x, y = load_digits("mnist-5k", limit=300)
    assert len(x) == 300 and len(set(y.tolist())) == 10
    xb, yb = next(
        iter(
            make_loader(x, y, batch_size=64, generator=torch.Generator().manual_seed(0))
        )
    )
    assert xb.shape == (64, 1, 28, 28) and yb.shape == (64,)


def _write_idx(path, array: torch.Tensor, ndim_code=0x08, truncate=0):
    header = bytes([0, 0, ndim_code, array.ndim]) + b"".join(
        d.to_bytes(4, "big") for d in array.shape
    )
    body = array.numpy().astype("uint8").tobytes()
    data = header + body[: len(body) - truncate]
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(data)


def test_idx_folder_roundtrip(tmp_path):
    imgs = torch.randint(0, 256, (12, 28, 28), dtype=torch.uint8)
    labels = torch.arange(12) % 10
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", imgs)
    _write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    x, y = load_digits(str(tmp_path), "train")
    assert x.shape == (12, 1, 28, 28)
    torch.testing.assert_close(x, imgs[:, None].float() / 255 * 2 - 1)
    assert y.tolist() == labels.tolist()


def test_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(DatasetError, match="Unknown dataset 'emnist'.*Use one of"):
        load_digits("emnist")
    with pytest.raises(ValueError, match="Unknown split"):
        load_digits("mnist-5k", "validation")
    with pytest.raises(DatasetError, match="No t10k-images-idx3-ubyte"):
        _write_idx(tmp_path / "train-images-idx3-ubyte", torch.zeros(2, 28, 28))
        load_digits(str(tmp_path), "test")
    bad = tmp_path / "bad-images-idx3-ubyte"
    _write_idx(bad, torch.zeros(3, 28, 28), truncate=10)
    with pytest.raises(DatasetError, match="truncated or corrupt.*download it again"):
        read_idx(bad)
    bad.write_bytes(b"not an idx file at all")
    with pytest.raises(DatasetError, match="bad header"):
        read_idx(bad)
    with pytest.raises(DatasetError, match="not found"):
        read_idx(tmp_path / "missing")


def test_fashion_mnist_offline_when_debian_files_exist():
    import pathlib

    if not pathlib.Path("/usr/share/datasets/fashion-mnist").is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (CI installs it)")
    x, y = load_digits("fashion-mnist", "test")
    assert x.shape == (10000, 1, 28, 28) and torch.bincount(y).tolist() == [1000] * 10
