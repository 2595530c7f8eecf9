"""The offline dataset loaders on the real data (installed by ``scripts/install_data.sh``) and on corrupt files."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest
import torch

from attnzoo.data import (
    FASHION_MNIST_CLASSES,
    DataFormatError,
    DataNotInstalledError,
    austen_splits,
    load_austen_novels,
    load_fashion_mnist,
)
from attnzoo.data.austen import DEFAULT_ROOT, LAZY_LOAD_DB, ROOT_ENV, SPLIT_SEPARATOR

PERSUASION_OPENING = "Sir Walter Elliot, of Kellynch Hall, in Somersetshire"


# --- Fashion-MNIST ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fashion() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {split: load_fashion_mnist(split) for split in ("train", "test")}


@pytest.mark.parametrize(("split", "n"), [("train", 60_000), ("test", 10_000)])
def test_fashion_mnist_shapes_and_balanced_labels(fashion, split: str, n: int) -> None:
    images, labels = fashion[split]
    assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert len(FASHION_MNIST_CLASSES) == 10
    assert labels.bincount(minlength=10).tolist() == [n // 10] * 10
    assert images.min() == 0 and images.max() == 255
    assert 0.2 < images.float().mean() / 255 < 0.4  # mostly dark background


def test_fashion_mnist_train_and_test_differ(fashion) -> None:
    train, test = fashion["train"][0], fashion["test"][0]
    assert not torch.equal(train[:100], test[:100])
    assert train.float().mean(0).sub(test.float().mean(0)).abs().max() < 10  # same distribution, different images


def test_fashion_mnist_returns_copies_of_the_cache() -> None:
    images, _ = load_fashion_mnist("test")
    images.zero_()
    assert load_fashion_mnist("test")[0].max() == 255


def test_fashion_mnist_bad_split() -> None:
    with pytest.raises(ValueError, match=r"split='val'.*'test', 'train'"):
        load_fashion_mnist("val")


def test_fashion_mnist_missing_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNZOO_FASHION_MNIST", str(tmp_path))
    with pytest.raises(DataNotInstalledError, match="train-images-idx3-ubyte.gz") as info:
        load_fashion_mnist()
    assert isinstance(info.value, FileNotFoundError)
    assert "bash scripts/install_data.sh" in str(info.value)
    assert "apt-get install -y dataset-fashion-mnist" in str(info.value)


def _idx_file(path: Path, header: bytes, data: bytes) -> None:
    path.write_bytes(gzip.compress(header + data))


def _idx_header(dims: tuple[int, ...], magic: bytes | None = None) -> bytes:
    magic = magic if magic is not None else bytes((0, 0, 8, len(dims)))
    return magic + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(("images_header", "images_data", "labels_count", "message"), [
    (_idx_header((2, 28, 28), magic=b"\x00\x00\x08\x01"), bytes(2 * 784), 2, "magic bytes 00000801"),
    (_idx_header((2, 28, 28), magic=b"\x00\x00\x0d\x03"), bytes(2 * 784), 2, "magic bytes 00000d03"),
    (_idx_header((2, 27, 28)), bytes(2 * 27 * 28), 2, r"dims \(2, 27, 28\); expected \('N', 28, 28\)"),
    (_idx_header((2, 28, 28)), bytes(784), 2, "784 data bytes"),
    (_idx_header((2, 28, 28))[:6], b"", 2, "fewer than the 16-byte header"),
    (_idx_header((2, 28, 28)), bytes(2 * 784), 3, "2 images but .* 3 labels"),
])
def test_fashion_mnist_corrupt_idx(tmp_path: Path, images_header: bytes, images_data: bytes, labels_count: int,
                                   message: str) -> None:
    _idx_file(tmp_path / "t10k-images-idx3-ubyte.gz", images_header, images_data)
    _idx_file(tmp_path / "t10k-labels-idx1-ubyte.gz", _idx_header((labels_count,)), bytes(labels_count))
    with pytest.raises(DataFormatError, match=message):
        load_fashion_mnist("test", root=tmp_path)


def test_fashion_mnist_not_gzip_and_bad_label(tmp_path: Path) -> None:
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    _idx_file(tmp_path / "t10k-labels-idx1-ubyte.gz", _idx_header((1,)), b"\x0a")
    with pytest.raises(DataFormatError, match="not a readable gzip file"):
        load_fashion_mnist("test", root=tmp_path)
    _idx_file(tmp_path / "t10k-images-idx3-ubyte.gz", _idx_header((1, 28, 28)), bytes(784))
    with pytest.raises(DataFormatError, match=r"label 10; expected labels in 0\.\.9"):
        load_fashion_mnist("test", root=tmp_path)


def test_fashion_mnist_tiny_valid_root(tmp_path: Path) -> None:
    _idx_file(tmp_path / "t10k-images-idx3-ubyte.gz", _idx_header((2, 28, 28)), bytes(range(256)) * 6 + bytes(32))
    _idx_file(tmp_path / "t10k-labels-idx1-ubyte.gz", _idx_header((2,)), b"\x03\x09")
    images, labels = load_fashion_mnist("test", root=tmp_path)
    assert images.shape == (2, 28, 28) and images[0, 0, :5].tolist() == [0, 1, 2, 3, 4]
    assert labels.tolist() == [3, 9]


# --- Jane Austen -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def novels() -> dict[str, str]:
    return load_austen_novels()


def test_austen_titles_and_sizes(novels: dict[str, str]) -> None:
    assert list(novels) == ["Sense & Sensibility", "Pride & Prejudice", "Mansfield Park", "Emma",
                            "Northanger Abbey", "Persuasion"]
    assert 3_900_000 < sum(map(len, novels.values())) < 4_100_000
    assert all(400_000 < len(text) < 900_000 for text in novels.values())
    assert 460_000 < len(novels["Persuasion"]) < 475_000


def test_austen_known_passages(novels: dict[str, str]) -> None:
    assert novels["Persuasion"].startswith("Persuasion\n")
    assert PERSUASION_OPENING in novels["Persuasion"][:500]
    assert "It is a truth universally acknowledged" in novels["Pride & Prejudice"][:500]
    assert novels["Emma"].startswith("EMMA\n")
    assert sum(PERSUASION_OPENING in text for text in novels.values()) == 1


def test_austen_splits(novels: dict[str, str]) -> None:
    train, held = austen_splits()
    assert train.dtype == held.dtype == torch.uint8 and train.dim() == held.dim() == 1
    assert bytes(held.numpy()) == novels["Persuasion"].encode("utf-8")
    train_text = bytes(train.numpy()).decode("utf-8")
    others = [text for title, text in novels.items() if title != "Persuasion"]
    assert train_text == SPLIT_SEPARATOR.join(others)
    assert PERSUASION_OPENING not in train_text and novels["Persuasion"][1000:3000] not in train_text


def test_austen_splits_other_held_out(novels: dict[str, str]) -> None:
    train, held = austen_splits("Emma")
    assert bytes(held.numpy()).decode("utf-8") == novels["Emma"]
    train_text = bytes(train.numpy()).decode("utf-8")
    assert PERSUASION_OPENING in train_text and novels["Emma"][1000:3000] not in train_text


def test_austen_bad_held_out() -> None:
    with pytest.raises(ValueError, match=r"held_out='Pride and Prejudice'.*'Pride & Prejudice'"):
        austen_splits("Pride and Prejudice")


def test_austen_missing_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATTNZOO_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotInstalledError, match="Rdata.rdx not found") as info:
        load_austen_novels()
    assert isinstance(info.value, FileNotFoundError)
    assert "bash scripts/install_data.sh" in str(info.value) and "dpkg-deb -x" in str(info.value)


def test_austen_corrupt_database(tmp_path: Path) -> None:
    installed = Path(os.environ.get(ROOT_ENV, DEFAULT_ROOT)).expanduser() / LAZY_LOAD_DB
    base = tmp_path / LAZY_LOAD_DB
    base.parent.mkdir(parents=True)
    shutil.copy(installed.with_suffix(".rdx"), base.with_suffix(".rdx"))
    base.with_suffix(".rdb").write_bytes(bytes(2_000_000))
    with pytest.raises(DataFormatError, match="object 'sensesensibility' is not zlib data"):
        load_austen_novels(tmp_path)


def _truncated(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize(("damage", "bad_file"), [
    (lambda base: base.with_suffix(".rdx").write_bytes(b"not an R file" * 10), "Rdata.rdx"),
    (lambda base: _truncated(base.with_suffix(".rdx"), 100), "Rdata.rdx"),
    (lambda base: _truncated(base.with_suffix(".rdb"), 800_000), "Rdata.rdb"),
    (lambda base: base.with_suffix(".rdb").write_bytes(os.urandom(1_000_000)), "Rdata.rdb"),
])
def test_damaged_austen_database_names_the_file_and_the_reinstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  damage, bad_file: str) -> None:
    installed = Path(os.environ.get(ROOT_ENV, DEFAULT_ROOT)).expanduser() / LAZY_LOAD_DB
    base = tmp_path / LAZY_LOAD_DB
    base.parent.mkdir(parents=True)
    for suffix in (".rdx", ".rdb"):
        shutil.copy(installed.with_suffix(suffix), base.with_suffix(suffix))
    damage(base)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    with pytest.raises(DataFormatError) as info:
        load_austen_novels()
    message = str(info.value)
    assert f"{base.parent / bad_file}" in message
    assert f"rm -rf {tmp_path / 'janeaustenr'}" in message
    assert f"{ROOT_ENV}={tmp_path} bash scripts/install_data.sh" in message
