"""Read a project's data in a notebook, at the version the notebook is pinned to.

A notebook never makes a tracked run: it reads the datasets and stage outputs
of one. `aero export-notebook-env [RUN_ID]` installs a Jupyter kernel whose
environment carries the pin (`AEROMANCY_PIN`): the run, or the commit, the
data comes from. In that kernel::

    import aeromancy.notebook as an

    model = an.load("build/model.json")        # bytes
    prepared = an.load("build/prepared")       # {"test.csv": bytes, ...}
    with an.open("build/predictions.csv", mode="r") as f: ...
    frame = pandas.read_csv(an.path("build/predictions.csv"))
    an.lineage("build/model.json")             # which run and fingerprint

Paths are relative to the project's root, whatever the working directory.
`run=` reads another run instead of the pin. Without a pin (outside an
exported kernel) the version is the project's HEAD commit.

A run pin reads each output by the hash its run record gives, so it reads the
same bytes however far the workspace has moved on; other paths are read as DVC
recorded them at the commit that recorded the run.
"""

from __future__ import annotations

import builtins
import functools
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import IO, Any

from aeromancy import _pinned, gitstate
from aeromancy._pinned import MissingDataError, NotTrackedError
from aeromancy.errors import UserError

__all__ = [
    "PIN_ENV",
    "Lineage",
    "MissingDataError",
    "NotTrackedError",
    "Pin",
    "lineage",
    "load",
    "open",
    "path",
    "pin_for",
]

PIN_ENV = "AEROMANCY_PIN"
#: Set in kernels that read through the host's data broker: its socket.
BROKER_ENV = "AEROMANCY_BROKER"


@dataclass(frozen=True)
class Pin:
    """Which version a notebook's data comes from: a run, or a commit.

    `commit` is where DVC's files are read for paths the run does not name: for
    a run, the commit that recorded it; `kernel` is the kernel that holds it.
    """

    project: str
    commit: str
    run: str | None = None
    stage: str | None = None
    fingerprint: str | None = None
    kernel: str | None = None

    def to_json(self) -> str:
        """Compact JSON, as `AEROMANCY_PIN` holds it."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Pin:
        """Parse a pin; a damaged one is a user error saying how to renew it."""
        try:
            raw = json.loads(text)
            return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
        except (ValueError, TypeError) as exc:
            raise UserError(
                f"{PIN_ENV} is not a valid pin ({exc}); export the kernel again "
                "with `aero export-notebook-env`"
            ) from None

    @property
    def where(self) -> str:
        """The pin as errors name it: "run ID (commit abc)" or "commit abc"."""
        if self.run:
            return f"run {self.run} (commit {self.commit[:12]})"
        return f"commit {self.commit[:12]}"


@dataclass(frozen=True)
class Lineage:
    """Where a notebook's data comes from: the pin and, for one path, its hash
    and the run that made it."""

    project: str
    commit: str
    pinned_by: str
    run: str | None = None
    stage: str | None = None
    fingerprint: str | None = None
    path: str | None = None
    hash: str | None = None
    made_by: str | None = None
    made_by_fingerprint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        if self.run:
            head = (
                f"data of run {self.run} (stage {self.stage}, fingerprint "
                f"{(self.fingerprint or '')[:12]}) at commit {self.commit[:12]}"
            )
        else:
            head = f"data at commit {self.commit[:12]}"
        lines = [f"{head}, pinned by {self.pinned_by}"]
        if self.path:
            made = "no recorded run made it (a dataset)"
            if self.made_by:
                made = (
                    f"made by run {self.made_by} (fingerprint "
                    f"{(self.made_by_fingerprint or '')[:12]})"
                )
            lines.append(f"{self.path}: {self.hash}, {made}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(str(self))


def load(
    path: str | os.PathLike[str], run: str | None = None
) -> bytes | dict[str, bytes]:
    """The content of a dataset or stage output at the pinned version.

    Args:
        path: a DVC-tracked path (or a file inside a tracked directory),
            relative to the project's root.
        run: read this run's version instead of the pin.

    Returns:
        The bytes of a file; for a directory, `{name inside it: bytes}`, with
        names in `/` form, sorted.

    Raises:
        NotTrackedError: the path is no dataset or output at that version.
        MissingDataError: the data is in neither the DVC cache nor the remote.
        UnknownRunError: `run` names no known run.
    """
    _, found = _reader().files(path, run)
    if found and found[0][0] == "":
        return found[0][1].read_bytes()
    return {name: local.read_bytes() for name, local in found}


def open(
    path: str | os.PathLike[str], run: str | None = None, mode: str = "rb"
) -> IO[Any]:
    """A read-only file object on a file at the pinned version.

    Args:
        path: a DVC-tracked file, relative to the project's root.
        run: read this run's version instead of the pin.
        mode: "rb" for bytes or "r" for UTF-8 text.
    """
    if mode not in ("rb", "r"):
        raise UserError(
            f"mode must be 'rb' or 'r' (got '{mode}'): pinned data is read-only"
        )
    shown, found = _reader().files(path, run)
    if not found or found[0][0] != "":
        raise UserError(
            f"'{shown}' is a directory; open a file inside it, or use load() or path()"
        )
    if mode == "r":
        return builtins.open(found[0][1], encoding="utf-8")
    return builtins.open(found[0][1], "rb")


def path(path: str | os.PathLike[str], run: str | None = None) -> Path:
    """A local path holding the pinned version, for tools that want a file name.

    The path is under the project's `.aeromancy/notebook/` and links to DVC's
    read-only cache; a directory is laid out with its files.
    """
    return _reader().view(path, run)


def lineage(
    path: str | os.PathLike[str] | None = None, run: str | None = None
) -> Lineage:
    """Which run, commit and fingerprint the data comes from; print it to read it.

    With `path`, also its hash and the run that made it (none for a dataset).
    """
    return _reader().lineage(path, run)


def pin_for(root: Path, run: str | None = None) -> Pin:
    """The pin of `run` (its commit is the one that recorded it), or of HEAD.

    Raises:
        UnknownRunError: `run` names no known run.
        UserError: the run did not succeed, so it has no outputs to read.
    """
    if run is None:
        return Pin(project=str(root), commit=gitstate.head_commit(root))
    record = run_record(root, run)
    return Pin(
        project=str(root),
        commit=_recording_commit(root, record.run_id) or record.commit,
        run=record.run_id,
        stage=record.stage,
        fingerprint=record.fingerprint_digest,
    )


def _reader() -> _HostReader | Any:
    """Who reads: this process through DVC, or, in a kernel that runs in a
    container or a Nix shell, the data broker on the host (`kernel/broker.py`)."""
    address = os.environ.get(BROKER_ENV)
    if address:
        from aeromancy.kernel.broker import Client

        return Client(address)
    return _HostReader()


class _HostReader:
    """Reads pinned data in this process, through DVC and the local cache. The
    broker serves a kernel's calls with one, so both sides read alike."""

    def files(
        self, path: str | os.PathLike[str], run: str | None
    ) -> tuple[str, list[tuple[str, Path]]]:
        """The path as located, and `(name inside it, local file)` of its files."""
        located, found = _files(path, run)
        return located.path, found

    def view(self, path: str | os.PathLike[str], run: str | None) -> Path:
        """A local path laid out with the pinned version (see `path()`)."""
        context = _context(run)
        located, found = _files(path, run, context)
        return _pinned.view(context.root, located, found)

    def lineage(self, path: str | os.PathLike[str] | None, run: str | None) -> Lineage:
        """See `lineage()`."""
        context = _context(run)
        pin = context.pin
        base = Lineage(
            project=pin.project,
            commit=pin.commit,
            pinned_by=context.pinned_by,
            run=pin.run,
            stage=pin.stage,
            fingerprint=pin.fingerprint,
        )
        if path is None:
            return base
        located = _locate(context, path)
        maker = _made_by(context.root, located.output)
        return Lineage(
            **{
                **base.as_dict(),
                "path": located.path,
                "hash": located.output.hash,
                "made_by": maker.run_id if maker else None,
                "made_by_fingerprint": maker.fingerprint_digest if maker else None,
            }
        )


@dataclass(frozen=True)
class _Context:
    root: Path
    pin: Pin
    pinned_by: str
    recorded: dict[str, str]


def _context(run: str | None) -> _Context:
    """The project and pin a call reads: `run`, the kernel's pin, or HEAD."""
    from aeromancy import config

    text = os.environ.get(PIN_ENV)
    kernel_pin = Pin.from_json(text) if text else None
    root = Path(kernel_pin.project) if kernel_pin else config.find_root()
    if run is not None:
        pin, by = pin_for(root, run), "the run= argument"
    elif kernel_pin is not None:
        pin, by = kernel_pin, f"kernel {kernel_pin.kernel or '(unnamed)'}"
    else:
        pin, by = pin_for(root), "HEAD (no kernel pin)"
    recorded = _recorded(root, pin.run) if pin.run else {}
    return _Context(root, pin, by, recorded)


def _files(
    path: str | os.PathLike[str], run: str | None, context: _Context | None = None
) -> tuple[_pinned.Located, list[tuple[str, Path]]]:
    context = context or _context(run)
    located = _locate(context, path)
    return located, _pinned.files(context.root, located, context.pin.commit)


def _locate(context: _Context, path: str | os.PathLike[str]) -> _pinned.Located:
    relative = _relative(context.root, path)
    return _pinned.locate(
        context.root, context.pin.commit, relative, context.recorded, context.pin.where
    )


def _relative(root: Path, path: str | os.PathLike[str]) -> str:
    """`path` from the project's root in `/` form; an absolute one must be inside."""
    given = Path(path)
    if given.is_absolute():
        try:
            given = given.resolve().relative_to(root.resolve())
        except ValueError:
            raise UserError(f"'{path}' is outside the project at {root}") from None
    parts = given.as_posix().strip("/").split("/")
    if ".." in parts:
        raise UserError(f"'{path}' leaves the project; give it from the project's root")
    return "/".join(p for p in parts if p not in ("", "."))


def _recorded(root: Path, run: str) -> dict[str, str]:
    """The hashes a run record gives: its outputs and its inputs."""
    record = run_record(root, run)
    hashes = {p: str(h) for p, h in record.fingerprint.get("data", {}).items() if h}
    for output, entry in record.outputs.items():
        if entry.get("hash"):
            hashes[output] = str(entry["hash"])
    return hashes


@functools.cache
def run_record(root: Path, run: str) -> Any:
    """The record of a run that succeeded, from the local index or else the
    remote; read once per process.

    Raises:
        UnknownRunError: no record has that id.
        UserError: the run did not succeed, so it has no outputs to read.
    """
    from aeromancy import data, runs

    try:
        record = runs.load(root, None, run)
    except runs.UnknownRunError:
        record = runs.load(root, data.project_remote(root), run)
    if record.status != runs.SUCCEEDED:
        raise UserError(
            f"run {record.run_id} {record.status}: it has no outputs to read; "
            "pin a run that succeeded (`aero runs list`)"
        )
    return record


def _recording_commit(root: Path, run_id: str) -> str | None:
    """The commit whose message names the run: where `aero repro` committed the
    `dvc.lock` that holds the run's outputs."""
    found = gitstate.git(
        root, "log", "--all", "-F", f"--grep={run_id}", "--format=%H", "-n1"
    )
    return found or None


def _made_by(root: Path, output: _pinned.Tracked) -> Any:
    """The newest succeeded run whose output `output.path` has `output.hash`."""
    from aeromancy import runs

    for record in runs.list_runs(root, None):
        entry = record.outputs.get(output.path) or {}
        if record.status == runs.SUCCEEDED and entry.get("hash") == output.hash:
            return record
    return None
