"""Time one stage's fingerprint through the library, as a tracked run builds it.

Run ``python bench/fingerprint_probe.py PROJECT STAGE`` (by `bench/run.py`).
It opens the project's DVC repository and loads the stage from dvc.yaml and
dvc.lock, then times what a tracked run pays for each stage DVC hands it:
`fingerprint.stage_inputs`, `fingerprint.build` and the digests. The code and
runtime nodes are computed beforehand (git calls and package lists, the same
for every stage of a run). It prints one JSON line of seconds: `fingerprint`,
and the costs it leaves out, `dvc import`, `Repo open` and `stage load` (DVC
parsing dvc.yaml and dvc.lock, its YAML library's import included).

It fails when loading the stage and fingerprinting it read more than
`MAX_READ` bytes (the data would have been hashed again) or when dvc.lock has
no hash for a dependency.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

MAX_READ = 16 * 1024 * 1024


def bytes_read() -> int:
    """Bytes this process has read so far (`rchar` of /proc/self/io), or 0."""
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name == "rchar":
            return int(value)
    return 0


def fingerprint_once(repo: Any, stage: Any, code: Any, runtime: Any) -> Any:
    """Build `stage`'s fingerprint with both digests, as a tracked run does."""
    from aeromancy import fingerprint

    built = fingerprint.build(fingerprint.stage_inputs(repo, stage), code, runtime)
    built.as_dict()
    return built


def main(argv: list[str]) -> int:
    root, stage = Path(argv[0]).resolve(), argv[1]

    from aeromancy import gitstate
    from aeromancy.runtime.host import HostRuntime

    code = gitstate.code_state(root).node()
    runtime = HostRuntime().describe()

    began = time.perf_counter()
    import dvc.repo  # noqa: F401  (timed: what a fresh process pays first)

    from aeromancy._dvc import open_repo

    imported = time.perf_counter()
    with open_repo(root) as repo:
        opened = time.perf_counter()
        before = bytes_read()
        (loaded,) = repo.stage.collect(f"{root / 'dvc.yaml'}:{stage}")
        collected = time.perf_counter()
        built = fingerprint_once(repo, loaded, code, runtime)
        done = time.perf_counter()
        read = bytes_read() - before

    if read > MAX_READ:
        print(f"the fingerprint read {read} bytes: hashed again?", file=sys.stderr)
        return 1
    missing = [path for path, value in built.tree["data"].items() if value is None]
    if missing:
        print(f"dvc.lock has no hash for {', '.join(missing)}", file=sys.stderr)
        return 1
    figures = {
        "fingerprint": done - collected,
        "dvc import": imported - began,
        "Repo open": opened - imported,
        "stage load": collected - opened,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
