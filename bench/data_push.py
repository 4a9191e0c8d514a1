"""`aero data push` and `aero data pull` against plain boto3 and stock DVC.

Run ``python bench/data_push.py [--runs N] [--size-mib M]``. Two rows, each the
median of N runs (at least 5), the two sides interleaved so that drift in the
machine's speed hits both alike:

- push: `aero data push` of one 256 MiB file to a moto S3 server (in its own
  process) against a plain boto3 upload of the same file to the same endpoint:
  a `python -c` script calling `upload_file`, as a user would run it (start-up
  included on both sides). Throughput ratio = boto3 seconds / aero seconds;
  target >= 0.8. For reference, the ratio against `upload_file` timed around
  the call alone, in this process, is reported too.
- no-op pull: `aero data pull` with everything cached against `dvc pull` with
  everything cached; time ratio = aero / dvc; target <= 1.2.

Results go to bench/results/data_push.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "data_push.json"
BUCKET = "bench"
PREFIX = "aero"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mib", type=int, default=256)
    args = parser.parse_args()
    runs = max(args.runs, 5)

    with tempfile.TemporaryDirectory(prefix="aero-bench-") as folder:
        root = Path(folder)
        env = _environment(root)
        os.environ.update(env)
        server, endpoint = _moto(root)
        try:
            result = _bench(root, env, endpoint, runs, args.size_mib)
        finally:
            server.terminate()
            server.wait()

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    push, pull = result["push"], result["noop_pull"]
    print(
        f"push {args.size_mib} MiB: aero {push['aero_median_s']:.2f}s, boto3 "
        f"script {push['boto3_script_median_s']:.2f}s -> "
        f"{push['throughput_ratio']:.2f}x throughput (target >= {push['target']}); "
        f"boto3 call alone {push['boto3_median_s']:.2f}s -> "
        f"{push['in_process_throughput_ratio']:.2f}x"
    )
    print(
        f"no-op pull: aero {pull['aero_median_s']:.2f}s, dvc "
        f"{pull['dvc_median_s']:.2f}s -> {pull['time_ratio']:.2f}x time "
        f"(target <= {pull['target']})"
    )
    print(f"wrote {RESULTS.relative_to(BENCH.parent)}")
    return 0 if push["met"] and pull["met"] else 1


def _bench(
    root: Path, env: dict[str, str], endpoint: str, runs: int, size_mib: int
) -> dict[str, Any]:
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    blob = root / "blob.bin"
    _random_file(blob, size_mib * 2**20)
    project = _project(root, env, endpoint, blob)

    def boto3_push() -> float:
        _empty_bucket(client)
        began = time.perf_counter()
        client.upload_file(str(blob), BUCKET, "boto3/blob.bin")
        return time.perf_counter() - began

    upload = (
        "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1])"
        ".upload_file(sys.argv[2], sys.argv[3], 'script/blob.bin')"
    )
    script = [sys.executable, "-c", upload, endpoint, str(blob), BUCKET]

    def boto3_script() -> float:
        _empty_bucket(client)
        return _timed(script, root, env)

    def aero_push() -> float:
        _empty_bucket(client)
        return _timed([*_aero(), "data", "push"], project, env)

    pushes = _interleave(aero_push, boto3_push, runs)
    scripted = _interleave(aero_push, boto3_script, runs)
    aero_pull = _command([*_aero(), "data", "pull"], project, env)
    dvc_pull = _command([*_dvc(), "pull"], project, env)
    pulls = _interleave(aero_pull, dvc_pull, runs)

    in_process_ratio = statistics.median(pushes[1]) / statistics.median(pushes[0])
    push_ratio = statistics.median(scripted[1]) / statistics.median(scripted[0])
    pull_ratio = statistics.median(pulls[0]) / statistics.median(pulls[1])
    return {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "push": {
            "size_mib": size_mib,
            "aero_s": pushes[0],
            "boto3_s": pushes[1],
            "aero_median_s": statistics.median(pushes[0]),
            "boto3_median_s": statistics.median(pushes[1]),
            "boto3_script_s": scripted[1],
            "boto3_script_median_s": statistics.median(scripted[1]),
            "throughput_ratio": round(push_ratio, 3),
            "in_process_throughput_ratio": round(in_process_ratio, 3),
            "target": 0.8,
            "met": push_ratio >= 0.8,
        },
        "noop_pull": {
            "aero_s": pulls[0],
            "dvc_s": pulls[1],
            "aero_median_s": statistics.median(pulls[0]),
            "dvc_median_s": statistics.median(pulls[1]),
            "time_ratio": round(pull_ratio, 3),
            "target": 1.2,
            "met": pull_ratio <= 1.2,
        },
    }


def _project(root: Path, env: dict[str, str], endpoint: str, blob: Path) -> Path:
    """A project on the S3 remote with `blob` ingested, and no pipeline."""
    project = root / "project"
    _run(
        [
            *_aero(),
            "init",
            str(project),
            "--runtime",
            "host",
            "--tracker",
            "none",
            "--remote",
            f"s3://{BUCKET}/{PREFIX}",
            "--endpoint",
            endpoint,
        ],
        root,
        env,
    )
    # Stage outputs that never ran would make the stock `dvc pull` fail.
    for name in ("dvc.yaml", "params.yaml"):
        (project / name).unlink()
    _run(["git", "commit", "-qam", "No pipeline"], project, env)
    _run([*_aero(), "data", "ingest", str(blob), "--name", "blob"], project, env)
    return project


def _interleave(
    first: Callable[[], float], second: Callable[[], float], runs: int
) -> tuple[list[float], list[float]]:
    first(), second()  # warm the page cache and the server
    ones, twos = [], []
    for _ in range(runs):
        ones.append(round(first(), 4))
        twos.append(round(second(), 4))
    return ones, twos


def _command(argv: list[str], cwd: Path, env: dict[str, str]) -> Callable[[], float]:
    return lambda: _timed(argv, cwd, env)


def _timed(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    began = time.perf_counter()
    _run(argv, cwd, env)
    return time.perf_counter() - began


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")


def _aero() -> list[str]:
    return _script("aero", "aeromancy")


def _dvc() -> list[str]:
    return _script("dvc", "dvc")


def _script(name: str, module: str) -> list[str]:
    """The console script next to this Python (no shim in between), or `-m`."""
    script = Path(sys.executable).parent / name
    return [str(script)] if script.exists() else [sys.executable, "-m", module]


def _environment(root: Path) -> dict[str, str]:
    home = root / "home"
    home.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "DVC_", "AERO_"))
    }
    env.update(
        HOME=str(home),
        XDG_CACHE_HOME=str(home / "cache"),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
        DVC_NO_ANALYTICS="1",
        DVC_GLOBAL_CONFIG_DIR=str(home / "dvc-global"),
        DVC_SYSTEM_CONFIG_DIR=str(home / "dvc-system"),
        DVC_SITE_CACHE_DIR=str(home / "dvc-site"),
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
        NO_COLOR="1",
    )
    return env


def _moto(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server in a process of its own, so it has its own interpreter."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = (
        "import time\n"
        "from moto.server import ThreadedMotoServer\n"
        f"ThreadedMotoServer(ip_address='127.0.0.1', port={port}, verbose=False)"
        ".start()\n"
        "while True: time.sleep(3600)\n"
    )
    server = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    server.terminate()
    raise SystemExit("moto's S3 server did not start")


def _random_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for _ in range(size // 2**20):
            out.write(os.urandom(2**20))


def _empty_bucket(client: Any) -> None:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    for page in pages:
        keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


if __name__ == "__main__":
    sys.exit(main())
