"""The host kernel's Python: a virtual environment of the project
(`.aeromancy/kernels/host-<digest>/`), keyed by the lock file and the
interpreter.

It is layered on the interpreter running Aeromancy: a `.pth` file adds that
interpreter's site directories after the environment's own, so the lock file's
packages win, while Aeromancy, DVC and ipykernel are the very ones `aero` runs
with. Installing Aeromancy into the environment from its source instead would
need a network or a wheel at hand and minutes of installing DVC's
dependencies; a plain `--system-site-packages` would miss an Aeromancy that
lives in a virtual environment itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

from aeromancy import __version__, config
from aeromancy.errors import UserError

__all__ = ["JUPYTER_MISSING", "KERNELS", "JupyterMissingError", "host_environment"]

log = logging.getLogger(__name__)

KERNELS = Path(".aeromancy") / "kernels"
JUPYTER_MISSING = "pip install ipykernel jupyter_client"
_READY = "aeromancy-ready.json"


class JupyterMissingError(UserError):
    """Jupyter's kernel machinery is not installed where it is needed."""


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
        dirs.append(Path(__file__).resolve().parent.parent.parent)
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
