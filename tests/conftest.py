"""Fixtures shared by every test: a pinned environment, real git + DVC repos,
a real S3 endpoint, and a way to drive `aero` as a user would.

Nothing here is mocked: repos are real git and DVC repositories in tmp, the S3
endpoint is moto's threaded server on 127.0.0.1, the CLI runs for real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The fault suite's closing line counts marked tests from the whole session.
from tests.faults.summary import (  # noqa: F401
    pytest_runtest_logreport,
    pytest_terminal_summary,
)

TESTS = Path(__file__).parent
REPO = TESTS.parent


@pytest.fixture(autouse=True)
def pinned_env(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Pin everything a test could pick up from the machine or the user."""
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Aero Test\n\temail = aero@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n"
    )
    for name in list(os.environ):
        if name.startswith(
            ("AWS_", "WANDB_", "MLFLOW_", "DVC_", "GIT_", "AERO_", "AEROMANCY_")
        ):
            monkeypatch.delenv(name)
    settings = {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CACHE_HOME": str(home / "cache"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
        "DVC_NO_ANALYTICS": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(home / "dvc-global"),
        "DVC_SYSTEM_CONFIG_DIR": str(home / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(home / "dvc-site"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "WANDB_MODE": "offline",
        "WANDB_SILENT": "true",
        "WANDB_DIR": str(home / "wandb"),
        "WANDB_CACHE_DIR": str(home / "wandb-cache"),
        "WANDB_DATA_DIR": str(home / "wandb-data"),
        "WANDB_CONFIG_DIR": str(home / "wandb-config"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "JUPYTER_DATA_DIR": str(home / "jupyter-data"),
        "JUPYTER_CONFIG_DIR": str(home / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(home / "jupyter-runtime"),
        "JUPYTER_PATH": "",
        "JUPYTER_PLATFORM_DIRS": "1",
        "IPYTHONDIR": str(home / "ipython"),
        "NO_COLOR": "1",
        "COLUMNS": "120",
        "TERM": "dumb",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return home


@dataclass
class Result:
    """What one `aero` invocation did."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def run_aero(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Result:
    """Run `aero ARGS` in a subprocess, exactly as a user's shell would."""
    done = subprocess.run(
        [sys.executable, "-m", "aeromancy", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def aero() -> type[Result]:
    """`aero(*args, cwd=...)`: the CLI in a subprocess (see `run_aero`)."""
    return run_aero  # type: ignore[return-value]


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def dvc_repo(tmp_path: Path) -> Path:
    """A real git + DVC repository with one committed stage, not yet Aeromancy's."""
    root = tmp_path / "existing"
    root.mkdir()
    git(root, "init", "--quiet")
    subprocess.run(
        [sys.executable, "-m", "dvc", "init", "--quiet"], cwd=root, check=True
    )
    (root / "dvc.yaml").write_text(
        "stages:\n  hello:\n    cmd: echo hello > hello.txt\n"
        "    outs:\n      - hello.txt\n"
    )
    (root / "README.md").write_text("an existing project\n")
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "existing")
    return root


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A freshly scaffolded Aeromancy project (host runtime, no tracker)."""
    root = tmp_path / "demo"
    result = run_aero("init", str(root), "--runtime", "host", "--tracker", "none")
    assert result.exit_code == 0, result.stderr
    return root


@dataclass
class S3:
    """A real S3 endpoint (moto's threaded server) and a bucket in it."""

    endpoint: str
    bucket: str

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server: str) -> S3:
    """An empty S3 endpoint with the bucket `aero-test`; reset between tests."""
    import urllib.request

    import boto3

    urllib.request.urlopen(
        urllib.request.Request(f"{s3_server}/moto-api/reset", method="POST")
    ).close()
    boto3.client("s3", endpoint_url=s3_server).create_bucket(Bucket="aero-test")
    return S3(endpoint=s3_server, bucket="aero-test")


#: The base image `scripts/setup-podman` builds with mmdebstrap and imports.
BASE_IMAGE = "localhost/aeromancy-base:bookworm"


@pytest.fixture(scope="session")
def engine() -> str:
    """The address of a reachable container engine holding `BASE_IMAGE`.

    Skips the test when there is none, unless AEROMANCY_REQUIRE_ENGINE=1 (as
    `.ci/run` sets after `scripts/setup-podman`): then it fails, so that CI
    never skips the container tests silently.
    """
    from aeromancy.errors import UserError
    from aeromancy.runtime.engine import Engine, find_image

    reachable = Engine()
    try:
        images = reachable.images()
    except UserError as exc:
        _missing_engine(f"no container engine: {exc.message}")
    if find_image(images, BASE_IMAGE) is None:
        _missing_engine(f"{BASE_IMAGE} is not in the engine; run scripts/setup-podman")
    return reachable.host


def _missing_engine(reason: str) -> None:
    if os.environ.get("AEROMANCY_REQUIRE_ENGINE") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def configure_runtime(root: Path, **values: object) -> None:
    """Set keys of `[tool.aeromancy.runtime]` and commit pyproject.toml."""
    import tomlkit

    path = root / "pyproject.toml"
    document = tomlkit.parse(path.read_text())
    table = document["tool"]["aeromancy"]["runtime"]  # type: ignore[index]
    for key, value in values.items():
        table[key] = value  # type: ignore[index]
    path.write_text(tomlkit.dumps(document))
    git(root, "commit", "--quiet", "-am", "configure the runtime")


@pytest.fixture
def container_project(engine: str, project: Path) -> Path:
    """A scaffolded project whose tracked stages run in a container image built
    from `BASE_IMAGE`; every test with the same settings reuses one image."""
    configure_runtime(
        project,
        kind="docker",
        base_image=BASE_IMAGE,
        hooks=["echo from-the-hook > /etc/aero-hook"],
        ca_bundle="/etc/ssl/certs/ca-certificates.crt",
        pass_env=["AERO_TEST_*"],
    )
    return project


#: Nix's settings in the tests: flakes on, and no binary cache, flake registry or
#: download retries to wait for (none is reachable offline).
NIX_CONFIG = (
    "experimental-features = nix-command flakes\nsubstituters =\n"
    "flake-registry =\ndownload-attempts = 1\n"
)

#: A flake whose runtime builds offline, from `builtins.derivation` alone: its
#: tools link the host's python3 (the example stages need it) and a few commands,
#: and add `hello`. `MARK` is exported by the shell; change it for a new runtime.
LOCAL_FLAKE = r"""{
  description = "a local Nix runtime for tests";
  outputs = { self }:
    let
      system = "SYSTEM";
      tools = builtins.derivation {
        name = "aero-test-tools";
        inherit system;
        builder = "/bin/sh";
        args = [ "-c" ''
          /bin/mkdir -p $out/bin
          for tool in cat env sort mkdir; do
            /bin/ln -s /usr/bin/$tool $out/bin/$tool
          done
          /bin/ln -s PYTHON $out/bin/python3
          printf '#!/bin/sh\necho hello from nix\n' > $out/bin/hello
          /bin/chmod +x $out/bin/hello
        '' ];
      };
    in {
      devShells.${system}.default = builtins.derivation {
        name = "aero-test-shell";
        inherit system;
        builder = "/bin/bash";
        outputs = [ "out" ];
        PATH = "${tools}/bin";
        AERO_FROM_SHELL = "MARK";
        args = [ "-c" "echo $PATH > $out" ];
      };
    };
}
"""


def local_flake(
    mark: str = "from-the-shell", python: str = "/usr/bin/python3", hook: str = ""
) -> str:
    """`LOCAL_FLAKE` for this machine's system, exporting `AERO_FROM_SHELL=mark`,
    its `python3` a link to `python`, with `hook` as its shellHook if given."""
    from aeromancy.runtime.nix import current_system

    flake = LOCAL_FLAKE.replace("SYSTEM", current_system()).replace("MARK", mark)
    if hook:
        line = f'AERO_FROM_SHELL = "{mark}";'
        flake = flake.replace(line, f'{line}\n        shellHook = "{hook}";')
    return flake.replace("PYTHON", python)


@pytest.fixture(scope="session")
def nix_installed() -> str:
    """The `nix` on PATH; skips the test when there is none, unless
    AEROMANCY_REQUIRE_NIX=1 (as `.ci/run` sets after scripts/setup-nix)."""
    import shutil

    found = shutil.which("nix")
    if found is None:
        reason = "no `nix` on PATH; `apt-get install nix-bin` (see scripts/setup-nix)"
        if os.environ.get("AEROMANCY_REQUIRE_NIX") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return found


@pytest.fixture
def nix(nix_installed: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Nix, with `NIX_CONFIG` pinned for the test."""
    monkeypatch.setenv("NIX_CONFIG", NIX_CONFIG)
    return nix_installed


@pytest.fixture
def nix_project(nix: str, project: Path) -> Path:
    """A scaffolded project whose tracked stages run in `LOCAL_FLAKE`'s runtime."""
    (project / "flake.nix").write_text(local_flake())
    configure_runtime(project, kind="nix")
    return project


def records(root: Path) -> dict[str, dict[str, Any]]:
    """The project's local run index by stage: the latest record of each."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((root / ".aeromancy" / "runs").glob("*.json")):
        record = json.loads(path.read_text())
        found[record["stage"]] = record
    return found


def s3_project(root: Path, s3: S3, *extra: str, prefix: str = "proj") -> Path:
    """`aero init` a host-runtime project whose remote is `s3://BUCKET/PREFIX`."""
    made = run_aero(
        "init",
        str(root),
        "--runtime",
        "host",
        "--tracker",
        "none",
        "--remote",
        f"s3://{s3.bucket}/{prefix}",
        "--endpoint",
        s3.endpoint,
        *extra,
    )
    assert made.exit_code == 0, made.stderr
    return root
