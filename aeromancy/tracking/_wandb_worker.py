"""The W&B worker process: turns the run records it reads into W&B runs.

Spawned by `WandbTracker.prepare` (or `start`) as `python -m
aeromancy.tracking._wandb_worker --lock PATH --lock-fd FD --deadline S --runs-dir DIR`,
holding the lock on PATH through the inherited FD until it exits. It imports W&B and
starts its service at once, then reads JSON lines on stdin: one `start` (project,
entity, group, folder, online, remote), then one `log` per run record, until stdin
closes, which usually happens long before it is done: `aero` does not wait. Then it
writes `{"invocation": ..., "warnings": [...]}` beside the lock (PATH with `.json`)
and exits; the next tracked run reports the warnings. Still busy S seconds after stdin
closed, it writes that it was stopped and kills its process group (W&B's service
included). Stdin closing before `start` (no stage executed) ends it quietly, having
written nothing in the project. It never talks to the user: W&B's output and this
module's log go to stderr, a file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from aeromancy.runs import SUCCEEDED, RunRecord

log = logging.getLogger("aeromancy.tracking.wandb.worker")

ONLINE_INIT_TIMEOUT = 10.0
NICENESS = 10
# Nothing about the machine, its environment, argv, git or console: the run
# record already holds what matters, redacted.
SETTINGS: dict[str, Any] = {
    "x_disable_meta": True,
    "x_disable_stats": True,
    "x_disable_machine_info": True,
    "x_save_requirements": False,
    "disable_git": True,
    "disable_code": True,
    "save_code": False,
    "console": "off",
    "silent": True,
    "init_timeout": ONLINE_INIT_TIMEOUT,
    "program": "aero repro",
}
DVC_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?$")
NODE_KEYS = ("digest", "kind")


class Session:
    """One invocation's W&B runs, one after the other."""

    def __init__(self, setup: dict[str, Any]) -> None:
        import wandb

        self._wandb = wandb
        self._setup = setup
        self.online = bool(setup["online"])
        self.warnings: list[str] = []
        self._code = git_tracked(os.getcwd())
        # Start W&B's service now, while the first stage still runs.
        wandb.setup(settings=self._settings())

    def log(self, record: RunRecord) -> None:
        """Log `record` as one W&B run; online trouble moves it offline."""
        try:
            self._log(record)
        except Exception as exc:
            if not self.online:
                log.exception("W&B could not log run %s", record.run_id)
                self.warnings.append(
                    f"W&B could not log run {record.run_id}: {first_line(exc)}"
                )
                return
            self.online = False
            self.warnings.append(
                f"W&B online failed for run {record.run_id} ({first_line(exc)}); "
                "it and later runs are kept offline for `aero runs sync`"
            )
            # The service still holds the failed run's id: start a fresh one.
            self._wandb.teardown()
            self._wandb.setup(settings=self._settings())
            self.log(record)

    def close(self) -> list[str]:
        """Stop W&B's service, which writes out what it still holds."""
        try:
            self._wandb.teardown()
        except Exception as exc:
            log.exception("W&B did not stop cleanly")
            return [f"W&B did not stop cleanly: {first_line(exc)}"]
        return []

    def _log(self, record: RunRecord) -> None:
        run = self._wandb.init(
            project=self._setup["project"],
            entity=self._setup["entity"],
            group=record.invocation or self._setup["group"],
            job_type=record.stage,
            id=record.run_id,
            name=record.run_id,
            config=run_config(record),
            tags=run_tags(record),
            dir=self._setup["dir"],
            mode="online" if self.online else "offline",
            settings=self._settings(),
        )
        run.summary.update(run_summary(record))
        for artifact in self._outputs(record):
            run.log_artifact(artifact)
        self._log_inputs(run, record)
        run.finish(exit_code=0 if record.status == SUCCEEDED else record.exit_code or 1)
        log.info("logged run %s (%s)", record.run_id, record.stage)

    def _settings(self) -> Any:
        return settings(self._wandb)

    def _outputs(self, record: RunRecord) -> list[Any]:
        artifacts = []
        for path, entry in sorted(record.outputs.items()):
            url = reference(entry, self._setup["remote"])
            if url:
                artifact = self._artifact(artifact_name(path), "dataset", entry)
                add_reference(artifact, url, path)
                artifacts.append(artifact)
        return artifacts

    def _log_inputs(self, run: Any, record: RunRecord) -> None:
        inputs = [
            (path, url)
            for path, entry in data_entries(record.fingerprint).items()
            if path not in self._code
            and (url := reference(entry, self._setup["remote"]))
        ]
        if self.online:
            for path, url in inputs:
                artifact = self._artifact(artifact_name(path), "dataset", {})
                add_reference(artifact, url, path)
                run.use_artifact(artifact)
        elif inputs:
            # TODO: use_artifact per input once W&B accepts it offline (0.31 raises).
            artifact = self._artifact(f"{artifact_name(record.stage)}-inputs", "inputs")
            for path, url in inputs:
                add_reference(artifact, url, path)
            run.log_artifact(artifact)

    def _artifact(
        self, name: str, kind: str, metadata: dict[str, Any] | None = None
    ) -> Any:
        return self._wandb.Artifact(name, type=kind, metadata=metadata or None)


def add_reference(artifact: Any, url: str, name: str) -> None:
    """Reference `url` from `artifact` as `name`, without W&B touching the store.

    This is the entry `add_reference(url, checksum=False)` makes, built directly:
    for s3:// W&B would otherwise create a boto3 client (about 0.25 s) per
    artifact only to leave it unused.
    """
    try:
        from wandb.sdk.artifacts.artifact_manifest_entry import ArtifactManifestEntry

        make: Any = ArtifactManifestEntry
        entry = make(path=name, ref=url, digest=url)
        artifact.manifest.add_entry(entry)
    except (ImportError, AttributeError, TypeError, ValueError):
        # TODO: drop this path if W&B makes checksum-free references cheap.
        artifact.add_reference(url, name=name, checksum=False)


def run_config(record: RunRecord) -> dict[str, Any]:
    """The W&B config of a run: the fingerprint tree, its digest, params, command."""
    return {
        "fingerprint": record.fingerprint,
        "fingerprint_digest": record.fingerprint_digest,
        "params": record.params,
        "command": record.command,
        "stage": record.stage,
        "invocation": record.invocation,
    }


def run_tags(record: RunRecord) -> list[str]:
    """Tags: the commit (short), the status, and `rerun` for a rerun."""
    tags = [record.status]
    if record.commit:
        tags.insert(0, record.commit[:8])
    if record.rerun_of:
        tags.append("rerun")
    return tags


def run_summary(record: RunRecord) -> dict[str, Any]:
    """The W&B summary: status, exit code, timings and output hashes."""
    return {
        "status": record.status,
        "exit_code": record.exit_code,
        "started": record.started,
        "ended": record.ended,
        "duration_s": duration(record.started, record.ended),
        "outputs": record.outputs,
    }


def duration(started: str, ended: str) -> float | None:
    """Seconds between two ISO 8601 times; None when either is missing or bad."""
    try:
        delta = dt.datetime.fromisoformat(ended) - dt.datetime.fromisoformat(started)
    except (TypeError, ValueError):
        return None
    return delta.total_seconds()


def data_entries(fingerprint: dict[str, Any]) -> dict[str, Any]:
    """The fingerprint's data node as {dependency path: hash or hash entry}."""
    node = fingerprint.get("data") or {}
    if not isinstance(node, dict):
        return {}
    for nested in ("paths", "deps", "items"):
        if isinstance(node.get(nested), dict):
            node = node[nested]
            break
    return {path: value for path, value in node.items() if path not in NODE_KEYS}


def reference(entry: Any, remote: str) -> str:
    """Where a DVC-tracked path's content lives in the remote, or "" if unknown.

    An entry is a DVC hash (`md5:<hex>`, `<hex>`, with `.dir` for a folder) or a
    mapping with an explicit `url`, or with an `md5` or `hash`; one marked
    `"pushed": false` is not in the remote. DVC 3 stores content under
    `files/md5/<2 chars>/<rest>`.
    """
    if isinstance(entry, dict):
        if entry.get("pushed") is False:
            return ""
        if entry.get("url"):
            return str(entry["url"])
        entry = entry.get("md5") or entry.get("hash") or ""
    if not (remote and isinstance(entry, str)):
        return ""
    digest = entry.removeprefix("md5:")
    if not DVC_MD5.match(digest):
        return ""
    return f"{remote}/files/md5/{digest[:2]}/{digest[2:]}"


def git_tracked(folder: str) -> set[str]:
    """The paths git tracks in `folder`, and their parent folders.

    A dependency git tracks is code: DVC never pushes it to the remote.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"],
            cwd=folder,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode(errors="replace")
    except (OSError, subprocess.SubprocessError):
        return set()
    tracked: set[str] = set()
    for path in filter(None, listed.split("\0")):
        parts = path.split("/")
        tracked.update("/".join(parts[:end]) for end in range(1, len(parts) + 1))
    return tracked


def artifact_name(path: str) -> str:
    """A W&B artifact name for a path: letters, digits, `-`, `_` and `.` only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", path).strip("-.")[:128] or "data"


def first_line(exc: BaseException) -> str:
    """An exception's message as one short line, for a warning."""
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


# What the first `wandb.init` imports (W&B 0.31: its launch package for job
# inputs, then PyYAML for config defaults): about 0.4 s, taken in `warm_up`.
FIRST_RUN_IMPORTS = ("wandb.sdk.launch", "yaml")


def warm_up() -> Any:
    """Import W&B and start its service (about 1.5 s) while the parent still
    works; nothing is written in the project. Returns the `wandb` module."""
    import importlib

    import wandb

    wandb.setup(settings=settings(wandb))
    for name in FIRST_RUN_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:  # another W&B release: its first run imports it
            log.debug("W&B warm-up: no module %s", name)
    return wandb


def settings(wandb: Any) -> Any:
    """W&B settings from `SETTINGS`, less those this W&B release lacks."""
    # Older W&B releases lack some of these; they capture less anyway.
    known = getattr(wandb.Settings, "model_fields", SETTINGS)
    return wandb.Settings(
        **{name: value for name, value in SETTINGS.items() if name in known}
    )


class Outcome:
    """The worker's result file, written once: by `serve` at the end, or by the
    watchdog that stops a worker past its deadline, whichever comes first."""

    def __init__(self, lock: Path | None) -> None:
        self.invocation = ""
        self._lock = lock
        self._done = False
        self._mutex = threading.Lock()

    def write(self, warnings: list[str]) -> None:
        """Leave `warnings` beside the lock, atomically; later calls do nothing."""
        with self._mutex:
            if self._done:
                return
            self._done = True
            for warning in warnings:
                log.warning("%s", warning)
            if self._lock is None:
                return
            result = self._lock.with_suffix(".json")
            partial = self._lock.with_suffix(".part")
            document = {"invocation": self.invocation, "warnings": warnings}
            partial.write_text(json.dumps(document), encoding="utf-8")
            os.replace(partial, result)

    def discard(self) -> None:
        """No stage executed: remove the lock, leave no result."""
        with self._mutex:
            self._done = True
            if self._lock is not None:
                self._lock.unlink(missing_ok=True)


def serve(lines: Iterable[str], outcome: Outcome) -> None:
    """Log every record read from `lines`, then write the warnings as the result.

    The result goes out once W&B's service has stopped: `run.finish()` returns
    before an offline run's file is on disk, stopping the service flushes it.
    """
    session: Session | None = None
    warnings: list[str] = []
    lines = iter(lines)
    try:
        wandb = warm_up()
        first = next(lines, "")
        if not first.strip():
            outcome.discard()
            wandb.teardown()
            return  # ended before any stage executed: nothing to log
        setup = json.loads(first)
        outcome.invocation = str(setup.get("group") or "")
        session = Session(setup)
        for line in lines:
            message = json.loads(line)
            if message.get("op") == "log":
                session.log(RunRecord.from_json(message["record"]))
        warnings = session.warnings
    except Exception as exc:
        log.exception("W&B worker failed")
        warnings = [
            *(session.warnings if session else []),
            f"W&B logging failed: {exc}",
        ]
    if session:
        warnings.extend(session.close())
    outcome.write(warnings)


def read_ahead(stream: TextIO, at_end: Callable[[], None]) -> Iterator[str]:
    """The lines of `stream`, read by a thread, so that `at_end` runs as soon
    as the input ends, however far behind the worker is."""
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)
        at_end()

    threading.Thread(target=pump, name="aero-wandb-input", daemon=True).start()
    while (line := lines.get()) is not None:
        yield line


def watchdog(seconds: float, outcome: Outcome, runs: str) -> None:
    """Stop this worker `seconds` from now, saying so in its result."""

    def stop() -> None:
        outcome.write(
            [
                f"W&B did not finish within {seconds:g} s and was stopped; "
                f"runs not yet written are missing from {runs}"
            ]
        )
        if os.getpgrp() == os.getpid():  # the group is ours: W&B's service too
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=__name__)
    parser.add_argument("--lock", type=Path, help="marker held while running")
    parser.add_argument("--lock-fd", type=int, help="open descriptor holding it")
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--runs-dir", default="the W&B folder")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve stdin; stdout goes to stderr (a file), the result beside the lock."""
    args = parse_args(argv)
    if args.lock_fd is not None:
        os.set_inheritable(args.lock_fd, False)  # W&B's service must not hold it
    os.dup2(2, 1)
    # Background work: on a busy machine the stages and `aero` come first. W&B's
    # service, started from here, inherits it.
    os.nice(NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    outcome = Outcome(args.lock)
    lines = read_ahead(
        sys.stdin, lambda: watchdog(args.deadline, outcome, args.runs_dir)
    )
    serve(lines, outcome)
    return 0


if __name__ == "__main__":
    sys.exit(main())
