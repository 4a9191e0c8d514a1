"""The runtime image's definition: Dockerfile, build context and runtime id.

Everything that goes into the image is decided here, on the host, before the
engine is asked anything beyond the base image's digest: the Dockerfile text
(generated from `[tool.aeromancy.runtime]`, or the project's own with the
manifest step appended), the files of the build context (the Python lock, the
manifest script, the CA bundle), the build args. The runtime id is the sha256
of all of it, so an unchanged runtime has an unchanged id and is found by its
label without calling the engine's build.

Layers, from the least to the most often changed: apt packages, hooks, the
Python virtualenv, the lock, the manifests. Project code is never in the image
(the repository is mounted), so a code change rebuilds nothing; a lock change
rebuilds the last two layers.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aeromancy import __version__
from aeromancy.config import RuntimeConfig
from aeromancy.errors import ConfigError
from aeromancy.manifest import DPKG_FORMAT

__all__ = [
    "LABEL",
    "MANIFEST_DIR",
    "ImageSpec",
    "Step",
    "lock_requirements",
    "read_file",
    "spec",
]

LABEL = "org.aeromancy.runtime-id"
MANIFEST_DIR = "/aeromancy/manifests"
VENV = "/opt/venv"
CA_FILE = "ca-bundle.crt"

# Written into the image by the last RUN step; read back by `DockerRuntime`.
# A file is left out when its tool is missing (no dpkg, no python3).
MANIFEST_SCRIPT = f"""set -eu
mkdir -p {MANIFEST_DIR}
if command -v dpkg-query >/dev/null; then
  dpkg-query -W -f {shlex.quote(DPKG_FORMAT)} > {MANIFEST_DIR}/debian.txt
fi
if command -v python3 >/dev/null; then
  python3 - > {MANIFEST_DIR}/python.txt <<'PY'
import importlib.metadata as m
for d in m.distributions():
    print(f"{{d.metadata['Name']}}=={{d.version}}")
PY
fi
"""


@dataclass(frozen=True)
class Step:
    """One Dockerfile instruction and how an error names it (`hook 2 (...)`)."""

    instruction: str
    what: str


@dataclass(frozen=True)
class ImageSpec:
    """Everything that goes into a runtime image, and the id it makes.

    Attributes:
        steps: the Dockerfile's instructions, the label excluded.
        files: the build context, `{name: bytes}`.
        build_args: `--build-arg` values.
        base: the base image as configured (or the project Dockerfile's FROM).
        base_digest: what the engine says the base is (digest or image id).
    """

    steps: tuple[Step, ...]
    files: Mapping[str, bytes] = field(default_factory=dict)
    build_args: Mapping[str, str] = field(default_factory=dict)
    base: str = ""
    base_digest: str | None = None

    @property
    def runtime_id(self) -> str:
        """sha256 (hex) of the Dockerfile, context, build args and base digest."""
        identity = {
            "dockerfile": self._body(),
            "files": {
                name: hashlib.sha256(data).hexdigest()
                for name, data in sorted(self.files.items())
            },
            "build_args": dict(sorted(self.build_args.items())),
            "base_digest": self.base_digest,
            "aeromancy": __version__,
        }
        text = json.dumps(identity, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def dockerfile(self) -> str:
        """The Dockerfile the engine builds: the steps, then the id label."""
        return f"{self._body()}LABEL {LABEL}={self.runtime_id}\n"

    def step_named(self, instruction: str) -> Step | None:
        """The step whose instruction the engine's log shows as `instruction`."""
        wanted = " ".join(instruction.split())
        for step in self.steps:
            if " ".join(step.instruction.split()) == wanted:
                return step
        return None

    def _body(self) -> str:
        return "".join(f"{step.instruction}\n" for step in self.steps)


def spec(
    root: Path, settings: RuntimeConfig, base_digest: str | None = None
) -> ImageSpec:
    """The image for `settings`: generated, or the project's Dockerfile + manifests.

    Args:
        root: the project root; lock, Dockerfile and CA bundle are relative to it.
        settings: `[tool.aeromancy.runtime]`.
        base_digest: the base image's digest, as the engine resolved it.
    """
    files: dict[str, bytes] = {"manifests.sh": MANIFEST_SCRIPT.encode()}
    if settings.ca_bundle:
        files[CA_FILE] = read_file(root, settings.ca_bundle, "ca_bundle")
    lock = lock_requirements(root, settings.lock_file) if settings.lock_file else None
    if settings.dockerfile:
        text = read_file(root, settings.dockerfile, "dockerfile").decode("utf-8")
        steps = [Step(line, "your Dockerfile") for line in _instructions(text)]
        if lock is not None:
            files[Path(str(settings.lock_file)).name] = lock.encode()
        base = project_base(text)
    else:
        steps = _generated(settings, lock, files)
        base = settings.base_image
    steps += [
        Step(f"COPY manifests.sh {MANIFEST_DIR}.sh", "the manifest step"),
        Step(f"RUN sh {MANIFEST_DIR}.sh", "the manifest step"),
    ]
    return ImageSpec(tuple(steps), files, dict(settings.build_args), base, base_digest)


def project_base(dockerfile: str) -> str:
    """The image the final stage of a project Dockerfile starts from."""
    stages: set[str] = set()
    base = ""
    for line in _instructions(dockerfile):
        words = line.split()
        if words[0].upper() != "FROM":
            continue
        image = next((w for w in words[1:] if not w.startswith("--")), "")
        if len(words) >= 4 and words[-2].upper() == "AS":
            stages.add(words[-1].lower())
        base = "" if image.lower() in stages or image == "scratch" else image
    return base


def _generated(
    settings: RuntimeConfig, lock: str | None, files: dict[str, bytes]
) -> list[Step]:
    steps = [Step(f"FROM {settings.base_image}", "the base image")]
    steps += [
        Step(f"ARG {name}", "a build arg") for name in sorted(settings.build_args)
    ]
    steps.append(Step("ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8", "env"))
    if settings.apt_packages:
        packages = " ".join(shlex.quote(p) for p in settings.apt_packages)
        steps.append(
            Step(
                "RUN apt-get update && apt-get install -y --no-install-recommends "
                f"{packages} && rm -rf /var/lib/apt/lists/*",
                "the apt packages step",
            )
        )
    for number, hook in enumerate(settings.hooks, start=1):
        steps.append(Step(f"RUN {hook}", f"hook {number} (`{hook}`)"))
    steps += [
        Step(
            f"RUN python3 -m venv {VENV}",
            "the virtualenv step (the base image needs python3 and python3-venv; "
            "add them to tool.aeromancy.runtime.apt_packages)",
        ),
        Step(f"ENV PATH={VENV}/bin:$PATH VIRTUAL_ENV={VENV}", "env"),
    ]
    if lock is not None and _has_requirements(lock):
        files["requirements.txt"] = lock.encode()
        steps += _python_steps(settings, CA_FILE in files)
    return steps


def _python_steps(settings: RuntimeConfig, with_ca: bool) -> list[Step]:
    what = f"the Python lock step ({settings.lock_file})"
    steps = [Step("COPY requirements.txt /aeromancy/requirements.txt", what)]
    env = ""
    if with_ca:
        # pip does not read the system store: a TLS-re-signing proxy's CA must be
        # named to it (and to requests, for pip's vendored copy).
        steps.append(Step(f"COPY {CA_FILE} /aeromancy/{CA_FILE}", what))
        ca = f"/aeromancy/{CA_FILE}"
        env = f"PIP_CERT={ca} REQUESTS_CA_BUNDLE={ca} SSL_CERT_FILE={ca} "
    steps.append(
        Step(
            f"RUN {env}pip install --no-cache-dir --disable-pip-version-check "
            "-r /aeromancy/requirements.txt",
            what,
        )
    )
    return steps


def lock_requirements(root: Path, lock_file: str) -> str:
    """The Python lock as requirements text pip installs.

    A requirements file is used as it is; `uv.lock` and `pdm.lock` become one
    `name==version` line per locked distribution from a package index.
    TODO: carry the locks' hashes (`--hash`) and git/URL sources once a project
    needs them; today such entries are left out.
    """
    data = read_file(root, lock_file, "lock_file")
    name = Path(lock_file).name
    if name not in ("uv.lock", "pdm.lock"):
        return data.decode("utf-8")

    import tomlkit

    try:
        packages = tomlkit.parse(data.decode("utf-8")).get("package", [])
    except Exception as exc:  # tomlkit raises several unrelated types
        raise ConfigError(f"{lock_file} is not a valid lock file: {exc}") from None
    lines = []
    for package in packages:
        source = package.get("source", {})
        if name == "uv.lock" and "registry" not in source:
            continue  # the project itself, or a path/git source
        lines.append(f"{package['name']}=={package['version']}\n")
    return "".join(sorted(lines))


def _has_requirements(text: str) -> bool:
    return any(line.split("#", 1)[0].strip() for line in text.splitlines())


def _instructions(dockerfile: str) -> list[str]:
    """A Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = dockerfile.replace("\\\r\n", " ").replace("\\\n", " ")
    return [
        line.strip()
        for line in joined.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def read_file(root: Path, relative: str, key: str) -> bytes:
    """A file the runtime settings name at `key`; a ConfigError when unreadable."""
    path = root / relative
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"pyproject.toml: tool.aeromancy.runtime.{key} names {relative}, "
            f"which cannot be read ({exc.strerror})"
        ) from None
