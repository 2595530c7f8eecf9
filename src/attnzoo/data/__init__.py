"""Offline loaders of the real datasets attnzoo trains on, read from Debian packages (no network at load time).

``load_fashion_mnist`` reads Fashion-MNIST (``dataset-fashion-mnist``) for the ViT harness; ``load_austen_novels``
and ``austen_splits`` read Jane Austen's six novels (``r-cran-janeaustenr``) for byte-level language models.
``bash scripts/install_data.sh`` installs both; a missing dataset raises :class:`DataNotInstalledError`.
"""

from attnzoo.data.austen import AUSTEN_TITLES, austen_splits, load_austen_novels
from attnzoo.data.errors import DataFormatError, DataNotInstalledError
from attnzoo.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist

__all__ = [
    "AUSTEN_TITLES",
    "FASHION_MNIST_CLASSES",
    "DataFormatError",
    "DataNotInstalledError",
    "austen_splits",
    "load_austen_novels",
    "load_fashion_mnist",
]
