"""The papers' systems built around attention, end to end at small scale: ``attnzoo demo NAME``.

Each demonstration is one module of this package (its attention component lives in :mod:`attnzoo.ops` /
:mod:`attnzoo.layers`, registered and contract-tested like every other mechanism). A module defines

- ``SUMMARY``: one line, shown by ``attnzoo demo --help``;
- ``add_arguments(parser)``: its own flags, besides the common ``--full``, ``--seed``, ``--out`` and
  ``--no-progress`` that :func:`add_common_arguments` adds;
- ``run(args) -> list[Path]``: generate the data, train, evaluate with the paper's metric, write the result
  (:func:`attnzoo.systems.report.write_result`) and return the files written.

The default budget runs in a few minutes of CPU; ``--full`` is the longer one the committed results quote when
they say so. :data:`DEMOS` maps the CLI names to the modules (imported only when used).
"""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

DEMOS: dict[str, str] = {}
"""CLI name -> module path of each demonstration (``attnzoo demo NAME``)."""


def demo_module(name: str) -> ModuleType:
    """The module of demonstration ``name``; ``ValueError`` naming the known ones for any other name."""
    if name not in DEMOS:
        raise ValueError(f"demo {name!r} is not known; expected one of {', '.join(sorted(DEMOS)) or '(none)'}")
    return importlib.import_module(DEMOS[name])


def add_common_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The flags every demonstration takes: ``--full``, ``--seed``, ``--out`` and ``--no-progress``."""
    parser.add_argument("--full", action="store_true", help="the full budget (default: the short one, minutes)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data generator and training (default: 0)")
    parser.add_argument("--out", default=f"reports/demo/{name}", help=f"output folder (default: reports/demo/{name})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


__all__ = ["DEMOS", "add_common_arguments", "demo_module"]
