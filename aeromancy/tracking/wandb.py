"""The W&B tracker: one W&B run per executed stage, logged off the critical path.

W&B's start-up (import, its service, the first run's init and finish) costs
about 1.5 s and each further run tens of milliseconds. None of that may sit
between two stages, nor between the last stage and the prompt: `prepare` (or
`start`) spawns one worker process (`aeromancy.tracking._wandb_worker`) that
imports W&B and warms its service while the first stage runs; `log` queues the
run record and returns at once (a feeder thread writes it to the worker's stdin
as one JSON line); `finish` ends the input and returns without waiting. The
worker has its own session, so neither a Ctrl-C meant for a stage nor `aero`
exiting stops it from writing the runs.

Each worker holds a lock on a marker file under `.aeromancy/wandb-workers/`
while it runs and leaves its result (warnings, if any) beside it. The next
tracked run reports those warnings once (`earlier_warnings`); `aero runs sync`
and the tests wait for running workers first (`wait_for_workers`). A worker
still busy `FINISH_TIMEOUT` seconds after its input ended stops itself and
says so in its result.

Runs are offline by default, written under `$WANDB_DIR` or `.aeromancy/wandb`
and uploaded later by `aero runs sync`. They go online only with
`mode = "online"`, an API key (`WANDB_API_KEY` or `wandb login`) and a W&B
host that answers within two seconds; otherwise they stay offline and
`finish` says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import netrc
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import IO, Any

from aeromancy.config import RemoteConfig, TrackerConfig
from aeromancy.errors import UserError
from aeromancy.runs import RunRecord
from aeromancy.tracking.base import TrackerLink, reachable, redact_url

__all__ = [
    "WandbTracker",
    "earlier_warnings",
    "offline_runs",
    "runs_dir",
    "sync",
    "wait_for_workers",
    "wandb_dir",
    "workers_dir",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.wandb.ai"
REACH_TIMEOUT = 2.0
FINISH_TIMEOUT = 60.0
SYNC_TIMEOUT = 600.0
WAIT_POLL = 0.05
WORKER = "aeromancy.tracking._wandb_worker"


def wandb_dir(root: Path) -> Path:
    """Where W&B writes for the project: `$WANDB_DIR`, else `.aeromancy/wandb`."""
    configured = os.environ.get("WANDB_DIR")
    return Path(configured) if configured else root / ".aeromancy" / "wandb"


def runs_dir(root: Path) -> Path:
    """The folder holding one `[offline-]run-<time>-<id>` folder per W&B run."""
    return wandb_dir(root) / "wandb"


def offline_runs(root: Path) -> list[Path]:
    """The offline run folders W&B has written for the project, oldest first."""
    found = runs_dir(root).glob("offline-run-*")
    return sorted(path for path in found if any(path.glob("run-*.wandb")))


def workers_dir(root: Path) -> Path:
    """Where each worker keeps its lock (`<id>.lock`) and result (`<id>.json`)."""
    return root / ".aeromancy" / "wandb-workers"


def _running(lock: Path) -> bool:
    """Whether a worker still holds `lock` (it is released when it exits)."""
    try:
        fd = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _busy(root: Path) -> list[Path]:
    """The locks of workers that are running and have left no result yet."""
    return [
        lock
        for lock in sorted(workers_dir(root).glob("*.lock"))
        if not lock.with_suffix(".json").exists() and _running(lock)
    ]


def wait_for_workers(root: Path, timeout: float = FINISH_TIMEOUT + 10) -> bool:
    """Wait until every W&B worker of the project has ended or left its result.

    A worker stops itself `FINISH_TIMEOUT` seconds after its input ended, so the
    default timeout only guards against a worker frozen from outside.

    Returns:
        True when none is left running, False when `timeout` passed first.
    """
    deadline = time.monotonic() + timeout
    while _busy(root):
        if time.monotonic() >= deadline:
            return False
        time.sleep(WAIT_POLL)
    return True


def earlier_warnings(root: Path) -> list[str]:
    """The warnings of W&B workers that ended since the last call, once each.

    A worker that ended without leaving a result (killed, or it crashed) is a
    warning too. Running workers are left for a later call.
    """
    found: list[str] = []
    for lock in sorted(workers_dir(root).glob("*.lock")):
        result = lock.with_suffix(".json")
        if result.exists():
            found.extend(_result_warnings(result))
        elif _running(lock):
            continue
        else:
            found.append(
                f"a W&B worker ended without saying how its runs went; "
                f"see {wandb_dir(root) / 'aeromancy-worker.log'}"
            )
        for path in (result, lock):
            path.unlink(missing_ok=True)
    return found


def _result_warnings(result: Path) -> list[str]:
    try:
        document = json.loads(result.read_text(encoding="utf-8"))
        warnings = [str(warning) for warning in document.get("warnings", [])]
        invocation = str(document.get("invocation") or "")
    except (OSError, ValueError, AttributeError) as exc:
        return [f"the result of a W&B worker is unreadable ({result}: {exc})"]
    if invocation:
        return [f"W&B, runs of {invocation}: {warning}" for warning in warnings]
    return warnings


def base_url() -> str:
    """The W&B API server: `$WANDB_BASE_URL`, else W&B's cloud."""
    return (os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")


class WandbTracker:
    """Logs each executed stage as one W&B run, through one worker process."""

    kind = "wandb"

    def __init__(
        self, config: TrackerConfig, root: Path, project: str, remote: RemoteConfig
    ) -> None:
        self._config = config
        self._root = root
        self._project = project
        self._remote = remote
        self._worker: subprocess.Popen[bytes] | None = None
        self._feeder: Feeder | None = None
        self._online = False
        self._started = False
        self._logged = 0
        self._warnings: list[str] = []

    def check(self) -> None:
        """Nothing to refuse up front: an unreachable W&B falls back to offline."""

    def prepare(self) -> None:
        """Spawn the worker before any stage is known to execute, for offline runs.

        It imports W&B (about 0.8 s) while DVC opens and the first stage runs,
        and writes nothing until `start`; `finish` without `start` ends it
        without waiting. Online runs spawn in `start`, once W&B is reachable.
        """
        if self._worker is not None or self._config.mode == "online":
            return
        try:
            self._spawn_worker()
        except OSError as exc:
            log.debug("W&B worker not prepared: %s", exc)  # `start` tries again

    def start(self, invocation: str) -> None:
        """Decide online or offline and spawn the worker, unless prepared.

        Takes milliseconds offline and at most about two seconds online; call it
        early, so W&B warms up while everything else in `aero repro` runs.
        """
        if self._started:
            return
        self._started = True
        if self._worker is None:
            self._online = self._config.mode == "online" and self._can_go_online()
            try:
                self._spawn_worker()
            except OSError as exc:
                self._warnings.append(f"W&B logging cannot start: {exc}")
                return
        assert self._worker is not None and self._feeder is not None
        self._feeder.put(self._setup(invocation, wandb_dir(self._root)))
        log.info("W&B worker %d started (%s)", self._worker.pid, self._mode)

    def log(self, record: RunRecord) -> TrackerLink:
        """Hand the record to the worker; the link is known before W&B is done.

        The link holds the run's id (the record's), the folder of W&B's local
        files and, when an entity is configured, the run's page: live when online,
        after `aero runs sync` when the run was kept offline (`finish` says so).
        """
        if not self._started:
            self.start(record.invocation)
        if self._feeder:
            self._feeder.put({"op": "log", "record": record.to_json()})
            self._logged += 1
        link = {"kind": self.kind, "id": record.run_id}
        link["dir"] = str(runs_dir(self._root))
        url = self._run_url(record.run_id)
        if url:
            link["url"] = url
        return link

    def finish(self) -> list[str]:
        """End the worker's input and return without waiting for W&B.

        The worker writes the runs after `aero` has exited; what goes wrong
        there is reported by the next tracked run (`earlier_warnings`), as are
        the results of earlier workers now, when this run logged anything.
        """
        worker, feeder = self._worker, self._feeder
        self._worker = self._feeder = None
        if worker is None or feeder is None:
            return self._warnings
        # Only hands the queued lines to the pipe: the worker may still import.
        feeder.close(FINISH_TIMEOUT)
        if feeder.broken:
            self._warnings.append(
                f"W&B worker stopped early ({feeder.broken}); see {self._log}"
            )
        # W&B's own shutdown goes on in the worker; reap it without waiting.
        threading.Thread(target=worker.wait, daemon=True).start()
        if self._started:
            self._warnings.extend(earlier_warnings(self._root))
        return self._warnings

    def _spawn_worker(self) -> None:
        directory = wandb_dir(self._root)
        directory.mkdir(parents=True, exist_ok=True)
        markers = workers_dir(self._root)
        markers.mkdir(parents=True, exist_ok=True)
        lock = markers / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}.lock"
        # Locked before the worker exists and handed to it, so the marker is
        # held from the first moment until the worker's last.
        fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._worker = self._spawn(directory, lock, fd)
        except BaseException:
            lock.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        assert self._worker.stdin is not None
        self._feeder = Feeder(self._worker.stdin)

    def _spawn(self, directory: Path, lock: Path, fd: int) -> subprocess.Popen[bytes]:
        argv = [sys.executable, "-m", WORKER, "--lock", str(lock), "--lock-fd"]
        argv += [str(fd), "--deadline", f"{FINISH_TIMEOUT:g}"]
        argv += ["--runs-dir", str(runs_dir(self._root))]
        with self._log.open("ab") as stderr:
            return subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                cwd=self._root,
                env=self._worker_env(),
                start_new_session=True,
                pass_fds=(fd,),
            )

    @property
    def _mode(self) -> str:
        return "online" if self._online else "offline"

    def _can_go_online(self) -> bool:
        url = base_url()
        if not (os.environ.get("WANDB_API_KEY") or _netrc_has(_host(url))):
            self._warn_offline(
                "no W&B API key (set WANDB_API_KEY or run `wandb login`)"
            )
            return False
        why = reachable(url, REACH_TIMEOUT)
        if why:
            self._warn_offline(f"W&B at {redact_url(url)} is unreachable ({why})")
            return False
        return True

    def _warn_offline(self, why: str) -> None:
        self._warnings.append(
            f"{why}; runs kept offline in {runs_dir(self._root)} for `aero runs sync`"
        )

    def _setup(self, invocation: str, directory: Path) -> dict[str, Any]:
        return {
            "op": "start",
            "project": self._project,
            "entity": self._config.entity,
            "group": invocation,
            "dir": str(directory),
            "online": self._online,
            "remote": _reference_base(self._remote, self._root),
        }

    def _worker_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["WANDB_SILENT"] = "true"
        env["WANDB_MODE"] = self._mode
        if self._remote.endpoint:
            # W&B resolves s3:// references against this endpoint (MinIO, Ceph...).
            env["AWS_S3_ENDPOINT_URL"] = self._remote.endpoint
        return env

    def _run_url(self, run_id: str) -> str:
        if not self._config.entity:
            return ""
        app = base_url().replace("://api.wandb.ai", "://wandb.ai")
        return f"{app}/{self._config.entity}/{self._project}/runs/{run_id}"

    @property
    def _log(self) -> Path:
        return wandb_dir(self._root) / "aeromancy-worker.log"


class Feeder:
    """Writes messages to the worker's stdin from a thread.

    `log` only queues a message, so it never blocks on a full pipe while the
    worker is still importing W&B.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self.broken = ""
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._run, args=(stream,), name="aero-wandb-feeder", daemon=True
        )
        self._thread.start()

    def put(self, message: dict[str, Any]) -> None:
        """Queue one message (a JSON line) for the worker."""
        self._queue.put(json.dumps(message).encode() + b"\n")

    def close(self, timeout: float) -> None:
        """Send what is queued, then end of input; wait at most `timeout` seconds."""
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self, stream: IO[bytes]) -> None:
        try:
            while (data := self._queue.get()) is not None:
                stream.write(data)
                stream.flush()
        except OSError as exc:
            self.broken = exc.strerror or type(exc).__name__
            log.warning("W&B worker is gone: %s", exc)
        finally:
            with contextlib.suppress(OSError):
                stream.close()


def sync(root: Path, *, dry_run: bool = False) -> list[str]:
    """Upload the project's offline W&B runs with `wandb sync`.

    Returns:
        The run folders handed to `wandb sync` (with `dry_run`, those it would
        upload).

    Raises:
        UserError: No API key, W&B unreachable, or `wandb sync` failed (the
            message is then its last line of output).
    """
    # A worker may still be writing the last run's files.
    if not wait_for_workers(root):
        log.warning("a W&B worker is still running; its runs may be incomplete")
    folders = [str(path) for path in offline_runs(root)]
    if not folders:
        return []
    if not dry_run:
        _check_online(len(folders), runs_dir(root))
    command = [sys.executable, "-m", "wandb", "sync"]
    command += ["--dry-run"] if dry_run else []
    try:
        done = subprocess.run(
            [*command, *folders],
            capture_output=True,
            text=True,
            timeout=SYNC_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UserError(
            f"`wandb sync` did not finish within {SYNC_TIMEOUT:g} s; "
            f"check the network and run `aero runs sync` again"
        ) from None
    if done.returncode != 0:
        last = (done.stderr or done.stdout).strip().splitlines() or ["no output"]
        raise UserError(f"`wandb sync` failed: {last[-1]}")
    log.info("wandb sync handled %d offline runs", len(folders))
    return folders


def _check_online(count: int, folder: Path) -> None:
    """Refuse to sync without a key or a reachable W&B: `wandb sync` would hang."""
    url = base_url()
    kept = f"{count} offline run stays in {folder}"
    if count != 1:
        kept = f"{count} offline runs stay in {folder}"
    if not (os.environ.get("WANDB_API_KEY") or _netrc_has(_host(url))):
        raise UserError(
            f"no W&B API key; {kept}; run `wandb login` (or set WANDB_API_KEY) "
            "and `aero runs sync` again"
        )
    why = reachable(url, REACH_TIMEOUT)
    if why:
        raise UserError(
            f"W&B at {redact_url(url)} is unreachable ({why}); {kept}; "
            "run `aero runs sync` again when it answers"
        )


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""


def _reference_base(remote: RemoteConfig, root: Path) -> str:
    """The remote as a URL W&B can reference: `s3://...` as is, a folder as file://."""
    url = remote.url.strip()
    if not url:
        return ""
    if "://" in url:
        return url.rstrip("/")
    return (root / url).resolve().as_uri()


def _netrc_has(host: str) -> bool:
    path = os.environ.get("NETRC") or str(Path.home() / ".netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False
