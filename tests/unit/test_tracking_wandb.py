"""The W&B tracker, read back from the real offline `.wandb` files W&B writes.

`finish` does not wait for the worker, so every test that reads W&B's files
first waits for the worker's marker (`wait_for_workers`), as `aero runs sync`
does; no clock decides when a run is written.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aeromancy.config import RemoteConfig, TrackerConfig
from aeromancy.errors import UserError
from aeromancy.runs import FAILED, SUCCEEDED, RunRecord
from aeromancy.tracking import wandb as wandb_tracker
from aeromancy.tracking._wandb_worker import (
    artifact_name,
    data_entries,
    git_tracked,
    reference,
)
from aeromancy.tracking.base import open_tracker

INVOCATION = "20260101-120000-abcdef"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
IN_MD5 = "0123456789abcdef0123456789abcdef"
OUT_MD5 = "fedcba9876543210fedcba9876543210"
S3 = RemoteConfig(url="s3://aero-test/store", endpoint="http://127.0.0.1:9")


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
            "code": {"commit": COMMIT, "remote": "https://example.org/x.git"},
            "data": {"data/raw.csv": IN_MD5, "digest": "d" * 64},
            "params": {"train": {"lr": 0.1}, "digest": "p" * 64},
            "stage": {"name": stage, "command": f"python src/{stage}.py"},
        },
        "fingerprint_digest": f"{stage}-" + "f" * 58,
        "exit_code": 0,
        "params": {"train": {"lr": 0.1, "epochs": 3}},
        "outputs": {f"out/{stage}.csv": {"md5": OUT_MD5, "size": 12}},
    }
    fields.update(changes)
    return RunRecord(**fields)


def wandb_records(path: Path) -> Iterator[Any]:
    """Every protobuf `Record` in a `.wandb` file (W&B's LevelDB-style log).

    The file is a 7-byte header (`:W&B`, magic, version), then 32 KiB blocks of
    chunks: CRC32 (4 bytes), length (2), type (1: full, 2: first, 3: middle,
    4: last), data. A block's tail shorter than a chunk header is padding.
    """
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, header = 32 * 1024, 7
    position, pending = header, b""
    while position + header <= len(data):
        if block - position % block < header:
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + header])
        chunk = data[position + header : position + header + length]
        position += header + length
        if kind == 0:
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def by_type(path: Path) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        found.setdefault(kind, []).append(getattr(record, kind))
    return found


def run_file(root: Path, run_id: str) -> Path:
    (folder,) = [p for p in wandb_tracker.offline_runs(root) if p.name.endswith(run_id)]
    return folder / f"run-{run_id}.wandb"


def returns_while_stopped(worker: Any, call: Any) -> Any:
    """Run `call()` while the W&B worker is frozen (SIGSTOP).

    Whatever waits on the worker cannot return while it is frozen, so a call
    that comes back did not wait for it. No clock is involved.
    """
    import signal
    import threading

    outcome: list[Any] = []
    os.kill(worker.pid, signal.SIGSTOP)
    try:
        thread = threading.Thread(target=lambda: outcome.append(call()), daemon=True)
        thread.start()
        thread.join(timeout=30)
        assert outcome, "the call waited for the frozen W&B worker"
    finally:
        os.kill(worker.pid, signal.SIGCONT)
    return outcome[0]


def log_all(
    root: Path, *records: RunRecord, config: TrackerConfig | None = None
) -> tuple[list[dict[str, str]], list[str]]:
    tracker = open_tracker(
        config or TrackerConfig(kind="wandb"), root, "demo", remote=S3
    )
    tracker.start(INVOCATION)
    links = [tracker.log(record) for record in records]
    return links, finish_and_wait(tracker, root)


def finish_and_wait(tracker: Any, root: Path) -> list[str]:
    """`finish`, then wait for the worker: its warnings and the worker's own."""
    warnings = tracker.finish()
    assert wandb_tracker.wait_for_workers(root, timeout=120)
    return [*warnings, *wandb_tracker.earlier_warnings(root)]


def test_offline_runs_hold_fingerprint_params_group_and_job_type(
    tmp_path: Path,
) -> None:
    prepare = make_record("prepare", "20260101-120000-aaaaaa")
    train = make_record("train", "20260101-120003-bbbbbb")

    links, warnings = log_all(tmp_path, prepare, train)

    assert warnings == []
    # All of W&B's files are under $WANDB_DIR; the worker's marker is gone.
    left = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert left == [".aeromancy", ".aeromancy/wandb-workers"]
    assert [link["id"] for link in links] == [prepare.run_id, train.run_id]
    assert {link["kind"] for link in links} == {"wandb"}
    for record in (prepare, train):
        found = by_type(run_file(tmp_path, record.run_id))
        (run,) = found["run"]
        assert (run.run_id, run.run_group, run.job_type) == (
            record.run_id,
            INVOCATION,
            record.stage,
        )
        assert run.project == "demo"
        assert list(run.tags) == [COMMIT[:8], SUCCEEDED]
        config = {item.key: json.loads(item.value_json) for item in run.config.update}
        assert config["fingerprint_digest"] == record.fingerprint_digest
        assert config["fingerprint"] == record.fingerprint
        assert config["params"] == {"train": {"lr": 0.1, "epochs": 3}}
        (exit_record,) = found["exit"]
        assert exit_record.exit_code == 0


def test_artifacts_reference_the_remote_without_uploading(tmp_path: Path) -> None:
    record = make_record("train", "20260101-120003-cccccc")

    log_all(tmp_path, record)

    artifacts = {
        a.name: a for a in by_type(run_file(tmp_path, record.run_id))["artifact"]
    }
    output = artifacts["out-train.csv"]
    (entry,) = output.manifest.contents
    assert entry.path == "out/train.csv"
    assert entry.ref == f"s3://aero-test/store/files/md5/{OUT_MD5[:2]}/{OUT_MD5[2:]}"
    assert json.loads(output.metadata) == {"md5": OUT_MD5, "size": 12}
    (source,) = artifacts["train-inputs"].manifest.contents
    assert (source.path, source.ref) == (
        "data/raw.csv",
        f"s3://aero-test/store/files/md5/{IN_MD5[:2]}/{IN_MD5[2:]}",
    )
    assert not list(run_file(tmp_path, record.run_id).parent.rglob("*.csv"))


def test_failed_stage_is_tagged_and_exits_with_its_code(tmp_path: Path) -> None:
    record = make_record("train", "20260101-120003-dddddd", status=FAILED, exit_code=2)

    log_all(tmp_path, record)

    found = by_type(run_file(tmp_path, record.run_id))
    assert FAILED in found["run"][0].tags
    assert found["exit"][0].exit_code == 2
    summary = {
        i.key: json.loads(i.value_json) for s in found["summary"] for i in s.update
    }
    assert summary["status"] == FAILED
    assert summary["duration_s"] == 3.0


def test_stock_wandb_sync_dry_run_lists_the_runs_as_unsynced(tmp_path: Path) -> None:
    first = make_record("prepare", "20260101-120000-eeeeee")
    second = make_record("train", "20260101-120003-ffffff")
    log_all(tmp_path, first, second)
    folders = [str(path) for path in wandb_tracker.offline_runs(tmp_path)]

    done = subprocess.run(
        [sys.executable, "-m", "wandb", "sync", "--dry-run", *folders],
        capture_output=True,
        text=True,
        check=True,
    )

    listed = done.stdout + done.stderr
    assert "Would sync 2 run(s)" in listed
    for record in (first, second):
        assert f"run-{record.run_id}.wandb" in listed
    assert wandb_tracker.sync(tmp_path, dry_run=True) == folders


def test_default_folder_is_under_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WANDB_DIR")
    record = make_record("train", "20260101-120003-gggggg")

    (link,), _ = log_all(tmp_path, record)

    assert link["dir"] == str(tmp_path / ".aeromancy" / "wandb" / "wandb")
    assert run_file(tmp_path, record.run_id).is_file()


def test_log_and_finish_return_at_once_and_the_worker_writes_every_run(
    tmp_path: Path,
) -> None:
    tracker = open_tracker(TrackerConfig(kind="wandb"), tmp_path, "demo", remote=S3)
    records = [make_record(f"s{i}", f"20260101-12000{i}-hhhhh{i}") for i in range(3)]

    tracker.start(INVOCATION)
    worker = tracker._worker  # type: ignore[attr-defined]
    returns_while_stopped(worker, lambda: [tracker.log(record) for record in records])
    assert returns_while_stopped(worker, tracker.finish) == []
    assert wandb_tracker.wait_for_workers(tmp_path, timeout=120)

    assert wandb_tracker.earlier_warnings(tmp_path) == []
    for record in records:
        assert "exit" in by_type(run_file(tmp_path, record.run_id))


def test_online_without_a_key_stays_offline(tmp_path: Path) -> None:
    record = make_record("train", "20260101-120003-iiiiii")
    online = TrackerConfig(kind="wandb", mode="online", entity="someone")

    (link,), warnings = log_all(tmp_path, record, config=online)

    assert link["url"].endswith(f"/someone/demo/runs/{record.run_id}")
    assert len(warnings) == 1
    assert "no W&B API key" in warnings[0] and "aero runs sync" in warnings[0]
    assert run_file(tmp_path, record.run_id).is_file()


def test_online_but_unreachable_completes_in_seconds_and_stays_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "canary-wandb-key-" + "0" * 23)
    record = make_record("train", "20260101-120003-jjjjjj")
    online = TrackerConfig(kind="wandb", mode="online", entity="someone")

    began = time.perf_counter()
    (link,), warnings = log_all(tmp_path, record, config=online)
    took = time.perf_counter() - began

    assert took < 10  # W&B alone would wait ~90 s for a host that never answers
    assert link["id"] == record.run_id
    assert "unreachable" in warnings[0] and "aero runs sync" in warnings[0]
    assert run_file(tmp_path, record.run_id).is_file()
    assert wandb_tracker.sync(tmp_path, dry_run=True)


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
    records = [make_record(f"s{i}", f"20260101-12000{i}-kkkkk{i}") for i in range(2)]

    _, warnings = log_all(tmp_path, *records)

    assert warnings == []
    written = [p for p in Path(os.environ["WANDB_DIR"]).rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in written)
    for path in written:
        content = path.read_bytes()
        for name, value in canaries.items():
            assert value.encode() not in content, f"{name} leaked into {path}"


def test_open_tracker_is_lazy_and_start_spawns_no_wandb_in_this_process(
    tmp_path: Path,
) -> None:
    code = (
        "import sys; from pathlib import Path;"
        "from aeromancy.config import TrackerConfig;"
        "from aeromancy.tracking.base import open_tracker;"
        "t = open_tracker(TrackerConfig(kind='wandb'), Path(sys.argv[1]), 'demo');"
        "t.start('x'); t.finish(); print('wandb' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    )

    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (IN_MD5, f"s3://b/p/files/md5/01/{IN_MD5[2:]}"),
        ({"md5": f"{IN_MD5}.dir"}, f"s3://b/p/files/md5/01/{IN_MD5[2:]}.dir"),
        ({"url": "s3://elsewhere/x", "md5": IN_MD5}, "s3://elsewhere/x"),
        (f"md5:{IN_MD5}", f"s3://b/p/files/md5/01/{IN_MD5[2:]}"),
        (f"md5:{IN_MD5}.dir", f"s3://b/p/files/md5/01/{IN_MD5[2:]}.dir"),
        (
            {"hash": f"md5:{IN_MD5}", "pushed": True},
            f"s3://b/p/files/md5/01/{IN_MD5[2:]}",
        ),
        ({"hash": f"md5:{IN_MD5}", "pushed": False}, ""),
        ({"hash": "md5", "md5": None}, ""),
        ({"version_id": "v1"}, ""),
        ("not-a-hash", ""),
    ],
)
def test_reference_follows_dvc_layout(entry: Any, expected: str) -> None:
    assert reference(entry, "s3://b/p") == expected


def test_reference_needs_a_remote_and_a_local_remote_is_a_file_url(
    tmp_path: Path,
) -> None:
    assert reference(IN_MD5, "") == ""
    local = wandb_tracker._reference_base(RemoteConfig(url=str(tmp_path)), tmp_path)
    assert local == tmp_path.resolve().as_uri()


def test_names_and_data_entries() -> None:
    assert artifact_name("data/raw data.csv") == "data-raw-data.csv"
    assert artifact_name("///") == "data"
    tree = {"data": {"digest": "x", "paths": {"a.csv": IN_MD5}}}
    assert data_entries(tree) == {"a.csv": IN_MD5}
    assert data_entries({"data": {"a.csv": IN_MD5, "digest": "x"}}) == {"a.csv": IN_MD5}


def test_finish_without_runs_does_not_wait_for_wandb(tmp_path: Path) -> None:
    tracker = open_tracker(TrackerConfig(kind="wandb"), tmp_path, "demo", remote=S3)
    tracker.start(INVOCATION)

    warnings = returns_while_stopped(
        tracker._worker,  # type: ignore[attr-defined]
        tracker.finish,
    )

    assert warnings == []


def test_sync_without_a_key_or_network_refuses_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_all(tmp_path, make_record("train", "20260101-120003-llllll"))

    with pytest.raises(UserError, match="no W&B API key") as no_key:
        wandb_tracker.sync(tmp_path)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "canary-wandb-key-" + "1" * 23)
    began = time.perf_counter()
    with pytest.raises(UserError, match="unreachable") as unreachable:
        wandb_tracker.sync(tmp_path)

    assert time.perf_counter() - began < 3
    for caught in (no_key, unreachable):
        assert "1 offline run stays in" in caught.value.message
        assert "aero runs sync" in caught.value.message


def test_large_records_never_block_log_on_the_pipe(tmp_path: Path) -> None:
    tracker = open_tracker(TrackerConfig(kind="wandb"), tmp_path, "demo", remote=S3)
    big = {"vocabulary": [f"token{i:06d}" for i in range(20_000)]}  # ~300 KB
    records = [
        make_record(f"s{i}", f"20260101-12000{i}-mmmmm{i}", params=big)
        for i in range(3)
    ]

    tracker.start(INVOCATION)
    # Far more than a pipe holds: queued, never written while the worker is busy.
    returns_while_stopped(
        tracker._worker,  # type: ignore[attr-defined]
        lambda: [tracker.log(record) for record in records],
    )
    warnings = finish_and_wait(tracker, tmp_path)

    assert warnings == []
    for record in records:
        assert "exit" in by_type(run_file(tmp_path, record.run_id))


def test_git_tracked_code_is_no_input_artifact(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "train.py").write_text("print('hi')\n")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "add", "src/train.py"], cwd=project, check=True)
    data = {"src/train.py": f"md5:{OUT_MD5}", "data/raw.csv": f"md5:{IN_MD5}"}
    record = make_record("train", "20260101-120003-nnnnnn")
    record.fingerprint["data"] = data

    log_all(project, record)

    found = by_type(run_file(project, record.run_id))
    inputs = {a.name: a for a in found["artifact"]}["train-inputs"]
    assert [entry.path for entry in inputs.manifest.contents] == ["data/raw.csv"]


def test_git_tracked_lists_files_and_their_folders(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c.py").write_text("")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)

    assert git_tracked(str(tmp_path)) == {"a", "a/b", "a/b/c.py"}
    assert git_tracked(str(tmp_path / "nowhere")) == set()


def test_a_worker_past_its_deadline_stops_and_the_next_run_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wandb_tracker, "FINISH_TIMEOUT", 0.05)
    stuck = open_tracker(TrackerConfig(kind="wandb"), tmp_path, "demo", remote=S3)
    stuck.start(INVOCATION)
    stuck.log(make_record("train", "20260101-120003-oooooo"))
    assert stuck.finish() == []
    assert wandb_tracker.wait_for_workers(tmp_path, timeout=120)
    monkeypatch.setattr(wandb_tracker, "FINISH_TIMEOUT", 60.0)

    later = open_tracker(TrackerConfig(kind="wandb"), tmp_path, "demo", remote=S3)
    later.start("20260101-130000-abcdef")
    later.log(make_record("train", "20260101-130003-pppppp"))
    (warning,) = later.finish()
    assert wandb_tracker.wait_for_workers(tmp_path, timeout=120)

    assert warning.startswith(f"W&B, runs of {INVOCATION}: W&B did not finish")
    assert "within 0.05 s and was stopped" in warning
    assert wandb_tracker.earlier_warnings(tmp_path) == []  # said once
    assert "exit" in by_type(run_file(tmp_path, "20260101-130003-pppppp"))


def test_earlier_warnings_reads_results_and_leaves_running_workers(
    tmp_path: Path,
) -> None:
    import fcntl

    markers = wandb_tracker.workers_dir(tmp_path)
    markers.mkdir(parents=True)
    (markers / "a.lock").touch()
    (markers / "a.json").write_text(
        json.dumps({"invocation": "inv-a", "warnings": ["W&B could not log run x"]})
    )
    (markers / "b.lock").touch()  # no result and nobody holds it: it died
    (markers / "c.lock").touch()
    with (markers / "c.lock").open() as held:
        fcntl.flock(held, fcntl.LOCK_EX)

        assert not wandb_tracker.wait_for_workers(tmp_path, timeout=0)
        first, second = wandb_tracker.earlier_warnings(tmp_path)

        assert first == "W&B, runs of inv-a: W&B could not log run x"
        assert "a W&B worker ended without saying how its runs went" in second
        assert sorted(p.name for p in markers.iterdir()) == ["c.lock"]
    assert wandb_tracker.wait_for_workers(tmp_path, timeout=0)


def test_a_prepared_worker_ends_quietly_when_no_stage_runs(tmp_path: Path) -> None:
    tracker = wandb_tracker.WandbTracker(
        TrackerConfig(kind="wandb"), tmp_path, "demo", S3
    )
    tracker.prepare()
    worker = tracker._worker
    assert worker is not None

    assert returns_while_stopped(worker, tracker.finish) == []

    assert worker.wait(timeout=120) == 0
    assert wandb_tracker.offline_runs(tmp_path) == []
    assert list(wandb_tracker.workers_dir(tmp_path).iterdir()) == []
    log = (wandb_tracker.wandb_dir(tmp_path) / "aeromancy-worker.log").read_text()
    assert "failed" not in log


def test_a_prepared_worker_logs_once_started(tmp_path: Path) -> None:
    tracker = wandb_tracker.WandbTracker(
        TrackerConfig(kind="wandb"), tmp_path, "demo", S3
    )
    tracker.prepare()
    record = make_record("train", "20260101-120003-cccccc")

    tracker.start(INVOCATION)
    tracker.log(record)

    assert finish_and_wait(tracker, tmp_path) == []
    (run,) = by_type(run_file(tmp_path, record.run_id))["run"]
    assert (run.run_group, run.job_type) == (INVOCATION, "train")


def test_online_mode_is_not_prepared(tmp_path: Path) -> None:
    tracker = wandb_tracker.WandbTracker(
        TrackerConfig(kind="wandb", mode="online"), tmp_path, "demo", S3
    )
    tracker.prepare()
    assert tracker._worker is None
    assert tracker.finish() == []
