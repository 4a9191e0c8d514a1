"""The container kernel's image: one layer on a runtime image.

The layer adds ipykernel and Aeromancy's own Python files under
`/opt/aeromancy-kernel/`, reached through a `.pth` file at the end of the
runtime Python's `sys.path`: the runtime's packages stay exactly as its
manifest lists them and win over the kernel's own copies of the same
distributions (pip installs the kernel with `--target`, beside the runtime's
environment, never into it). ipykernel is pinned to the version the host's
Jupyter has, when it has one.

The layer's id is the digest of what goes in (`ImageSpec.runtime_id`: the
runtime image's id, the Dockerfile, the files), carried by the same label a
runtime image carries, so an exported kernel is found again with one lookup.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aeromancy import config
from aeromancy.errors import UserError
from aeromancy.kernel import client
from aeromancy.runtime import image

if TYPE_CHECKING:
    from aeromancy.runtime.docker import DockerRuntime

__all__ = ["KERNEL_DIR", "KernelImage", "kernel_image"]

KERNEL_DIR = "/opt/aeromancy-kernel"
_PTH = "zz-aeromancy-kernel.pth"


@dataclass(frozen=True)
class KernelImage:
    """A kernel image in the engine at `engine`, layered on runtime `runtime_id`."""

    image: str
    reference: str
    runtime_id: str
    built: bool
    engine: str
    warnings: tuple[str, ...] = ()


def kernel_image(
    root: Path,
    settings: config.Config,
    recorded: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> KernelImage:
    """The kernel image on the runtime image `recorded` (a run's runtime id), or
    on the project's runtime as it is now (built if needed) when None.

    Raises:
        UserError: the recorded runtime's image is not in the engine.
    """
    from aeromancy.runtime.docker import DockerRuntime

    runtime = DockerRuntime(root, settings.runtime)
    runtime.progress = progress
    if recorded is None:
        base = runtime.build()
        base_image, runtime_id, warnings = base.image, base.runtime_id, base.warnings
    else:
        base_image, runtime_id, warnings = _recorded(runtime, recorded), recorded, ()

    spec = _spec(root, settings.runtime, base_image)
    found = [
        i
        for i in runtime.engine.images()
        if (i.get("Labels") or {}).get(image.LABEL) == spec.runtime_id
    ]
    if found:
        image_id, built = str(found[0]["Id"]), False
    else:
        image_id, built = runtime.build_image(spec).image, True
    return KernelImage(
        image=image_id,
        reference=runtime.tag(spec.runtime_id),
        runtime_id=runtime_id,
        built=built,
        engine=runtime.engine.host,
        warnings=warnings,
    )


def _recorded(runtime: DockerRuntime, runtime_id: str) -> str:
    """The engine's image carrying runtime id `runtime_id`."""
    for found in runtime.engine.images():
        if (found.get("Labels") or {}).get(image.LABEL) == runtime_id:
            return str(found["Id"])
    raise UserError(
        f"the run's runtime image (runtime id {runtime_id[:12]}) is not in the "
        "container engine; `aero rerun RUN_ID` rebuilds it from the run's commit, "
        "or export without a run to use the project's runtime as it is now"
    )


def _spec(
    root: Path, settings: config.RuntimeConfig, base_image: str
) -> image.ImageSpec:
    files = {f"client/{name}": data for name, data in client.files().items()}
    env = ""
    if settings.ca_bundle:
        files[image.CA_FILE] = image.read_file(root, settings.ca_bundle, "ca_bundle")
        ca = f"{KERNEL_DIR}/{image.CA_FILE}"
        env = f"PIP_CERT={ca} REQUESTS_CA_BUNDLE={ca} SSL_CERT_FILE={ca} "
    what = "the kernel layer (ipykernel from the package index)"
    steps = [
        image.Step(f"FROM {base_image}", "the runtime image"),
        image.Step(f"COPY . {KERNEL_DIR}/", what),
        image.Step(
            f"RUN {env}python3 -m pip install --no-cache-dir "
            f"--disable-pip-version-check --quiet --target {KERNEL_DIR}/site "
            f"{shlex.quote(_ipykernel())}",
            what,
        ),
        image.Step(f"RUN python3 -c {shlex.quote(_pth_script())}", what),
    ]
    return image.ImageSpec(tuple(steps), files, {}, "", base_image)


def _ipykernel() -> str:
    """`ipykernel==<the host's version>`, or `ipykernel` when the host has none."""
    from importlib import metadata

    try:
        return f"ipykernel=={metadata.version('ipykernel')}"
    except metadata.PackageNotFoundError:
        return "ipykernel"


def _pth_script() -> str:
    """Python that appends the kernel's folders to the runtime Python's path."""
    lines = f"{KERNEL_DIR}/client\n{KERNEL_DIR}/site\n"
    return (
        "import pathlib, sysconfig; "
        f"pathlib.Path(sysconfig.get_path('purelib'), {_PTH!r})"
        f".write_text({lines!r})"
    )
