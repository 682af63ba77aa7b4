"""The preview's errors and the type of its warning callback."""

from __future__ import annotations

from collections.abc import Callable

Warn = Callable[[str], None]


class PreviewError(ValueError):
    """Input that cannot be previewed; ``str()`` is one line naming the file (and line)."""


class PreviewUsageError(PreviewError):
    """A request that cannot be met as asked (no label files, pick needs a manifest, ...)."""
