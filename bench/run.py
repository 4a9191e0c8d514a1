"""Aeromancy's benchmark: our figures against the peer tool's, in one command.

Run ``python bench/run.py`` (or ``--quick`` for the fast rows only). Each row
times one of our commands and the peer's equivalent as subprocesses launched
the same way (the console scripts on PATH), interleaved so that drift in the
machine's speed hits both sides alike, and reports both medians, the figure
its target holds and whether it is met. The scaling curves (`bench/curves.py`)
then time a few commands at growing sizes. Results go to
``bench/results/latest.md`` and ``bench/results/latest.json``.

A row's target is a ratio ours / peer, an overhead per unit ((ours - peer) /
units, e.g. per executed stage), an absolute time of ours alone, or a
throughput relative to the peer's (peer / ours, higher is better).

To add a row, write a function that prepares a sandbox and returns a `Pair` of
figures (see `_help_row`), and list it in `ROWS`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/run.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import curves, data_rows
from bench.curves import CURVES, Curve, CurveResult
from bench.harness import (
    ABSOLUTE,
    BENCH,
    OVERHEAD,
    RESULTS,
    THROUGHPUT,
    Pair,
    Probe,
    Result,
    Row,
    Sandbox,
    Skip,
    Target,
    make_sandbox,
    measure,
    seconds,
    spread,
    untimed,
)

__all__ = ["ROWS", "Report", "main", "run", "select_rows"]

FULL_RUNS = 5
"""Runs a figure in a full run: the issue's minimum, so it all fits in minutes."""


@dataclass
class Report:
    """Everything one run of the harness found."""

    machine: dict[str, str]
    quick: bool
    results: list[Result] = field(default_factory=list)
    curves: list[CurveResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)
    took: float = 0.0


# --- rows --------------------------------------------------------------------


def _help_row(box: Sandbox) -> Pair:
    return Pair(box.command("aero", "--help"), box.command("dvc", "--version"))


def _noop_repro_row(box: Sandbox) -> Pair:
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "host", "--tracker", "none")
    box.run("aero", "repro", "--dev", cwd=project)
    return Pair(
        box.command("aero", "repro", "--dev", cwd=project),
        box.command("dvc", "repro", cwd=project),
    )


TRIVIAL_STAGES = """\
stages:
  one:
    cmd: echo one > one.txt
    outs:
      - one.txt
  two:
    cmd: cp one.txt two.txt
    deps:
      - one.txt
    outs:
      - two.txt
  three:
    cmd: cp two.txt three.txt
    deps:
      - two.txt
    outs:
      - three.txt
"""
"""Three stages that do next to nothing: what is left is each tool's overhead."""


def _tracked_repro_row(box: Sandbox) -> Pair:
    box = box.wandb_offline()
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "host", "--tracker", "wandb")
    (project / "dvc.yaml").write_text(TRIVIAL_STAGES, encoding="utf-8")
    box.run(
        "git",
        "commit",
        "--quiet",
        "-m",
        "three trivial stages",
        "dvc.yaml",
        cwd=project,
    )
    # Locks the stages and commits dvc.lock; --force then reruns all three and
    # leaves the tree clean, since the outputs come out the same.
    box.run("aero", "repro", cwd=project)
    # `aero repro` leaves W&B's worker writing the runs: wait for it, untimed,
    # so that it does not slow the peer's next run.
    settle = curves.wait_for_wandb(project)
    settle()
    return Pair(
        untimed(box.command("aero", "repro", "--force", cwd=project), after=settle),
        box.command("dvc", "repro", "--force", cwd=project),
    )


GIB = 1024**3


def _fingerprint_row(box: Sandbox) -> Pair:
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "host", "--tracker", "none")
    big = project / "data" / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(GIB)  # sparse: quick to make, as long to hash as any
    box.run("dvc", "add", "--quiet", str(big), cwd=project)
    box.run(
        "dvc",
        "stage",
        "add",
        "--quiet",
        "-n",
        "size",
        "-d",
        "data/big.bin",
        "-o",
        "size.txt",
        "wc -c < data/big.bin > size.txt",
        cwd=project,
    )
    box.run("dvc", "repro", "--quiet", "size", cwd=project)
    box.run("git", "add", "--all", cwd=project)
    box.run("git", "commit", "--quiet", "-m", "a stage reading 1 GiB", cwd=project)
    probe = Probe(
        [sys.executable, str(BENCH / "fingerprint_probe.py"), str(project), "size"],
        project,
        box.env,
        "fingerprint",
    )
    return Pair(probe, box.command("md5sum", str(big)), probe.notes)


BASE_IMAGE = "localhost/aeromancy-base:bookworm"
"""The base image `scripts/setup-podman` imports."""


def _noop_build_row(box: Sandbox) -> Pair:
    """`aero build` with nothing changed against the engine's own fully cached
    build of the same Dockerfile and context (timed in-process, so the peer pays
    no interpreter start)."""
    from aeromancy import config
    from aeromancy.errors import UserError
    from aeromancy.runtime import image
    from aeromancy.runtime.docker import DockerRuntime
    from aeromancy.runtime.engine import Engine

    engine = Engine(box.env.get("DOCKER_HOST"))
    try:
        engine.images()
    except UserError as exc:
        raise Skip(f"no container engine: {exc.message}") from None
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "docker", "--tracker", "none")
    pyproject = project / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace(
            'base_image = "debian:bookworm-slim"', f'base_image = "{BASE_IMAGE}"'
        )
    )
    box.run("git", "commit", "--quiet", "-am", "local base image", cwd=project)
    box.run("aero", "build", cwd=project)  # builds once, or finds the image

    runtime = DockerRuntime(project, config.load(project).runtime, engine)
    spec = runtime.resolve(engine.images())
    context = box.root / "context"
    context.mkdir()
    for name, data in {**spec.files, "Dockerfile": spec.dockerfile().encode()}.items():
        (context / name).write_bytes(data)

    def cached_build() -> float:
        began = time.perf_counter()
        for _ in engine.client().api.build(path=str(context), pull=False, decode=True):
            pass
        return time.perf_counter() - began

    assert image.LABEL in spec.dockerfile()
    return Pair(box.command("aero", "build", cwd=project), cached_build)


def _noop_nix_build_row(box: Sandbox) -> Pair:
    """`aero build` with nothing changed against `nix build` of the same flake
    output, already in the store (Nix evaluates the flake and builds nothing).

    The flake is the tests' offline one (`builtins.derivation` only): no
    nixpkgs can be reached here.
    """
    if shutil.which("nix", path=box.env.get("PATH")) is None:
        raise Skip('no `nix` on PATH; `eval "$(scripts/setup-nix)"` installs it')
    from aeromancy.runtime.nix import current_system
    from tests.conftest import NIX_CONFIG, local_flake

    box = box.with_env(NIX_CONFIG=NIX_CONFIG)
    project = box.root / "project"
    box.run("aero", "init", str(project), "--runtime", "nix", "--tracker", "none")
    (project / "flake.nix").write_text(local_flake(), encoding="utf-8")
    box.run("git", "add", "flake.nix", cwd=project)
    box.run("git", "commit", "--quiet", "-m", "an offline flake", cwd=project)
    box.run("aero", "build", cwd=project)  # builds once
    said = _stderr(box, project, "aero", "build")
    if "up to date" not in said:
        raise RuntimeError(f"a second `aero build` built again: {said}")
    shell = f".#devShells.{current_system()}.default"
    return Pair(
        box.command("aero", "build", cwd=project),
        box.command("nix", "build", "--no-link", "--json", shell, cwd=project),
    )


def _stderr(box: Sandbox, cwd: Path, *argv: str) -> str:
    done = subprocess.run(
        argv, cwd=cwd, env=box.env, capture_output=True, text=True, check=True
    )
    return done.stderr.strip()


ROWS: tuple[Row, ...] = (
    Row("start-up", "aero --help", "dvc --version", 0.8, _help_row),
    Row(
        "no-op repro",
        "aero repro --dev",
        "dvc repro",
        1.15,
        _noop_repro_row,
    ),
    Row(
        "tracked repro, 3 trivial stages",
        "aero repro --force (W&B offline)",
        "dvc repro --force",
        Target(0.25, OVERHEAD, units=3, unit="stage"),
        _tracked_repro_row,
    ),
    Row(
        "fingerprint, 1 GiB input in dvc.lock",
        "stage_inputs + build (in-process)",
        "md5sum of the file",
        Target(0.05, ABSOLUTE),
        _fingerprint_row,
    ),
    Row(
        "no-op build (container runtime)",
        "aero build, nothing changed",
        "engine build, every layer cached",
        Target(0.3, ABSOLUTE),
        _noop_build_row,
    ),
    Row(
        "no-op build (Nix runtime)",
        "aero build, nothing changed",
        "nix build of the same output, in the store",
        Target(0.3, ABSOLUTE),
        _noop_nix_build_row,
    ),
    Row(
        "data push, one 256 MiB file",
        "aero data push (moto S3)",
        "python -c boto3 upload_file",
        Target(0.8, THROUGHPUT),
        data_rows.push_row,
        quick=False,
    ),
    Row(
        "no-op data pull, everything cached",
        "aero data pull (moto S3)",
        "dvc pull",
        1.2,
        data_rows.pull_row,
        quick=False,
    ),
)


# --- rendering ---------------------------------------------------------------


def verdict(result: Result) -> str:
    """The held figure, its limit and whether it is met: `0.61 (≤ 0.80 ok)`."""
    goal = result.kind
    mark = "ok" if result.met else "MISSED"
    limit = f"{goal.relation} {goal.show(goal.limit)}"
    return f"{goal.show(result.figure)} ({limit} {mark})"


def render_table(results: Iterable[Result]) -> str:
    """The results as a Markdown table, one row per figure."""
    lines = [
        "| figure | ours | peer | our median | peer median | result (target) "
        "| our min-max | peer min-max | n |",
        "|---|---|---|---:|---:|---|---|---|---:|",
    ]
    for r in results:
        cells = (
            r.name,
            f"`{r.ours}`",
            f"`{r.peer}`",
            seconds(r.our_stats.median),
            seconds(r.peer_stats.median),
            verdict(r),
            spread(r.our_stats),
            spread(r.peer_stats),
            str(min(r.our_stats.n, r.peer_stats.n)),
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_notes(results: Iterable[Result]) -> str:
    """The further figures of each row, one line each; empty when there are none."""
    return "\n".join(
        f"- {r.name}, {name}: {seconds(stats.median)} median, {spread(stats)}, "
        f"n {stats.n}"
        for r in results
        for name, stats in r.notes.items()
    )


def render_markdown(report: Report) -> str:
    """The whole report: the table, then the machine it ran on."""
    mode = "quick" if report.quick else "full"
    machine = "\n".join(f"- {key}: {value}" for key, value in report.machine.items())
    parts = [
        f"# Benchmark ({mode} run)\n",
        "Median wall time of each command launched as a subprocess (or, where "
        "the row says so, of a library call timed in its own process). The result "
        "is the ratio ours / peer, the overhead (ours - peer) per unit or our "
        "time alone (lower is better), or the throughput peer / ours (higher is "
        "better), as the target says. Runs interleave ours and the peer's.\n",
        render_table(report.results) + "\n",
    ]
    if report.skipped:
        parts += [
            "Skipped on this machine:\n",
            "\n".join(f"- {name}: {why}" for name, why in report.skipped.items())
            + "\n",
        ]
    notes = render_notes(report.results)
    if notes:
        parts += ["## Notes\n", notes + "\n"]
    if report.curves:
        parts += [
            "## Scaling\n",
            curves.__doc__.split("\n\n", 1)[1].strip() + "\n",
            curves.render_curves(report.curves),
        ]
    parts += ["## Machine\n", machine + "\n"]
    parts += [
        f"## {title}\n\n```\n{text.strip()}\n```\n"
        for title, text in report.extra.items()
    ]
    return "\n".join(parts)


def render_json(report: Report) -> str:
    document = {
        "quick": report.quick,
        "machine": report.machine,
        "results": [r.to_json() for r in report.results],
        "curves": [c.to_json() for c in report.curves],
        "skipped": report.skipped,
        "took_s": round(report.took, 1),
        "extra": report.extra,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# --- the machine -------------------------------------------------------------


def describe_machine(env: dict[str, str]) -> dict[str, str]:
    """CPU count and model, Python, DVC and OS, and which launchers were timed."""
    path = env.get("PATH")
    return {
        "cpus": str(os.cpu_count()),
        "cpu model": _cpu_model(),
        "python": platform.python_version(),
        "dvc": _output(["dvc", "--version"], env),
        "os": platform.platform(),
        "load average (1 min) at start": _load(),
        "aero launcher": shutil.which("aero", path=path) or "not found",
        "dvc launcher": shutil.which("dvc", path=path) or "not found",
    }


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "unknown"


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    for line in text.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _output(argv: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"exit {done.returncode}"


# --- entry point -------------------------------------------------------------


def run(
    rows: Sequence[Row], runs: int, quick: bool, scaling: Sequence[Curve] = ()
) -> Report:
    """Measure `rows`, then `scaling`, each in its own sandbox under one
    temporary folder. A row or curve this machine cannot measure is noted."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aero-bench-") as tmp:
        base = make_sandbox(Path(tmp) / "machine")
        report = Report(describe_machine(base.env), quick)
        for index, row in enumerate(rows):
            box = make_sandbox(Path(tmp) / f"row{index}")
            _say(f"measuring {row.name} ({runs} runs each)...")
            try:
                report.results.append(measure(row, box, runs))
            except Skip as exc:
                report.skipped[row.name] = str(exc)
        for index, curve in enumerate(scaling):
            _say(f"measuring the curve {curve.name}...")
            try:
                report.curves.append(
                    curves.measure_curve(curve, Path(tmp) / f"curve{index}")
                )
            except Skip as exc:
                report.skipped[curve.name] = str(exc)
    report.took = time.perf_counter() - began
    report.machine["benchmark took"] = f"{report.took:.0f} s"
    return report


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def select_rows(rows: Sequence[Row], quick: bool, only: Sequence[str]) -> list[Row]:
    """The rows a run measures: quick ones for ``--quick``, and with ``--only``
    those whose name contains one of the texts given."""
    return [
        row
        for row in rows
        if (row.quick or not quick)
        and (not only or any(text.lower() in row.name.lower() for text in only))
    ]


def write(report: Report, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "latest.md").write_text(render_markdown(report), encoding="utf-8")
    (folder / "latest.json").write_text(render_json(report), encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="the fast rows only, no curves"
    )
    parser.add_argument("--runs", type=int, help="runs a figure (at least 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a target is missed"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="TEXT",
        help="rows and curves whose name has TEXT",
    )
    args = parser.parse_args(argv)

    runs = max(5, args.runs or FULL_RUNS)
    only = args.only or []
    rows = select_rows(ROWS, args.quick, only)
    scaling = [] if args.quick else curves.select_curves(CURVES, only)
    report = run(rows, runs, args.quick, scaling)
    write(report, args.out)
    print(render_table(report.results))
    if report.curves:
        print(curves.render_curves(report.curves))
    print(f"took {report.took:.0f} s; wrote {args.out}/latest.md and latest.json")
    missed = [r.name for r in report.results if not r.met]
    missed += [c.name for c in report.curves if not c.flat]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
