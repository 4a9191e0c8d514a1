"""The rows that need an S3 server: `aero data push` against a boto3 upload,
and a no-op `aero data pull` against a no-op `dvc pull`.

moto's S3 server runs in a process of its own for each row, so that it has
its own interpreter and does not share this one's lock with the timing.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.harness import Pair, Sandbox, untimed

BUCKET = "bench"
MIB = 2**20
PUSH_MIB = 256

UPLOAD = (
    "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1])"
    ".upload_file(sys.argv[2], sys.argv[3], 'script/blob.bin')"
)
"""The peer of a push: a boto3 upload as a user would script it."""


def s3_sandbox(box: Sandbox) -> Sandbox:
    """AWS settings that reach nothing but the local server."""
    home = box.root / "home"
    return box.with_env(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(home / "aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "aws-credentials"),
    )


def start_moto(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """moto's S3 server in its own process; its endpoint URL."""
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
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return server, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    stop(server)
    raise RuntimeError("moto's S3 server did not start")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.terminate()
    server.wait()


def s3_project(box: Sandbox, endpoint: str, blob: Path) -> Path:
    """A project on the S3 remote with `blob` ingested, and no pipeline."""
    project = box.root / "project"
    remote = f"s3://{BUCKET}/aero"
    box.run(
        *("aero", "init", str(project), "--runtime", "host", "--tracker", "none"),
        *("--remote", remote, "--endpoint", endpoint),
    )
    # Stage outputs that never ran would make the stock `dvc pull` fail.
    for name in ("dvc.yaml", "params.yaml"):
        (project / name).unlink()
    box.run("git", "commit", "-qam", "No pipeline", cwd=project)
    box.run("aero", "data", "ingest", str(blob), "--name", "blob", cwd=project)
    return project


def random_file(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for _ in range(size // MIB):
            out.write(os.urandom(MIB))


def empty_bucket(client: Any) -> None:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        keys = [{"Key": entry["Key"]} for entry in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=BUCKET, Delete={"Objects": keys})


def _served(box: Sandbox, size: int) -> tuple[Sandbox, Any, Path, str, Any]:
    import boto3

    box = s3_sandbox(box)
    server, endpoint = start_moto(box.root)
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    blob = box.root / "blob.bin"
    random_file(blob, size)
    return box, server, blob, endpoint, client


def push_row(box: Sandbox) -> Pair:
    """`aero data push` of one 256 MiB file to an empty bucket against a boto3
    upload script (interpreter start-up on both sides); the upload call alone,
    in this process, is a note."""
    box, server, blob, endpoint, client = _served(box, PUSH_MIB * MIB)
    try:
        project = s3_project(box, endpoint, blob)
    except BaseException:
        stop(server)
        raise
    in_process: list[float] = []

    def upload_call() -> None:
        empty_bucket(client)
        began = time.perf_counter()
        client.upload_file(str(blob), BUCKET, "call/blob.bin")
        in_process.append(time.perf_counter() - began)

    script = box.command(sys.executable, "-c", UPLOAD, endpoint, str(blob), BUCKET)
    return Pair(
        untimed(
            box.command("aero", "data", "push", cwd=project),
            before=lambda: empty_bucket(client),
        ),
        untimed(script, before=lambda: empty_bucket(client), after=upload_call),
        notes=lambda: {"boto3 upload_file call alone (peer side)": in_process},
        close=lambda: stop(server),
    )


def pull_row(box: Sandbox) -> Pair:
    """`aero data pull` with everything cached against `dvc pull` likewise."""
    box, server, blob, endpoint, _ = _served(box, 16 * MIB)
    try:
        project = s3_project(box, endpoint, blob)
    except BaseException:
        stop(server)
        raise
    return Pair(
        box.command("aero", "data", "pull", cwd=project),
        box.command("dvc", "pull", cwd=project),
        close=lambda: stop(server),
    )
