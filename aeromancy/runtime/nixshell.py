"""Running stages in the Nix runtime's environment.

DVC starts each stage as `[$SHELL, "-c", cmd]`. While `running()` is open,
`SHELL` names a small script that replaces the whole environment with the dev
shell's (as `nix print-dev-env` gave it when the runtime was built) and runs
the command with the shell's `sh`, or `/bin/sh` when the runtime has none. So a
stage costs one `exec` more than on the host, and Nix is not called per stage.

Why not `nix develop --command` per stage: it evaluates the flake again each
time (about 0.25 s a stage, more with nixpkgs), and it looks up `bashInteractive`
in the flake registry, which times out offline.

The environment is sealed the way a container is: `PATH` and every other
variable come from the shell alone; from the caller the stage sees only `HOME`,
`USER`, `TERM`, `TMPDIR`, DVC's `DVC_ROOT` and `DVC_STAGE`, and the variables
named by `tool.aeromancy.runtime.pass_env` (passed by name: their values are
never written down). `PYTHONUNBUFFERED=1` makes output stream live.

A shell with a `shellHook` has it run before each stage, as `nix develop` runs
it: by bash (the shell's, else the system's), which then execs the command's
`sh`; that costs one bash per stage, so a shell without a hook does not pay it.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aeromancy.runtime.nix import NixBuild

__all__ = ["interactive", "running", "shell_script"]

_FROM_CALLER = ("HOME", "USER", "TERM", "DVC_ROOT", "DVC_STAGE")
_HOOK = "AEROMANCY_SHELL_HOOK"


@contextmanager
def running(build: NixBuild, pass_env: Sequence[str]) -> Iterator[None]:
    """Route every stage command DVC starts into the runtime's environment."""
    saved = os.environ.get("SHELL")
    with tempfile.TemporaryDirectory(prefix="aero-nix-") as folder:
        os.environ["SHELL"] = _write(Path(folder), build, pass_env)
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("SHELL", None)
            else:
                os.environ["SHELL"] = saved


def interactive(build: NixBuild, pass_env: Sequence[str], cwd: Path) -> int:
    """An interactive shell in the runtime's environment at `cwd`; its exit code."""
    with tempfile.TemporaryDirectory(prefix="aero-nix-") as folder:
        script = _write(Path(folder), build, pass_env)
        return subprocess.call([script, "-i"], cwd=cwd)


def shell_script(build: NixBuild, names: Sequence[str]) -> str:
    """The `SHELL` script: `exec env -i VARIABLES... SH "$@"`.

    Args:
        build: the runtime, with the environment of its shell.
        names: the caller's variables to pass on by name.
    """
    assigned = [shlex.quote(f"{k}={v}") for k, v in sorted(build.env.items())]
    passed = [f'{name}="${name}"' for name in (*_FROM_CALLER, *names)]
    fixed = ['TMPDIR="${TMPDIR:-/tmp}"', "PYTHONUNBUFFERED=1"]
    words = [shutil.which("env") or "/usr/bin/env", "-i", *assigned, *passed, *fixed]
    sh = shlex.quote(_sh(build.env))
    if build.shell_hook:
        # The hook travels in a variable the hook's bash removes before the stage.
        words.append(shlex.quote(f"{_HOOK}={build.shell_hook}"))
        run_hook = f'eval "${_HOOK}"; unset {_HOOK}; exec {sh} "$@"'
        sh = f"{shlex.quote(_bash(build.env))} -c {shlex.quote(run_hook)} aero-nix"
    return (
        "#!/bin/sh\n"
        f"# aero: a stage command in the Nix runtime {build.runtime_id[:12]}\n"
        f'exec {" ".join(words)} {sh} "$@"\n'
    )


def _write(folder: Path, build: NixBuild, pass_env: Sequence[str]) -> str:
    names = sorted(
        name
        for name in os.environ
        if name.isidentifier()
        and name not in _FROM_CALLER
        and any(fnmatch.fnmatchcase(name, pattern) for pattern in pass_env)
    )
    path = folder / "aero-nix-shell"
    path.write_text(shell_script(build, names), encoding="utf-8")
    path.chmod(0o700)
    return str(path)


def _bash(env: dict[str, str]) -> str:
    """The runtime's own `bash` when its PATH has one, else the system's."""
    path = env.get("PATH")
    found = shutil.which("bash", path=path) if path else None
    return found or shutil.which("bash") or "/bin/bash"


def _sh(env: dict[str, str]) -> str:
    """The runtime's own `sh` when its PATH has one, else the system's."""
    path = env.get("PATH")
    return (shutil.which("sh", path=path) if path else None) or "/bin/sh"
