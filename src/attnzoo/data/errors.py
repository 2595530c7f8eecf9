"""Errors of the offline dataset loaders: a dataset that is not installed, and a file that is not what we expect."""

from __future__ import annotations

INSTALL_SCRIPT = "bash scripts/install_data.sh"
"""The command (run from the attnzoo repository root) that installs every dataset :mod:`attnzoo.data` reads."""


class DataNotInstalledError(FileNotFoundError):
    """A dataset file is missing; the message names the file and the command that installs it."""


class DataFormatError(ValueError):
    """A dataset file exists but its contents are not the expected format (corrupt, truncated or another file)."""
