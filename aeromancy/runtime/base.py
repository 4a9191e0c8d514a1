"""What every runtime gives: a kind, an id, its manifests, and its fingerprint node.

A runtime's id is a digest of what it is made of, so an unchanged runtime keeps
its id. `runtime_node` builds the `runtime` node of a fingerprint; every runtime
describes itself through it, so the node has the same keys whatever the kind.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from aeromancy.manifest import Manifests

__all__ = ["Built", "Runtime", "runtime_node"]


@dataclass(frozen=True)
class Built:
    """What `Runtime.build()` found or made.

    Attributes:
        runtime_id: the runtime's id.
        image: the engine's image id (empty for the host).
        reference: a name to run it by (`aeromancy/<project>:<id[:12]>`).
        built: whether the engine built it now (False: found by its id).
        base_digest: the base image's digest, as recorded.
        warnings: one line each, for the user.
    """

    runtime_id: str
    image: str = ""
    reference: str = ""
    built: bool = False
    base_digest: str | None = None
    warnings: tuple[str, ...] = ()


@runtime_checkable
class Runtime(Protocol):
    """A place a stage runs in: the host, a container image, a Nix closure."""

    @property
    def kind(self) -> str:
        """`host`, `docker` or `nix`."""
        ...

    @property
    def id(self) -> str:
        """A digest of what the runtime is made of (sha256, hex)."""
        ...

    @property
    def sealed(self) -> bool:
        """Whether nothing outside the runtime can change what runs in it."""
        ...

    def manifest(self) -> Manifests:
        """The runtime's package lists."""
        ...

    def describe(self) -> dict[str, Any]:
        """The `runtime` node of a fingerprint (see `runtime_node`)."""
        ...

    def build(self) -> Built:
        """Build the runtime, or find it already built by its id."""
        ...

    def inside(self) -> AbstractContextManager[None]:
        """While open, the stages DVC runs execute in this runtime."""
        ...


def runtime_node(runtime: Runtime, *, base_digest: str | None = None) -> dict[str, Any]:
    """The `runtime` node of a fingerprint, the same keys for every kind.

    Args:
        runtime: the runtime to describe.
        base_digest: the digest of the base image a container was built from.

    Returns:
        `kind`, `id`, `sealed`, `base_digest`, `debian_digest`, `python_digest`
        and `nix_digest`; a part the runtime does not have is None.
    """
    digests = runtime.manifest().digests()
    return {
        "kind": runtime.kind,
        "id": runtime.id,
        "sealed": runtime.sealed,
        "base_digest": base_digest,
        "debian_digest": digests["debian"],
        "python_digest": digests["python"],
        "nix_digest": digests["nix"],
    }
