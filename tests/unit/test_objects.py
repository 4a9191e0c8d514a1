"""Reading a workspace's objects without DVC: the same set DVC's own index
gives, on a real project after a tracked run; None wherever the reader would
have to guess, so the push asks DVC."""

from __future__ import annotations

from pathlib import Path

import pytest

from aeromancy import _objects, data
from aeromancy._dvc import open_repo
from tests.conftest import Result, git


def _dvc_objects(root: Path) -> set[str]:
    """What DVC's index says the cached outputs use, directories expanded."""
    from aeromancy import _dvc_transfer

    with open_repo(root) as repo:
        cache = repo.cache.local
        used = _dvc_transfer.used_objects(repo, [])
        return {h.value for h in _dvc_transfer.expand(cache, used)}


@pytest.fixture
def ran(project: Path, aero: type[Result]) -> Path:
    result = aero("repro", cwd=project)
    assert result.exit_code == 0, result.stderr
    return project


def test_the_objects_are_the_ones_dvc_names(ran: Path) -> None:
    cache = data.cache_dir(ran)
    assert cache is not None
    found = _objects.workspace_objects(ran, cache)
    assert found is not None
    assert {oid.value for oid in found} == _dvc_objects(ran)
    # metrics.json is `cache: false`: in dvc.lock, but nothing to push.
    lock = (ran / "dvc.lock").read_text()
    metrics = lock.split("path: build/metrics.json")[1].split("md5: ")[1][:32]
    assert metrics not in {oid.value for oid in found}


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ("vars:\n  - params.yaml\n", "templated"),
        ("  more:\n    foreach: [a, b]\n    do:\n      cmd: echo ${item}\n", "foreach"),
    ],
)
def test_what_the_reader_does_not_understand_is_left_to_dvc(
    ran: Path, change: str, why: str
) -> None:
    dvc_yaml = ran / "dvc.yaml"
    text = dvc_yaml.read_text()
    dvc_yaml.write_text(change + text if why == "templated" else text + change)
    git(ran, "commit", "--quiet", "-am", why)
    assert _objects.workspace_objects(ran, ran / ".dvc" / "cache") is None


def test_a_pipeline_in_a_subfolder_is_left_to_dvc(ran: Path) -> None:
    sub = ran / "sub"
    sub.mkdir()
    (sub / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo\n")
    git(ran, "add", "sub/dvc.yaml")
    git(ran, "commit", "--quiet", "-m", "a nested pipeline")
    assert _objects.workspace_objects(ran, ran / ".dvc" / "cache") is None
