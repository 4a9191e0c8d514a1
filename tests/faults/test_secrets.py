"""The secret canary in every runtime, with the local store: secrets in the
caller's environment and in the git remote's URL reach nothing a run writes.

What is searched: everything under the test's home (the local store, the
shared DVC cache, W&B's and MLflow's folders), the project's `.aeromancy/`
(run records, manifests, logs) and a stage output that dumps the environment
the stage ran with, so a secret let into the container or the Nix shell is
seen too (the host runtime is unsealed by design: its stages see the caller's
environment, so there the stage writes only a marker). The tracker backends
with the S3 remote are searched by the canary in
`tests/functional/test_repro_trackers.py`, which carries the `secrets` marker
and is counted with these.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git, records, run_aero
from tests.functional.test_repro_trackers import CANARIES, GIT_PASSWORD

pytestmark = pytest.mark.secrets

DUMP_STAGE = """  dump:
    cmd: mkdir -p build && DUMP > build/env.txt
    outs:
      - build/env.txt
"""
#: What the stage writes: its whole environment in a sealed runtime; on the
#: host, which is unsealed by design, only what proves it ran.
DUMPS = {"docker": "env | sort", "nix": "env | sort", "host": "echo DVC_STAGE=dump"}


@pytest.mark.parametrize("kind", ["docker", "nix", "host"])
def test_secret_canary_in_each_runtime(
    kind: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    record_property: pytest.RecordProperty,
) -> None:
    fixture = {"docker": "container_project", "nix": "nix_project"}.get(kind, "project")
    root: Path = request.getfixturevalue(fixture)
    with (root / "dvc.yaml").open("a") as dvc_yaml:
        dvc_yaml.write(DUMP_STAGE.replace("DUMP", DUMPS[kind]))
    git(root, "commit", "--quiet", "-am", "a stage that dumps its environment")
    url = f"https://me:{GIT_PASSWORD}@example.invalid/x.git"
    git(root, "remote", "add", "origin", url)
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)

    result = run_aero("repro", cwd=root)
    assert result.exit_code == 0, result.stderr
    dumped = (root / "build" / "env.txt").read_text()
    assert "DVC_STAGE=dump" in dumped  # the dump ran, in the runtime
    assert records(root)["dump"]["fingerprint"]["runtime"]["kind"] == kind

    secrets = [*CANARIES.values(), GIT_PASSWORD]
    searched = [Path.home(), root / ".aeromancy", root / "build"]
    leaks = sorted(
        str(path)
        for folder in searched
        for path in folder.rglob("*")
        if path.is_file() and any(s.encode() in path.read_bytes() for s in secrets)
    )
    record_property("leaks", len(leaks))
    assert leaks == []
