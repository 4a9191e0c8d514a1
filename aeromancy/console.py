"""The one console: data to stdout, status, progress and errors to stderr.

Only the CLI layer uses it; library modules log through `logging` instead.
Rich is imported on first use so that `aero --help` does not pay for it.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["err", "out"]


@functools.cache
def out() -> Console:
    """The console for data: tables, JSON, ids. Nothing else goes to stdout."""
    from rich.console import Console

    return Console(soft_wrap=True, highlight=False)


@functools.cache
def err() -> Console:
    """The console for status lines, progress bars, warnings and errors."""
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True, highlight=False)
