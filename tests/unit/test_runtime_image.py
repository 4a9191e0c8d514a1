"""The runtime image's definition and id, without an engine."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from aeromancy.config import RuntimeConfig
from aeromancy.errors import ConfigError
from aeromancy.runtime import image, runflags


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "requirements.txt").write_text("# pinned\nrequests==2.32.3\n")
    return tmp_path


SETTINGS = RuntimeConfig(
    base_image="localhost/base:1",
    apt_packages=("curl", "jq=1.6-2.1"),
    hooks=("echo one", "echo two"),
    lock_file="requirements.txt",
    build_args={"MODE": "fast"},
)


def test_layers_go_from_the_least_to_the_most_often_changed(root: Path) -> None:
    spec = image.spec(root, SETTINGS, "sha256:base")
    text = spec.dockerfile()
    order = ["FROM", "ARG MODE", "apt-get", "echo one", "echo two", "venv"]
    order += ["COPY requirements.txt", "pip install", "manifests.sh", "LABEL"]
    positions = [text.index(part) for part in order]
    assert positions == sorted(positions)
    assert "jq=1.6-2.1" in text
    assert text.endswith(f"LABEL {image.LABEL}={spec.runtime_id}\n")


def test_the_id_changes_with_every_input_and_only_then(root: Path) -> None:
    base = image.spec(root, SETTINGS, "sha256:base").runtime_id
    assert image.spec(root, SETTINGS, "sha256:base").runtime_id == base
    assert image.spec(root, SETTINGS, "sha256:other").runtime_id != base
    for changed in (
        replace(SETTINGS, apt_packages=("curl",)),
        replace(SETTINGS, hooks=("echo one",)),
        replace(SETTINGS, build_args={"MODE": "slow"}),
    ):
        assert image.spec(root, changed, "sha256:base").runtime_id != base
    (root / "requirements.txt").write_text("requests==2.32.4\n")
    assert image.spec(root, SETTINGS, "sha256:base").runtime_id != base


def test_the_ca_bundle_is_named_to_pip_only(root: Path) -> None:
    (root / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    spec = image.spec(root, replace(SETTINGS, ca_bundle="ca.crt"), "sha256:base")
    [pip] = [s.instruction for s in spec.steps if "pip install" in s.instruction]
    assert pip.startswith("RUN PIP_CERT=/aeromancy/ca-bundle.crt ")
    assert spec.files["ca-bundle.crt"] == b"-----BEGIN CERTIFICATE-----\n"
    assert spec.runtime_id != image.spec(root, SETTINGS, "sha256:base").runtime_id


def test_an_empty_lock_adds_no_pip_step(root: Path) -> None:
    (root / "requirements.txt").write_text("# nothing yet\n")
    spec = image.spec(root, SETTINGS)
    assert "pip install" not in spec.dockerfile()


def test_a_project_dockerfile_gets_the_manifest_step(root: Path) -> None:
    (root / "Dockerfile").write_text(
        "FROM localhost/builder:1 AS build\nRUN make\n"
        "FROM localhost/base:2\nCOPY requirements.txt /r.txt\n"
    )
    spec = image.spec(root, replace(SETTINGS, dockerfile="Dockerfile"))
    assert spec.base == "localhost/base:2"
    text = spec.dockerfile()
    assert text.startswith("FROM localhost/builder:1 AS build\n")
    assert "RUN sh /aeromancy/manifests.sh" in text
    assert "apt-get" not in text
    assert set(spec.files) == {"manifests.sh", "requirements.txt"}


def test_uv_and_pdm_locks_become_requirements(tmp_path: Path) -> None:
    (tmp_path / "uv.lock").write_text(
        'version = 1\n[[package]]\nname = "demo"\nversion = "0.1.0"\n'
        'source = { editable = "." }\n[[package]]\nname = "numpy"\n'
        'version = "2.0.1"\nsource = { registry = "https://pypi.org/simple" }\n'
    )
    (tmp_path / "pdm.lock").write_text(
        '[[package]]\nname = "rich"\nversion = "13.7.1"\n'
    )
    assert image.lock_requirements(tmp_path, "uv.lock") == "numpy==2.0.1\n"
    assert image.lock_requirements(tmp_path, "pdm.lock") == "rich==13.7.1\n"


def test_a_missing_lock_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"runtime\.lock_file names nope\.txt"):
        image.spec(tmp_path, replace(SETTINGS, lock_file="nope.txt"))


def test_run_flags_become_sdk_arguments() -> None:
    create, host = runflags.parse(
        ["--user", "1000:1000", "--memory=4g", "--cpus", "1.5", "-e", "MODE=x",
         "--shm-size", "1g", "--privileged"]
    )  # fmt: skip
    assert create == {"user": "1000:1000", "environment": {"MODE": "x"}}
    assert host == {
        "mem_limit": "4g",
        "nano_cpus": 1_500_000_000,
        "shm_size": "1g",
        "privileged": True,
    }


def test_an_unknown_run_flag_is_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"run_flags: --ipc is not supported"):
        runflags.parse(["--ipc", "host"])
