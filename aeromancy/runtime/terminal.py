"""An interactive shell in a container, through the engine's API alone.

The shell gets a pseudo-terminal in the container; the local terminal is put in
raw mode (when there is one) and bytes are relayed both ways until the shell
exits. Without a local terminal (a pipe), input is relayed as it is.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["shell"]

_SHELL = "command -v bash >/dev/null && exec bash || exec sh"


def shell(api: Any, container: str, cwd: Path) -> int:
    """Run an interactive shell in `container` at `cwd`; its exit code."""
    created = api.exec_create(
        container,
        ["/bin/sh", "-c", _SHELL],
        stdin=True,
        tty=True,
        workdir=str(cwd),
        environment={"TERM": os.environ.get("TERM", "xterm")},
    )
    sock = api.exec_start(created["Id"], tty=True, socket=True)
    raw = getattr(sock, "_sock", sock)
    with _raw_terminal():
        _relay(raw)
    code = api.exec_inspect(created["Id"]).get("ExitCode")
    return int(code) if code is not None else 0


def _relay(sock: Any) -> None:
    """Copy stdin to the socket and the socket to stdout until the shell ends."""
    stdin = sys.stdin.fileno()
    stdout = sys.stdout.fileno()
    sources = [sock, stdin]
    while True:
        readable, _, _ = select.select(sources, [], [])
        if sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            os.write(stdout, data)
        if stdin in readable:
            data = os.read(stdin, 65536)
            if not data:
                sock.sendall(b"\x04")  # end of input: the shell sees Ctrl-D
                sources.remove(stdin)
            else:
                sock.sendall(data)


@contextlib.contextmanager
def _raw_terminal() -> Iterator[None]:
    if not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(sys.stdin.fileno())
    tty.setraw(sys.stdin.fileno())
    try:
        yield
    finally:
        termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, saved)
