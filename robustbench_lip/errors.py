"""The project's one user-facing exception type."""

from __future__ import annotations


class RlipError(Exception):
    """A mistake the user can fix: the CLI shows its message as one line and exits 1, no traceback."""
