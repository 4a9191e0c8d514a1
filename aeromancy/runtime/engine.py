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
from urllib.parse import quote, urlparse

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
        if self.plain:
            return list(self.request("GET", "/images/json"))
        try:
            return list(self.client().api.images())
        except Exception as exc:  # the SDK raises requests' and its own errors
            raise self.unreachable(exc) from None

    def inspect(self, reference: str) -> dict[str, Any] | None:
        """One image by name or id (`Id`, `RepoTags`, `RepoDigests`, `Labels`),
        None when the engine has none by that name: one request, about a
        tenth of listing every image on Podman."""
        if self.plain:
            found = self.request(
                "GET", f"/images/{quote(reference, safe='/:@')}/json", missing_ok=True
            )
        else:
            from docker.errors import NotFound

            try:
                found = self.client().api.inspect_image(reference)
            except NotFound:
                found = None
            except Exception as exc:  # the SDK raises requests' and its own errors
                raise self.unreachable(exc) from None
        if not found:
            return None
        labels = (found.get("Config") or {}).get("Labels") or found.get("Labels")
        return {
            "Id": found.get("Id"),
            "RepoTags": found.get("RepoTags") or [],
            "RepoDigests": found.get("RepoDigests") or [],
            "Labels": labels or {},
        }

    def tag(self, image_id: str, reference: str) -> None:
        """Give image `image_id` the name `reference` (`repo:tag`)."""
        repo, _, tag = reference.rpartition(":")
        query = f"repo={quote(repo, safe='')}&tag={quote(tag, safe='')}"
        if self.plain:
            self.request("POST", f"/images/{quote(image_id, safe=':')}/tag?{query}")
        else:
            self.client().api.tag(image_id, repo, tag)

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

    @property
    def plain(self) -> bool:
        """Whether the API is plain HTTP (a unix socket, or TCP without TLS),
        which `request` and `attach` speak without the SDK."""
        scheme = urlparse(self.host).scheme
        tls = os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
        return scheme == "unix" or (scheme in ("tcp", "http") and not tls)

    def request(
        self, method: str, path: str, payload: Any = None, *, missing_ok: bool = False
    ) -> Any:
        """One API call as HTTP/1.0 (the engine answers and closes, so the reply
        is read whole without http.client); its JSON reply, None when empty (or,
        with `missing_ok`, when the engine answers 404)."""
        sock, reply = self._send(method, path, payload, "HTTP/1.0")
        with sock:
            try:
                reply += b"".join(iter(lambda: sock.recv(65536), b""))
            except OSError as exc:
                raise self.unreachable(exc) from None
        head, _, body = reply.partition(b"\r\n\r\n")
        if missing_ok and head.split(b" ", 2)[1:2] == [b"404"]:
            return None
        self._check(head, body, method, path)
        return json.loads(body) if body.strip() else None

    def attach(self, path: str, payload: Any) -> tuple[socket.socket, bytes]:
        """POST `path` asking for the raw stream (exec start, attach): the socket,
        and what of the stream already arrived with the reply's head."""
        sock, reply = self._send(
            method="POST",
            path=path,
            payload=payload,
            version="HTTP/1.1",
            extra="Connection: Upgrade\r\nUpgrade: tcp\r\n",
        )
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        head, _, rest = reply.partition(b"\r\n\r\n")
        self._check(head, rest, "POST", path)
        sock.settimeout(None)
        return sock, rest

    def _send(
        self, method: str, path: str, payload: Any, version: str, extra: str = ""
    ) -> tuple[socket.socket, bytes]:
        url = urlparse(self.host)
        body = json.dumps(payload).encode() if payload is not None else b""
        head = (
            f"{method} /v{API_VERSION}{path} {version}\r\nHost: docker\r\n{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            if url.scheme == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(10)
                sock.connect(url.path)
            else:
                address = (url.hostname or "localhost", url.port or 2375)
                sock = socket.create_connection(address, timeout=10)
            sock.sendall(head.encode() + body)
        except OSError as exc:
            raise self.unreachable(exc) from None
        return sock, b""

    def _check(self, head: bytes, body: bytes, method: str, path: str) -> None:
        status = head.split(b"\r\n", 1)[0].decode(errors="replace")
        if status.split(" ")[1:2] not in (["200"], ["201"], ["204"], ["101"]):
            detail = body.decode(errors="replace").strip()
            raise EngineError(
                f"the container engine at {self.host} refused {method} {path}: "
                f"{status} {detail}"
            )


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
