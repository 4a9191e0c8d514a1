"""The data broker: `aeromancy.notebook` calls from a kernel inside a runtime,
answered on the host.

The launcher serves a Unix socket in a folder the kernel sees at the same path
(`BROKER_ENV` names it). A call is one JSON line, `{"op": "files" | "view" |
"lineage", "path": ..., "run": ...}`; the answer is one JSON line, `{"ok": ...}`
or `{"error": {"type": ..., "message": ...}}`. The host reads with the same
reader a host kernel uses, so both kinds of kernel read the same bytes by the
same hashes; what it returns are paths in the DVC cache (or under the
project's `.aeromancy/notebook/`), which the kernel opens itself.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aeromancy._pinned import MissingDataError, NotTrackedError
from aeromancy.errors import UserError

__all__ = ["Client", "serving"]

log = logging.getLogger(__name__)

SOCKET = "broker.sock"
OPS = ("files", "view", "lineage")
WATCH = b'{"op": "watch"}'
# The errors a notebook may want to catch by class; any other is a UserError.
_ERRORS: dict[str, type[UserError]] = {
    "MissingDataError": MissingDataError,
    "NotTrackedError": NotTrackedError,
}


@contextmanager
def serving(folder: Path) -> Iterator[Path]:
    """Answer calls on `folder/broker.sock` while open; yields the socket's path."""
    address = folder / SOCKET
    server = socketserver.ThreadingUnixStreamServer(str(address), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="aero-broker")
    thread.daemon = True
    thread.start()
    try:
        yield address
    finally:
        server.shutdown()
        server.server_close()
        address.unlink(missing_ok=True)


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        for line in self.rfile:
            if line.strip() == WATCH:
                # `kernel/inside.py`: held open, never answered, until one of
                # us ends; the kernel ends when we do.
                self.rfile.read()
                return
            reply = answer(line)
            self.wfile.write(json.dumps(reply).encode("utf-8") + b"\n")
            self.wfile.flush()


def answer(line: bytes) -> dict[str, Any]:
    """The reply to one call, an error included (nothing is raised)."""
    from aeromancy.notebook import _HostReader

    try:
        call = json.loads(line)
        op = call["op"]
        if op not in OPS:
            raise UserError(f"the data broker has no call '{op}'")
        result = getattr(_HostReader(), op)(call.get("path"), call.get("run"))
        return {"ok": _plain(op, result)}
    except UserError as exc:
        return {"error": {"type": type(exc).__name__, "message": exc.message}}
    except Exception as exc:  # a bug here must reach the notebook, not kill us
        log.exception("the data broker failed on %r", line)
        message = f"the data broker on the host failed: {exc!r}"
        return {"error": {"type": "UserError", "message": message}}


def _plain(op: str, result: Any) -> Any:
    if op == "files":
        shown, found = result
        return {"path": shown, "files": [[name, str(local)] for name, local in found]}
    if op == "view":
        return str(result)
    return result.as_dict()


class Client:
    """The kernel's side: the same calls as `notebook._HostReader`, over the socket.

    Args:
        address: the broker's socket.
    """

    def __init__(self, address: str) -> None:
        self.address = address

    def files(
        self, path: str | os.PathLike[str], run: str | None
    ) -> tuple[str, list[tuple[str, Path]]]:
        answer = self._call("files", path, run)
        return answer["path"], [(name, Path(local)) for name, local in answer["files"]]

    def view(self, path: str | os.PathLike[str], run: str | None) -> Path:
        return Path(self._call("view", path, run))

    def lineage(self, path: str | os.PathLike[str] | None, run: str | None) -> Any:
        from aeromancy.notebook import Lineage

        return Lineage(**self._call("lineage", path, run))

    def _call(
        self, op: str, path: str | os.PathLike[str] | None, run: str | None
    ) -> Any:
        call = {"op": op, "path": None if path is None else os.fspath(path), "run": run}
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
                connection.connect(self.address)
                connection.sendall(json.dumps(call).encode("utf-8") + b"\n")
                with connection.makefile("rb") as replies:
                    line = replies.readline()
        except OSError as exc:
            raise UserError(
                f"the kernel's data broker at {self.address} does not answer "
                f"({exc.strerror or exc}); restart the kernel"
            ) from None
        if not line:
            raise UserError(
                f"the kernel's data broker at {self.address} closed the connection; "
                "restart the kernel"
            )
        reply = json.loads(line)
        if "error" in reply:
            error = reply["error"]
            raise _ERRORS.get(error["type"], UserError)(error["message"])
        return reply["ok"]
