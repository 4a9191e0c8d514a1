"""Run records: canonical JSON, the local index, and the remote copy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aeromancy import runs
from aeromancy.data import Remote
from aeromancy.errors import UserError
from tests.conftest import S3


def record(
    run_id: str, stage: str = "train", started: str = "2026-12-03T10:00:00+00:00"
):  # type: ignore[no-untyped-def]
    return runs.RunRecord(
        run_id=run_id,
        invocation="inv-1",
        project="demo",
        stage=stage,
        command="python3 src/train.py",
        status=runs.SUCCEEDED,
        started=started,
        ended=started,
        fingerprint={"code": {"commit": "abc123"}, "stage": {"name": stage}},
        fingerprint_digest="f" * 64,
        exit_code=0,
        outputs={"build/model.json": {"md5": "0" * 32, "size": 12}},
    )


def test_json_round_trip_is_canonical() -> None:
    original = record("20261203-100000-aaaaaa")
    text = original.to_json()
    assert json.loads(text)["run_id"] == original.run_id
    assert runs.RunRecord.from_json(text) == original
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert original.commit == "abc123"


def test_damaged_record_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"r\.json is not a valid run record"):
        runs.RunRecord.from_json("{not json", "r.json")


def test_ids_sort_by_time_and_are_unique() -> None:
    ids = {runs.new_run_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i.split("-")) == 3 for i in ids)


def test_local_remote_holds_the_record(tmp_path: Path) -> None:
    remote = Remote(url=str(tmp_path / "store"))
    where = runs.save(tmp_path / "proj", record("20261203-100000-aaaaaa"), remote)

    assert where == str(tmp_path / "store/aeromancy/runs/20261203-100000-aaaaaa.json")
    assert Path(where).is_file()
    assert (tmp_path / "proj/.aeromancy/runs/20261203-100000-aaaaaa.json").is_file()


def test_fresh_clone_finds_runs_in_the_remote(tmp_path: Path, s3: S3) -> None:
    remote = Remote(url=f"s3://{s3.bucket}/proj", endpoint=s3.endpoint)
    runs.save(tmp_path / "first", record("20261203-100000-aaaaaa"), remote)
    runs.save(
        tmp_path / "first",
        record("20261203-110000-bbbbbb", started="2026-12-03T11:00:00+00:00"),
        remote,
    )
    keys = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert "proj/aeromancy/runs/20261203-100000-aaaaaa.json" in keys

    clone = tmp_path / "clone"
    listed = runs.list_runs(clone, remote)
    assert [r.run_id for r in listed] == [
        "20261203-110000-bbbbbb",
        "20261203-100000-aaaaaa",
    ]
    assert runs.load(clone, None, "20261203-11").run_id == "20261203-110000-bbbbbb"


def test_unknown_and_ambiguous_ids(tmp_path: Path) -> None:
    runs.save(tmp_path, record("20261203-100000-aaaaaa"), None)
    runs.save(tmp_path, record("20261203-100000-aaaaab"), None)

    with pytest.raises(runs.UnknownRunError, match="no run 'nope'"):
        runs.load(tmp_path, None, "nope")
    with pytest.raises(runs.UnknownRunError, match="is ambiguous"):
        runs.load(tmp_path, None, "20261203-100000-aaaa")
