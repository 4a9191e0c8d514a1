"""Faults the project must survive: an S3 endpoint stopped mid-transfer, an
unreachable tracker, a failing stage, SIGINT and SIGKILL mid-stage, corrupted
objects in the cache and in the remote, a full disk.

Survived means: the command fails cleanly (non-zero, one `error:` line, no
traceback) or completes on retry; the repository is usable afterwards; no run
record claims outputs the store does not hold; a corrupted object is caught by
its hash and never used. Nothing is mocked: the S3 endpoint is a moto server
stopped and started on its port, the disk is a real tmpfs.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aeromancy import config
from tests.conftest import S3, Result, git, records, run_aero, s3_project
from tests.faults.conftest import RestartableS3

pytestmark = pytest.mark.fault

BUCKET = "aero-faults"


@pytest.fixture(autouse=True)
def short_stall(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped endpoint is given up after 3 s of silence instead of 60."""
    monkeypatch.setenv("AERO_STALL_SECONDS", "3")


def make_source(folder: Path, files: int, size: int) -> Path:
    folder.mkdir(parents=True)
    for index in range(files):
        seed = hashlib.sha256(f"{folder.name}-{index}".encode()).digest()
        (folder / f"part-{index:04d}.bin").write_bytes(seed * (size // 32))
    return folder


def tree_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def failed_cleanly(result: Result | subprocess.CompletedProcess[str]) -> str:
    """The one `error:` line of a command that failed without a traceback."""
    code = getattr(result, "exit_code", getattr(result, "returncode", None))
    stderr = str(result.stderr)
    assert code not in (0, None), stderr
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def wait_for(predicate: Any, process: subprocess.Popen[Any] | None = None) -> None:
    """Poll until `predicate()` holds (or the process ended); no clock asserted."""
    deadline = time.monotonic() + 120
    while not predicate() and time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return
        time.sleep(0.02)


def usable(root: Path) -> None:
    """The repository still works: DVC answers, dev mode runs, git is clean."""
    status = run_aero("data", "status", cwd=root)
    assert status.exit_code == 0, status.stderr
    dev = run_aero("repro", "--dev", cwd=root)
    assert dev.exit_code == 0, dev.stderr


def claims_backed(root: Path, has: Any) -> None:
    """Every output a run record calls pushed is in the store (`has(md5)`)."""
    for record in records(root).values():
        for path, entry in record["outputs"].items():
            if entry["pushed"]:
                digest = entry["hash"].removeprefix("md5:")
                assert has(digest), f"{record['run_id']} claims {path}"


def in_local_store(root: Path) -> Any:
    store = Path(config.load(root).remote.url)
    return lambda digest: (store / "files" / "md5" / digest[:2] / digest[2:]).is_file()


def s3_init(root: Path, server: RestartableS3) -> Path:
    """`aero init` a host project on the restartable server's bucket."""
    return s3_project(root, S3(endpoint=server.endpoint, bucket=BUCKET))


def statuses(root: Path) -> dict[str, str]:
    shown = run_aero("data", "status", "--json", cwd=root)
    assert shown.exit_code == 0, shown.stderr
    return {e["path"]: e["remote"] for e in json.loads(shown.stdout)}


# The S3 endpoint stops mid-transfer ------------------------------------------


def test_s3_stopped_mid_push_then_the_retry_completes(
    restartable_s3: RestartableS3, tmp_path: Path
) -> None:
    root = s3_init(tmp_path / "demo", restartable_s3)
    source = make_source(tmp_path / "many", files=80, size=2048)
    assert run_aero("data", "ingest", str(source), cwd=root).exit_code == 0
    moved = run_aero(
        "data",
        "remote",
        f"s3://{BUCKET}/other",
        "--endpoint",
        restartable_s3.endpoint,
        cwd=root,
    )
    assert moved.exit_code == 0, moved.stderr
    git(root, "commit", "-qam", "another prefix")

    push = subprocess.Popen(
        [sys.executable, "-m", "aeromancy", "data", "push", "--jobs", "1"],
        cwd=root,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: len(restartable_s3.keys(BUCKET, "other/")) >= 3, push)
    restartable_s3.stop()
    _, stderr = push.communicate(timeout=120)
    line = failed_cleanly(subprocess.CompletedProcess([], push.returncode, "", stderr))
    assert restartable_s3.endpoint in line or "unreachable" in line
    restartable_s3.start()

    half = restartable_s3.keys(BUCKET, "other/")
    assert 0 < len(half) < 81, "the push was not caught half-way"
    digest = (root / "data/many.dvc").read_text().split("md5: ")[1][:32]
    assert not any(digest in key for key in half), "a listing claims missing files"
    assert statuses(root)["data/many"] == "missing"

    again = run_aero("data", "push", cwd=root)
    assert again.exit_code == 0, again.stderr
    assert set(statuses(root).values()) == {"ok"}
    usable(root)


def test_s3_stopped_mid_pull_then_the_retry_completes(
    restartable_s3: RestartableS3, tmp_path: Path
) -> None:
    root = s3_init(tmp_path / "demo", restartable_s3)
    source = make_source(tmp_path / "many", files=80, size=2048)
    assert run_aero("data", "ingest", str(source), cwd=root).exit_code == 0
    clone = tmp_path / "clone"  # its own cache: .dvc/config.local is not cloned
    git(tmp_path, "clone", "-q", str(root), str(clone))
    cache = clone / ".dvc" / "cache"

    def fetched() -> int:
        return sum(1 for p in cache.rglob("*") if p.is_file())

    pull = subprocess.Popen(
        [sys.executable, "-m", "aeromancy", "data", "pull", "--jobs", "1"],
        cwd=clone,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: fetched() >= 4, pull)
    restartable_s3.stop()
    _, stderr = pull.communicate(timeout=120)
    failed_cleanly(subprocess.CompletedProcess([], pull.returncode, "", stderr))
    restartable_s3.start()
    assert 0 < fetched() < 83, "the pull was not caught half-way"

    again = run_aero("data", "pull", cwd=clone)
    assert again.exit_code == 0, again.stderr
    assert tree_bytes(clone / "data/many") == tree_bytes(source)
    assert git(clone, "status", "--porcelain") == ""


def test_s3_stopped_mid_tracked_run_claims_nothing_and_recovers(
    restartable_s3: RestartableS3, tmp_path: Path
) -> None:
    root = s3_init(tmp_path / "demo", restartable_s3)
    wait = "import pathlib, time\npathlib.Path('waiting').touch()\n"
    wait += "while not pathlib.Path('go').exists():\n    time.sleep(0.02)\n"
    train = root / "src" / "train.py"
    train.write_text(wait + train.read_text())
    with (root / ".gitignore").open("a") as ignore:
        ignore.write("waiting\ngo\n")
    git(root, "commit", "-qam", "train waits for go")

    run = subprocess.Popen(
        [sys.executable, "-m", "aeromancy", "repro"],
        cwd=root,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: (root / "waiting").exists(), run)
    restartable_s3.stop()
    (root / "go").touch()
    _, stderr = run.communicate(timeout=120)
    line = failed_cleanly(subprocess.CompletedProcess([], run.returncode, "", stderr))
    assert "unreachable" in line
    restartable_s3.start()

    keys = set(restartable_s3.keys(BUCKET, "proj/files/md5/"))
    claims_backed(root, lambda d: f"proj/files/md5/{d[:2]}/{d[2:]}" in keys)
    assert records(root)["train"]["outputs"]["build/model.json"]["pushed"] is False
    # dvc.lock is committed naming the run; DVC takes back the .gitignore entry
    # of an invocation that fails, so the output is untracked, and that alone
    # does not hold up the next tracked run.
    assert git(root, "status", "--porcelain") in ("", "?? build/\n")
    assert run_aero("data", "push", cwd=root).exit_code == 0
    again = run_aero("repro", cwd=root)
    assert again.exit_code == 0, again.stderr
    assert set(statuses(root).values()) == {"ok"}


# The tracker, the stage, signals ----------------------------------------------


def test_unreachable_tracker_refuses_before_any_stage(project: Path) -> None:
    from tests.faults.conftest import free_port

    pyproject = project / "pyproject.toml"
    dead = f"http://127.0.0.1:{free_port()}"
    text = pyproject.read_text().replace(
        'kind = "none"', f'kind = "mlflow"\ntracking_uri = "{dead}"'
    )
    pyproject.write_text(text)
    git(project, "commit", "-qam", "an MLflow server that is not there")

    line = failed_cleanly(run_aero("repro", cwd=project))

    assert "tool.aeromancy.tracker.tracking_uri" in line and "unreachable" in line
    assert not (project / "build").exists()
    assert not (project / ".aeromancy" / "runs").exists()
    assert git(project, "status", "--porcelain") == ""
    usable(project)


def commit_train(root: Path, script: str) -> None:
    (root / "src" / "train.py").write_text(script)
    git(root, "commit", "-qam", "change train")


def test_failing_stage_is_recorded_and_pushes_nothing(project: Path) -> None:
    good = (project / "src" / "train.py").read_text()
    commit_train(
        project,
        "import sys, pathlib\npathlib.Path('build/model.json').write_text('{}')\n"
        "sys.exit(7)\n",
    )

    result = run_aero("repro", cwd=project)

    assert result.exit_code == 7
    assert failed_cleanly(result) == "error: stage 'train' failed with exit code 7"
    found = records(project)
    assert found["train"]["status"] == "failed"
    assert not any(o["pushed"] for o in found["train"]["outputs"].values())
    claims_backed(project, in_local_store(project))
    # What the stage wrote before it stopped stays in the workspace, untracked.
    assert git(project, "status", "--porcelain") in ("", "?? build/\n")
    status = run_aero("data", "status", cwd=project)
    assert status.exit_code == 0, status.stderr
    commit_train(project, good)
    again = run_aero("repro", cwd=project)
    assert again.exit_code == 0, again.stderr
    usable(project)


def interrupt_mid_stage(root: Path, sig: signal.Signals) -> subprocess.Popen[str]:
    script = "import time, pathlib\npathlib.Path('started').touch()\ntime.sleep(120)\n"
    commit_train(root, script)
    with (root / ".gitignore").open("a") as ignore:
        ignore.write("started\n")
    git(root, "commit", "-qam", "ignore the marker")
    process = subprocess.Popen(
        [sys.executable, "-m", "aeromancy", "repro"],
        cwd=root,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    wait_for(lambda: (root / "started").exists(), process)
    os.killpg(process.pid, sig)
    process.communicate(timeout=120)
    return process


def test_sigint_mid_stage_is_recorded_aborted(project: Path) -> None:
    good = (project / "src" / "train.py").read_text()

    process = interrupt_mid_stage(project, signal.SIGINT)

    assert process.returncode == 130
    assert records(project)["train"]["status"] == "aborted"
    claims_backed(project, in_local_store(project))
    # What the stage wrote before it stopped stays in the workspace, untracked.
    assert git(project, "status", "--porcelain") in ("", "?? build/\n")
    status = run_aero("data", "status", cwd=project)
    assert status.exit_code == 0, status.stderr
    commit_train(project, good)
    again = run_aero("repro", cwd=project)
    assert again.exit_code == 0, again.stderr
    usable(project)


def test_sigkill_mid_stage_leaves_a_repo_that_works(project: Path) -> None:
    good = (project / "src" / "train.py").read_text()

    process = interrupt_mid_stage(project, signal.SIGKILL)

    assert process.returncode == -signal.SIGKILL
    assert "train" not in records(project)  # nothing could record it
    claims_backed(project, in_local_store(project))
    # What a kill leaves is DVC's bookkeeping of the stages that finished.
    left = git(project, "status", "--porcelain").splitlines()
    assert {line[3:] for line in left} <= {"dvc.lock", "build/", ".gitignore"}
    refused = failed_cleanly(run_aero("repro", cwd=project))
    assert "dvc.lock" in refused or "build/" in refused
    git(project, "add", "-A")
    git(project, "commit", "-qm", "keep what the killed run left")
    commit_train(project, good)
    usable(project)


# Corrupted objects -------------------------------------------------------------


def corrupt(path: Path) -> None:
    """Replace the file at `path` with other bytes (a new inode, so no link to it
    changes along)."""
    path.chmod(0o644)
    path.unlink()
    path.write_bytes(b"corrupted\n")


def dataset_object(root: Path, name: str = "measurements") -> str:
    """The md5 of the one file of dataset `name` (from its .dir listing)."""
    digest = (root / f"data/{name}.dvc").read_text().split("md5: ")[1][:32]
    store = Path(config.load(root).remote.url)
    listing = json.loads(
        (store / "files/md5" / digest[:2] / f"{digest[2:]}.dir").read_text()
    )
    return str(listing[0]["md5"])


def test_corrupted_cache_object_is_caught_by_its_hash(
    project: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "clone"  # its own cache, filled by a pull
    git(tmp_path, "clone", "-q", str(project), str(clone))
    assert run_aero("data", "pull", cwd=clone).exit_code == 0
    good = tree_bytes(project / "data/measurements")
    md5 = dataset_object(project)
    corrupt(clone / ".dvc/cache/files/md5" / md5[:2] / md5[2:])
    for path in (clone / "data/measurements").iterdir():
        path.chmod(0o644)
        path.unlink()

    pulled = run_aero("data", "pull", cwd=clone)

    # Either fetched again from the remote or refused; never the corrupted bytes.
    if pulled.exit_code == 0:
        assert tree_bytes(clone / "data/measurements") == good
    else:
        failed_cleanly(pulled)
        assert b"corrupted\n" not in tree_bytes(clone / "data/measurements").values()


def test_corrupted_remote_object_is_caught_by_its_hash(
    project: Path, tmp_path: Path
) -> None:
    md5 = dataset_object(project)
    store = Path(config.load(project).remote.url)
    corrupt(store / "files/md5" / md5[:2] / md5[2:])
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(project), str(clone))

    pulled = run_aero("data", "pull", cwd=clone)

    target = clone / "data/measurements"
    used = tree_bytes(target) if target.exists() else {}
    assert b"corrupted\n" not in used.values(), "the corrupted object was used"
    if pulled.exit_code != 0:
        failed_cleanly(pulled)


def test_corrupted_cache_object_is_not_pushed(project: Path, tmp_path: Path) -> None:
    md5 = dataset_object(project)
    cache = Path(
        (project / ".dvc/config.local").read_text().split("dir = ")[1].split()[0]
    )
    corrupt(cache / "files/md5" / md5[:2] / md5[2:])
    fresh = tmp_path / "fresh-store"
    assert run_aero("data", "remote", str(fresh), cwd=project).exit_code == 0

    pushed = run_aero("data", "push", cwd=project)

    sent = fresh / "files/md5" / md5[:2] / md5[2:]
    assert not (sent.exists() and sent.read_bytes() == b"corrupted\n"), (
        "a corrupted object was pushed under its old hash"
    )
    if pushed.exit_code != 0:
        failed_cleanly(pushed)


# A full disk -------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Any:
    """A 256 kB tmpfs; skipped where mounting one is not allowed (not root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_under_the_remote_fails_cleanly_and_undoes_the_ingest(
    project: Path, tiny_disk: Path, tmp_path: Path
) -> None:
    store = tiny_disk / "store"
    assert run_aero("data", "remote", str(store), cwd=project).exit_code == 0
    git(project, "commit", "-qam", "a remote on a small disk")
    source = tmp_path / "big"
    source.mkdir()
    (source / "weights.bin").write_bytes(os.urandom(600_000))
    head = git(project, "rev-parse", "HEAD")

    result = run_aero("data", "ingest", str(source), cwd=project)

    line = failed_cleanly(result)
    assert "space" in line.lower() or "could not be pushed" in line
    assert not (project / "data/big").exists()
    assert not (project / "data/big.dvc").exists()
    assert git(project, "rev-parse", "HEAD") == head
    assert git(project, "status", "--porcelain") == ""
    usable(project)
