"""The host runtime: the machine Aeromancy runs on, not sealed.

Used by dev mode, and by tracked runs until a sealed runtime is configured. It
lists the host's Debian packages and the Python distributions of the interpreter
running Aeromancy, so a run record still says what the stage ran with, even if
nothing stops the host from changing afterwards.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from importlib import metadata
from typing import Any

from aeromancy.manifest import DPKG_FORMAT, DebianManifest, Manifests, PythonManifest
from aeromancy.runtime.base import Built, runtime_node

__all__ = ["HostRuntime", "debian_manifest", "python_manifest"]

log = logging.getLogger(__name__)


class HostRuntime:
    """The host as a runtime.

    Its id is a digest of its manifests' digests, the Python version and the
    platform. TODO: the Python distributions are those of the interpreter
    running Aeromancy; a stage calling another `python3` on PATH is not
    described until sealed runtimes land.
    """

    kind = "host"
    sealed = False

    def manifest(self) -> Manifests:
        """The host's Debian packages (None without dpkg) and Python packages."""
        return Manifests(debian=debian_manifest(), python=python_manifest())

    @property
    def id(self) -> str:
        return _host_id()

    def describe(self) -> dict[str, Any]:
        """The `runtime` node of a fingerprint; `sealed` is False."""
        return runtime_node(self)

    def build(self) -> Built:
        """Nothing to build: the host is as it is."""
        return Built(runtime_id=self.id)

    def inside(self) -> AbstractContextManager[None]:
        """Stages run on the host as DVC starts them."""
        return nullcontext()


@functools.cache
def debian_manifest() -> DebianManifest | None:
    """The host's installed Debian packages, listed once per process; None where
    `dpkg-query` is missing or fails (a host that is not Debian-based)."""
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f", DPKG_FORMAT],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        log.debug("no dpkg-query on this host: no Debian manifest")
        return None
    if done.returncode != 0:
        log.warning("dpkg-query failed, no Debian manifest: %s", done.stderr.strip())
        return None
    return DebianManifest.parse(done.stdout)


@functools.cache
def python_manifest() -> PythonManifest:
    """The distributions importable by this interpreter, listed once per process."""
    return PythonManifest.of(_distributions(sys.path))


def _distributions(paths: list[str]) -> Iterator[tuple[str, str]]:
    """`(name, version)` of each distribution on `paths`, in path order.

    A `.dist-info` folder is named `NAME-VERSION.dist-info` by the standard, so
    its name is read instead of its METADATA (1 ms instead of 350 ms for a few
    hundred); anything else (`.egg-info`) is read through importlib.metadata.
    """
    for entry in paths:
        try:
            found = sorted(os.scandir(entry or "."), key=lambda e: e.name)
        except OSError:
            continue
        for item in found:
            stem, _, suffix = item.name.rpartition(".")
            name, dash, version = stem.partition("-")
            if suffix == "dist-info" and dash and version:
                yield name, version
            elif suffix in ("dist-info", "egg-info"):
                dist = metadata.Distribution.at(item.path)
                if dist.metadata["Name"]:
                    yield dist.metadata["Name"], dist.version


@functools.cache
def _host_id() -> str:
    digests = Manifests(debian_manifest(), python_manifest()).digests()
    identity = {
        **digests,
        "python_version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
    }
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
