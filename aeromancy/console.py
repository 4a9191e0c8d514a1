"""The one console: data to stdout, status, progress and errors to stderr.

Only the CLI layer uses it; library modules log through `logging` instead.
Rich is imported on first use so that `aero --help` does not pay for it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["err", "out", "say", "stdout_to_stderr", "warn"]


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


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """While open, whatever writes to stdout (a stage's command included, which
    inherits the descriptor) goes to stderr, so that `--json` stays JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def say(text: str, *, data: bool = False) -> None:
    """One plain line: a message on stderr, or `data` on stdout. Written
    directly, so a short command needs no rich (about 50 ms to import)."""
    stream = sys.stdout if data else sys.stderr
    stream.write(f"{text}\n")
    stream.flush()


def warn(text: str) -> None:
    """`warning: text` on stderr, the word in yellow on a terminal."""
    if sys.stderr.isatty() and not os.environ.get("NO_COLOR"):
        from rich.markup import escape

        err().print(f"[yellow]warning:[/] {escape(text)}", highlight=False)
    else:
        say(f"warning: {text}")
