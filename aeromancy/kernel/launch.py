"""What Jupyter starts for a container or Nix kernel:
`python -m aeromancy.kernel.launch LAUNCH_JSON CONNECTION_FILE`.

On the host, it serves the data broker (`broker.py`) from a private folder,
then starts the kernel (`inside.py`: ipykernel, watching us) inside the
runtime and lives exactly as long as that kernel, whose exit code it returns:

- container: one container of the kernel image, on the host's network (the
  ports of the connection file are the host's), with the project mounted at
  its own path, the DVC cache read-only at its own, the connection file and
  the broker's folder; removed when the kernel ends;
- Nix: the shell's `python3` in the shell's environment alone (`env -i`, as
  stages run), Aeromancy's files on `PYTHONPATH`.

SIGTERM and SIGINT reach the kernel. Jupyter interrupts these kernels by
message (`interrupt_mode` is `message` in their kernelspec), so a signal here
is the end or a terminal's Ctrl-C.

LAUNCH_JSON is written by `aero export-notebook-env` next to `kernel.json`.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aeromancy.kernel import broker
from aeromancy.notebook import BROKER_ENV, PIN_ENV

__all__ = ["LAUNCH_FILE", "main"]

LAUNCH_FILE = "aeromancy-launch.json"
_FROM_CALLER = ("HOME", "USER", "TERM", "LANG")
_HOOK = "AEROMANCY_SHELL_HOOK"


def main(argv: list[str]) -> int:
    """Run the kernel LAUNCH_JSON describes with CONNECTION_FILE; its exit code."""
    if len(argv) != 2:
        print("usage: python -m aeromancy.kernel.launch LAUNCH_JSON CONNECTION_FILE")
        return 2
    launch = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    connection = str(Path(argv[1]).resolve())
    with (
        tempfile.TemporaryDirectory(prefix="aero-kernel-") as folder,
        broker.serving(Path(folder)) as address,
    ):
        env = {
            PIN_ENV: os.environ.get(PIN_ENV, ""),
            BROKER_ENV: str(address),
            "PYTHONUNBUFFERED": "1",
            **_passed(launch.get("pass_env", [])),
        }
        cwd = _cwd(Path(launch["project"]))
        if launch["runtime"] == "docker":
            return _container(launch, env, connection, folder, cwd)
        return _nix(launch, env, connection, cwd)


def _container(
    launch: dict[str, Any], env: dict[str, str], connection: str, folder: str, cwd: str
) -> int:
    from aeromancy.runtime import runflags
    from aeromancy.runtime.container import as_caller
    from aeromancy.runtime.engine import Engine

    api = Engine(launch["engine"]).client().api
    root = launch["project"]
    binds = {
        root: {"bind": root, "mode": "rw"},
        connection: {"bind": connection, "mode": "ro"},
        folder: {"bind": folder, "mode": "rw"},
    }
    if launch.get("cache"):
        binds[launch["cache"]] = {"bind": launch["cache"], "mode": "ro"}
    create, host = runflags.parse(launch.get("run_flags", []))
    host.setdefault("binds", {}).update(binds)
    as_caller(create, api)
    host["network_mode"] = "host"
    host["auto_remove"] = True  # also when we are killed before removing it
    create["environment"] = {**create.get("environment", {}), **env}
    container = api.create_container(
        launch["image"],
        command=["python3", "-m", "aeromancy.kernel.inside", "-f", connection],
        working_dir=cwd,
        labels={"org.aeromancy.kernel": launch["kernel"]},
        host_config=api.create_host_config(**host),
        **create,
    )["Id"]
    try:
        api.start(container)
        threading.Thread(target=_copy_logs, args=(api, container), daemon=True).start()
        with _forwarding(lambda signum: _signal_container(launch, container, signum)):
            return int(api.wait(container)["StatusCode"])
    finally:
        _remove(api, container)


def _remove(api: Any, container: str) -> None:
    from docker.errors import NotFound

    # NotFound: the engine removed it as the kernel ended.
    with contextlib.suppress(NotFound):
        api.remove_container(container, force=True)


def _copy_logs(api: Any, container: str) -> None:
    """The kernel's own output, to ours (Jupyter shows it in its log)."""
    for chunk in api.logs(container, stream=True, follow=True):
        sys.stderr.buffer.write(chunk)
        sys.stderr.buffer.flush()


def _signal_container(launch: dict[str, Any], container: str, signum: int) -> None:
    from aeromancy.runtime.engine import Engine

    # A client of its own: the main thread's is blocked in `wait`.
    try:
        Engine(launch["engine"]).client().api.kill(container, signal=signum)
    except Exception as exc:  # already gone
        print(f"aero kernel: could not signal {container[:12]}: {exc}", file=sys.stderr)


def _nix(launch: dict[str, Any], env: dict[str, str], connection: str, cwd: str) -> int:
    full = {
        **launch["env"],
        **{name: os.environ[name] for name in _FROM_CALLER if name in os.environ},
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        "PYTHONPATH": launch["client"],
        **env,
    }
    command = [launch["python"], "-m", "aeromancy.kernel.inside", "-f", connection]
    if launch.get("shell_hook"):
        # As for stages (`runtime/nixshell.py`): the hook first, by bash.
        full[_HOOK] = launch["shell_hook"]
        run_hook = f'eval "${_HOOK}"; unset {_HOOK}; exec "$@"'
        bash = shutil.which("bash", path=full.get("PATH")) or "/bin/bash"
        command = [bash, "-c", run_hook, "aero-kernel", *command]
    process = subprocess.Popen(command, env=full, cwd=cwd)
    with _forwarding(process.send_signal):
        return process.wait()


@contextmanager
def _forwarding(send: Callable[[int], None]) -> Iterator[None]:
    """While open, SIGTERM and SIGINT go to `send` instead of ending us."""
    saved = {
        signum: signal.signal(signum, lambda number, frame: send(number))
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _passed(patterns: list[str]) -> dict[str, str]:
    """The caller's variables `tool.aeromancy.runtime.pass_env` lets through."""
    return {
        name: value
        for name, value in os.environ.items()
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)
    }


def _cwd(root: Path) -> str:
    """Where Jupyter started us (the notebook's folder) when inside the project,
    else the project's root."""
    here = Path.cwd().resolve()
    return str(here if here.is_relative_to(root.resolve()) else root)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
