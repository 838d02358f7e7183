from pathlib import Path

import pytest
import torch

from colddiff import data

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


def test_mnist_is_real_and_scaled_like_to_tensor(data_dir: Path) -> None:
    train = data.mnist(train=True)
    assert train.images.shape == (60000, 1, 28, 28) and train.images.dtype == torch.float32
    assert train.images.min() == 0 and train.images.max() == 1
    assert train.images.mean().item() == pytest.approx(0.1307, abs=1e-4)
    assert torch.bincount(train.labels).tolist() == MNIST_TRAIN_COUNTS
    image, label = train[0]
    assert image.shape == (1, 28, 28) and label.item() == 5 and len(train) == 60000
    assert len(data.mnist(train=False)) == 10000


def test_fashion_mnist_limit_and_centre(data_dir: Path) -> None:
    fashion = data.fashion_mnist(train=True)
    assert fashion.images.mean().item() == pytest.approx(0.2860, abs=1e-4)
    assert torch.bincount(fashion.labels).tolist() == [6000] * 10
    small = data.fashion_mnist(train=False, limit=10, centre=True)
    assert len(small) == 10 and small.images.min() == -0.5 and small.images.max() <= 0.5
    torch.testing.assert_close(small.images + 0.5, data.fashion_mnist(train=False).images[:10])


def test_root_resolution(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert data.data_root(tmp_path) == tmp_path
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path / "env"))
    assert data.data_root() == tmp_path / "env"
    monkeypatch.delenv(data.ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.data_root() == tmp_path / "cache" / "colddiff" / "data"


def test_missing_data_says_where_to_put_the_files(tmp_path: Path) -> None:
    message = r"MNIST/raw.*train-images-idx3-ubyte.*COLDDIFF_DATA_DIR"
    with pytest.raises(data.DatasetNotFoundError, match=message):
        data.mnist(root=tmp_path, download=False)


def test_bad_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        data.mnist(limit=0)
