"""Scaling curves: how our cost per stage and per data file grows with size.

Each curve times one of our commands and the peer's at a few sizes (stages in
a pipeline, files in a dataset), fewer runs at the big sizes so that the whole
benchmark stays within minutes. At each size it reports both medians, each
side's time per unit and our overhead per unit, (ours - peer) / size.

A curve is **flat** when the overhead per unit at the largest size is at most
`flat_ratio` (1.5) times the one at the size before it, or at most `floor`
seconds per unit: a fixed start-up cost spread over more units only makes the
overhead per unit fall, so only a cost that grows faster than the size fails.
The marginal overhead, (our extra time at this size - at the size before) /
(the sizes' difference), is shown too: what each further unit costs us beyond
the peer, start-up left out (noisier, from differences of medians).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import (
    Pair,
    Sandbox,
    Stats,
    make_sandbox,
    sample,
    seconds,
    untimed,
)


@dataclass(frozen=True)
class Curve:
    """One command pair measured at several sizes.

    `runs[i]` and `warmups[i]` are the samples and warm-ups at `sizes[i]`;
    `prepare(box, size)` sets a sandbox up for one size.
    """

    name: str
    ours: str
    peer: str
    unit: str
    sizes: tuple[int, ...]
    runs: tuple[int, ...]
    warmups: tuple[int, ...]
    prepare: Callable[[Sandbox, int], Pair]
    floor: float
    flat_ratio: float = 1.5

    def __post_init__(self) -> None:
        if not len(self.sizes) == len(self.runs) == len(self.warmups) >= 2:
            raise ValueError("a curve needs two sizes or more, each with its runs")


@dataclass(frozen=True)
class Point:
    """Both sides' times at one size."""

    size: int
    ours: Stats
    peer: Stats

    @property
    def overhead(self) -> float:
        """Our extra time per unit: (our median - the peer's) / size."""
        return (self.ours.median - self.peer.median) / self.size

    def marginal(self, before: Point) -> float:
        """Our extra time per unit added since `before`, a smaller size: what
        each further unit costs us beyond the peer, start-up left out."""
        extra = self.overhead * self.size - before.overhead * before.size
        return extra / (self.size - before.size)

    def to_json(self) -> dict[str, object]:
        return {
            "size": self.size,
            "ours": _rounded(self.ours),
            "peer": _rounded(self.peer),
            "ours_per_unit": round(self.ours.median / self.size, 6),
            "peer_per_unit": round(self.peer.median / self.size, 6),
            "overhead_per_unit": round(self.overhead, 6),
        }


@dataclass(frozen=True)
class CurveResult:
    """A measured curve and whether its overhead per unit stays flat."""

    name: str
    ours: str
    peer: str
    unit: str
    floor: float
    flat_ratio: float
    points: list[Point] = field(default_factory=list)

    @property
    def flat(self) -> bool:
        """The last point's overhead per unit is within `flat_ratio` of the one
        before it, or under `floor`."""
        before, last = self.points[-2].overhead, self.points[-1].overhead
        return last <= max(self.flat_ratio * before, self.floor)

    @property
    def criterion(self) -> str:
        before, last = self.points[-2].size, self.points[-1].size
        return (
            f"overhead per {self.unit} at {last:,} ≤ {self.flat_ratio:g}x that at "
            f"{before:,}, or ≤ {_per(self.floor)}"
        )

    def marginals(self) -> list[float | None]:
        """Each point's marginal overhead per unit (None for the first)."""
        pairs = zip(self.points, self.points[1:], strict=False)
        return [None, *(last.marginal(before) for before, last in pairs)]

    def to_json(self) -> dict[str, object]:
        points = []
        for point, marginal in zip(self.points, self.marginals(), strict=True):
            document = point.to_json()
            if marginal is not None:
                document["marginal_overhead_per_unit"] = round(marginal, 6)
            points.append(document)
        return {
            "name": self.name,
            "ours": self.ours,
            "peer": self.peer,
            "unit": self.unit,
            "criterion": self.criterion,
            "flat": self.flat,
            "points": points,
        }


def measure_curve(curve: Curve, folder: Path) -> CurveResult:
    """Measure `curve` at each size, each in its own sandbox under `folder`."""
    result = CurveResult(
        curve.name, curve.ours, curve.peer, curve.unit, curve.floor, curve.flat_ratio
    )
    for size, runs, warmup in zip(curve.sizes, curve.runs, curve.warmups, strict=True):
        box = make_sandbox(folder / f"size-{size}")
        pair = curve.prepare(box, size)
        try:
            ours, peer = sample(pair, runs, warmup)
        finally:
            if pair.close:
                pair.close()
        result.points.append(Point(size, Stats.of(ours), Stats.of(peer)))
    return result


def _rounded(stats: Stats) -> dict[str, float | int]:
    return {
        "median": round(stats.median, 6),
        "low": round(stats.low, 6),
        "high": round(stats.high, 6),
        "n": stats.n,
    }


def _per(value: float) -> str:
    """Seconds per unit, in the unit that reads best: `90 ms`, `1.25 ms`."""
    if abs(value) >= 0.01:
        return f"{value * 1000:.0f} ms"
    return f"{value * 1000:.2f} ms"


def _signed(value: float) -> str:
    return ("+" if value >= 0 else "") + _per(value)


# --- rendering ---------------------------------------------------------------


def render_curves(results: Iterable[CurveResult]) -> str:
    """One table per curve: a line per size, then the flatness verdict."""
    parts = []
    for curve in results:
        unit = curve.unit
        lines = [
            f"### {curve.name}\n",
            f"`{curve.ours}` against `{curve.peer}`.\n",
            f"| {unit}s | our median | peer median | ours per {unit} "
            f"| peer per {unit} | overhead per {unit} | marginal overhead "
            f"per added {unit} | n |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for point, marginal in zip(curve.points, curve.marginals(), strict=True):
            cells = (
                f"{point.size:,}",
                seconds(point.ours.median),
                seconds(point.peer.median),
                _per(point.ours.median / point.size),
                _per(point.peer.median / point.size),
                _signed(point.overhead),
                "" if marginal is None else _signed(marginal),
                str(min(point.ours.n, point.peer.n)),
            )
            lines.append("| " + " | ".join(cells) + " |")
        mark = "flat" if curve.flat else "NOT FLAT"
        lines.append(f"\n{mark}: {curve.criterion}.\n")
        parts.append("\n".join(lines))
    return "\n".join(parts)


# --- the curves ----------------------------------------------------------------


def chained_stages(count: int) -> str:
    """A dvc.yaml of `count` stages, each copying the one before's few bytes."""
    lines = ["stages:", "  s1:", "    cmd: echo one > s1.txt", "    outs:"]
    lines.append("      - s1.txt")
    for index in range(2, count + 1):
        lines += [
            f"  s{index}:",
            f"    cmd: cp s{index - 1}.txt s{index}.txt",
            "    deps:",
            f"      - s{index - 1}.txt",
            "    outs:",
            f"      - s{index}.txt",
        ]
    return "\n".join(lines) + "\n"


def wait_for_wandb(project: Path) -> Callable[[], None]:
    """Wait (untimed) for the W&B worker `aero repro` leaves behind, so that it
    does not run during the peer's next sample."""

    def wait() -> None:
        from aeromancy.tracking.wandb import wait_for_workers

        if not wait_for_workers(project):
            raise RuntimeError(f"the W&B worker of {project} did not end")

    return wait


def tracked_project(box: Sandbox, stages: str, message: str) -> Path:
    """A host-runtime, W&B-offline project running `stages`, locked by one
    tracked run and committed, so every forced run leaves the tree clean."""
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "host", "--tracker", "wandb")
    (project / "dvc.yaml").write_text(stages, encoding="utf-8")
    box.run("git", "commit", "--quiet", "-m", message, "dvc.yaml", cwd=project)
    box.run("aero", "repro", cwd=project)
    wait_for_wandb(project)()
    return project


def _stages_point(box: Sandbox, size: int) -> Pair:
    box = box.wandb_offline()
    project = tracked_project(box, chained_stages(size), f"{size} trivial stages")
    return Pair(
        untimed(
            box.command("aero", "repro", "--force", cwd=project),
            after=wait_for_wandb(project),
        ),
        box.command("dvc", "repro", "--force", cwd=project),
    )


def write_files(folder: Path, count: int, tag: str) -> None:
    """`count` small files of distinct content (`tag` makes them new objects)."""
    folder.mkdir(parents=True)
    for index in range(count):
        (folder / f"f{index:05d}.txt").write_text(f"{tag} {index}\n")


def _plain_project(box: Sandbox) -> Path:
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "host", "--tracker", "none")
    return project


def _ingest_point(box: Sandbox, size: int) -> Pair:
    """A fresh folder of `size` new files each run: hashed, cached, pushed and
    committed. The peer does the same by hand with DVC and git."""
    project = _plain_project(box)
    counter = itertools.count()
    sources = box.root / "sources"

    def fresh(side: str) -> tuple[Path, str]:
        name = f"{side}{next(counter)}"
        write_files(sources / name, size, name)
        return sources / name, name

    def ours() -> float:
        source, _ = fresh("a")
        return box.command("aero", "data", "ingest", str(source), cwd=project)()

    def peer() -> float:
        source, name = fresh("d")
        script = (
            f"cp -r {source} data/{name} && dvc add -q data/{name} && "
            f"dvc push -q data/{name}.dvc && "
            f"git add data/{name}.dvc data/.gitignore && git commit -qm {name}"
        )
        return box.command("sh", "-c", script, cwd=project)()

    # Each figure times its command alone: writing the files is not in it.
    return Pair(ours, peer)


def _status_point(box: Sandbox, size: int) -> Pair:
    project = _plain_project(box)
    source = box.root / "source"
    write_files(source, size, "status")
    box.run("aero", "data", "ingest", str(source), "--name", "files", cwd=project)
    return Pair(
        box.command("aero", "data", "status", cwd=project),
        box.command("dvc", "data", "status", "--not-in-remote", cwd=project),
    )


CURVES: tuple[Curve, ...] = (
    Curve(
        "tracked repro, 1 to 50 trivial stages",
        "aero repro --force (W&B offline)",
        "dvc repro --force",
        "stage",
        sizes=(1, 10, 50),
        runs=(5, 5, 3),
        warmups=(1, 1, 0),
        prepare=_stages_point,
        floor=0.010,
    ),
    Curve(
        "ingest a folder of 10 to 10,000 small files",
        "aero data ingest DIR",
        "cp -r + dvc add + dvc push + git commit",
        "file",
        sizes=(10, 1_000, 10_000),
        runs=(3, 3, 1),
        warmups=(1, 0, 0),
        prepare=_ingest_point,
        floor=0.0001,
    ),
    Curve(
        "data status, 10 to 10,000 files in the dataset",
        "aero data status",
        "dvc data status --not-in-remote",
        "file",
        sizes=(10, 1_000, 10_000),
        runs=(3, 3, 3),
        warmups=(1, 1, 0),
        prepare=_status_point,
        floor=0.0001,
    ),
)


def select_curves(curves: Sequence[Curve], only: Sequence[str]) -> list[Curve]:
    """The curves whose name contains one of `only` (all when it is empty)."""
    return [
        curve
        for curve in curves
        if not only or any(text.lower() in curve.name.lower() for text in only)
    ]


__all__ = [
    "CURVES",
    "Curve",
    "CurveResult",
    "Point",
    "chained_stages",
    "measure_curve",
    "render_curves",
    "select_curves",
]
