"""The stage shell: what DVC runs as `SHELL` while stages run in a container.

DVC calls it as `SHELL -c COMMAND` in the stage's folder with the stage's
environment (see `container.py`). It executes `/bin/sh -c COMMAND` in the
container named by `AEROMANCY_CONTAINER`, in the same folder, streams the
output as it comes and exits with the command's exit code. The container sees
`DVC_ROOT`, `DVC_STAGE`, `PYTHONUNBUFFERED=1` (output streams live, as on a
terminal) and the variables named in `AEROMANCY_PASS_ENV`, nothing else.

On SIGINT or SIGTERM (Ctrl-C), it sends SIGINT to every process of the
container but its idle PID 1: one stage runs at a time, so that is the stage.
A container that stops under the stage ends it with 130, so DVC and the run
record see it aborted.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import socket
import sys
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from aeromancy.runtime.container import CONTAINER_ENV, PASS_ENV

if TYPE_CHECKING:
    from aeromancy.runtime.engine import Engine

__all__ = ["environment", "main"]

_ALWAYS = ("DVC_ROOT", "DVC_STAGE")
_ABORTED = 130


def main(argv: list[str]) -> int:
    """Run `argv[-1]` (after `-c`) in the container; return its exit code."""
    if len(argv) < 2 or argv[-2] != "-c" or CONTAINER_ENV not in os.environ:
        sys.stderr.write("usage: SHELL -c COMMAND, with AEROMANCY_CONTAINER set\n")
        return 2
    from aeromancy.runtime.engine import Engine

    container = os.environ[CONTAINER_ENV]
    engine = Engine()
    # Plain HTTP when the engine allows it: importing the SDK would cost more
    # than the exec itself, once per stage.
    api: _Api = _Raw(engine) if engine.plain else _Sdk(engine.client().api)
    exec_id = api.exec_create(
        container,
        ["/bin/sh", "-c", argv[-1]],
        environment(os.environ, os.environ.get(PASS_ENV, "")),
        os.getcwd(),
    )
    _forward_signals(api, container)
    try:
        for out, err in api.exec_stream(exec_id):
            _write(sys.stdout, out)
            _write(sys.stderr, err)
    except Exception as exc:  # the engine closed the stream under us
        sys.stderr.write(f"aero: lost the stage's output stream: {exc}\n")
    return _exit_code(api, container, exec_id)


def environment(environ: Mapping[str, str], pass_env: str) -> dict[str, str]:
    """The variables the stage sees in the container: DVC's own, and those
    whose names match a pattern of the comma-separated `pass_env`."""
    patterns = [p for p in pass_env.split(",") if p]
    chosen = {
        name: value
        for name, value in environ.items()
        if name in _ALWAYS or any(fnmatch.fnmatchcase(name, p) for p in patterns)
    }
    return {**chosen, "PYTHONUNBUFFERED": "1"}


def _forward_signals(api: _Api, container: str) -> None:
    def forward(number: int, frame: Any) -> None:
        api.exec_detached(container, ["/bin/sh", "-c", "kill -s INT -- -1"])

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)


def _exit_code(api: _Api, container: str, exec_id: str) -> int:
    try:
        running = api.inspect_container(container)["State"]["Running"]
        code = api.exec_inspect(exec_id).get("ExitCode")
    except Exception:  # the container is gone
        running, code = False, None
    if not running:
        sys.stderr.write(f"aero: the runtime container {container[:12]} stopped\n")
        return _ABORTED
    return int(code) if code is not None else 1


Chunks = Iterator[tuple[bytes | None, bytes | None]]


class _Api(Protocol):
    def exec_create(
        self, container: str, cmd: list[str], env: dict[str, str], cwd: str
    ) -> str: ...

    def exec_stream(self, exec_id: str) -> Chunks: ...

    def exec_detached(self, container: str, cmd: list[str]) -> None: ...

    def exec_inspect(self, exec_id: str) -> dict[str, Any]: ...

    def inspect_container(self, container: str) -> dict[str, Any]: ...


class _Raw:
    """The few exec calls, as plain HTTP on the engine's socket."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def exec_create(
        self, container: str, cmd: list[str], env: dict[str, str], cwd: str
    ) -> str:
        config = {
            "Cmd": cmd,
            "Env": [f"{name}={value}" for name, value in env.items()],
            "AttachStdout": True,
            "AttachStderr": True,
        }
        if cwd:
            config["WorkingDir"] = cwd
        created = self.engine.request("POST", f"/containers/{container}/exec", config)
        return str(created["Id"])

    def exec_stream(self, exec_id: str) -> Chunks:
        start = {"Detach": False, "Tty": False}
        sock, data = self.engine.attach(f"/exec/{exec_id}/start", start)
        with sock:
            yield from _frames(sock, data)

    def exec_detached(self, container: str, cmd: list[str]) -> None:
        exec_id = self.exec_create(container, cmd, {}, "")
        self.engine.request("POST", f"/exec/{exec_id}/start", {"Detach": True})

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return dict(self.engine.request("GET", f"/exec/{exec_id}/json"))

    def inspect_container(self, container: str) -> dict[str, Any]:
        return dict(self.engine.request("GET", f"/containers/{container}/json"))


class _Sdk:
    """The same calls through the `docker` SDK (TLS or SSH engines)."""

    def __init__(self, api: Any) -> None:
        self.api = api

    def exec_create(
        self, container: str, cmd: list[str], env: dict[str, str], cwd: str
    ) -> str:
        created = self.api.exec_create(
            container, cmd, environment=env, workdir=cwd or None
        )
        return str(created["Id"])

    def exec_stream(self, exec_id: str) -> Chunks:
        yield from self.api.exec_start(exec_id, stream=True, demux=True)

    def exec_detached(self, container: str, cmd: list[str]) -> None:
        self.api.exec_start(self.exec_create(container, cmd, {}, ""), detach=True)

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return dict(self.api.exec_inspect(exec_id))

    def inspect_container(self, container: str) -> dict[str, Any]:
        return dict(self.api.inspect_container(container))


def _frames(sock: socket.socket, data: bytes) -> Chunks:
    """The Docker API's multiplexed stream: 8-byte headers (stream 1 stdout,
    2 stderr; big-endian length), each followed by its payload."""
    while True:
        while len(data) >= 8 and len(data) >= 8 + int.from_bytes(data[4:8], "big"):
            size = int.from_bytes(data[4:8], "big")
            payload = data[8 : 8 + size]
            yield (payload, None) if data[0] != 2 else (None, payload)
            data = data[8 + size :]
        chunk = sock.recv(65536)
        if not chunk:
            return
        data += chunk


def _write(stream: Any, chunk: bytes | None) -> None:
    if chunk:
        stream.buffer.write(chunk)
        stream.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
