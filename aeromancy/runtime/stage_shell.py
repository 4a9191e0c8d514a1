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
import sys
from collections.abc import Mapping
from typing import Any

from aeromancy.runtime.container import CONTAINER_ENV, PASS_ENV

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
    api = Engine().client().api
    created = api.exec_create(
        container,
        ["/bin/sh", "-c", argv[-1]],
        environment=environment(os.environ, os.environ.get(PASS_ENV, "")),
        workdir=os.getcwd(),
    )
    _forward_signals(api, container)
    try:
        for out, err in api.exec_start(created["Id"], stream=True, demux=True):
            _write(sys.stdout, out)
            _write(sys.stderr, err)
    except Exception as exc:  # the engine closed the stream under us
        sys.stderr.write(f"aero: lost the stage's output stream: {exc}\n")
    return _exit_code(api, container, created["Id"])


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


def _forward_signals(api: Any, container: str) -> None:
    def forward(number: int, frame: Any) -> None:
        created = api.exec_create(container, ["/bin/sh", "-c", "kill -s INT -- -1"])
        api.exec_start(created["Id"])

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)


def _exit_code(api: Any, container: str, exec_id: str) -> int:
    try:
        running = api.inspect_container(container)["State"]["Running"]
        code = api.exec_inspect(exec_id).get("ExitCode")
    except Exception:  # the container is gone
        running, code = False, None
    if not running:
        sys.stderr.write(f"aero: the runtime container {container[:12]} stopped\n")
        return _ABORTED
    return int(code) if code is not None else 1


def _write(stream: Any, chunk: bytes | None) -> None:
    if chunk:
        stream.buffer.write(chunk)
        stream.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
