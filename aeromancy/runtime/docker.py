"""The container runtime: an image built from `[tool.aeromancy.runtime]` by any
Docker-API engine (Docker, or Podman behind its API socket).

`build()` lists the engine's images once (one request), computes the runtime id
from everything that goes into the image (`image.py`), and returns the image
carrying that id as its `org.aeromancy.runtime-id` label; only when there is
none does it call the engine's build, with the full log written to
`.aeromancy/build-<id>.log`. The Debian and Python manifests are produced inside
the build, read back once per image and kept in `.aeromancy/runtimes/`.

How stages run inside is `container.py`'s business.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import re
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from aeromancy.config import RuntimeConfig
from aeromancy.errors import UserError
from aeromancy.manifest import DebianManifest, Manifests, PythonManifest
from aeromancy.runtime import image
from aeromancy.runtime.base import Built, runtime_node
from aeromancy.runtime.engine import Engine, EngineError, find_image

__all__ = ["DockerRuntime", "ImageBuildError"]

log = logging.getLogger(__name__)

# "STEP 3/9: RUN ..." (Podman, BuildKit-less Docker: "Step 3/9 : RUN ...").
_STEP = re.compile(r"^\s*STEP \d+/\d+\s?: (.*)$", re.IGNORECASE)


class ImageBuildError(UserError):
    """The engine could not build the runtime image; names the step and the log."""


class DockerRuntime:
    """A runtime image and the engine that builds and runs it.

    Args:
        root: the project root.
        settings: `[tool.aeromancy.runtime]`.
        engine: the engine (the one `DOCKER_HOST` names by default).
    """

    kind = "docker"
    sealed = True

    def __init__(
        self, root: Path, settings: RuntimeConfig, engine: Engine | None = None
    ) -> None:
        self.root = root
        self.settings = settings
        self.engine = engine or Engine()
        #: Called with each build step the engine starts (for a progress line).
        self.progress: Callable[[str], None] | None = None
        self._built: Built | None = None
        self._spec: image.ImageSpec | None = None
        self._manifests: Manifests | None = None

    @property
    def id(self) -> str:
        return self.build().runtime_id

    def build(self) -> Built:
        """The image for this runtime: found by its id label, else built."""
        if self._built is None:
            self._built = self._tagged()
        if self._built is None:
            images = self.engine.images()
            spec = self.resolve(images)
            found = [
                i
                for i in images
                if (i.get("Labels") or {}).get(image.LABEL) == spec.runtime_id
            ]
            if found:
                self._built = self._result(spec, found[0]["Id"], built=False)
                # Tagged for this project, the next lookup is by name (fast).
                self.engine.tag(self._built.image, self._built.reference)
            else:
                self._built = self.build_image(spec)
        return self._built

    def manifest(self) -> Manifests:
        """The image's Debian and Python manifests, as listed inside its build."""
        if self._manifests is None:
            folder = self._manifest_folder(self.build().image)
            texts = {
                kind: (folder / f"{kind}.txt").read_text(encoding="utf-8")
                for kind in ("debian", "python")
                if (folder / f"{kind}.txt").exists()
            }
            self._manifests = Manifests(
                debian=DebianManifest.parse(texts["debian"])
                if "debian" in texts
                else None,
                python=PythonManifest.parse(texts["python"])
                if "python" in texts
                else None,
            )
        return self._manifests

    def describe(self) -> dict[str, Any]:
        """The `runtime` node of a fingerprint, with the base image's digest."""
        return runtime_node(self, base_digest=self.build().base_digest)

    def inside(self) -> AbstractContextManager[None]:
        """While open, DVC runs each stage command in one container of the image."""
        from aeromancy.runtime.container import Session

        return Session(self).running()

    def debug_shell(self, cwd: Path) -> int:
        """An interactive shell in the container stages run in; its exit code."""
        from aeromancy.runtime.container import Session

        return Session(self).shell(cwd)

    def _tagged(self) -> Built | None:
        """The image, found with two lookups by name (the base, then the tag
        `build` gives the runtime) instead of listing every image; None when
        either is not found that way (a base named by a short name the engine
        does not resolve, an image untagged since), so the listing decides."""
        spec = image.spec(self.root, self.settings)
        if spec.base:
            found = self.engine.inspect(spec.base)
            if found is None:
                return None
            spec = dataclasses.replace(spec, base_digest=_base_digest(spec, found))
        tagged = self.engine.inspect(self.tag(spec.runtime_id))
        if tagged is None or tagged["Labels"].get(image.LABEL) != spec.runtime_id:
            return None
        return self._result(spec, str(tagged["Id"]), built=False)

    def resolve(self, images: list[dict[str, Any]]) -> image.ImageSpec:
        """The image spec with its base image's digest, as this engine has it."""
        spec = image.spec(self.root, self.settings)
        if not spec.base:
            return spec
        found = find_image(images, spec.base)
        if found is None:
            raise EngineError(
                f"base image '{spec.base}' is not in the engine's local images, and "
                "Aeromancy never pulls; load it first (`docker pull`, `podman load`; "
                "scripts/setup-podman builds localhost/aeromancy-base:bookworm) or "
                "set tool.aeromancy.runtime.base_image to an image you have"
            )
        return dataclasses.replace(spec, base_digest=_base_digest(spec, found))

    def _result(self, spec: image.ImageSpec, image_id: str, *, built: bool) -> Built:
        self._spec = spec
        warnings = []
        if spec.base and "@" not in spec.base:
            warnings.append(
                f"base image '{spec.base}' is not pinned by digest; recorded as "
                f"{spec.base_digest} (pin it in tool.aeromancy.runtime.base_image)"
            )
        return Built(
            runtime_id=spec.runtime_id,
            image=image_id,
            reference=self.tag(spec.runtime_id),
            built=built,
            base_digest=spec.base_digest,
            warnings=tuple(warnings),
        )

    def tag(self, runtime_id: str) -> str:
        """`aeromancy/<project>:<id[:12]>`."""
        project = re.sub(r"[^a-z0-9._-]+", "-", self.root.name.lower()).strip(".-_")
        return f"aeromancy/{project or 'project'}:{runtime_id[:12]}"

    def build_image(self, spec: image.ImageSpec) -> Built:
        """Have the engine build `spec` (the runtime's, or one layered on it),
        its log in `.aeromancy/build-<id>.log`; tagged by the spec's id."""
        log_path = self.root / ".aeromancy" / f"build-{spec.runtime_id[:12]}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        tag = self.tag(spec.runtime_id)
        began = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="aero-build-") as context:
            for name, data in {
                **spec.files,
                "Dockerfile": spec.dockerfile().encode(),
            }.items():
                (Path(context) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(context) / name).write_bytes(data)
            with log_path.open("w", encoding="utf-8") as log_file:
                self._stream(spec, context, tag, log_file, log_path)
        image_id = self.engine.client().api.inspect_image(tag)["Id"]
        log.info("built %s in %.1fs", tag, time.perf_counter() - began)
        return self._result(spec, image_id, built=True)

    def _stream(
        self,
        spec: image.ImageSpec,
        context: str,
        tag: str,
        log_file: Any,
        log_path: Path,
    ) -> None:
        """Run the engine's build, copying its output to `log_file` as it comes."""
        from docker.errors import APIError, DockerException

        lines: list[str] = [""]  # the last one is still being written
        step: image.Step | None = None
        try:
            for chunk in self._chunks(context, tag, dict(spec.build_args)):
                text = str(chunk.get("stream") or "")
                log_file.write(text)
                log_file.flush()
                # A chunk may end mid-line: complete the last line first.
                first, *rest = text.split("\n")
                lines[-1] += first
                for line in rest:
                    matched = _STEP.match(lines[-1])
                    lines.append(line)
                    if matched:
                        step = spec.step_named(matched.group(1)) or step
                        if self.progress:
                            self.progress(lines[-2].strip())
                if "error" in chunk:
                    log_file.write(f"{chunk['error']}\n")
                    raise _failed(
                        step, lines, str(chunk["error"]), self._shown(log_path)
                    )
        except APIError as exc:
            log_file.write(f"{exc.explanation or exc}\n")
            raise _failed(
                step, lines, str(exc.explanation or exc), self._shown(log_path)
            ) from None
        except DockerException as exc:
            raise self.engine.unreachable(exc) from None

    def _chunks(self, context: str, tag: str, args: dict[str, str]) -> Iterator[Any]:
        try:
            yield from self.engine.client().api.build(
                path=context,
                tag=tag,
                buildargs=args,
                pull=False,
                rm=True,
                forcerm=True,
                decode=True,
            )
        except OSError as exc:  # the socket went away mid-build
            raise self.engine.unreachable(exc) from None

    def _manifest_folder(self, image_id: str) -> Path:
        """`.aeromancy/runtimes/<image id>/`, filled from the image on first use."""
        folder = self.root / ".aeromancy" / "runtimes" / image_id.split(":")[-1]
        if folder.is_dir():
            return folder
        api = self.engine.client().api
        container = api.create_container(image_id, command=["true"])["Id"]
        try:
            chunks, _ = api.get_archive(container, image.MANIFEST_DIR)
            data = b"".join(chunks)
        finally:
            api.remove_container(container, force=True)
        partial = folder.with_name(f"{folder.name}.part")
        partial.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            for member in archive.getmembers():
                extracted = archive.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    (partial / Path(member.name).name).write_bytes(extracted.read())
        partial.rename(folder)
        return folder

    def _shown(self, path: Path) -> str:
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)


def _base_digest(spec: image.ImageSpec, found: dict[str, Any]) -> str:
    """What the record keeps of the base: the digest it is pinned by, else the
    engine's repository digest, else its image id."""
    if "@" in spec.base:
        return spec.base.split("@", 1)[1]
    return _repo_digest(found) or str(found["Id"])


def _repo_digest(found: dict[str, Any]) -> str | None:
    digests = sorted(found.get("RepoDigests") or ())
    return digests[0].split("@", 1)[1] if digests else None


def _failed(
    step: image.Step | None, lines: list[str], error: str, log_path: str
) -> ImageBuildError:
    """One line: the step, the most telling line of its output, the log's path."""
    telling = [
        line.strip()
        for line in lines
        if line.strip().startswith(("E: ", "ERROR: ", "error: "))
    ]
    engine = error.strip().splitlines()[-1] if error.strip() else "failed"
    # Podman: 'building at STEP "RUN ...": while running runtime: exit status 7';
    # Docker: "The command '/bin/sh -c ...' returned a non-zero code: 7".
    code = re.search(r"(?:exit status|returned a non-zero code:) (\d+)$", engine)
    engine = f"exit status {code.group(1)}" if code else engine
    detail = f"{telling[-1]} ({engine})" if telling else engine
    where = step.what if step else "an unknown step"
    return ImageBuildError(
        f"building the runtime image failed at {where}: {detail}; full log: {log_path}"
    )
