"""`aero data`: ingest, push, pull, status, versions and remote on real repos.

Round trips use real clients on the other side: a fresh `git clone` plus the
stock `dvc pull` CLI, and boto3 listing the bucket of moto's S3 server.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from aeromancy import config
from tests.conftest import S3, git
from tests.conftest import s3_project as init_s3_project

pytestmark = pytest.mark.s3


def make_source(folder: Path, files: int = 3, size: int = 1000) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(files):
        (folder / f"part-{index:04d}.bin").write_bytes(
            hashlib.sha256(f"{folder.name}-{index}".encode()).digest() * (size // 32)
        )
    return folder


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def stock_dvc_pull(project: Path, tmp_path: Path, *targets: str) -> Path:
    """A fresh clone of `project`, filled by the stock `dvc pull` CLI."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(project), str(clone)], check=True)
    done = subprocess.run(
        [sys.executable, "-m", "dvc", "pull", *targets],
        cwd=clone,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return clone


@pytest.fixture
def s3_project(tmp_path: Path, s3: S3) -> Path:
    return init_s3_project(tmp_path / "demo", s3, prefix="projects/demo")


def point_remote(root: Path, url: str, endpoint: str | None) -> None:
    """Change the project's remote behind aero's back, and commit it."""
    config.set_table_values(
        root / "pyproject.toml",
        "tool.aeromancy.remote",
        {"url": url, "endpoint": endpoint},
    )
    from aeromancy import data

    data.configure_dvc_remote(root, data.Remote(url=url, endpoint=endpoint))
    git(root, "commit", "-qam", "Point the remote elsewhere")


def assert_untouched(root: Path, name: str) -> None:
    """Nothing half-written: no dataset folder, no .dvc file, no commit, clean tree."""
    assert not (root / "data" / name).exists()
    assert not (root / "data" / f"{name}.dvc").exists()
    assert git(root, "status", "--porcelain") == ""
    assert "Ingest" not in git(root, "log", "-1", "--format=%s")


# Round trips -----------------------------------------------------------------


def test_ingest_local_store_round_trips_through_stock_dvc(  # type: ignore[no-untyped-def]
    aero, project: Path, tmp_path: Path
) -> None:
    source = make_source(tmp_path / "census")
    result = aero("data", "ingest", str(source), cwd=project)

    assert result.exit_code == 0, result.stderr
    assert "pushed 3 files" in result.stderr
    assert "ingested dataset census: data/census" in result.stderr
    message = git(project, "log", "-1", "--format=%s")
    digest = result.stdout.strip()
    assert message.startswith("Ingest dataset census: md5 ")
    assert digest.removesuffix(".dir")[:12] in message
    changed = git(project, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(changed) == ["data/.gitignore", "data/census.dvc"]
    assert git(project, "status", "--porcelain") == ""
    for path in (project / "data" / "census").iterdir():
        assert path.stat().st_mode & 0o222 == 0, f"{path} is writable"

    clone = stock_dvc_pull(project, tmp_path, "data/census.dvc")
    assert tree_bytes(clone / "data" / "census") == tree_bytes(source)


def test_ingest_s3_round_trips_and_objects_are_content_addressed(  # type: ignore[no-untyped-def]
    aero, s3_project: Path, s3: S3, tmp_path: Path
) -> None:
    source = tmp_path / "weights.bin"
    source.write_bytes(os.urandom(300_000))
    result = aero("data", "ingest", str(source), cwd=s3_project)

    assert result.exit_code == 0, result.stderr
    assert f"to s3://{s3.bucket}/projects/demo" in result.stderr
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="projects/demo/")
    keys = {entry["Key"] for entry in listing["Contents"]}
    md5 = hashlib.md5(source.read_bytes()).hexdigest()
    assert f"projects/demo/files/md5/{md5[:2]}/{md5[2:]}" in keys
    for key in keys:
        assert key.startswith("projects/demo/files/md5/"), key
        body = s3.client().get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        if not key.endswith(".dir"):
            name = key.split("/md5/")[1].replace("/", "")
            assert hashlib.md5(body).hexdigest() == name

    clone = stock_dvc_pull(s3_project, tmp_path, "data/weights.dvc")
    assert (clone / "data/weights/weights.bin").read_bytes() == source.read_bytes()


def test_fresh_clone_gets_everything_back_with_aero_pull(  # type: ignore[no-untyped-def]
    aero, s3_project: Path, tmp_path: Path
) -> None:
    source = make_source(tmp_path / "table", files=2)
    assert aero("data", "ingest", str(source), cwd=s3_project).exit_code == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(s3_project), str(clone))

    pulled = aero("data", "pull", cwd=clone)
    again = aero("data", "pull", cwd=clone)

    assert pulled.exit_code == 0, pulled.stderr
    assert pulled.lines[-1].startswith("pulled 3 files")
    assert tree_bytes(clone / "data/table") == tree_bytes(source)
    assert again.lines[-1] == "nothing to pull: everything is already in the cache"


def test_same_content_again_is_a_no_op(aero, project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = make_source(tmp_path / "census")
    assert aero("data", "ingest", str(source), cwd=project).exit_code == 0
    head = git(project, "rev-parse", "HEAD")

    again = aero("data", "ingest", str(source), "--name", "census", cwd=project)

    assert again.exit_code == 0, again.stderr
    assert "already holds this content" in again.stderr
    assert "nothing to do" in again.stderr
    assert git(project, "rev-parse", "HEAD") == head


def test_new_version_is_explicit_and_old_one_stays_retrievable(  # type: ignore[no-untyped-def]
    aero, project: Path, tmp_path: Path
) -> None:
    source = make_source(tmp_path / "census")
    first = aero("data", "ingest", str(source), cwd=project)
    old_bytes = tree_bytes(project / "data/census")
    (source / "extra.csv").write_text("a,b\n1,2\n")

    refused = aero("data", "ingest", str(source), cwd=project)
    second = aero("data", "ingest", str(source), "--new-version", cwd=project)
    versions = aero("data", "versions", "census", "--json", cwd=project)

    assert refused.exit_code == 1
    assert refused.lines == [
        f"error: dataset 'census' already holds other content (md5 "
        f"{first.stdout.strip()[:12]}); {source} hashes to md5 "
        f"{second.stdout.strip()[:12]}: pass --new-version to record it as a new "
        "version, or pick another --name"
    ]
    assert second.exit_code == 0, second.stderr
    assert "new version of dataset census" in second.stderr
    listed = json.loads(versions.stdout)
    assert [v["hash"] for v in listed] == [
        second.stdout.strip(),
        first.stdout.strip(),
    ]
    assert listed[0]["files"] == 4 and listed[1]["files"] == 3
    assert all(len(v["commit"]) == 40 and v["date"] for v in listed)

    git(project, "checkout", "-q", listed[1]["commit"], "--", "data/census.dvc")
    assert aero("data", "pull", cwd=project).exit_code == 0
    assert tree_bytes(project / "data/census") == old_bytes


def test_versions_prints_a_line_per_version(
    aero, project: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    source = make_source(tmp_path / "census")
    digest = aero("data", "ingest", str(source), cwd=project).stdout.strip()

    listed = aero("data", "versions", "census", cwd=project)

    assert listed.exit_code == 0
    (line,) = listed.stdout.splitlines()
    assert line.startswith(f"{digest[:12]}  ")
    assert "3 files" in line
    assert git(project, "rev-parse", "HEAD")[:12] in line


def test_status_push_and_pull_report_what_moved(  # type: ignore[no-untyped-def]
    aero, s3_project: Path, s3: S3, tmp_path: Path
) -> None:
    source = make_source(tmp_path / "t")
    assert aero("data", "ingest", str(source), cwd=s3_project).exit_code == 0
    s3_objects = s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]
    s3.client().delete_objects(
        Bucket=s3.bucket,
        Delete={"Objects": [{"Key": o["Key"]} for o in s3_objects]},
    )

    behind = aero("data", "status", "--json", cwd=s3_project)
    pushed = aero("data", "push", cwd=s3_project)
    after = aero("data", "status", cwd=s3_project)
    nothing = aero("data", "push", cwd=s3_project)

    assert behind.exit_code == 0, behind.stderr
    states = {entry["path"]: entry["remote"] for entry in json.loads(behind.stdout)}
    assert states == {"data/measurements": "missing", "data/t": "missing"}
    assert pushed.exit_code == 0, pushed.stderr
    assert pushed.lines[-1].startswith("pushed 4 files, ")
    assert pushed.lines[-1].endswith(f"to s3://{s3.bucket}/projects/demo")
    assert after.stdout.splitlines() == ["data/measurements: ok", "data/t: ok"]
    assert nothing.lines[-1] == (
        f"nothing to push: everything is already in s3://{s3.bucket}/projects/demo"
    )


def test_shared_cache_stores_a_dataset_once_for_two_projects(  # type: ignore[no-untyped-def]
    aero, tmp_path: Path, pinned_env: Path
) -> None:
    source = make_source(tmp_path / "shared", files=2)
    for name in ("one", "two"):
        root = tmp_path / name
        made = aero("init", str(root), "--runtime", "host", "--tracker", "none")
        assert made.exit_code == 0, made.stderr
        assert aero("data", "ingest", str(source), cwd=root).exit_code == 0
        local = (root / ".dvc/config.local").read_text()
        assert str(pinned_env / "cache" / "aeromancy" / "dvc-cache") in local
        assert ".dvc/config.local" not in git(root, "ls-files")

    cache = pinned_env / "cache" / "aeromancy" / "dvc-cache"
    objects = [p for p in cache.rglob("*") if p.is_file()]
    contents = [p.read_bytes() for p in objects]
    assert len(contents) == len(set(contents)), "an object is stored twice"
    linked = tmp_path / "one" / "data" / "shared" / "part-0000.bin"
    assert linked.stat().st_nlink >= 2 or linked.is_symlink()


def test_pull_of_a_run_is_not_available_yet(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("data", "pull", "--run", "abc123", cwd=project)

    assert result.exit_code == 1
    assert result.lines == [
        "error: `aero data pull --run` arrives with run records; check out the "
        "run's commit and use `aero data pull`"
    ]


def test_remote_can_be_changed_later(aero, project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = (project / "pyproject.toml").read_text()
    new = tmp_path / "elsewhere"

    result = aero("data", "remote", str(new), cwd=project)
    pushed = aero("data", "push", cwd=project)

    assert result.exit_code == 0, result.stderr
    assert f"remote is now {new}" in result.stderr
    after = (project / "pyproject.toml").read_text()
    assert config.load(project).remote.url == str(new)
    assert "# The DVC remote for datasets" in after  # comments survive
    assert before != after
    assert str(new) in (project / ".dvc/config").read_text()
    assert pushed.lines[-1].startswith("pushed 1 file, ")
    assert any(new.rglob("*.dir"))


# Bad input: one line, exit 1, nothing half-written ---------------------------


def test_missing_source_is_refused(aero, project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "nowhere.csv"
    result = aero("data", "ingest", str(missing), cwd=project)

    assert result.exit_code == 1
    assert result.lines == [
        f"error: source {missing} does not exist; give a file, a folder or "
        "s3://bucket/key"
    ]
    assert_untouched(project, "nowhere")


def test_missing_s3_source_is_refused(aero, s3_project: Path, s3: S3) -> None:  # type: ignore[no-untyped-def]
    source = f"s3://{s3.bucket}/incoming/none.csv"
    result = aero("data", "ingest", source, cwd=s3_project)

    assert result.exit_code == 1
    assert result.lines == [
        f"error: source {source} does not exist: no object or prefix at "
        f"{s3.endpoint}; check the bucket and key"
    ]
    assert_untouched(s3_project, "none")


def test_path_tricks_in_names_are_refused(  # type: ignore[no-untyped-def]
    aero, project: Path, tmp_path: Path
) -> None:
    source = make_source(tmp_path / "census")
    for name in ("../escape", "a/b", "..", ".hidden", "x.dvc", "a b", "/abs"):
        result = aero("data", "ingest", str(source), "--name", name, cwd=project)

        assert result.exit_code == 1
        assert result.lines == [
            f"error: invalid dataset name '{name}': use letters, digits, '.', '_' "
            "and '-' (starting with a letter or digit, no '/' or '..'), e.g. "
            "--name census-2020"
        ]
    assert git(project, "status", "--porcelain") == ""
    assert not (tmp_path / "escape").exists()
    assert sorted(p.name for p in (project / "data").iterdir()) == [
        ".gitignore",
        "README.md",
        "measurements",
        "measurements.dvc",
    ]


def test_unreachable_remote_is_refused(aero, s3_project: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    point_remote(s3_project, "s3://aero-test/projects/demo", "http://127.0.0.1:9")
    source = make_source(tmp_path / "census")

    result = aero("data", "ingest", str(source), cwd=s3_project)

    assert result.exit_code == 1
    assert result.lines == [
        "error: remote s3://aero-test/projects/demo is unreachable: cannot connect "
        "to http://127.0.0.1:9; check --endpoint and that the server is running"
    ]
    assert_untouched(s3_project, "census")


def test_missing_bucket_is_refused(  # type: ignore[no-untyped-def]
    aero, s3_project: Path, s3: S3, tmp_path: Path
) -> None:
    point_remote(s3_project, "s3://no-such-bucket/demo", s3.endpoint)
    result = aero("data", "ingest", str(make_source(tmp_path / "c")), cwd=s3_project)

    assert result.exit_code == 1
    assert result.lines == [
        f"error: bucket 'no-such-bucket' does not exist at {s3.endpoint}; "
        "create it first"
    ]
    assert_untouched(s3_project, "c")


@pytest.fixture
def iam_enforced(s3: S3) -> Iterator[None]:
    """moto checks every request's credentials from now on (its IAM auth mode).

    The test credentials belong to no IAM user, so S3 answers InvalidAccessKeyId,
    as a real endpoint does for a wrong key.
    """

    def reset_auth(count: str) -> None:
        request = urllib.request.Request(
            f"{s3.endpoint}/moto-api/reset-auth",
            data=count.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        urllib.request.urlopen(request).close()

    reset_auth("0")
    try:
        yield
    finally:
        reset_auth("inf")


def test_wrong_credentials_are_refused(  # type: ignore[no-untyped-def]
    aero, s3_project: Path, s3: S3, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    source = make_source(tmp_path / "census")
    request.getfixturevalue("iam_enforced")

    result = aero("data", "ingest", str(source), cwd=s3_project)

    assert result.exit_code == 1
    assert result.lines == [
        f"error: access denied to bucket '{s3.bucket}' at {s3.endpoint}; "
        "check the AWS credentials or --profile"
    ]
    assert_untouched(s3_project, "census")


def test_name_used_by_a_folder_that_is_not_a_dataset(  # type: ignore[no-untyped-def]
    aero, project: Path, tmp_path: Path
) -> None:
    (project / "data" / "mine").mkdir()
    (project / "data" / "mine" / "keep.txt").write_text("mine\n")
    source = make_source(tmp_path / "x")
    result = aero("data", "ingest", str(source), "--name", "mine", cwd=project)

    assert result.exit_code == 1
    assert result.lines == [
        "error: data/mine exists and is not a dataset; move it away or pick "
        "another --name"
    ]
    assert (project / "data" / "mine" / "keep.txt").read_text() == "mine\n"


def test_interrupted_push_completes_next_time(  # type: ignore[no-untyped-def]
    aero, s3_project: Path, s3: S3, tmp_path: Path
) -> None:
    source = make_source(tmp_path / "many", files=100, size=64)
    assert aero("data", "ingest", str(source), cwd=s3_project).exit_code == 0
    moved = aero(
        "data",
        "remote",
        f"s3://{s3.bucket}/other",
        "--endpoint",
        s3.endpoint,
        cwd=s3_project,
    )
    assert moved.exit_code == 0, moved.stderr

    def count() -> int:
        listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="other/")
        return int(listing.get("KeyCount", 0))

    push = subprocess.Popen(
        [sys.executable, "-m", "aeromancy", "data", "push", "--jobs", "1"],
        cwd=s3_project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while count() < 3 and push.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    push.send_signal(signal.SIGKILL)
    push.wait()
    half = count()
    assert 0 < half < 100, "the push was not caught half-way"

    # Nothing claims to be pushed that is not there: no listing of `many`.
    keys = [
        o["Key"]
        for o in s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="other/")[
            "Contents"
        ]
    ]
    digest = (s3_project / "data/many.dvc").read_text().split("md5: ")[1][:32]
    assert not any(digest in key for key in keys)
    status = json.loads(aero("data", "status", "--json", cwd=s3_project).stdout)
    assert {e["path"]: e["remote"] for e in status}["data/many"] == "missing"

    again = aero("data", "push", cwd=s3_project)

    assert again.exit_code == 0, again.stderr
    pushed = int(again.lines[-1].split()[1])
    assert again.lines[-1].startswith("pushed ")
    assert 0 < pushed <= 101 - half + 2
    status = json.loads(aero("data", "status", "--json", cwd=s3_project).stdout)
    assert all(e["remote"] == "ok" for e in status)
    git(s3_project, "commit", "-qam", "Use the other prefix")
    clone = stock_dvc_pull(s3_project, tmp_path, "data/many.dvc")
    assert tree_bytes(clone / "data/many") == tree_bytes(source)
