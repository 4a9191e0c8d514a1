"""Manifests: canonical text, stable digests; the host runtime lists itself."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest

from aeromancy.manifest import (
    DebianManifest,
    Manifests,
    PythonManifest,
    normalize_name,
)
from aeromancy.runtime import host
from aeromancy.runtime.base import Runtime

DPKG = (
    "zlib1g\t1:1.2.13.dfsg-1\tamd64\n"
    "bash\t5.2.15-2+b2\tamd64\n"
    "libc6\t2.36-9+deb12u4\tamd64\n"
    "libc6\t2.36-9+deb12u4\ti386\n"
    "removed-pkg\t\t\n"
)


def test_debian_manifest_is_sorted_and_skips_removed_packages() -> None:
    manifest = DebianManifest.parse(DPKG)
    assert manifest.text() == (
        "bash\t5.2.15-2+b2\tamd64\n"
        "libc6\t2.36-9+deb12u4\tamd64\n"
        "libc6\t2.36-9+deb12u4\ti386\n"
        "zlib1g\t1:1.2.13.dfsg-1\tamd64\n"
    )
    assert manifest.digest == hashlib.sha256(manifest.text().encode()).hexdigest()
    assert manifest.versions() == {
        "bash": "5.2.15-2+b2",
        "libc6:amd64": "2.36-9+deb12u4",
        "libc6:i386": "2.36-9+deb12u4",
        "zlib1g": "1:1.2.13.dfsg-1",
    }


def test_debian_digest_ignores_order_and_sees_versions() -> None:
    lines = DPKG.splitlines(keepends=True)
    reordered = DebianManifest.parse("".join(reversed(lines)))
    assert reordered.digest == DebianManifest.parse(DPKG).digest
    bumped = DebianManifest.parse(DPKG.replace("5.2.15-2+b2", "5.2.15-3"))
    assert bumped.digest != reordered.digest


def test_python_manifest_normalizes_and_keeps_first() -> None:
    manifest = PythonManifest.of(
        [
            ("Typing_Extensions", "4.12.2"),
            ("numpy", "2.0.0"),
            ("typing.extensions", "1"),
        ]
    )
    assert manifest.text() == "numpy==2.0.0\ntyping-extensions==4.12.2\n"
    assert manifest.versions() == {"numpy": "2.0.0", "typing-extensions": "4.12.2"}


def test_python_manifest_parses_a_freeze() -> None:
    freeze = (
        "# generated\n"
        "--index-url https://pypi.example/simple\n"
        "requests[socks]==2.32.3  # via -r requirements.in\n"
        "-e git+https://example/x.git#egg=x\n"
        "pkg @ file:///tmp/pkg\n"
        "Numpy==2.0.0\n"
    )
    manifest = PythonManifest.parse(freeze)
    assert manifest.text() == "numpy==2.0.0\nrequests==2.32.3\n"
    assert (
        manifest.digest
        == PythonManifest.of([("requests", "2.32.3"), ("numpy", "2.0.0")]).digest
    )


def test_normalize_name() -> None:
    assert normalize_name("Foo_Bar.baz--qux") == "foo-bar-baz-qux"


def test_manifests_digests_name_what_is_absent() -> None:
    manifests = Manifests(python=PythonManifest.of([("a", "1")]))
    assert manifests.digests() == {
        "debian": None,
        "python": hashlib.sha256(b"a==1\n").hexdigest(),
        "nix": None,
    }


def test_host_runtime_node() -> None:
    runtime = host.HostRuntime()
    assert isinstance(runtime, Runtime)
    node = runtime.describe()
    assert set(node) == {
        "kind",
        "id",
        "sealed",
        "base_digest",
        "debian_digest",
        "python_digest",
        "nix_digest",
    }
    assert node["kind"] == "host"
    assert node["sealed"] is False
    assert node["base_digest"] is None
    assert node["nix_digest"] is None
    assert len(node["id"]) == 64
    assert node == host.HostRuntime().describe()
    python = runtime.manifest().python
    assert python is not None
    assert "aeromancy" in python.versions()
    assert node["python_digest"] == python.digest


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg-query")
def test_host_lists_debian_packages_once_per_process() -> None:
    host.debian_manifest.cache_clear()
    first = host.debian_manifest()
    assert first is not None
    assert "dpkg" in first.versions()
    assert host.debian_manifest() is first
    assert host.debian_manifest.cache_info().misses == 1


def test_python_distributions_match_importlib_metadata() -> None:
    from importlib import metadata

    expected = PythonManifest.of(
        (dist.metadata["Name"], dist.version) for dist in metadata.distributions()
    )
    assert PythonManifest.of(host._distributions(sys.path)) == expected


def test_egg_info_is_read_from_its_metadata(tmp_path: Path) -> None:
    egg = tmp_path / "legacy.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.0\nName: Legacy\nVersion: 0.3\n")
    (tmp_path / "modern-1.2.dist-info").mkdir()
    found = list(host._distributions([str(tmp_path), str(tmp_path / "missing")]))
    assert found == [("Legacy", "0.3"), ("modern", "1.2")]
