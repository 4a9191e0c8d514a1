"""`aero export-notebook-env`: a Jupyter kernelspec that starts IPython in the
project's runtime, with the data pin in its environment.

The kernel's environment carries `AEROMANCY_PIN` (see `aeromancy.notebook`), so
`aeromancy.notebook.load` in any notebook using the kernel reads the pinned run
or commit, whatever the workspace holds by then. Running a notebook is never a
tracked run: nothing it does is recorded.

What each runtime's kernel is made of lives in `aeromancy/kernel/`: the host's
is a virtual environment started directly; a container's or a Nix shell's is
started by `aeromancy.kernel.launch` on the host, from the `kernel.json`'s
folder, which also holds what the launcher needs (`aeromancy-launch.json`).
For a run pin, a container kernel is layered on the image of the run's own
runtime; a Nix kernel uses the shell as the flake has it now, with a warning
when that is not the run's.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeromancy import config, gitstate, notebook
from aeromancy.config import RUNTIME_KINDS
from aeromancy.errors import UserError
from aeromancy.kernel.host import (
    JUPYTER_MISSING,
    KERNELS,
    JupyterMissingError,
    host_environment,
)
from aeromancy.kernel.launch import LAUNCH_FILE

__all__ = ["JUPYTER_MISSING", "Exported", "JupyterMissingError", "export"]

_NAME = re.compile(r"^[a-z0-9._-]+$")


@dataclass(frozen=True)
class Exported:
    """An installed kernel: its name, folder, pin, and where it runs (the
    Python of a host or Nix kernel, the image of a container kernel)."""

    name: str
    display_name: str
    spec_dir: Path
    pin: notebook.Pin
    runtime: str
    where: str
    built: bool
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Kernel:
    """How Jupyter starts the kernel, and what the launcher needs (if any)."""

    argv: list[str]
    where: str
    built: bool
    launch: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()


def export(
    root: Path,
    run: str | None = None,
    *,
    name: str | None = None,
    runtime: str | None = None,
    prefix: Path | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
) -> Exported:
    """Install a kernelspec for the project at `root`, pinned to `run` or HEAD.

    Args:
        root: the project's root.
        run: the run whose data the notebook reads; None pins the HEAD commit.
        name: the kernel's name; `aero-<project>-<run or commit>` when None.
        runtime: the runtime kind; the configured one when None.
        prefix: install under `PREFIX/share/jupyter/kernels` instead of the
            user's Jupyter data folder.
        force: replace a kernel of the same name.
        progress: called with each step of a runtime or kernel image build.

    Raises:
        JupyterMissingError: jupyter_client or ipykernel is missing.
        UnknownRunError: `run` names no known run.
        UserError: the name is taken or malformed, or the runtime has no kernel.
    """
    settings = config.load(root)
    kind = _check_kind(runtime or settings.runtime.kind)
    manager = _spec_manager()
    pin = notebook.pin_for(root, run)
    name = _check_name(name or _default_name(root, pin))
    _check_free(manager, name, prefix, force)

    pin = dataclasses.replace(pin, kernel=name)
    kernel = _kernel(root, settings, kind, pin, progress)
    display = _display_name(root, pin)
    spec: dict[str, Any] = {
        "argv": kernel.argv,
        "display_name": display,
        "language": "python",
        "env": {notebook.PIN_ENV: pin.to_json()},
        "metadata": {"aeromancy": {"runtime": kind, "tracked": False}},
    }
    if kernel.launch is not None:
        # The launcher forwards signals, but a message needs no signal at all.
        spec["interrupt_mode"] = "message"
    spec_dir = _install(manager, name, spec, prefix, kernel.launch)
    warnings = (*kernel.warnings, *_warnings(root, pin))
    return Exported(
        name, display, spec_dir, pin, kind, kernel.where, kernel.built, warnings
    )


def _check_kind(kind: str) -> str:
    if kind not in RUNTIME_KINDS:
        raise UserError(
            f"--runtime must be one of {', '.join(RUNTIME_KINDS)} (got '{kind}')"
        )
    return kind


def _spec_manager() -> Any:
    try:
        from jupyter_client.kernelspec import KernelSpecManager
    except ImportError:
        raise JupyterMissingError(
            f"Jupyter is not installed (no jupyter_client); {JUPYTER_MISSING}"
        ) from None
    return KernelSpecManager()


def _default_name(root: Path, pin: notebook.Pin) -> str:
    project = re.sub(r"[^a-z0-9._-]+", "-", root.name.lower()).strip("-") or "project"
    return f"aero-{project}-{pin.run or pin.commit[:12]}"


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise UserError(
            f"kernel name '{name}' is not valid: use lowercase letters, digits, "
            "'.', '_' and '-'"
        )
    return name


def _destination(manager: Any, name: str, prefix: Path | None) -> Path:
    if prefix is None:
        return Path(manager.user_kernel_dir) / name
    return prefix / "share" / "jupyter" / "kernels" / name


def _check_free(manager: Any, name: str, prefix: Path | None, force: bool) -> None:
    destination = _destination(manager, name, prefix)
    existing = manager.find_kernel_specs().get(name)
    if force or (existing is None and not destination.exists()):
        return
    where = existing or destination
    raise UserError(
        f"a Jupyter kernel named '{name}' already exists ({where}); "
        "choose another --name, or replace it with --force"
    )


def _display_name(root: Path, pin: notebook.Pin) -> str:
    version = f"run {pin.run}" if pin.run else f"commit {pin.commit[:12]}"
    return f"{root.name} @ {version} (aero)"


def _install(
    manager: Any,
    name: str,
    spec: dict[str, Any],
    prefix: Path | None,
    launch: dict[str, Any] | None,
) -> Path:
    with tempfile.TemporaryDirectory(prefix="aero-kernel-") as staging:
        text = json.dumps(spec, indent=2, sort_keys=True) + "\n"
        Path(staging, "kernel.json").write_text(text, encoding="utf-8")
        if launch is not None:
            text = json.dumps({**launch, "kernel": name}, indent=2, sort_keys=True)
            Path(staging, LAUNCH_FILE).write_text(text + "\n", encoding="utf-8")
        installed = manager.install_kernel_spec(
            staging,
            kernel_name=name,
            user=prefix is None,
            prefix=str(prefix) if prefix else None,
        )
    return Path(installed)


def _warnings(root: Path, pin: notebook.Pin) -> tuple[str, ...]:
    if pin.run:
        return ()
    dirty = gitstate.dirty_paths(root)
    if not dirty:
        return ()
    shown = ", ".join(str(path) for path in dirty[:5])
    return (
        f"uncommitted changes are not part of the pinned data "
        f"(commit {pin.commit[:12]}): {shown}",
    )


def _kernel(
    root: Path,
    settings: config.Config,
    kind: str,
    pin: notebook.Pin,
    progress: Callable[[str], None] | None,
) -> _Kernel:
    """Build (or find) the kernel's environment for `kind`."""
    if kind == "host":
        python, built = host_environment(root, settings.runtime)
        argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return _Kernel(argv, str(python), built)

    launcher = [sys.executable, "-m", "aeromancy.kernel.launch"]
    argv = [*launcher, f"{{resource_dir}}/{LAUNCH_FILE}", "{connection_file}"]
    recorded = _recorded_runtime(root, pin)
    common = {
        "runtime": kind,
        "project": str(root.resolve()),
        "pass_env": list(settings.runtime.pass_env),
    }
    make = _container_kernel if kind == "docker" else _nix_kernel
    return make(
        root, settings, pin, recorded, _Kernel(argv, "", False, common), progress
    )


def _container_kernel(
    root: Path,
    settings: config.Config,
    pin: notebook.Pin,
    recorded: tuple[str, str] | None,
    start: _Kernel,
    progress: Callable[[str], None] | None,
) -> _Kernel:
    from aeromancy.kernel.container import kernel_image
    from aeromancy.runtime.container import outside_cache

    run_image = recorded[1] if recorded and recorded[0] == "docker" else None
    made = kernel_image(root, settings, run_image, progress)
    cache = outside_cache(root)
    launch = {
        **(start.launch or {}),
        "image": made.image,
        "engine": made.engine,
        "runtime_id": made.runtime_id,
        "run_flags": list(settings.runtime.run_flags),
        "cache": str(cache) if cache else None,
    }
    warnings = list(made.warnings)
    if recorded is not None and run_image is None:
        warnings.append(_other_runtime(pin, recorded, "docker", made.runtime_id))
    return _Kernel(start.argv, made.reference, made.built, launch, tuple(warnings))


def _nix_kernel(
    root: Path,
    settings: config.Config,
    pin: notebook.Pin,
    recorded: tuple[str, str] | None,
    start: _Kernel,
    progress: Callable[[str], None] | None,
) -> _Kernel:
    from aeromancy.kernel import client
    from aeromancy.kernel.nixenv import nix_kernel

    made = nix_kernel(root, settings, progress)
    launch = {
        **(start.launch or {}),
        "python": made.python,
        "env": made.env,
        "shell_hook": made.shell_hook,
        "runtime_id": made.runtime_id,
        "client": str(client.package_copy(root.resolve() / KERNELS)),
    }
    warnings = list(made.warnings)
    if recorded is not None and recorded != ("nix", made.runtime_id):
        warnings.append(_other_runtime(pin, recorded, "nix", made.runtime_id))
    return _Kernel(start.argv, made.python, made.built, launch, tuple(warnings))


def _recorded_runtime(root: Path, pin: notebook.Pin) -> tuple[str, str] | None:
    """`(kind, id)` of the runtime the pinned run ran in; None for a commit pin."""
    if pin.run is None:
        return None
    node = notebook.run_record(root, pin.run).fingerprint.get("runtime") or {}
    return str(node.get("kind")), str(node.get("id"))


def _other_runtime(
    pin: notebook.Pin, recorded: tuple[str, str], kind: str, runtime_id: str
) -> str:
    return (
        f"run {pin.run} ran in the {recorded[0]} runtime {recorded[1][:12]}; the "
        f"kernel runs in the project's {kind} runtime as it is now "
        f"({runtime_id[:12]}), so its packages may differ from the run's"
    )
