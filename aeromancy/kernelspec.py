"""The notebook kernel: a Jupyter kernelspec that starts IPython in the
project's runtime, with the data pin in its environment.

The kernel's environment carries `AEROMANCY_PIN` (see `aeromancy.notebook`), so
`aeromancy.notebook.load` in any notebook using the kernel reads the pinned run
or commit, whatever the workspace holds by then. Running a notebook is never a
tracked run: nothing it does is recorded.

For the host runtime the kernel runs in a virtual environment of the project
(`.aeromancy/kernels/host-<digest>/`), keyed by the lock file and the
interpreter. It is layered on the interpreter running Aeromancy: a `.pth` file
adds that interpreter's site directories after the environment's own, so the
lock file's packages win, while Aeromancy, DVC and ipykernel are the very ones
`aero` runs with. Installing Aeromancy into the environment from its source
instead would need a network or a wheel at hand and minutes of installing DVC's
dependencies; a plain `--system-site-packages` would miss an Aeromancy that
lives in a virtual environment itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import site
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeromancy import __version__, config, gitstate, notebook
from aeromancy.config import RUNTIME_KINDS
from aeromancy.errors import UserError

__all__ = ["JUPYTER_MISSING", "Exported", "JupyterMissingError", "export"]

log = logging.getLogger(__name__)

KERNELS = Path(".aeromancy") / "kernels"
JUPYTER_MISSING = "pip install ipykernel jupyter_client"
_NAME = re.compile(r"^[a-z0-9._-]+$")
_READY = "aeromancy-ready.json"


class JupyterMissingError(UserError):
    """Jupyter's kernel machinery is not installed where it is needed."""


@dataclass(frozen=True)
class Exported:
    """An installed kernel: its name, folder, pin and the Python it starts."""

    name: str
    display_name: str
    spec_dir: Path
    pin: notebook.Pin
    runtime: str
    python: Path
    built: bool
    warnings: tuple[str, ...] = ()


def export(
    root: Path,
    run: str | None = None,
    *,
    name: str | None = None,
    runtime: str | None = None,
    prefix: Path | None = None,
    force: bool = False,
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

    python, built = _kernel_python(root, settings, kind)
    pin = dataclasses.replace(pin, kernel=name)
    display = _display_name(root, pin)
    spec = {
        "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": display,
        "language": "python",
        "env": {notebook.PIN_ENV: pin.to_json()},
        "metadata": {"aeromancy": {"runtime": kind, "tracked": False}},
    }
    spec_dir = _install(manager, name, spec, prefix)
    warnings = _warnings(root, pin)
    return Exported(name, display, spec_dir, pin, kind, python, built, warnings)


def _check_kind(kind: str) -> str:
    if kind not in RUNTIME_KINDS:
        raise UserError(
            f"--runtime must be one of {', '.join(RUNTIME_KINDS)} (got '{kind}')"
        )
    if kind != "host":
        # TODO: container and Nix kernels, once those runtimes are committed
        # (issue 5). The runtime image holds only the stages' packages, so the
        # kernel needs a layer on it with ipykernel and Aeromancy; then
        # `<engine> run --rm -i --network host` with the connection file, the
        # project and the DVC cache mounted at their own paths and
        # `-e AEROMANCY_PIN`, running `python3 -m ipykernel_launcher -f
        # {connection_file}`. The reading side (`aeromancy.notebook`) needs
        # nothing more: the pin names the project's absolute path.
        raise UserError(
            f"runtime '{kind}' has no notebook kernel yet; "
            "use `aero export-notebook-env --runtime host`"
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
    manager: Any, name: str, spec: dict[str, Any], prefix: Path | None
) -> Path:
    with tempfile.TemporaryDirectory(prefix="aero-kernel-") as staging:
        text = json.dumps(spec, indent=2, sort_keys=True) + "\n"
        Path(staging, "kernel.json").write_text(text, encoding="utf-8")
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


def _kernel_python(root: Path, settings: config.Config, kind: str) -> tuple[Path, bool]:
    """The Python the kernel starts, and whether its environment was just built."""
    assert kind == "host"  # the others are refused by _check_kind, for now
    return host_environment(root, settings.runtime)


def host_environment(root: Path, runtime: config.RuntimeConfig) -> tuple[Path, bool]:
    """The layered virtual environment for the runtime's lock file, built unless
    one for the same lock file and interpreter exists.

    Returns:
        Its Python, and whether it was built now.
    """
    lock_file = runtime.lock_file
    lock = _lock_text(root, lock_file)
    layers = _layers()
    identity = {
        "lock": lock,
        "python": sys.version,
        "base": sys.base_prefix,
        "layers": [str(d) for d in layers],
        "aeromancy": __version__,
    }
    text = json.dumps(identity, sort_keys=True)
    folder = root / KERNELS / f"host-{hashlib.sha256(text.encode()).hexdigest()[:16]}"
    python = folder / "bin" / "python"
    if (folder / _READY).exists():
        return python, False

    log.info("building the kernel environment %s", folder)
    _create_venv(folder, layers)
    if _has_requirements(lock) and lock_file:
        _pip_install(python, root / lock_file, runtime.ca_bundle)
    _check_importable(python)
    (folder / _READY).write_text(text + "\n", encoding="utf-8")
    return python, True


def _lock_text(root: Path, lock_file: str | None) -> str:
    if not lock_file:
        return ""
    try:
        return (root / lock_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(
            f"pyproject.toml: tool.aeromancy.runtime.lock_file names {lock_file}, "
            "which does not exist"
        ) from None


def _layers() -> list[Path]:
    """The site directories of the interpreter running Aeromancy, and the folder
    Aeromancy is imported from when it is not installed (a source checkout)."""
    from importlib import metadata

    dirs = [Path(d) for d in site.getsitepackages()]
    user = site.getusersitepackages()
    if site.ENABLE_USER_SITE and os.path.isdir(user):
        dirs.append(Path(user))
    try:
        metadata.distribution("aeromancy")
    except metadata.PackageNotFoundError:
        dirs.append(Path(notebook.__file__).resolve().parent.parent)
    return dirs


def _create_venv(folder: Path, layers: list[Path]) -> None:
    import venv

    if folder.exists():
        shutil.rmtree(folder)  # a build that did not finish
    venv.EnvBuilder(symlinks=os.name != "nt", with_pip=False).create(folder)
    purelib = _run(
        folder / "bin" / "python",
        "-c",
        "import sysconfig; print(sysconfig.get_path('purelib'))",
    ).strip()
    # `import` lines of a .pth run at startup; addsitedir also reads the .pth
    # files of each layer (editable installs live in those).
    lines = [f"import site; site.addsitedir({str(d)!r})\n" for d in layers]
    Path(purelib, "_aeromancy_layers.pth").write_text("".join(lines), "utf-8")


def _has_requirements(lock: str) -> bool:
    return any(line.split("#", 1)[0].strip() for line in lock.splitlines())


def _pip_install(python: Path, lock: Path, ca_bundle: str | None) -> None:
    args = ["-m", "pip", "install", "--disable-pip-version-check", "-r", str(lock)]
    if ca_bundle:
        args += ["--cert", ca_bundle]
    _run(python, *args, what=f"installing {lock.name} into the kernel environment")


def _check_importable(python: Path) -> None:
    probe = (
        "import importlib.util as u; "
        "print(' '.join(m for m in ('ipykernel', 'aeromancy') if not u.find_spec(m)))"
    )
    missing = _run(python, "-c", probe).split()
    if "ipykernel" in missing:
        raise JupyterMissingError(
            f"Jupyter is not installed (no ipykernel for the kernel); {JUPYTER_MISSING}"
        )
    if missing:
        raise UserError(
            f"the kernel environment cannot import {', '.join(missing)}; "
            "install Aeromancy into the Python that runs `aero`"
        )


def _run(python: Path, *args: str, what: str = "probing the kernel Python") -> str:
    done = subprocess.run(
        [str(python), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{what} failed: {last}")
    return done.stdout
