"""The fingerprint: canonical JSON, one digest a node, inputs from DVC's objects."""

from __future__ import annotations

import datetime
import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aeromancy import fingerprint
from aeromancy._dvc import open_repo
from aeromancy.fingerprint import Change, StageInputs
from tests.conftest import git

CODE = {"commit": "a" * 40, "remote": "https://git.example/x.git"}
RUNTIME = {
    "kind": "host",
    "id": "b" * 64,
    "sealed": False,
    "base_digest": None,
    "debian_digest": "c" * 64,
    "python_digest": "d" * 64,
    "nix_digest": None,
}
INPUTS = StageInputs(
    name="train",
    cmd="python train.py",
    deps={"data/raw": "md5:0123.dir", "train.py": "md5:4567"},
    params={"params.yaml": {"train": {"lr": 0.1, "note": "café"}}},
)


def test_canonical_json_is_sorted_compact_utf8() -> None:
    value = {"b": [1, 2.5, None, True], "a": {"é": "ü", "z": (1, 2)}}
    assert fingerprint.canonical_json(value) == (
        '{"a":{"z":[1,2],"é":"ü"},"b":[1,2.5,null,true]}'.encode()
    )
    reordered = {"a": {"z": [1, 2], "é": "ü"}, "b": [1, 2.5, None, True]}
    assert fingerprint.canonical_json(reordered) == fingerprint.canonical_json(value)


def test_canonical_json_takes_dates_and_refuses_the_rest() -> None:
    assert fingerprint.canonical_json({"d": datetime.date(2024, 5, 1)}) == (
        b'{"d":"2024-05-01"}'
    )
    with pytest.raises(ValueError):
        fingerprint.canonical_json({"x": float("nan")})
    with pytest.raises(TypeError, match="not part of a fingerprint"):
        fingerprint.canonical_json({"x": object()})


def test_tree_shape_and_digests() -> None:
    fp = fingerprint.build(INPUTS, CODE, RUNTIME)
    assert list(fp.tree) == ["code", "data", "params", "runtime", "stage"]
    assert fp.tree["stage"] == {"cmd": "python train.py", "name": "train"}
    assert fp.tree["data"] == INPUTS.deps
    canonical = fingerprint.canonical_json(fp.tree)
    assert fp.digest == hashlib.sha256(canonical).hexdigest()
    for node, digest in fp.node_digests.items():
        node_json = fingerprint.canonical_json(fp.tree[node])
        assert digest == hashlib.sha256(node_json).hexdigest()
    assert fp.as_dict() == {
        "digest": fp.digest,
        "nodes": fp.node_digests,
        "tree": fp.tree,
    }


def test_digest_is_stable_across_processes() -> None:
    fp = fingerprint.build(INPUTS, CODE, RUNTIME)
    script = (
        "from tests.unit.test_fingerprint import *; "
        "print(fingerprint.build(INPUTS, CODE, RUNTIME).digest)"
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"},
        cwd=Path(__file__).parents[2],
    )
    assert other.stdout.strip() == fp.digest


CHANGES: list[tuple[str, Any]] = [
    ("code", (INPUTS, {**CODE, "commit": "e" * 40}, RUNTIME)),
    ("runtime", (INPUTS, CODE, {**RUNTIME, "python_digest": "f" * 64})),
    (
        "data",
        (
            StageInputs("train", INPUTS.cmd, {"data/raw": "md5:9"}, INPUTS.params),
            CODE,
            RUNTIME,
        ),
    ),
    (
        "params",
        (
            StageInputs(
                "train",
                INPUTS.cmd,
                INPUTS.deps,
                {"params.yaml": {"train": {"lr": 0.2}}},
            ),
            CODE,
            RUNTIME,
        ),
    ),
    (
        "stage",
        (
            StageInputs("train", "python train.py --fast", INPUTS.deps, INPUTS.params),
            CODE,
            RUNTIME,
        ),
    ),
]


@pytest.mark.parametrize(("node", "args"), CHANGES, ids=[c[0] for c in CHANGES])
def test_each_node_changes_its_digest_and_only_its_own(node: str, args: Any) -> None:
    before = fingerprint.build(INPUTS, CODE, RUNTIME)
    after = fingerprint.build(*args)
    assert after.digest != before.digest
    changed = [
        n for n in fingerprint.NODES if after.node_digests[n] != before.node_digests[n]
    ]
    assert changed == [node]


def test_diff_node_by_node() -> None:
    a = fingerprint.build(INPUTS, CODE, RUNTIME).tree
    b_inputs = StageInputs(
        "train",
        INPUTS.cmd,
        {"data/raw": "md5:9999.dir", "train.py": "md5:4567", "extra.csv": "md5:1"},
        {"params.yaml": {"train": {"lr": 0.2, "note": "café"}}},
    )
    b = fingerprint.build(b_inputs, CODE, RUNTIME).tree
    changes = fingerprint.diff(a, b)
    assert changes == [
        Change(("data", "data/raw"), "md5:0123.dir", "md5:9999.dir"),
        Change(("data", "extra.csv"), None, "md5:1"),
        Change(("params", "params.yaml", "train", "lr"), 0.1, 0.2),
    ]
    assert changes[2].dotted == "params > params.yaml > train > lr"
    assert fingerprint.diff(a, a) == []


@pytest.fixture
def pipeline(tmp_path: Path) -> Path:
    """A git + DVC repo with one stage over a large input and params, run once."""
    root = tmp_path / "pipe"
    root.mkdir()
    git(root, "init", "--quiet")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True)
    (root / "big.bin").write_bytes(b"\0" * (8 << 20))
    (root / "params.yaml").write_text("fit:\n  lr: 0.5\n  note: café\nother: 1\n")
    (root / "dvc.yaml").write_text(
        "stages:\n  fit:\n    cmd: wc -c big.bin > size.txt\n"
        "    deps: [big.bin]\n    params: [fit]\n    outs: [size.txt]\n"
        "  later:\n    cmd: cat size.txt\n    deps: [size.txt, never.txt]\n"
    )
    (root / "never.txt").write_text("")
    subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "-q", "fit"], cwd=root, check=True
    )
    git(root, "add", "-A")
    git(root, "commit", "--quiet", "-m", "ran fit")
    return root


def lock_of(root: Path) -> dict[str, Any]:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]  # type: ignore[no-any-return]


def test_stage_inputs_come_from_dvc_lock(pipeline: Path) -> None:
    lock = lock_of(pipeline)["fit"]
    with open_repo(pipeline) as repo:
        stages = {fingerprint.stage_name(repo, s): s for s in repo.index.stages}
        fit = fingerprint.stage_inputs(repo, stages["fit"])
        later = fingerprint.stage_inputs(repo, stages["later"])
    assert fit == StageInputs(
        "fit",
        "wc -c big.bin > size.txt",
        {"big.bin": f"md5:{lock['deps'][0]['md5']}"},
        {"params.yaml": {"fit": {"lr": 0.5, "note": "café"}}},
    )
    # Not locked yet: no hash, rather than one computed behind DVC's back.
    assert later.deps == {"never.txt": None, "size.txt": None}


def test_large_input_is_never_read_again(pipeline: Path) -> None:
    """The lock's hash stays even when the file changed since: nothing re-hashes."""
    lock = lock_of(pipeline)["fit"]
    (pipeline / "big.bin").write_bytes(b"\1" * (8 << 20))
    (pipeline / "params.yaml").write_text("fit:\n  lr: 0.9\n")
    fit = fingerprint.workspace(pipeline, {"kind": "host"})[0]
    assert fit.tree["data"] == {"big.bin": f"md5:{lock['deps'][0]['md5']}"}
    assert fit.tree["params"] == {"params.yaml": {"fit": {"lr": 0.5, "note": "café"}}}
    assert fit.tree["code"]["commit"] == git(pipeline, "rev-parse", "HEAD").strip()


def test_stage_just_run_matches_its_lock(
    pipeline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In DVC's `repro_fn`, the stage carries what DVC computed for it."""
    monkeypatch.chdir(pipeline)  # DVC runs a stage only from inside its repo
    from dvc.repo.reproduce import _reproduce_stage

    seen: dict[str, StageInputs] = {}
    with open_repo(pipeline) as repo:

        def run_one(stage: Any, **kwargs: Any) -> Any:
            ran = _reproduce_stage(stage, **kwargs)
            inputs = fingerprint.stage_inputs(repo, stage)
            seen[inputs.name] = inputs
            return ran

        (pipeline / "params.yaml").write_text("fit:\n  lr: 0.7\n")
        repo.reproduce([str(pipeline / "dvc.yaml:fit")], repro_fn=run_one)
    lock = lock_of(pipeline)["fit"]
    assert seen["fit"].params == {"params.yaml": {"fit": {"lr": 0.7}}}
    assert seen["fit"].deps == {"big.bin": f"md5:{lock['deps'][0]['md5']}"}
    with open_repo(pipeline) as repo:
        stage = next(s for s in repo.index.stages if s.name == "fit")
        assert fingerprint.stage_inputs(repo, stage) == seen["fit"]


def test_workspace_lists_pipeline_stages_only(project: Path) -> None:
    prints = fingerprint.workspace(project, {"kind": "host"})
    assert [fp.tree["stage"]["name"] for fp in prints] == [
        "prepare",
        "train",
        "evaluate",
    ]
    assert prints[0].tree["data"]["data/measurements"] is None
