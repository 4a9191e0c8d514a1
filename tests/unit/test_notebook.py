"""aeromancy.notebook on a real project: a tracked `aero repro`, then reads at
the pinned version from the DVC cache, the remote and git."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

import aeromancy.notebook as an
from aeromancy import config
from aeromancy.errors import UserError
from aeromancy.notebook import MissingDataError
from tests.conftest import S3, Result, git, run_aero


def _runs(root: Path) -> dict[str, str]:
    """The newest run id of each stage, from the local run index."""
    found: dict[str, tuple[str, str]] = {}
    for path in (root / ".aeromancy" / "runs").glob("*.json"):
        record = json.loads(path.read_text())
        stage, started = record["stage"], record["started"] + record["run_id"]
        if stage not in found or found[stage][0] < started:
            found[stage] = (started, record["run_id"])
    return {stage: run for stage, (_, run) in found.items()}


def _move_on(root: Path, aero: type[Result]) -> None:
    """Commit a params change and reproduce: a new model in the workspace."""
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("normalize: true", "normalize: false"))
    git(root, "commit", "--quiet", "-am", "no normalization")
    result = aero("repro", cwd=root)
    assert result.exit_code == 0, result.stderr


@pytest.fixture
def tracked(project: Path, aero: type[Result], monkeypatch: pytest.MonkeyPatch) -> Path:
    result = aero("repro", cwd=project)
    assert result.exit_code == 0, result.stderr
    monkeypatch.chdir(project / "notebooks")
    return project


def test_a_run_pin_reads_its_version_after_the_workspace_moves_on(
    tracked: Path, aero: type[Result]
) -> None:
    train = _runs(tracked)["train"]
    before = (tracked / "build" / "model.json").read_bytes()
    assert an.load("build/model.json", run=train) == before

    _move_on(tracked, aero)
    after = (tracked / "build" / "model.json").read_bytes()
    assert after != before
    assert an.load("build/model.json", run=train) == before
    assert an.load("build/model.json") == after  # no pin: HEAD

    lineage = an.lineage("build/model.json", run=train)
    assert (lineage.run, lineage.stage, lineage.made_by) == (train, "train", train)
    assert lineage.fingerprint and lineage.fingerprint in json.dumps(
        json.loads((tracked / ".aeromancy/runs" / f"{train}.json").read_text())
    )
    assert f"run {train} (stage train, fingerprint {lineage.fingerprint[:12]})" in (
        str(lineage)
    )


def test_the_kernel_pin_applies_from_any_working_directory(
    tracked: Path, aero: type[Result], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    evaluate = _runs(tracked)["evaluate"]
    before = (tracked / "build" / "predictions.csv").read_bytes()
    monkeypatch.setenv(an.PIN_ENV, an.pin_for(tracked, evaluate).to_json())
    monkeypatch.chdir(tmp_path)  # outside the project

    git(tracked, "rm", "--quiet", "build/metrics.json")  # uncommitted, not pinned
    assert an.load("build/predictions.csv") == before
    assert json.loads(an.load("build/metrics.json"))["accuracy"] > 0.5
    lineage = an.lineage()
    assert (lineage.run, lineage.pinned_by) == (evaluate, "kernel (unnamed)")


def test_directories_files_inside_them_and_uncached_outputs(tracked: Path) -> None:
    prepared = an.load("build/prepared")
    assert isinstance(prepared, dict)
    assert sorted(prepared) == ["test.csv", "train.csv"]
    train_csv = (tracked / "build" / "prepared" / "train.csv").read_bytes()
    assert prepared["train.csv"] == train_csv
    assert an.load("build/prepared/train.csv") == train_csv

    metrics = (tracked / "build" / "metrics.json").read_bytes()  # cache: false
    assert an.load("build/metrics.json") == metrics
    with an.open("build/metrics.json", mode="r") as handle:
        assert json.load(handle) == json.loads(metrics)
    with an.open(tracked / "build" / "model.json") as handle:  # absolute is fine
        assert handle.read() == (tracked / "build" / "model.json").read_bytes()

    local = an.path("build/predictions.csv")
    assert local.name == "predictions.csv"
    assert local.read_bytes() == (tracked / "build/predictions.csv").read_bytes()
    folder = an.path("build/prepared")
    assert sorted(p.name for p in folder.iterdir()) == ["test.csv", "train.csv"]
    assert an.load("data/measurements")  # the dataset, a directory


def test_a_missing_object_is_fetched_from_the_remote_or_named(tracked: Path) -> None:
    train = _runs(tracked)["train"]
    model = an.lineage("build/model.json", run=train).hash
    assert model is not None
    value = model.partition(":")[2]
    cached = Path(os.environ["XDG_CACHE_HOME"], "aeromancy", "dvc-cache")
    stored = cached / "files" / "md5" / value[:2] / value[2:]
    stored.unlink()
    assert an.load("build/model.json", run=train)  # pulled back from the remote
    assert stored.exists()

    remote = Path(config.load(tracked).remote.url)
    stored.unlink()
    (remote / "files" / "md5" / value[:2] / value[2:]).unlink()
    with pytest.raises(MissingDataError) as caught:
        an.load("build/model.json", run=train)
    assert caught.value.message == (
        f"'build/model.json' ({value[:12]}) is in neither the DVC cache nor the "
        "remote; `aero data push` it from a machine that has it"
    )


@pytest.mark.s3
def test_a_fresh_clone_reads_a_run_from_the_s3_remote(
    tmp_path: Path, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "demo"
    remote = f"s3://{s3.bucket}/proj"
    made = run_aero(
        "init", str(root), "--runtime", "host", "--tracker", "none",
        "--remote", remote, "--endpoint", s3.endpoint,
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    assert run_aero("repro", cwd=root).exit_code == 0
    train = _runs(root)["train"]
    model = (root / "build" / "model.json").read_bytes()

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "--quiet", str(root), str(clone))
    monkeypatch.chdir(clone)  # no run index, no cache: all from the remote
    assert an.load("build/model.json", run=train) == model

    value = an.lineage("build/predictions.csv", run=train).hash or ""
    value = value.removeprefix("md5:")
    s3.client().delete_object(
        Bucket=s3.bucket, Key=f"proj/files/md5/{value[:2]}/{value[2:]}"
    )
    assert _error(lambda: an.load("build/predictions.csv", run=train)) == (
        f"'build/predictions.csv' ({value[:12]}) is in neither the DVC cache nor "
        "the remote; `aero data push` it from a machine that has it"
    )


def _error(call: Any) -> str:
    with pytest.raises(UserError) as caught:
        call()
    assert "\n" not in caught.value.message
    return caught.value.message


def test_bad_input_is_one_line_naming_it(
    tracked: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = git(tracked, "rev-parse", "HEAD").strip()[:12]
    assert _error(lambda: an.load("src/train.py")) == (
        f"'src/train.py' is not tracked by DVC at commit {head}: it is no dataset "
        "or stage output there (`aero data status` lists them); read git files "
        "from git"
    )
    assert _error(lambda: an.load("nope.csv")).startswith("'nope.csv' is not tracked")
    assert _error(lambda: an.load("build/prepared/nope.csv")) == (
        "'build/prepared/nope.csv' is not in the directory build/prepared at the "
        f"pinned version ({an.lineage('build/prepared').hash[4:16]})"
    )
    assert _error(lambda: an.load("build/model.json", run="nosuchrun")) == (
        "no run 'nosuchrun' in .aeromancy/runs or the remote; `aero runs list` "
        "shows the known runs"
    )
    assert _error(lambda: an.open("build/prepared")) == (
        "'build/prepared' is a directory; open a file inside it, or use load() "
        "or path()"
    )
    assert _error(lambda: an.load("../outside.csv")) == (
        "'../outside.csv' leaves the project; give it from the project's root"
    )

    monkeypatch.setenv(an.PIN_ENV, "{not json")
    assert _error(lambda: an.load("build/model.json")).startswith(
        "AEROMANCY_PIN is not a valid pin ("
    )


def test_the_public_api_is_pinned_and_the_docs_use_only_it() -> None:
    import re

    from tests.conftest import REPO

    assert sorted(an.__all__) == [
        "Lineage",
        "MissingDataError",
        "NotTrackedError",
        "PIN_ENV",
        "Pin",
        "lineage",
        "load",
        "open",
        "path",
        "pin_for",
    ]
    for doc in (REPO / "templates/notebooks/README.md", REPO / "README.md"):
        used = set(re.findall(r"\ban\.(\w+)\(", doc.read_text()))
        assert used and used <= set(an.__all__), doc
