"""The MLflow tracker, read back through MLflow's own API from its SQLite store."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aeromancy.config import TrackerConfig
from aeromancy.errors import ConfigError
from aeromancy.runs import ABORTED, FAILED, SUCCEEDED, RunRecord
from aeromancy.tracking.base import open_tracker
from aeromancy.tracking.mlflow import RECORD_ARTIFACT, default_uri, flatten

pytest.importorskip("mlflow", reason="the mlflow extra is not installed")

INVOCATION = "20260101-120000-abcdef"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
MLFLOW = TrackerConfig(kind="mlflow")


def make_record(stage: str, run_id: str, **changes: Any) -> RunRecord:
    """A run record as the pipeline would hand it over, built by hand."""
    fields: dict[str, Any] = {
        "run_id": run_id,
        "invocation": INVOCATION,
        "project": "demo",
        "stage": stage,
        "command": f"python src/{stage}.py",
        "status": SUCCEEDED,
        "started": "2026-01-01T12:00:00+00:00",
        "ended": "2026-01-01T12:00:03+00:00",
        "fingerprint": {
            "code": {"commit": COMMIT, "digest": "c" * 64},
            "data": {"data/raw.csv": "0" * 32, "digest": "d" * 64},
            "params": {"train": {"lr": 0.1}, "digest": "p" * 64},
        },
        "fingerprint_digest": "f" * 64,
        "exit_code": 0,
        "params": {"train": {"lr": 0.1, "layers": [64, 32], "name": "mlp"}},
    }
    fields.update(changes)
    return RunRecord(**fields)


def log_all(
    root: Path, *records: RunRecord, config: TrackerConfig = MLFLOW
) -> tuple[list[dict[str, str]], list[str]]:
    tracker = open_tracker(config, root, "demo")
    tracker.start(INVOCATION)
    links = [tracker.log(record) for record in records]
    return links, tracker.finish()


def client(root: Path) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=default_uri(root))


def test_run_holds_params_tags_and_the_record(tmp_path: Path) -> None:
    record = make_record("train", "20260101-120003-aaaaaa")

    (link,), warnings = log_all(tmp_path, record)

    assert warnings == []
    assert [p.name for p in tmp_path.iterdir()] == [".aeromancy"]
    assert link["kind"] == "mlflow"
    run = client(tmp_path).get_run(link["id"])
    assert run.info.run_name == record.run_id
    assert run.info.status == "FINISHED"
    assert run.data.params == {
        "train.lr": "0.1",
        "train.layers": "[64, 32]",
        "train.name": "mlp",
    }
    tags = run.data.tags
    assert tags["aeromancy.fingerprint_digest"] == record.fingerprint_digest
    assert tags["aeromancy.fingerprint.code"] == "c" * 64
    assert tags["aeromancy.fingerprint.data"] == "d" * 64
    assert tags["aeromancy.commit"] == COMMIT
    assert tags["aeromancy.stage"] == "train"
    assert tags["aeromancy.invocation"] == INVOCATION
    assert tags["aeromancy.status"] == SUCCEEDED
    assert run.data.metrics == {"duration_s": 3.0, "exit_code": 0.0}


def test_start_twice_opens_the_store_once(tmp_path: Path) -> None:
    import threading

    tracker = open_tracker(MLFLOW, tmp_path, "demo")

    tracker.start(INVOCATION)
    tracker.start(INVOCATION)

    openers = [t for t in threading.enumerate() if t.name == "aero-mlflow"]
    assert len(openers) <= 1
    (link,) = [tracker.log(make_record("t", "r-1"))]
    assert tracker.finish() == [] and link["id"]


def test_record_artifact_reads_back_whole(tmp_path: Path) -> None:
    import mlflow.artifacts

    record = make_record("train", "20260101-120003-bbbbbb")

    (link,), _ = log_all(tmp_path, record)

    text = mlflow.artifacts.load_text(
        f"{client(tmp_path).get_run(link['id']).info.artifact_uri}/{RECORD_ARTIFACT}"
    )
    assert RunRecord.from_json(text) == record
    assert (tmp_path / ".aeromancy" / "mlflow-artifacts").is_dir()


def test_one_experiment_one_run_per_stage_and_statuses(tmp_path: Path) -> None:
    records = [
        make_record("prepare", "20260101-120000-cccccc"),
        make_record("train", "20260101-120003-dddddd", status=FAILED, exit_code=3),
        make_record("report", "20260101-120006-eeeeee", status=ABORTED, exit_code=None),
    ]

    links, _ = log_all(tmp_path, *records)

    store = client(tmp_path)
    (experiment,) = [e for e in store.search_experiments() if e.name == "demo"]
    runs = store.search_runs([experiment.experiment_id])
    assert {run.info.run_id for run in runs} == {link["id"] for link in links}
    status = {run.info.run_name: run.info.status for run in runs}
    assert status == {
        "20260101-120000-cccccc": "FINISHED",
        "20260101-120003-dddddd": "FAILED",
        "20260101-120006-eeeeee": "KILLED",
    }


@pytest.mark.parametrize("uri", ["htp://x", "ftp://example.org/store"])
def test_unknown_scheme_is_one_line_naming_the_key(tmp_path: Path, uri: str) -> None:
    tracker = open_tracker(
        TrackerConfig(kind="mlflow", tracking_uri=uri), tmp_path, "d"
    )

    with pytest.raises(ConfigError) as caught:
        tracker.start(INVOCATION)

    message = caught.value.message
    assert "\n" not in message
    assert "tool.aeromancy.tracker.tracking_uri" in message
    assert uri in message and "sqlite:///" in message


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("file:///tmp/mlruns", "file store, which MLflow 3 refuses"),
        ("sqlite:////no/such/folder/m.db", "/no/such/folder does not exist"),
    ],
)
def test_unusable_local_store_is_refused_up_front(
    tmp_path: Path, uri: str, says: str
) -> None:
    import mlflow

    if uri.startswith("file") and mlflow.__version__.startswith("2."):
        pytest.skip("MLflow 2 accepts file stores")
    tracker = open_tracker(
        TrackerConfig(kind="mlflow", tracking_uri=uri), tmp_path, "d"
    )

    with pytest.raises(ConfigError, match=says) as caught:
        tracker.start(INVOCATION)

    assert "tool.aeromancy.tracker.tracking_uri" in caught.value.message


def test_unreachable_server_is_refused_within_seconds(tmp_path: Path) -> None:
    config = TrackerConfig(kind="mlflow", tracking_uri="http://user:pw@127.0.0.1:9")
    tracker = open_tracker(config, tmp_path, "demo")

    began = time.perf_counter()
    with pytest.raises(ConfigError, match="unreachable") as caught:
        tracker.start(INVOCATION)

    assert time.perf_counter() - began < 3
    assert "tool.aeromancy.tracker.tracking_uri" in caught.value.message
    assert "pw" not in caught.value.message


def test_silent_server_is_refused_within_seconds(tmp_path: Path) -> None:
    import socket

    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        uri = f"http://127.0.0.1:{listening.getsockname()[1]}"
        tracker = open_tracker(
            TrackerConfig(kind="mlflow", tracking_uri=uri), tmp_path, "demo"
        )

        began = time.perf_counter()
        with pytest.raises(ConfigError, match="unreachable"):
            tracker.start(INVOCATION)

    assert time.perf_counter() - began < 5


def test_custom_sqlite_uri(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere.db"
    config = TrackerConfig(kind="mlflow", tracking_uri=f"sqlite:///{database}")

    (link,), warnings = log_all(tmp_path, make_record("t", "r-1"), config=config)

    assert warnings == [] and database.is_file()
    assert link["uri"] == f"sqlite:///{database}"


def test_missing_mlflow_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)

    with pytest.raises(ConfigError, match=r"pip install 'aeromancy\[mlflow\]'"):
        open_tracker(MLFLOW, tmp_path, "demo")


def test_canary_secrets_in_the_environment_reach_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = {
        "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-4f1d",
        "WANDB_API_KEY": "canary-wandb-key-" + "7" * 23,
        "MY_TOKEN": "canary-token-9c2e",
    }
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)

    _, warnings = log_all(tmp_path, make_record("train", "20260101-120003-ffffff"))

    assert warnings == []
    written = [p for p in (tmp_path / ".aeromancy").rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in written)
    assert any(p.name == "run-record.json" for p in written)
    for path in written:
        content = path.read_bytes()
        for name, value in canaries.items():
            assert value.encode() not in content, f"{name} leaked into {path}"


def test_flatten() -> None:
    nested = {"a": {"b": {"c": 1}, "d": "x"}, "e": [1, 2], "f": {}, "g": None}
    assert flatten(nested) == {
        "a.b.c": "1",
        "a.d": "x",
        "e": "[1, 2]",
        "f": "{}",
        "g": "null",
    }
    assert len(flatten({"long": "x" * 10_000})["long"]) == 6000
    assert json.loads(flatten({"k": [True]})["k"]) == [True]
