"""The container engine: any Docker-API engine (Docker, or Podman's API socket).

Found through `DOCKER_HOST` (and `DOCKER_TLS_VERIFY`/`DOCKER_CERT_PATH`), then
the usual sockets of Docker and rootless Podman. The image listing that decides
whether anything must be built is one plain HTTP request when the engine is a
unix socket or plain TCP: importing the `docker` SDK alone costs more than the
whole no-op `aero build` may take. Everything else goes through the SDK.
"""

from __future__ import annotations

import functools
import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from aeromancy.errors import UserError

__all__ = ["API_VERSION", "Engine", "EngineError", "find_image"]

#: What both Docker (>= 20.10) and Podman (>= 4) speak.
API_VERSION = "1.41"


class EngineError(UserError):
    """No container engine answers, or it refused a request."""


class Engine:
    """One Docker-API engine at `host` (a `unix://`, `tcp://` or `ssh://` URL)."""

    def __init__(self, host: str | None = None) -> None:
        self.host = host or default_host()

    def images(self) -> list[dict[str, Any]]:
        """Every local image (`Id`, `RepoTags`, `RepoDigests`, `Labels`): one
        request, which is also the reachability check."""
        url = urlparse(self.host)
        tls = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
        if url.scheme == "unix" or (url.scheme in ("tcp", "http") and not tls):
            return list(self._get("/images/json"))
        try:
            return list(self.client().api.images())
        except Exception as exc:  # the SDK raises requests' and its own errors
            raise self.unreachable(exc) from None

    @functools.cached_property
    def _client(self) -> Any:
        import docker

        tls = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
        if tls or urlparse(self.host).scheme == "ssh":
            return docker.from_env(version=API_VERSION)
        return docker.DockerClient(base_url=self.host, version=API_VERSION)

    def client(self) -> Any:
        """The `docker` SDK client (imported on first use)."""
        return self._client

    def unreachable(self, exc: BaseException) -> EngineError:
        """The one line for an engine that does not answer."""
        reason = getattr(exc, "strerror", None) or str(exc).split("\n")[0]
        return EngineError(
            f"no container engine reachable at {self.host} ({reason}); start one "
            "(Podman: `scripts/setup-podman` or `podman system service --time=0 "
            "unix:///PATH/podman.sock` with DOCKER_HOST=unix:///PATH/podman.sock; "
            "Docker: `systemctl start docker`), or run on the host with "
            "`--runtime host` or `aero repro --dev`"
        )

    def _get(self, path: str) -> Any:
        """GET `path` of the API as HTTP/1.0: the engine answers and closes, so
        the reply is read whole without http.client (and its email parser)."""
        url = urlparse(self.host)
        try:
            if url.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(10)
                sock.connect(url.path)
            else:
                address = (url.hostname or "localhost", url.port or 2375)
                sock = socket.create_connection(address, timeout=10)
            request = f"GET /v{API_VERSION}{path} HTTP/1.0\r\nHost: docker\r\n\r\n"
            with sock:
                sock.sendall(request.encode())
                reply = b"".join(iter(lambda: sock.recv(65536), b""))
        except OSError as exc:
            raise self.unreachable(exc) from None
        head, _, body = reply.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if status.split(" ")[1:2] != ["200"]:
            detail = body.decode(errors="replace").strip()
            raise EngineError(
                f"the container engine at {self.host} refused GET {path}: "
                f"{status} {detail}"
            )
        return json.loads(body)


def default_host() -> str:
    """`DOCKER_HOST`, else Docker's socket, else rootless Podman's, if present."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR", f"/run/user/{os.getuid()}")
    for candidate in (
        "/var/run/docker.sock",
        f"{runtime_dir}/podman/podman.sock",
        "/run/podman/podman.sock",
    ):
        if Path(candidate).exists():
            return f"unix://{candidate}"
    return "unix:///var/run/docker.sock"


def find_image(images: list[dict[str, Any]], reference: str) -> dict[str, Any] | None:
    """The image of `reference` (`name:tag`, `name@sha256:...` or an image id)
    among `images`, allowing for the registry prefixes engines add."""
    if "@" in reference:
        digest = reference.split("@", 1)[1]
        for image in images:
            digests = [d.split("@", 1)[-1] for d in image.get("RepoDigests") or ()]
            if digest in digests or image.get("Id") == digest:
                return image
        return None
    if reference.startswith("sha256:"):
        return next((i for i in images if i.get("Id") == reference), None)

    tagged = reference if ":" in reference.rsplit("/", 1)[-1] else f"{reference}:latest"
    names = {tagged, f"localhost/{tagged}", f"docker.io/{tagged}"}
    names.add(f"docker.io/library/{tagged}")
    for image in images:
        if names & set(image.get("RepoTags") or ()):
            return image
    return None
