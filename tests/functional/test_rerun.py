"""`aero rerun`: a past run rebuilt from its record, on a fresh clone too, and
its outputs verified; every bad input refused in one line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from aeromancy import config, data, runs
from tests.conftest import S3, git, records, run_aero, s3_project


def reruns_of(root: Path, run_id: str) -> list[dict]:  # type: ignore[type-arg]
    index = root / ".aeromancy" / "runs"
    loaded = [json.loads(p.read_text()) for p in index.glob("*.json")]
    return [r for r in loaded if r["rerun_of"] == run_id]


def forge(root: Path, **changes: object) -> runs.RunRecord:
    """A succeeded `train` run at HEAD, saved to the local index, with `changes`."""
    tree = {
        "code": {"commit": git(root, "rev-parse", "HEAD").strip(), "remote": None},
        "runtime": {"kind": "host", "id": "0" * 64, "sealed": False},
        "data": {},
        "params": {},
        "stage": {"name": "train", "cmd": "python3 src/train.py"},
    }
    for node, value in changes.pop("tree", {}).items():  # type: ignore[attr-defined]
        tree[node].update(value)
    fields: dict[str, object] = {
        "run_id": runs.new_run_id(),
        "invocation": runs.new_run_id(),
        "project": root.name,
        "stage": "train",
        "command": "python3 src/train.py",
        "status": "succeeded",
        "started": runs.now(),
        "ended": runs.now(),
        "fingerprint": tree,
        "fingerprint_digest": "f" * 64,
        "outputs": {"build/model.json": {"hash": "md5:0", "size": 1}},
    }
    record = runs.RunRecord(**{**fields, **changes})  # type: ignore[arg-type]
    runs.save(root, record, None)
    return record


def test_a_deterministic_stage_reruns_identical_on_a_fresh_clone(
    tmp_path: Path, s3: S3
) -> None:
    root = s3_project(tmp_path / "demo", s3)
    assert run_aero("repro", "train", cwd=root).exit_code == 0
    train = records(root)["train"]
    clone = tmp_path / "elsewhere" / "demo"
    subprocess.run(["git", "clone", "--quiet", str(root), str(clone)], check=True)

    result = run_aero("rerun", train["run_id"], cwd=clone)

    assert result.exit_code == 0, result.stderr
    assert result.lines[-1].startswith("rerun ")
    assert result.lines[-1].endswith(
        f"reproduced run {train['run_id']}: 1 of 1 outputs identical"
    )
    assert "build/model.json │ identical" in result.stdout
    assert "inputs at their recorded versions: pulled 1 file" in result.stderr
    (new,) = [r for r in reruns_of(clone, train["run_id"]) if r["stage"] == "train"]
    assert (
        new["outputs"]["build/model.json"]["hash"]
        == (train["outputs"]["build/model.json"]["hash"])
    )
    key = f"proj/aeromancy/runs/{new['run_id']}.json"
    assert s3.client().head_object(Bucket=s3.bucket, Key=key)
    assert not (clone / ".aeromancy" / "worktrees" / train["run_id"]).exists()
    assert git(clone, "worktree", "list").count("\n") == 1
    assert git(clone, "status", "--porcelain") == ""

    diff = run_aero("runs", "diff", train["run_id"], new["run_id"], cwd=clone)
    assert diff.exit_code == 0, diff.stderr
    assert f"run {new['run_id']} is a rerun of run {train['run_id']}" in diff.stderr
    assert "outputs >" not in diff.stdout


def test_a_non_deterministic_stage_is_reported_diverged(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    script = (project / "src" / "train.py").read_text()
    script += "\nimport os\nwith open('build/model.json', 'a') as f:\n"
    script += "    f.write(os.urandom(8).hex())\n"
    (project / "src" / "train.py").write_text(script)
    git(project, "commit", "--quiet", "-am", "a noisy model")
    assert aero("repro", "train", cwd=project).exit_code == 0
    train = records(project)["train"]

    result = aero("rerun", train["run_id"], "--keep", cwd=project)

    assert result.exit_code == 3, result.stderr
    assert result.lines[-1].startswith("error: rerun ")
    assert result.lines[-1].endswith(
        f"diverged from run {train['run_id']}: build/model.json differs "
        "(0 of 1 outputs identical)"
    )
    row = next(line for line in result.stdout.splitlines() if "model.json" in line)
    assert "differs" in row
    assert train["outputs"]["build/model.json"]["hash"] in result.stdout
    kept = project / ".aeromancy" / "worktrees" / train["run_id"] / project.name
    assert f"worktree kept in {kept}" in result.stderr
    assert (kept / "build" / "model.json").is_file()

    again = aero("rerun", train["run_id"], cwd=project)
    assert again.exit_code == 1
    shown = f".aeromancy/worktrees/{train['run_id']}/{project.name}"
    assert again.lines == [
        f"error: worktree {shown} already exists (kept by an earlier `aero rerun "
        f"--keep`?); remove it with `git worktree remove --force {shown}`"
    ]

    # The fix the error gives works; then --json: the verdict alone on stdout
    # (the stage's own output goes to stderr).
    git(project, "worktree", "remove", "--force", shown)
    as_json = aero("rerun", train["run_id"], "--json", cwd=project)
    assert as_json.exit_code == 3, as_json.stderr
    verdict = json.loads(as_json.stdout)
    assert (verdict["original"], verdict["verdict"]) == (train["run_id"], "diverged")
    assert [(o["path"], o["verdict"]) for o in verdict["outputs"]] == [
        ("build/model.json", "differs")
    ]
    assert (
        verdict["outputs"][0]["recorded"]["hash"]
        == (train["outputs"]["build/model.json"]["hash"])
    )


def test_a_changed_param_rerun_is_recorded_with_rerun_of(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    assert aero("repro", "train", cwd=project).exit_code == 0
    train = records(project)["train"]

    result = aero(
        "rerun", train["run_id"], "--set", "train.normalize=false", cwd=project
    )

    assert result.exit_code == 0, result.stderr
    assert result.lines[-1].endswith(
        f"of run {train['run_id']} with params.yaml:train.normalize=false: "
        "recorded, not verified (params were changed on request)"
    )
    assert result.stdout.count("identical") == 0
    (new,) = [r for r in reruns_of(project, train["run_id"]) if r["stage"] == "train"]
    assert new["fingerprint"]["params"]["params.yaml"]["train"]["normalize"] is False
    assert (
        new["fingerprint"]["code"]["commit"] != train["fingerprint"]["code"]["commit"]
    )
    ref = f"refs/aeromancy/reruns/{new['invocation']}"
    assert new["fingerprint"]["code"]["commit"] in git(
        project, "log", "-2", "--format=%H", ref
    )
    assert "normalize: true" in (project / "params.yaml").read_text()


def test_unknown_run_id(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    result = aero("rerun", "nope", cwd=project)
    assert result.exit_code == 1
    assert result.lines == [
        "error: no run 'nope' in .aeromancy/runs or the remote; "
        "`aero runs list` shows the known runs"
    ]


def test_a_commit_missing_from_the_repository_names_the_remote(
    aero,  # type: ignore[no-untyped-def]
    project: Path,
) -> None:
    url = "https://git.example.invalid/demo.git"
    record = forge(project, tree={"code": {"commit": "e" * 40, "remote": url}})
    result = aero("rerun", record.run_id, cwd=project)
    assert result.exit_code == 1
    assert result.lines == [
        f"error: commit {'e' * 12} of run {record.run_id} is not in this "
        f"repository; fetch it from {url} (`git fetch {url}`)"
    ]


def test_a_data_version_missing_from_the_remote(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    pointer = (project / "data" / "measurements.dvc").read_text()
    digest = pointer.split("md5: ", 1)[1].split()[0]
    store = Path(config.load(project).remote.url)
    for where in (store, data.shared_cache_dir()):
        (where / "files" / "md5" / digest[:2] / digest[2:]).unlink()
    record = forge(
        project,
        stage="prepare",
        tree={"data": {"data/measurements": f"md5:{digest}"}},
    )

    result = aero("rerun", record.run_id, cwd=project)

    assert result.exit_code == 1, result.stderr
    assert result.lines[-1] == (
        f"error: data version md5:{digest} of data/measurements (read by run "
        f"{record.run_id}) is missing from the remote and the local cache; push "
        "it from a machine that has it with `aero data push`"
    )
    assert not (project / ".aeromancy" / "worktrees" / record.run_id).exists()


def test_a_runtime_that_cannot_be_rebuilt(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    record = forge(project, tree={"runtime": {"kind": "vm"}})
    result = aero("rerun", record.run_id, cwd=project)
    assert result.exit_code == 1
    assert len(result.lines) == 2  # the worktree line, then the error
    assert result.lines[-1].startswith(
        f"error: runtime 'vm' of run {record.run_id} cannot be rebuilt: "
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            "train.nope=1",
            "params.yaml has no param 'train.nope' at the recorded commit",
        ),
        ("train.normalize", "--set 'train.normalize' is not KEY=VALUE"),
        ("train.normalize=true", "train.normalize is already true in params.yaml"),
    ],
)
def test_bad_param_changes(aero, project: Path, option: str, message: str) -> None:  # type: ignore[no-untyped-def]
    record = forge(project)
    result = aero("rerun", record.run_id, "--set", option, cwd=project)
    assert result.exit_code == 1
    assert result.lines[-1].startswith(f"error: {message}")
    assert not (project / ".aeromancy" / "worktrees" / record.run_id).exists()


def test_a_failed_run_is_verified_against_nothing(aero, project: Path) -> None:  # type: ignore[no-untyped-def]
    record = forge(project, status="failed")
    result = aero("rerun", record.run_id, cwd=project)
    assert result.exit_code == 1
    assert result.lines == [
        f"error: run {record.run_id} failed: it has no outputs to verify against; "
        "rerun it with --no-verify"
    ]
