"""Runs: the run record of one executed stage, and where records are kept.

A run record is a JSON document: the stage's fingerprint tree and digest, its
outputs with their DVC hashes, params, command, timings, exit status and the
tracker's link. It is written to the project's local index (`.aeromancy/runs/`)
and to the remote next to the data (`<remote>/aeromancy/runs/<id>.json`), so a
fresh clone on another machine can find every run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aeromancy.data import Remote
from aeromancy.errors import RemoteError, UserError

__all__ = [
    "ABORTED",
    "FAILED",
    "SUCCEEDED",
    "RunRecord",
    "UnknownRunError",
    "list_runs",
    "load",
    "load_manifest",
    "new_run_id",
    "now",
    "save",
    "save_manifest",
]

SUCCEEDED = "succeeded"
FAILED = "failed"
ABORTED = "aborted"
SCHEMA = 1
LOCAL_INDEX = Path(".aeromancy") / "runs"
REMOTE_PREFIX = "aeromancy/runs"
# Full package lists, one file per digest, shared by every run that used them.
LOCAL_MANIFESTS = Path(".aeromancy") / "manifests"
REMOTE_MANIFESTS = "aeromancy/manifests"


class UnknownRunError(UserError):
    """No run record has the id the user gave."""


@dataclass
class RunRecord:
    """Everything known about one executed stage; enough to rerun it.

    `fingerprint` is the nested tree (code, runtime, data, params, stage),
    `fingerprint_digest` its canonical digest and `node_digests` each node's;
    `outputs` maps each output path to its DVC hash and size; `tracker` holds
    the tracker's kind, run id and link;
    `environment` the variables a stage ran with that the default-deny capture
    kept (secret values redacted).
    """

    run_id: str
    invocation: str
    project: str
    stage: str
    command: str
    status: str
    started: str
    ended: str
    fingerprint: dict[str, Any]
    fingerprint_digest: str
    exit_code: int | None = None
    node_digests: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    tracker: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)
    rerun_of: str | None = None
    aeromancy_version: str = ""
    schema: int = SCHEMA

    @property
    def commit(self) -> str:
        return str(self.fingerprint.get("code", {}).get("commit", ""))

    def to_json(self) -> str:
        """Canonical JSON: sorted keys, two-space indent, UTF-8, trailing newline."""
        return (
            json.dumps(asdict(self), indent=2, sort_keys=True, ensure_ascii=False)
            + "\n"
        )

    @classmethod
    def from_json(cls, text: str, where: str = "run record") -> RunRecord:
        """Parse a record; a damaged one is a user error naming where it came from."""
        try:
            raw = json.loads(text)
            known = {
                name: raw[name] for name in cls.__dataclass_fields__ if name in raw
            }
            return cls(**known)
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where} is not a valid run record: {exc}") from None


def new_run_id(when: dt.datetime | None = None) -> str:
    """A run id that sorts by time and is safe in W&B, MLflow, S3 keys and paths."""
    moment = when or dt.datetime.now(dt.timezone.utc)
    return f"{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def now() -> str:
    """The current UTC time, ISO 8601 with milliseconds (records sort by it)."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def save(root: Path, record: RunRecord, remote: Remote | None) -> str:
    """Write `record` to the local index and, when given, to the remote.

    Returns where the remote copy lives (or the local path without a remote).
    The local copy is written first, so a remote failure never loses a record.
    """
    text = record.to_json()
    local = root / LOCAL_INDEX / f"{record.run_id}.json"
    local.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(local, text)
    if remote is None:
        return str(local)
    return _remote_put(remote, f"{REMOTE_PREFIX}/{record.run_id}.json", text)


def load(root: Path, remote: Remote | None, run_id: str) -> RunRecord:
    """The record of `run_id` (or of the one run whose id starts with it)."""
    records = {r.run_id: r for r in list_runs(root, remote)}
    if run_id in records:
        return records[run_id]
    matches = [rid for rid in records if rid.startswith(run_id)]
    if len(matches) == 1:
        return records[matches[0]]
    if matches:
        raise UnknownRunError(
            f"run id '{run_id}' is ambiguous ({len(matches)} runs start with it: "
            f"{', '.join(sorted(matches)[:3])}...); give more of it"
        )
    raise UnknownRunError(
        f"no run '{run_id}' in {LOCAL_INDEX} or the remote; "
        "`aero runs list` shows the known runs"
    )


def list_runs(root: Path, remote: Remote | None) -> list[RunRecord]:
    """Every known run, local and remote, newest first."""
    found: dict[str, RunRecord] = {}
    for path in sorted((root / LOCAL_INDEX).glob("*.json")):
        record = RunRecord.from_json(path.read_text(encoding="utf-8"), str(path))
        found[record.run_id] = record
    if remote is not None:
        for key, text in _remote_records(remote, set(found)):
            record = RunRecord.from_json(text, key)
            found.setdefault(record.run_id, record)
            # Cache what the remote had, so the next listing is local.
            _write_atomic(root / LOCAL_INDEX / f"{record.run_id}.json", text)
    return sorted(found.values(), key=lambda r: (r.started, r.run_id), reverse=True)


def save_manifest(
    root: Path, remote: Remote | None, kind: str, text: str, digest: str
) -> None:
    """Keep a runtime's full package list (`kind` is debian, python or nix) by its
    digest, locally and next to the run records; written once per digest."""
    name = f"{kind}-{digest}.txt"
    local = root / LOCAL_MANIFESTS / name
    if local.exists():
        return
    # The remote first: the local copy says the list is stored, so a remote that
    # failed is tried again next time.
    if remote is not None:
        _remote_put(remote, f"{REMOTE_MANIFESTS}/{name}", text)
    _write_atomic(local, text)


def load_manifest(
    root: Path, remote: Remote | None, kind: str, digest: str
) -> str | None:
    """A package list saved by `save_manifest`, or None when neither copy exists."""
    name = f"{kind}-{digest}.txt"
    local = root / LOCAL_MANIFESTS / name
    if local.exists():
        return local.read_text(encoding="utf-8")
    if remote is None:
        return None
    text = _remote_get(remote, f"{REMOTE_MANIFESTS}/{name}")
    if text is not None:
        _write_atomic(local, text)
    return text


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def _remote_put(remote: Remote, key: str, text: str) -> str:
    with _remote_errors(remote):
        if not remote.is_s3:
            target = Path(remote.url) / key
            _write_atomic(target, text)
            return str(target)
        full = f"{remote.prefix}/{key}" if remote.prefix else key
        _s3_client(remote).put_object(
            Bucket=remote.bucket, Key=full, Body=text.encode("utf-8")
        )
        return f"s3://{remote.bucket}/{full}"


def _remote_get(remote: Remote, key: str) -> str | None:
    with _remote_errors(remote):
        if not remote.is_s3:
            path = Path(remote.url) / key
            return path.read_text(encoding="utf-8") if path.exists() else None
        full = f"{remote.prefix}/{key}" if remote.prefix else key
        client = _s3_client(remote)
        try:
            body = client.get_object(Bucket=remote.bucket, Key=full)["Body"]
        except client.exceptions.NoSuchKey:
            return None
        return str(body.read().decode("utf-8"))


@contextlib.contextmanager
def _remote_errors(remote: Remote) -> Iterator[None]:
    """What S3 or the local store raise, as one line naming the remote."""
    from aeromancy.data import explain_s3_error

    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        if remote.is_s3:
            raise explain_s3_error(exc, remote) from None
        if isinstance(exc, OSError):
            raise RemoteError(f"remote {remote.url} failed: {exc}") from None
        raise


def _remote_records(remote: Remote, known: set[str]) -> list[tuple[str, str]]:
    """(where, text) of each remote record whose id is not in `known`."""
    with _remote_errors(remote):
        return _fetch_records(remote, known)


def _fetch_records(remote: Remote, known: set[str]) -> list[tuple[str, str]]:
    if not remote.is_s3:
        folder = Path(remote.url) / REMOTE_PREFIX
        paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
        return [
            (str(p), p.read_text(encoding="utf-8"))
            for p in paths
            if p.stem not in known
        ]
    client = _s3_client(remote)
    prefix = (
        f"{remote.prefix}/{REMOTE_PREFIX}/" if remote.prefix else f"{REMOTE_PREFIX}/"
    )
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=remote.bucket, Prefix=prefix
    ):
        for item in page.get("Contents", []):
            run_id = item["Key"].rsplit("/", 1)[-1].removesuffix(".json")
            if run_id in known:
                continue
            body = client.get_object(Bucket=remote.bucket, Key=item["Key"])["Body"]
            found.append((f"s3://{remote.bucket}/{item['Key']}", body.read().decode()))
    return found


def _s3_client(remote: Remote) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    session = boto3.session.Session(
        profile_name=remote.profile, region_name=remote.region
    )
    return session.client(
        "s3",
        endpoint_url=remote.endpoint,
        config=BotoConfig(connect_timeout=5, retries={"max_attempts": 3}),
    )
