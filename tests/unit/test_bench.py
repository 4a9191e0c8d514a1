"""`bench/`: the harness's pure parts (no timing is asserted here)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bench.curves import (
    Curve,
    CurveResult,
    Point,
    chained_stages,
    measure_curve,
    render_curves,
    select_curves,
)
from bench.harness import (
    ABSOLUTE,
    OVERHEAD,
    RATIO,
    THROUGHPUT,
    Pair,
    Result,
    Row,
    Sandbox,
    Skip,
    Stats,
    Target,
    measure,
    parse_probe,
    sample,
    seconds,
    spread,
    untimed,
)
from bench.run import (
    Report,
    render_json,
    render_markdown,
    render_notes,
    render_table,
    run,
    select_rows,
    verdict,
)


def _result(ours: float, peer: float, target: float = 1.0) -> Result:
    return Result(
        "start-up",
        "aero --help",
        "dvc --version",
        target,
        Stats(ours, ours * 0.9, ours * 1.5, 5),
        Stats(peer, peer * 0.9, peer * 1.5, 7),
    )


def test_stats_of_samples() -> None:
    stats = Stats.of([0.3, 0.1, 0.2, 0.5, 0.4])
    assert stats == Stats(median=0.3, low=0.1, high=0.5, n=5)


def test_stats_of_an_even_count_takes_the_middle_mean() -> None:
    assert Stats.of([1.0, 2.0, 4.0, 3.0]).median == 2.5


def test_stats_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no samples"):
        Stats.of([])


def test_ratio_and_verdict() -> None:
    assert _result(0.08, 0.1, target=0.8).ratio == pytest.approx(0.8)
    assert _result(0.08, 0.1, target=0.8).met
    assert not _result(0.09, 0.1, target=0.8).met


def test_seconds_switch_unit_at_ten() -> None:
    assert seconds(0.1234) == "123 ms"
    assert seconds(9.9994) == "9999 ms"
    assert seconds(12.34) == "12.3 s"


def test_spread_is_min_to_max() -> None:
    assert spread(Stats(0.2, 0.1, 0.35, 5)) == "100-350 ms"
    assert spread(Stats(12.0, 9.5, 14.25, 5)) == "9.5-14.2 s"


def test_table_has_a_header_and_one_line_per_result() -> None:
    table = render_table([_result(0.1, 0.2), _result(0.3, 0.2)]).splitlines()
    assert len(table) == 4
    assert table[0].startswith("| figure | ours | peer |")
    assert table[2] == (
        "| start-up | `aero --help` | `dvc --version` | 100 ms | 200 ms "
        "| 0.50 (≤ 1.00 ok) | 90-150 ms | 180-300 ms | 5 |"
    )
    assert "1.50 (≤ 1.00 MISSED)" in table[3]


def test_markdown_names_the_mode_and_the_machine() -> None:
    report = Report({"cpus": "2", "dvc": "3.67.1"}, quick=True)
    report.results.append(_result(0.1, 0.2))
    text = render_markdown(report)
    assert text.startswith("# Benchmark (quick run)")
    assert "- cpus: 2\n- dvc: 3.67.1" in text


def test_json_round_trips_the_figures() -> None:
    report = Report({"cpus": "2"}, quick=False, results=[_result(0.1, 0.2)])
    document = json.loads(render_json(report))
    row = document["results"][0]
    assert (document["quick"], row["ratio"], row["met"]) == (False, 0.5, True)
    assert row["our_stats"] == {"median": 0.1, "low": 0.09, "high": 0.15, "n": 5}


def test_sample_interleaves_and_drops_the_warm_up() -> None:
    calls: list[str] = []

    def figure(name: str) -> float:
        calls.append(name)
        return float(len(calls))

    ours, peer = sample(Pair(lambda: figure("o"), lambda: figure("p")), runs=3)
    assert calls == ["o", "p", "o", "p", "p", "o", "o", "p"]
    assert (len(ours), len(peer)) == (3, 3)


def test_results_folder_is_beside_the_harness() -> None:
    from bench import harness

    assert Path(harness.__file__).parent / "results" == harness.RESULTS


def test_an_overhead_target_holds_the_difference_per_unit() -> None:
    goal = Target(0.25, OVERHEAD, units=3, unit="stage")
    assert goal.figure(ours=2.0, peer=1.1) == pytest.approx(0.3)
    assert goal.show(0.3) == "+300 ms/stage"
    assert goal.show(-0.02) == "-20 ms/stage"


def test_an_absolute_target_holds_our_time_alone() -> None:
    goal = Target(0.05, ABSOLUTE)
    assert goal.figure(ours=0.004, peer=3.9) == 0.004
    assert goal.show(0.004) == "4 ms"


def test_a_bare_number_is_a_ratio_target() -> None:
    row = Row("start-up", "aero --help", "dvc --version", 0.8, lambda box: _pair())
    assert row.goal == Target(0.8, RATIO)
    assert row.goal.show(0.61) == "0.61"


@pytest.mark.parametrize(("kind", "units"), [("median", 1), (RATIO, 0), (OVERHEAD, -1)])
def test_a_target_refuses_an_unknown_kind_or_no_units(kind: str, units: int) -> None:
    with pytest.raises(ValueError):
        Target(1.0, kind, units=units)


def test_verdict_of_an_overhead_row() -> None:
    goal = Target(0.25, OVERHEAD, units=3, unit="stage")
    ok = replace(_result(2.4, 1.8), goal=goal, target=0.25)
    missed = replace(_result(3.0, 1.8), goal=goal, target=0.25)
    assert verdict(ok) == "+200 ms/stage (≤ +250 ms/stage ok)"
    assert verdict(missed) == "+400 ms/stage (≤ +250 ms/stage MISSED)"


def test_json_names_the_target_kind_the_figure_and_the_notes() -> None:
    result = replace(
        _result(0.004, 3.9),
        target=0.05,
        goal=Target(0.05, ABSOLUTE),
        notes={"Repo open": Stats(0.2, 0.1, 0.3, 5)},
    )
    row = json.loads(render_json(Report({}, quick=True, results=[result])))["results"][
        0
    ]
    assert (row["target_kind"], row["figure"], row["met"]) == ("absolute", 0.004, True)
    assert row["notes"]["Repo open"]["median"] == 0.2


def test_notes_are_listed_under_the_table() -> None:
    result = replace(_result(0.1, 0.2), notes={"Repo open": Stats(0.2, 0.1, 0.3, 5)})
    assert render_notes([result, _result(0.1, 0.2)]) == (
        "- start-up, Repo open: 200 ms median, 100-300 ms, n 5"
    )
    report = Report({"cpus": "2"}, quick=True, results=[result])
    assert "## Notes\n\n- start-up, Repo open" in render_markdown(report)
    assert "## Notes" not in render_markdown(Report({}, quick=True))


def test_parse_probe_takes_the_last_line_and_keeps_numbers_only() -> None:
    out = 'warming up\n{"fingerprint": 0.004, "Repo open": 0.2, "note": "x"}\n'
    assert parse_probe(out, "fingerprint") == {"fingerprint": 0.004, "Repo open": 0.2}


@pytest.mark.parametrize("out", ["", "not json\n", '{"other": 1}\n'])
def test_parse_probe_refuses_output_without_the_figure(out: str) -> None:
    with pytest.raises(RuntimeError, match="probe"):
        parse_probe(out, "fingerprint")


def test_measure_drops_the_warm_up_from_the_notes() -> None:
    calls = iter(range(100))
    kept: dict[str, list[float]] = {"Repo open": []}

    def ours() -> float:
        kept["Repo open"].append(float(next(calls)))
        return 1.0

    row = Row("r", "a", "b", Target(1.0, ABSOLUTE), lambda box: _pair(ours, kept))
    result = measure(row, Sandbox(Path("."), {}), runs=3)
    assert result.notes["Repo open"] == Stats(2.0, 1.0, 3.0, 3)
    assert result.met


def test_select_rows_quick_and_only() -> None:
    rows = [
        Row("start-up", "", "", 1.0, lambda box: _pair()),
        Row("tracked repro", "", "", 1.0, lambda box: _pair(), quick=False),
    ]
    assert [r.name for r in select_rows(rows, quick=True, only=[])] == ["start-up"]
    assert [r.name for r in select_rows(rows, False, ["TRACKED"])] == ["tracked repro"]
    assert select_rows(rows, quick=True, only=["tracked"]) == []


def test_the_issue_rows_are_listed_with_their_targets() -> None:
    from bench import run

    goals = {row.name: row.goal for row in run.ROWS}
    assert goals == {
        "start-up": Target(0.8),
        "no-op repro": Target(1.15),
        "tracked repro, 3 trivial stages": Target(
            0.25, OVERHEAD, units=3, unit="stage"
        ),
        "fingerprint, 1 GiB input in dvc.lock": Target(0.05, ABSOLUTE),
        "no-op build (container runtime)": Target(0.3, ABSOLUTE),
        "no-op build (Nix runtime)": Target(0.3, ABSOLUTE),
        "data push, one 256 MiB file": Target(0.8, THROUGHPUT),
        "no-op data pull, everything cached": Target(1.2),
    }


def test_a_throughput_target_is_the_peer_over_ours_and_higher_is_better() -> None:
    goal = Target(0.8, THROUGHPUT)
    assert goal.figure(ours=4.0, peer=3.0) == pytest.approx(0.75)
    assert not goal.meets(0.75) and goal.meets(0.8)
    missed = replace(_result(4.0, 3.0), goal=goal, target=0.8)
    assert verdict(missed) == "0.75 (≥ 0.80 MISSED)"
    assert verdict(replace(missed, our_stats=Stats(3.0, 3, 3, 5))) == (
        "1.00 (≥ 0.80 ok)"
    )


def test_untimed_steps_run_around_the_figure_but_are_not_counted() -> None:
    calls: list[str] = []
    figure = untimed(
        lambda: calls.append("timed") or 0.5,
        before=lambda: calls.append("before"),
        after=lambda: calls.append("after"),
    )
    assert figure() == 0.5
    assert calls == ["before", "timed", "after"]


def test_measure_closes_the_pair_even_when_a_figure_fails() -> None:
    closed: list[bool] = []

    def failing() -> float:
        raise RuntimeError("exited with 1")

    pair = Pair(failing, lambda: 1.0, close=lambda: closed.append(True))
    row = Row("r", "a", "b", 1.0, lambda box: pair)
    with pytest.raises(RuntimeError):
        measure(row, Sandbox(Path("."), {}), runs=1)
    assert closed == [True]


def test_a_row_this_machine_cannot_measure_is_noted_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bench import run as bench_run

    monkeypatch.setattr(bench_run, "describe_machine", lambda env: {"cpus": "2"})

    def no_engine(box: Sandbox) -> Pair:
        raise Skip("no container engine: nothing answers")

    rows = [
        Row("no-op build", "", "", 0.3, no_engine),
        Row("start-up", "aero --help", "dvc --version", 0.8, lambda box: _pair()),
    ]
    report = run(rows, runs=1, quick=True)

    assert [r.name for r in report.results] == ["start-up"]
    assert report.skipped == {"no-op build": "no container engine: nothing answers"}
    text = render_markdown(report)
    assert "Skipped on this machine:\n\n- no-op build: no container engine" in text
    assert json.loads(render_json(report))["skipped"] == report.skipped


def test_trivial_stages_are_three_chained_stages() -> None:
    import yaml

    from bench.run import TRIVIAL_STAGES

    stages = yaml.safe_load(TRIVIAL_STAGES)["stages"]
    assert list(stages) == ["one", "two", "three"]
    assert stages["three"]["deps"] == ["two.txt"]


def test_bytes_read_counts_what_this_process_reads(tmp_path: Path) -> None:
    from bench.fingerprint_probe import bytes_read

    if not Path("/proc/self/io").exists():
        pytest.skip("no /proc/self/io here")
    (tmp_path / "f").write_bytes(b"x" * 100_000)
    before = bytes_read()
    (tmp_path / "f").read_bytes()
    assert bytes_read() - before >= 100_000


def _pair(
    ours: Callable[[], float] | None = None,
    notes: dict[str, list[float]] | None = None,
) -> Pair:
    return Pair(ours or (lambda: 1.0), lambda: 2.0, (lambda: notes) if notes else None)


# --- curves ------------------------------------------------------------------


def _curve(*points: tuple[int, float, float]) -> CurveResult:
    found = CurveResult("stages", "aero repro", "dvc repro", "stage", 0.01, 1.5)
    for size, ours, peer in points:
        found.points.append(
            Point(size, Stats(ours, ours, ours, 3), Stats(peer, peer, peer, 3))
        )
    return found


def test_a_fixed_start_up_cost_keeps_a_curve_flat() -> None:
    # 1 s of start-up and 20 ms a stage: the overhead per stage only falls.
    curve = _curve((1, 2.02, 1.0), (10, 3.2, 2.0), (50, 7.0, 5.0))
    assert [round(p.overhead, 3) for p in curve.points] == [1.02, 0.12, 0.04]
    assert curve.marginals()[1:] == [pytest.approx(0.02), pytest.approx(0.02)]
    assert curve.flat


def test_a_cost_growing_faster_than_the_size_is_not_flat() -> None:
    # Our extra time grows with the square of the stages.
    curve = _curve((1, 1.0, 1.0), (10, 2.0, 1.0), (50, 26.0, 1.0))
    assert curve.points[-1].overhead == pytest.approx(0.5)
    assert not curve.flat
    assert curve.criterion == ("overhead per stage at 50 ≤ 1.5x that at 10, or ≤ 10 ms")


def test_a_curve_under_its_floor_or_faster_than_the_peer_is_flat() -> None:
    assert _curve((10, 1.0, 1.0), (50, 1.4, 1.0)).flat  # +8 ms a stage, floor 10
    assert _curve((10, 1.0, 2.0), (50, 2.0, 2.5)).flat  # faster than the peer


def test_curves_render_a_line_per_size_and_the_verdict() -> None:
    text = render_curves([_curve((1, 2.02, 1.0), (10, 3.2, 2.0))])
    lines = text.splitlines()
    assert lines[0] == "### stages"
    assert "| 1 | 2020 ms | 1000 ms | 2020 ms | 1000 ms | +1020 ms |  | 3 |" in lines
    assert "| 10 | 3200 ms | 2000 ms | 320 ms | 200 ms | +120 ms | +20 ms | 3 |" in (
        lines
    )
    assert lines[-1] == "flat: overhead per stage at 10 ≤ 1.5x that at 1, or ≤ 10 ms."


def test_curves_go_to_the_report_and_the_json() -> None:
    curve = _curve((1, 2.02, 1.0), (10, 3.2, 2.0))
    report = Report({"cpus": "2"}, quick=False, curves=[curve])
    assert "## Scaling\n" in render_markdown(report)
    (found,) = json.loads(render_json(report))["curves"]
    assert found["flat"] is True
    assert found["points"][1]["marginal_overhead_per_unit"] == pytest.approx(0.02)
    assert "marginal_overhead_per_unit" not in found["points"][0]


def test_measure_curve_samples_each_size_in_its_own_sandbox(tmp_path: Path) -> None:
    seen: list[tuple[str, int]] = []

    def prepare(box: Sandbox, size: int) -> Pair:
        seen.append((box.root.name, size))
        return Pair(lambda: size * 0.1, lambda: size * 0.05)

    curve = Curve("c", "a", "b", "file", (10, 100), (3, 1), (1, 0), prepare, 0.001)
    found = measure_curve(curve, tmp_path)

    assert seen == [("size-10", 10), ("size-100", 100)]
    assert [(p.size, p.ours.n, p.peer.n) for p in found.points] == [
        (10, 3, 3),
        (100, 1, 1),
    ]
    assert found.points[1].overhead == pytest.approx(0.05)


def test_a_curve_needs_two_sizes_each_with_runs() -> None:
    with pytest.raises(ValueError, match="two sizes"):
        Curve("c", "a", "b", "file", (10,), (3,), (1,), lambda box, n: _pair(), 0.0)
    with pytest.raises(ValueError, match="two sizes"):
        Curve("c", "a", "b", "file", (1, 2), (3,), (1, 1), lambda box, n: _pair(), 0.0)


def test_the_issue_curves_and_selecting_them() -> None:
    from bench.curves import CURVES

    sizes = {curve.unit: curve.sizes for curve in CURVES}
    assert sizes == {"stage": (1, 10, 50), "file": (10, 1_000, 10_000)}
    assert [c.name for c in select_curves(CURVES, ["STATUS"])] == [
        "data status, 10 to 10,000 files in the dataset"
    ]
    assert select_curves(CURVES, []) == list(CURVES)


def test_chained_stages_make_a_chain_of_the_size_asked() -> None:
    import yaml

    stages = yaml.safe_load(chained_stages(50))["stages"]
    assert len(stages) == 50
    assert "deps" not in stages["s1"]
    assert stages["s50"] == {
        "cmd": "cp s49.txt s50.txt",
        "deps": ["s49.txt"],
        "outs": ["s50.txt"],
    }
