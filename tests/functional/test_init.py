"""`aero init`: new projects, adopted repositories, and refusals."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from aeromancy import config
from tests.conftest import S3, git


def snapshot(root: Path) -> dict[str, str]:
    """Every file under `root` but .git and .dvc/tmp, with its content hash."""
    found = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix()
        if path.is_file() and not relative.startswith((".git/", ".dvc/tmp")):
            found[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def test_new_project_is_committed_clean(aero, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("init", str(tmp_path / "demo"))
    root = tmp_path / "demo"

    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == str(root)
    assert "created Aeromancy project" in result.stderr
    for expected in (
        "dvc.yaml",
        "params.yaml",
        "src/prepare.py",
        "src/train.py",
        "src/evaluate.py",
        "data/README.md",
        "data/measurements.dvc",
        "notebooks/README.md",
        "flake.nix",
        ".gitignore",
        ".dvcignore",
        ".github/workflows/aeromancy.yml",
        "pyproject.toml",
    ):
        assert (root / expected).is_file(), expected
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "log", "--format=%s").strip() == "Scaffold demo with Aeromancy"
    tracked = git(root, "ls-files").split()
    assert "data/measurements.dvc" in tracked
    assert "data/measurements/measurements.csv" not in tracked


def test_defaults_are_local_store_wandb_offline_docker(aero, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "demo"
    assert aero("init", str(root)).exit_code == 0
    loaded = config.load(root)

    assert (loaded.tracker.kind, loaded.tracker.mode) == ("wandb", "offline")
    assert loaded.runtime.kind == "docker"
    remote = Path(loaded.remote.url)
    assert remote.is_relative_to(
        tmp_path / "home" / "data" / "aeromancy" / "remotes"
    ) or ("aeromancy/remotes/demo-" in loaded.remote.url)
    dvc_config = (root / ".dvc" / "config").read_text()
    assert "remote = aeromancy" in dvc_config
    assert loaded.remote.url in dvc_config


def test_overrides_reach_config_and_dvc(aero, tmp_path: Path, s3: S3) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "demo"
    result = aero(
        "init",
        str(root),
        "--remote",
        f"s3://{s3.bucket}/projects/demo",
        "--endpoint",
        s3.endpoint,
        "--tracker",
        "mlflow",
        "--runtime",
        "host",
    )
    assert result.exit_code == 0, result.stderr
    loaded = config.load(root)
    assert loaded.remote.url == f"s3://{s3.bucket}/projects/demo"
    assert loaded.remote.endpoint == s3.endpoint
    assert (loaded.tracker.kind, loaded.runtime.kind) == ("mlflow", "host")
    dvc_config = (root / ".dvc" / "config").read_text()
    assert f"endpointurl = {s3.endpoint}" in dvc_config
    assert "testing" not in dvc_config  # credentials are never written


def test_adopting_changes_no_existing_file(aero, dvc_repo: Path) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(dvc_repo)
    result = aero("init", str(dvc_repo), "--runtime", "host")

    assert result.exit_code == 0, result.stderr
    after = snapshot(dvc_repo)
    changed = {path for path in before if after.get(path) != before[path]}
    assert changed == set() or changed == {".dvc/config"}
    assert "adopted Aeromancy project" in result.stderr
    assert "added pyproject.toml" in result.stderr
    assert not (dvc_repo / "src").exists()  # the repo keeps its own pipeline
    assert (dvc_repo / "flake.nix").is_file()
    assert config.load(dvc_repo).runtime.kind == "host"


def test_adopting_never_touches_dvc_config_with_a_remote(aero, dvc_repo: Path) -> None:  # type: ignore[no-untyped-def]
    subprocess.run(
        ["dvc", "remote", "add", "-d", "mine", str(dvc_repo.parent / "store")],
        cwd=dvc_repo,
        check=True,
        capture_output=True,
    )
    git(dvc_repo, "commit", "--quiet", "-am", "remote")
    before = snapshot(dvc_repo)

    assert aero("init", str(dvc_repo)).exit_code == 0
    after = snapshot(dvc_repo)
    assert all(after[path] == digest for path, digest in before.items())


def test_adopting_appends_to_an_existing_pyproject(aero, dvc_repo: Path) -> None:  # type: ignore[no-untyped-def]
    original = '[project]\nname = "existing"  # a comment that must survive\n'
    (dvc_repo / "pyproject.toml").write_text(original)

    result = aero("init", str(dvc_repo))
    assert result.exit_code == 0, result.stderr
    assert (dvc_repo / "pyproject.toml").read_text().startswith(original)
    assert "pyproject.toml ([tool.aeromancy] appended)" in result.stderr

    again = aero("init", str(dvc_repo))
    assert again.exit_code == 0
    assert "kept  dvc.yaml" not in again.stderr  # the example pipeline is never offered


def test_refuses_non_empty_non_repo(aero, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "notes.txt").write_text("mine")
    result = aero("init", str(tmp_path))
    assert result.exit_code == 1
    assert result.lines == [
        f"error: {tmp_path} is not empty and not a git repository; pick an empty "
        "folder, or pass --force to add the scaffold beside what is there"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_force_keeps_the_users_files(aero, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "params.yaml").write_text("mine: 1\n")
    result = aero("init", str(tmp_path), "--force")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "params.yaml").read_text() == "mine: 1\n"
    assert "kept  params.yaml (already there)" in result.stderr
    assert "params.yaml" not in git(tmp_path, "ls-files").split()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--remote", "ftp://host/x"],
            "error: malformed remote URL 'ftp://host/x': scheme 'ftp' is not "
            "supported; use s3://bucket/prefix or a local folder path",
        ),
        (
            ["--remote", "s3://A_Bad_Bucket/x"],
            "error: malformed remote URL 's3://A_Bad_Bucket/x': 'A_Bad_Bucket' is "
            "not a valid bucket name; use s3://bucket/prefix",
        ),
        (
            ["--remote", "s3://bucket/x", "--endpoint", "localhost:9000"],
            "error: malformed endpoint 'localhost:9000'; use http(s)://host[:port]",
        ),
        (
            ["--remote", "s3://bucket/x", "--endpoint", "http://127.0.0.1:9"],
            "error: remote s3://bucket/x is unreachable: cannot connect to "
            "http://127.0.0.1:9; check --endpoint and that the server is running",
        ),
    ],
)
def test_bad_remote_is_refused_before_anything_is_written(
    aero,
    tmp_path: Path,
    args: list[str],
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    result = aero("init", str(tmp_path / "demo"), *args)
    assert result.exit_code == 1
    assert result.lines == [message]
    assert not (tmp_path / "demo").exists()


def test_missing_bucket_is_named(aero, tmp_path: Path, s3: S3) -> None:  # type: ignore[no-untyped-def]
    result = aero(
        "init",
        str(tmp_path / "demo"),
        "--remote",
        "s3://no-such-bucket/x",
        "--endpoint",
        s3.endpoint,
    )
    assert result.exit_code == 1
    assert result.lines == [
        f"error: bucket 'no-such-bucket' does not exist at {s3.endpoint}; "
        "create it first"
    ]
    assert not (tmp_path / "demo").exists()
