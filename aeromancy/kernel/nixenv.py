"""The Nix kernel's environment: the dev shell's, as stages get it, and the
shell's own `python3`, which must be able to import ipykernel.

Nothing is added to the shell: a Nix environment is what its flake declares,
so a shell without ipykernel is refused with the line to add. Aeromancy's
own files reach the kernel through `PYTHONPATH` (see `client.py`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aeromancy import config
from aeromancy.errors import UserError

__all__ = ["NixKernel", "nix_kernel"]


@dataclass(frozen=True)
class NixKernel:
    """The shell's `python3` and environment, and the runtime they belong to."""

    python: str
    env: dict[str, str]
    runtime_id: str
    built: bool
    shell_hook: str = ""
    warnings: tuple[str, ...] = ()


def nix_kernel(
    root: Path,
    settings: config.Config,
    progress: Callable[[str], None] | None = None,
) -> NixKernel:
    """The Nix runtime of the project as it is now, ready to start a kernel.

    Raises:
        UserError: the shell has no `python3`, or its `python3` lacks ipykernel.
    """
    from aeromancy.kernel.host import JupyterMissingError
    from aeromancy.runtime.nix import NixRuntime

    runtime = NixRuntime(root, settings.runtime)
    runtime.progress = progress
    built = runtime.build()
    realised = runtime.realise()
    env = dict(realised.env)
    python = shutil.which("python3", path=env.get("PATH", ""))
    if python is None:
        raise UserError(
            "the Nix dev shell has no python3 on its PATH; add a Python with "
            "ipykernel (python3.withPackages (p: [ p.ipykernel ])) to its packages "
            "in flake.nix"
        )
    probe = subprocess.run(
        [python, "-c", "import ipykernel"],
        env={**env, "HOME": str(Path.home())},
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        raise JupyterMissingError(
            f"the Nix dev shell's python3 ({python}) cannot import ipykernel; add "
            "it to the shell in flake.nix (python3.withPackages (p: [ p.ipykernel ]))"
        )
    return NixKernel(
        python,
        env,
        built.runtime_id,
        built.built,
        realised.shell_hook,
        built.warnings,
    )
