"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) read offline from the IDX files of Debian's ``dataset-fashion-mnist``.

The package installs ``{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz`` under ``/usr/share/datasets/fashion-mnist``
(60,000 training and 10,000 test 28x28 grayscale images, 10 classes). Each IDX header (magic number, element type,
rank and dims) is parsed and checked against the file size, so a corrupt or mismatched file fails loudly instead of
being reshaped into garbage.
"""

from __future__ import annotations

import functools
import gzip
import os
from pathlib import Path

import numpy as np
import torch

from attnzoo.data.errors import INSTALL_SCRIPT, DataFormatError, DataNotInstalledError

DEBIAN_ROOT = Path("/usr/share/datasets/fashion-mnist")
"""Where ``apt-get install dataset-fashion-mnist`` puts the files."""

ROOT_ENV = "ATTNZOO_FASHION_MNIST"
"""Environment variable naming another folder with the four ``.gz`` files; overrides :data:`DEBIAN_ROOT`."""

FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
"""The class names in label order (label ``i`` is ``FASHION_MNIST_CLASSES[i]``)."""

_FILE_PREFIX = {"train": "train", "test": "t10k"}
_IMAGE_SIDE = 28
_IDX_UBYTE = 0x08  # IDX element-type code of unsigned bytes, the only type Fashion-MNIST uses


def load_fashion_mnist(split: str = "train", root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels of one Fashion-MNIST split.

    Args:
        split: ``"train"`` (60,000 examples) or ``"test"`` (10,000).
        root: folder holding the four ``*-ubyte.gz`` files; defaults to ``$ATTNZOO_FASHION_MNIST``, else
            :data:`DEBIAN_ROOT`.

    Returns:
        ``(images, labels)``: ``(N, 28, 28)`` uint8 pixels (0 = background) and ``(N,)`` int64 labels in ``0..9``
        (names in :data:`FASHION_MNIST_CLASSES`). The parsed files are cached per process; each call returns
        fresh copies, so callers may modify them in place.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        DataNotInstalledError: a file is missing (the message says how to install it).
        DataFormatError: a file is not a valid IDX file of the expected shape.
    """
    if split not in _FILE_PREFIX:
        raise ValueError(f"split={split!r}: expected one of {sorted(_FILE_PREFIX)}")
    folder = Path(root if root is not None else os.environ.get(ROOT_ENV, DEBIAN_ROOT)).expanduser().resolve()
    prefix = _FILE_PREFIX[split]
    paths = (folder / f"{prefix}-images-idx3-ubyte.gz", folder / f"{prefix}-labels-idx1-ubyte.gz")
    for path in paths:
        if not path.is_file():
            raise DataNotInstalledError(
                f"Fashion-MNIST file {path} not found. Install the dataset with `{INSTALL_SCRIPT}` (from the attnzoo "
                f"repository root) or `apt-get install -y dataset-fashion-mnist`, or pass root= / set ${ROOT_ENV} to "
                "a folder holding the four *-ubyte.gz files"
            )
    images, labels = _load_pair(*paths)
    return images.clone(), labels.clone()


@functools.lru_cache(maxsize=4)
def _load_pair(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse and cross-check one split's image and label files (cached on their resolved paths)."""
    images = _read_idx(images_path, (None, _IMAGE_SIDE, _IMAGE_SIDE))
    labels = _read_idx(labels_path, (None,))
    if len(images) != len(labels):
        raise DataFormatError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} "
                              "labels; expected one label per image")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise DataFormatError(f"{labels_path} holds label {labels.max()}; expected labels in "
                              f"0..{len(FASHION_MNIST_CLASSES) - 1}")
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


def _read_idx(path: Path, expected_dims: tuple[int | None, ...]) -> np.ndarray:
    """The unsigned-byte array stored in the gzipped IDX file ``path``, checked against ``expected_dims``.

    IDX layout: two zero bytes, the element-type code, the rank ``r``, then ``r`` big-endian uint32 dims and the
    row-major data. ``None`` in ``expected_dims`` accepts any size on that axis.
    """
    try:
        with gzip.open(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as err:
        raise DataFormatError(f"{path} is not a readable gzip file ({err}); expected a gzipped IDX file") from err
    rank = len(expected_dims)
    header_size = 4 + 4 * rank
    if len(raw) < header_size:
        raise DataFormatError(f"{path} holds {len(raw)} bytes, fewer than the {header_size}-byte header of a "
                              f"rank-{rank} IDX file")
    magic = raw[:4]
    if magic != bytes((0, 0, _IDX_UBYTE, rank)):
        raise DataFormatError(f"{path} starts with magic bytes {magic.hex()}; expected 0000{_IDX_UBYTE:02x}{rank:02x} "
                              f"(an unsigned-byte IDX file of rank {rank})")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank))
    if any(want is not None and got != want for got, want in zip(dims, expected_dims)):
        shown = tuple("N" if want is None else want for want in expected_dims)
        raise DataFormatError(f"{path} has dims {dims}; expected {shown}")
    if len(raw) != header_size + int(np.prod(dims)):
        raise DataFormatError(f"{path} holds {len(raw) - header_size} data bytes; its header dims {dims} "
                              f"need {int(np.prod(dims))}")
    return np.frombuffer(raw, np.uint8, offset=header_size).reshape(dims).copy()
