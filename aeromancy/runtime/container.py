"""Running stages inside the runtime image: one container per `aero repro`.

Design: DVC's stage loop stays in the `aero` process on the host, and only each
stage's command runs in the container. DVC starts a stage as
`[$SHELL, "-c", cmd]` in the stage's folder; while `Session.running()` is open,
`SHELL` names `stage_shell.py`, which executes the command in one long-lived
container of the image (started once per invocation, removed after), in the
same folder: the repository is mounted at its own path and the DVC cache
read-only at its own, so links into the cache resolve and no data is copied.

Why not run `aero repro` itself inside the container, as the issue's wording
suggests: the image would need Aeromancy and DVC (and their few hundred
distributions) on top of the project's lock, which would blur the Python
manifest the record keeps; the tracker's files and the remote's credentials
would have to be passed into the container; and DVC's work (hashing, pushing,
committing) would pay for the container's file system. Here the image holds
only what the stages need, credentials stay on the host, and the container
sees only the variables named in `tool.aeromancy.runtime.pass_env`.

Ctrl-C reaches the stage shell, which forwards SIGINT to every process of the
stage inside the container; a container killed under a stage ends the stage
as aborted (`ContainerStoppedError`).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aeromancy.errors import StageAbortedError, UserError
from aeromancy.runtime import runflags

if TYPE_CHECKING:
    from aeromancy.runtime.docker import DockerRuntime

__all__ = [
    "CONTAINER_ENV",
    "PASS_ENV",
    "ContainerStoppedError",
    "Session",
    "as_caller",
    "default_user",
    "outside_cache",
]

#: What `stage_shell.py` reads: the container, and the variable names it passes.
CONTAINER_ENV = "AEROMANCY_CONTAINER"
PASS_ENV = "AEROMANCY_PASS_ENV"
#: The label every stage container carries: the project root it serves.
PROJECT_LABEL = "org.aeromancy.project"


class ContainerStoppedError(StageAbortedError):
    """The runtime container stopped (was killed) while a stage ran in it."""

    def __init__(self, stage: str, container: str) -> None:
        UserError.__init__(
            self,
            f"stage '{stage}' was aborted: its runtime container {container[:12]} "
            "stopped while the stage ran (killed, or out of memory)",
        )
        self.stage = stage
        self.exit_code = 137


class Session:
    """One container of a runtime's image, for one `aero repro` or shell."""

    def __init__(self, runtime: DockerRuntime) -> None:
        self.runtime = runtime
        self.api = runtime.engine.client().api

    @contextmanager
    def running(self) -> Iterator[None]:
        """Route every stage command DVC starts into the container."""
        container = self._start()
        saved = {
            name: os.environ.get(name) for name in ("SHELL", CONTAINER_ENV, PASS_ENV)
        }
        with tempfile.TemporaryDirectory(prefix="aero-shell-") as folder:
            os.environ["SHELL"] = _write_shell(Path(folder))
            os.environ[CONTAINER_ENV] = container
            os.environ[PASS_ENV] = ",".join(self.runtime.settings.pass_env)
            try:
                yield
            except StageAbortedError as exc:
                if not self._alive(container):
                    raise ContainerStoppedError(exc.stage, container) from exc
                raise
            finally:
                _restore(saved)
                self._remove(container)

    def shell(self, cwd: Path) -> int:
        """An interactive shell in a fresh container, removed after; its exit code."""
        from aeromancy.runtime import terminal

        container = self._start()
        try:
            return terminal.shell(self.api, container, cwd)
        finally:
            self._remove(container)

    def _start(self) -> str:
        """Create and start a container that idles until stages are sent to it."""
        from docker.errors import APIError

        runtime = self.runtime
        built = runtime.build()
        root = str(runtime.root.resolve())
        binds = {root: {"bind": root, "mode": "rw"}}
        cache = outside_cache(runtime.root)
        if cache is not None:
            binds[str(cache)] = {"bind": str(cache), "mode": "ro"}
        create, host = runflags.parse(runtime.settings.run_flags)
        host.setdefault("binds", {}).update(binds)
        as_caller(create, self.api)
        try:
            container = self.api.create_container(
                built.image,
                command=["sleep", "infinity"],
                working_dir=root,
                labels={PROJECT_LABEL: root},
                host_config=self.api.create_host_config(**host),
                **create,
            )["Id"]
            self.api.start(container)
        except APIError as exc:
            raise UserError(
                f"the engine cannot start a container of {built.reference}: "
                f"{exc.explanation or exc}"
            ) from None
        return str(container)

    def _alive(self, container: str) -> bool:
        try:
            state: Any = self.api.inspect_container(container)["State"]
        except Exception:  # gone altogether
            return False
        return bool(state.get("Running"))

    def _remove(self, container: str) -> None:
        try:
            self.api.remove_container(container, force=True)
        except Exception as exc:  # already gone; nothing left to clean
            import logging

            logging.getLogger(__name__).debug("container %s: %s", container, exc)


def as_caller(create: dict[str, Any], api: Any) -> None:
    """Run the container as the calling user (`--user UID:GID`, `HOME=/tmp`)
    unless `run_flags` names a user, so that what stages write into the
    mounted project belongs to the user and not to root.

    Only where it is needed: a caller who is root, or a rootless engine (whose
    root is the caller already), keeps the image's user.
    """
    if "user" in create:
        return
    user = default_user(api.info(), os.getuid(), os.getgid())
    if user is None:
        return
    create["user"] = user
    environment = create.setdefault("environment", {})
    environment.setdefault("HOME", "/tmp")  # the user has no home in the image


def default_user(info: dict[str, Any], uid: int, gid: int) -> str | None:
    """`UID:GID` when containers of the engine described by `info` (its
    `/info`) would run as the host's real root and the caller is not root."""
    if uid == 0:
        return None
    options = " ".join(str(o) for o in info.get("SecurityOptions") or ())
    if "rootless" in options:
        return None
    return f"{uid}:{gid}"


def _write_shell(folder: Path) -> str:
    """An executable DVC can use as SHELL that runs `stage_shell.py`."""
    path = folder / "aero-stage-shell"
    path.write_text(
        f'#!/bin/sh\nexec {sys.executable} -m aeromancy.runtime.stage_shell "$@"\n',
        encoding="utf-8",
    )
    path.chmod(0o755)
    return str(path)


def _restore(saved: dict[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def outside_cache(root: Path) -> Path | None:
    """The DVC cache the project uses when it is outside the project (so a
    container needs it mounted); None when it is inside."""
    from aeromancy.data import cache_dir

    cache = cache_dir(root)
    return cache if cache is not None and not _inside(cache, root) else None


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True
