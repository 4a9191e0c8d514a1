"""Manifests: the package lists of a runtime, each with its own digest.

A manifest is a sorted list of entries with one canonical text form (one entry a
line, fields separated by tabs); its digest is the sha256 of that text, so two
runtimes with the same packages have the same digest wherever they were listed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DebianManifest",
    "DebianPackage",
    "Manifests",
    "NixClosure",
    "NixPath",
    "PythonManifest",
    "PythonPackage",
    "normalize_name",
]

#: The `dpkg-query -W` format `DebianManifest.parse` reads.
DPKG_FORMAT = "${Package}\\t${Version}\\t${Architecture}\\n"


@dataclass(frozen=True, order=True)
class DebianPackage:
    """One installed Debian package."""

    name: str
    version: str
    arch: str

    def line(self) -> str:
        return f"{self.name}\t{self.version}\t{self.arch}"


@dataclass(frozen=True, order=True)
class PythonPackage:
    """One installed Python distribution; `name` is normalized (PEP 503)."""

    name: str
    version: str

    def line(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class DebianManifest:
    """The Debian packages of a runtime, sorted by name and architecture."""

    entries: tuple[DebianPackage, ...]

    @classmethod
    def of(cls, packages: Iterable[DebianPackage]) -> DebianManifest:
        """A manifest of `packages` in canonical order, duplicates dropped."""
        return cls(tuple(sorted(set(packages))))

    @classmethod
    def parse(cls, text: str) -> DebianManifest:
        """Read the output of `dpkg-query -W -f "$DPKG_FORMAT"`.

        A package listed without a version (removed, config files left) is not
        installed and is skipped.
        """
        packages = []
        for line in text.splitlines():
            name, _, rest = line.partition("\t")
            version, _, arch = rest.partition("\t")
            if name and version:
                packages.append(DebianPackage(name, version, arch))
        return cls.of(packages)

    def text(self) -> str:
        """The canonical form: `name<TAB>version<TAB>arch`, one package a line."""
        return "".join(f"{entry.line()}\n" for entry in self.entries)

    @property
    def digest(self) -> str:
        """sha256 (hex) of the canonical text."""
        return _sha256(self.text())

    def versions(self) -> dict[str, str]:
        """`{name[:arch]: version}`; the architecture is named only when a package
        is installed for more than one."""
        names = [entry.name for entry in self.entries]
        return {
            (f"{e.name}:{e.arch}" if names.count(e.name) > 1 else e.name): e.version
            for e in self.entries
        }


@dataclass(frozen=True)
class PythonManifest:
    """The Python distributions of a runtime, sorted by normalized name."""

    entries: tuple[PythonPackage, ...]

    @classmethod
    def of(cls, packages: Iterable[tuple[str, str]]) -> PythonManifest:
        """A manifest of `(name, version)` pairs; the first of a name wins, as
        the first on `sys.path` is the one imported."""
        seen: dict[str, PythonPackage] = {}
        for name, version in packages:
            key = normalize_name(name)
            seen.setdefault(key, PythonPackage(key, version))
        return cls(tuple(sorted(seen.values())))

    @classmethod
    def parse(cls, text: str) -> PythonManifest:
        """Read `name==version` lines (`pip freeze`, a lock); other lines
        (comments, options, `-e` and URL requirements) are skipped."""
        pairs = []
        for line in text.splitlines():
            name, sep, version = line.split("#", 1)[0].strip().partition("==")
            if sep and name and not name.startswith("-"):
                pairs.append((name.split("[", 1)[0].strip(), version.strip()))
        return cls.of(pairs)

    def text(self) -> str:
        """The canonical form: `name==version`, one distribution a line."""
        return "".join(f"{entry.line()}\n" for entry in self.entries)

    @property
    def digest(self) -> str:
        """sha256 (hex) of the canonical text."""
        return _sha256(self.text())

    def versions(self) -> dict[str, str]:
        """`{name: version}`."""
        return {entry.name: entry.version for entry in self.entries}


@dataclass(frozen=True, order=True)
class NixPath:
    """One store path of a Nix closure, as `nix path-info --json` describes it."""

    path: str
    nar_hash: str
    nar_size: int

    @property
    def name(self) -> str:
        """The path's name without its hash: `python3-3.11.9`."""
        return self.path.rsplit("/", 1)[-1].partition("-")[2]

    def line(self) -> str:
        return f"{self.path}\t{self.nar_hash}\t{self.nar_size}"


@dataclass(frozen=True)
class NixClosure:
    """The store paths a Nix runtime needs, sorted by path."""

    entries: tuple[NixPath, ...]

    @classmethod
    def of(cls, paths: Iterable[NixPath]) -> NixClosure:
        """A closure of `paths` in canonical order, duplicates dropped."""
        return cls(tuple(sorted(set(paths))))

    @classmethod
    def from_path_info(cls, info: Any) -> NixClosure:
        """Read `nix path-info -r --json`: a list of objects (Nix 2.8 to 2.18)
        or an object keyed by path (Nix 2.19 and later)."""
        items = info.items() if isinstance(info, dict) else ((None, i) for i in info)
        return cls.of(
            NixPath(path or entry["path"], entry["narHash"], int(entry["narSize"]))
            for path, entry in items
        )

    @classmethod
    def parse(cls, text: str) -> NixClosure:
        """Read the canonical text `text()` writes."""
        paths = []
        for line in text.splitlines():
            path, _, rest = line.partition("\t")
            nar_hash, _, size = rest.partition("\t")
            if path and nar_hash and size.isdigit():
                paths.append(NixPath(path, nar_hash, int(size)))
        return cls.of(paths)

    def text(self) -> str:
        """The canonical form: `path<TAB>narHash<TAB>narSize`, one path a line."""
        return "".join(f"{entry.line()}\n" for entry in self.entries)

    @property
    def digest(self) -> str:
        """sha256 (hex) of the canonical text."""
        return _sha256(self.text())

    @property
    def size(self) -> int:
        """The closure's size in bytes (the sum of its NAR sizes)."""
        return sum(entry.nar_size for entry in self.entries)

    def versions(self) -> dict[str, str]:
        """`{name: path}`; a name held by more than one path is named by its path."""
        names = [entry.name for entry in self.entries]
        return {
            (e.path if names.count(e.name) > 1 else e.name): e.path
            for e in self.entries
        }


@dataclass(frozen=True)
class Manifests:
    """Everything a runtime lists about itself; a part it cannot list is None.

    Attributes:
        debian: the Debian packages (None where there is no dpkg).
        python: the Python distributions.
        nix_closure: the store paths of a Nix runtime.
    """

    debian: DebianManifest | None = None
    python: PythonManifest | None = None
    nix_closure: NixClosure | None = field(default=None)

    def digests(self) -> dict[str, str | None]:
        """`{"debian": ..., "python": ..., "nix": ...}`, None where absent."""
        return {
            "debian": self.debian.digest if self.debian else None,
            "python": self.python.digest if self.python else None,
            "nix": self.nix_closure.digest if self.nix_closure else None,
        }

    def versions(self) -> dict[str, Any]:
        """Every package with its version, for a run record and `aero runs diff`."""
        return {
            "debian": self.debian.versions() if self.debian else None,
            "python": self.python.versions() if self.python else None,
        }


def normalize_name(name: str) -> str:
    """A distribution name as PEP 503 compares it: `Foo_Bar.baz` → `foo-bar-baz`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
