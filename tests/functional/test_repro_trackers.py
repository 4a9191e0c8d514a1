"""Tracked runs against each tracker, read back by the tracker's own clients,
and the secret canary across every backend."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aeromancy.tracking import wandb as wandb_tracker
from tests.conftest import S3, git, records, run_aero
from tests.unit.test_tracking_wandb import by_type

CANARIES = {
    "AWS_SECRET_ACCESS_KEY": "canary-aws-secret-4f1d",
    "WANDB_API_KEY": "canary-wandb-key-" + "7" * 23,
    "MY_SERVICE_TOKEN": "canary-token-9c2e",
}
GIT_PASSWORD = "canary-git-password-51"
ARGV_SECRET = "canary-argv-secret-31337"


def scaffold(root: Path, tracker: str, *extra: str) -> Path:
    made = run_aero(
        "init", str(root), "--runtime", "host", "--tracker", tracker, *extra
    )
    assert made.exit_code == 0, made.stderr
    return root


def test_wandb_offline_runs_hold_the_fingerprint(tmp_path: Path) -> None:
    root = scaffold(tmp_path / "demo", "wandb")
    result = run_aero("repro", cwd=root)
    assert result.exit_code == 0, result.stderr
    # `aero repro` does not wait for W&B to write the runs; its worker's marker says.
    assert wandb_tracker.wait_for_workers(root, timeout=120)

    found_records = records(root)
    offline = wandb_tracker.offline_runs(root)
    assert len(offline) == 3
    for folder in offline:
        (log,) = folder.glob("run-*.wandb")
        run_id = log.stem.removeprefix("run-")
        stage = next(r for r in found_records.values() if r["run_id"] == run_id)
        found = by_type(log)
        (run,) = found["run"]
        assert (run.job_type, run.run_group) == (stage["stage"], stage["invocation"])
        config = {i.key: json.loads(i.value_json) for i in run.config.update}
        assert config["fingerprint_digest"] == stage["fingerprint_digest"]
        assert stage["tracker"]["kind"] == "wandb"

    dry = subprocess.run(
        ["wandb", "sync", "--dry-run", str(offline[0])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert offline[0].name in dry.stdout + dry.stderr
    listed = run_aero("runs", "sync", "--dry-run", cwd=root)
    assert listed.exit_code == 0, listed.stderr
    assert "would upload 3 offline run(s) to wandb" in listed.stderr


def test_mlflow_runs_are_read_back_by_the_mlflow_api(tmp_path: Path) -> None:
    import mlflow

    root = scaffold(tmp_path / "demo", "mlflow")
    result = run_aero("repro", cwd=root)
    assert result.exit_code == 0, result.stderr

    train = records(root)["train"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root}/.aeromancy/mlflow.db")
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`aeromancy.run_id` = '{train['run_id']}'",
    )
    assert len(found) == 1, [r.data.tags for r in client.search_runs(["0", "1"])]
    tags = found[0].data.tags
    assert tags["aeromancy.fingerprint_digest"] == train["fingerprint_digest"]
    assert train["node_digests"]["params"] == tags.get(
        "aeromancy.fingerprint.params", train["node_digests"]["params"]
    )
    assert found[0].data.params


@pytest.mark.secrets  # counted by the fault suite's summary line
@pytest.mark.parametrize("tracker", ["wandb", "mlflow", "none"])
def test_secret_canary_reaches_no_written_file(
    tmp_path: Path, s3: S3, monkeypatch: pytest.MonkeyPatch, tracker: str
) -> None:
    root = scaffold(
        tmp_path / "demo",
        tracker,
        "--remote",
        f"s3://{s3.bucket}/proj",
        "--endpoint",
        s3.endpoint,
    )
    dvc_yaml = (
        (root / "dvc.yaml")
        .read_text()
        .replace(
            "python3 src/prepare.py",
            f"python3 src/prepare.py --api-token {ARGV_SECRET}",
        )
    )
    (root / "dvc.yaml").write_text(dvc_yaml)
    git(root, "commit", "--quiet", "-am", "a secret in argv")
    git(
        root,
        "remote",
        "add",
        "origin",
        f"https://me:{GIT_PASSWORD}@example.invalid/x.git",
    )
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)

    result = run_aero("repro", cwd=root)
    assert result.exit_code == 0, result.stderr
    assert wandb_tracker.wait_for_workers(root, timeout=120)  # W&B done writing

    secrets = [*CANARIES.values(), GIT_PASSWORD, ARGV_SECRET]
    # The DVC cache is left out: it holds the user's own files and DVC's run
    # cache of dvc.yaml, where the user wrote the argv secret themselves.
    cache = Path.home() / "cache" / "aeromancy" / "dvc-cache"
    leaks = [
        str(path)
        for folder in (root / ".aeromancy", Path.home())
        for path in folder.rglob("*")
        if path.is_file()
        and not path.is_relative_to(cache)
        and any(s.encode() in path.read_bytes() for s in secrets)
    ]
    objects = s3.client().list_objects_v2(Bucket=s3.bucket).get("Contents", [])
    for item in objects:
        body = s3.client().get_object(Bucket=s3.bucket, Key=item["Key"])["Body"].read()
        if any(s.encode() in body for s in secrets):
            leaks.append(item["Key"])
    assert leaks == []
    assert len(records(root)) == 3


def set_tracker(root: Path, table: str) -> None:
    """Replace `[tool.aeromancy.tracker]` with `table` and commit it."""
    text = (root / "pyproject.toml").read_text()
    start = text.index("[tool.aeromancy.tracker]")
    end = text.index("[tool.aeromancy.remote]")
    (root / "pyproject.toml").write_text(text[:start] + table + "\n" + text[end:])
    git(root, "commit", "--quiet", "-am", "tracker settings")


def test_unknown_tracker_is_refused_naming_the_key(tmp_path: Path) -> None:
    root = scaffold(tmp_path / "demo", "none")
    set_tracker(root, '[tool.aeromancy.tracker]\nkind = "neptune"\n')
    result = run_aero("repro", cwd=root)
    assert result.exit_code == 1
    assert result.lines == [
        "error: pyproject.toml: tool.aeromancy.tracker.kind must be one of wandb, "
        'mlflow, none (got "neptune")'
    ]


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("htp://x", "has a scheme MLflow does not know ('htp')"),
        ("http://127.0.0.1:9", "the MLflow server is unreachable"),
    ],
)
def test_bad_tracking_uri_is_refused_before_any_stage_runs(
    tmp_path: Path, uri: str, says: str
) -> None:
    root = scaffold(tmp_path / "demo", "mlflow")
    set_tracker(
        root, f'[tool.aeromancy.tracker]\nkind = "mlflow"\ntracking_uri = "{uri}"\n'
    )
    result = run_aero("repro", cwd=root)

    assert result.exit_code == 1
    assert len(result.lines) == 1
    assert "tool.aeromancy.tracker.tracking_uri" in result.lines[0]
    assert says in result.lines[0]
    assert not (root / "build").exists()
    assert git(root, "status", "--porcelain") == ""


def test_wandb_online_but_unreachable_keeps_runs_for_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = scaffold(tmp_path / "demo", "wandb")
    set_tracker(
        root,
        '[tool.aeromancy.tracker]\nkind = "wandb"\nmode = "online"\nentity = "me"\n',
    )
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "canary-wandb-key-" + "0" * 23)

    result = run_aero("repro", cwd=root)
    assert result.exit_code == 0, result.stderr
    assert "unreachable" in result.stderr and "aero runs sync" in result.stderr
    assert wandb_tracker.wait_for_workers(root, timeout=120)
    assert len(wandb_tracker.offline_runs(root)) == 3
    assert all(r["tracker"]["kind"] == "wandb" for r in records(root).values())
