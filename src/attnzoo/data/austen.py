"""Jane Austen's six completed novels, read offline from Debian's ``r-cran-janeaustenr`` without R.

``scripts/install_data.sh`` downloads the ``.deb`` and extracts it (``dpkg-deb -x``) to
``<root>/janeaustenr/``. The novels are the package's lazy-load data, an R database of two files under
``usr/lib/R/site-library/janeaustenr/data/``: ``Rdata.rdx``, an RDS file whose ``variables`` map each object
name (``emma``, ``persuasion``, ...) to an ``(offset, length)`` in ``Rdata.rdb``; there each object is a 4-byte
big-endian uncompressed length followed by a zlib stream of the serialized object, a character vector of the
novel's lines (Project Gutenberg text, wrapped at about 70 columns). The ``rdata`` package parses the
serialization. A truncated or garbled database raises :class:`~attnzoo.data.errors.DataFormatError` naming the
file and the command that reinstalls it.
"""

from __future__ import annotations

import functools
import os
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from attnzoo.data.errors import INSTALL_SCRIPT, DataFormatError, DataNotInstalledError

ROOT_ENV = "ATTNZOO_DATA_DIR"
"""Environment variable naming the data folder; the default is ``~/.cache/attnzoo``."""

DEFAULT_ROOT = Path("~/.cache/attnzoo")
"""The data folder used when neither ``root=`` nor ``$ATTNZOO_DATA_DIR`` is given."""

LAZY_LOAD_DB = Path("janeaustenr/usr/lib/R/site-library/janeaustenr/data/Rdata")
"""The lazy-load database (``.rdx`` index + ``.rdb`` data) relative to the data folder."""

AUSTEN_TITLES: dict[str, str] = {
    "Sense & Sensibility": "sensesensibility",
    "Pride & Prejudice": "prideprejudice",
    "Mansfield Park": "mansfieldpark",
    "Emma": "emma",
    "Northanger Abbey": "northangerabbey",
    "Persuasion": "persuasion",
}
"""Readable title -> R object name, in publication order (the order of the training text in :func:`austen_splits`)."""

T = TypeVar("T")

SPLIT_SEPARATOR = "\n\n"
"""Text placed between two training novels in :func:`austen_splits`."""


def load_austen_novels(root: str | Path | None = None) -> dict[str, str]:
    """The six novels' full texts, keyed by title in publication order (see :data:`AUSTEN_TITLES`).

    Args:
        root: the data folder holding ``janeaustenr/`` (the extracted ``.deb``); defaults to
            ``$ATTNZOO_DATA_DIR``, else ``~/.cache/attnzoo``.

    Returns:
        ``{title: text}``, each text the novel's lines joined with ``"\\n"`` (about 4.0 M characters in all).
        Parsed once per process and data folder; later calls return a new dict of the same strings.

    Raises:
        DataNotInstalledError: the corpus is not extracted under ``root`` (the message says how to install it).
        DataFormatError: the database is not the expected one (unknown compression, missing novel, not text).
    """
    folder = Path(root if root is not None else os.environ.get(ROOT_ENV, DEFAULT_ROOT)).expanduser().resolve()
    base = folder / LAZY_LOAD_DB
    for path in (base.with_suffix(".rdx"), base.with_suffix(".rdb")):
        if not path.is_file():
            raise DataNotInstalledError(f"Jane Austen corpus file {path} not found. Install it with "
                                        f"{_install_commands(folder)}")
    try:
        return dict(_parse_novels(base))
    except DataFormatError as error:
        raise DataFormatError(f"{error}. The Jane Austen corpus in {folder / 'janeaustenr'} looks damaged; "
                              f"reinstall it: `rm -rf {folder / 'janeaustenr'}`, then {_install_commands(folder)}"
                              ) from error


def _install_commands(folder: Path) -> str:
    """How to install the corpus into ``folder``: the repository's script, or by hand."""
    return (f"`{ROOT_ENV}={folder} {INSTALL_SCRIPT}` (from the attnzoo repository root), or by hand: "
            f"`apt-get download r-cran-janeaustenr && dpkg-deb -x r-cran-janeaustenr_*.deb {folder}/janeaustenr`")


def austen_splits(held_out: str = "Persuasion", root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A train/held-out split by novel, as UTF-8 bytes for byte-level language modelling.

    Args:
        held_out: title of the novel to hold out (a key of :data:`AUSTEN_TITLES`).
        root: the data folder, as in :func:`load_austen_novels`.

    Returns:
        ``(train, held)``: 1-D uint8 tensors. ``train`` is the other five novels in publication order joined
        with :data:`SPLIT_SEPARATOR`; ``held`` is the held-out novel's text.

    Raises:
        ValueError: ``held_out`` is not one of the six titles.
        DataNotInstalledError, DataFormatError: as in :func:`load_austen_novels`.
    """
    if held_out not in AUSTEN_TITLES:
        raise ValueError(f"held_out={held_out!r}: expected one of {list(AUSTEN_TITLES)}")
    novels = load_austen_novels(root)
    train = SPLIT_SEPARATOR.join(text for title, text in novels.items() if title != held_out)
    return _utf8_tensor(train), _utf8_tensor(novels[held_out])


def _utf8_tensor(text: str) -> torch.Tensor:
    """``text`` encoded as UTF-8, as a 1-D uint8 tensor."""
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)


@functools.lru_cache(maxsize=2)
def _parse_novels(base: Path) -> tuple[tuple[str, str], ...]:
    """``(title, text)`` of each novel in the lazy-load database ``base`` (``.rdx``/``.rdb``), in title order."""
    try:
        import rdata  # deferred: it imports pandas and xarray (~0.3 s), which only the first parse needs
    except ImportError as error:
        raise ImportError("reading the Austen corpus needs rdata, an optional extra: pip install 'attnzoo[data]'") \
            from error

    index = _parsed(f"{base}.rdx", "an R serialized index", lambda: rdata.read_rds(base.with_suffix(".rdx")))
    compressed, variables = _parsed(f"{base}.rdx", "a lazy-load index (compressed, variables)", lambda: (
        np.asarray(index["compressed"]),
        {str(name): (int(offset), int(length)) for name, (offset, length) in index["variables"].items()}))
    if compressed.dtype != np.bool_ or compressed.tolist() != [True]:  # R writes 2L for bzip2, 3L for xz
        raise DataFormatError(f"{base}.rdx has compressed={compressed.tolist()!r}; expected [True] (zlib), the "
                              "only compression this reader supports")
    blob = base.with_suffix(".rdb").read_bytes()
    novels = []
    for title, name in AUSTEN_TITLES.items():
        if name not in variables:
            raise DataFormatError(f"{base}.rdx has no object {name!r} ({title}); it has {sorted(variables)}")
        offset, length = variables[name]
        what = f"{base}.rdb object {name!r}"
        if offset + length > len(blob):
            raise DataFormatError(f"{what} is truncated: the index places it at bytes {offset}..{offset + length} "
                                  f"of a {len(blob)}-byte file")
        record = _decompress(blob[offset:offset + length], what)
        lines = _parsed(what, "an R character vector",
                        lambda: rdata.conversion.convert(rdata.parser.parse_data(record, extension=".rds")))
        if not (isinstance(lines, np.ndarray) and lines.ndim == 1 and lines.dtype.kind == "U"):
            raise DataFormatError(f"{base}.rdb object {name!r} is {type(lines).__name__} "
                                  f"{getattr(lines, 'dtype', '')}; expected a character vector of lines")
        novels.append((title, "\n".join(lines.tolist())))
    return tuple(novels)


def _parsed(what: str, expected: str, parse: Callable[[], T]) -> T:
    """``parse()``; whatever the parser raises on damaged bytes becomes a :class:`DataFormatError` naming ``what``."""
    try:
        return parse()
    except Exception as error:  # noqa: BLE001 - rdata raises many kinds on garbage input
        raise DataFormatError(f"{what} does not parse as {expected} ({type(error).__name__}: {error})") from error


def _decompress(record: bytes, what: str) -> bytes:
    """The serialized object in one lazy-load record: a big-endian uint32 length, then the zlib-compressed bytes."""
    try:
        data = zlib.decompress(record[4:])
    except zlib.error as err:
        raise DataFormatError(f"{what} is not zlib data ({err}); the .rdx/.rdb pair may be mismatched") from err
    expected = int.from_bytes(record[:4], "big")
    if len(data) != expected:
        raise DataFormatError(f"{what} decompresses to {len(data)} bytes; its header says {expected}")
    return data
