"""The benchmark table: a scenario left out on purpose is not a failed target."""

# ruff: noqa: RUF001  (the table is markdown for people: the multiplication sign and dash are meant)

from benchmarks import report


def result(scenarios: dict) -> dict:
    return {
        "config": {"agents": 10000, "idle_seconds": 60.0},
        "scenarios": scenarios,
        "baseline": {"error": "stopped"},
    }


def by_title(rows: list[report.Row], prefix: str) -> list[report.Row]:
    return [row for row in rows if row.scenario.startswith(prefix)]


def test_a_skipped_scenario_has_no_verdict_and_says_why_once() -> None:
    rows = report.rows(
        result(
            {
                "create": {"error": "operator exited"},
                "edit": {"skipped": "not chosen (--scenarios)"},
            }
        )
    )
    edits = by_title(rows, "4.")
    assert edits and all(row.passed is None and row.value is None for row in edits)
    assert edits[0].note == "skipped: not chosen (--scenarios)"
    assert all(row.note == "skipped" for row in edits[1:])
    created = [row for row in by_title(rows, "1.") if row.target]
    assert created and all(row.passed is False for row in created)
    assert created[0].note == "not measured: operator exited"


def test_without_a_baseline_the_rows_have_no_ratio_and_no_ratio_verdict() -> None:
    create = {
        "converged_seconds": 500.0,
        "ready_seconds": 600.0,
        "cpu_seconds_to_converge": 100.0,
        "process_converged": {"rss_mib": 280.0},
        "writes_per_agent": 4.0,
        "probe_first_status_max": 2.1,
        "probe_first_status_median": 2.0,
        "probes": 10,
    }
    data = result({"create": create})
    data["baseline"] = {"skipped": "not measured (--no-baseline): no ratios"}
    rows = report.rows(data)
    base = by_title(rows, "baseline")
    assert base and all(row.passed is None and row.note.startswith("skipped") for row in base)
    converged = [row for row in by_title(rows, "1.") if row.measure.startswith("all converged")]
    (ratio,) = converged  # at 10,000 too, the target is a ratio to the fastest baseline
    assert ratio.value == 500.0 and ratio.ratio is None and ratio.passed is None
    assert ratio.note.startswith("stretch")
    rss = [row for row in by_title(rows, "1.") if row.measure.startswith("operator peak RSS")]
    assert [row.passed for row in rss] == [False]  # not recorded: the target fails, not passes


def converge_row(value: float | None, ratio: float | None) -> report.Row:
    passed = None if ratio is None else ratio <= 1.3
    return report.Row(
        "1.", "all converged", value, "s", "≤ 1.3", passed, ratio, bound=1.3, on="ratio"
    )


def test_three_runs_give_the_median_its_spread_and_the_median_s_verdict() -> None:
    runs = [[converge_row(v, r)] for v, r in ((90.0, 1.4), (60.0, 1.2), (70.0, 1.25))]
    (row,) = report.aggregate(runs)
    assert (row.value, row.ratio, row.runs) == (70.0, 1.25, 3)
    assert row.spread == (60.0, 90.0) and row.ratio_spread == (1.2, 1.4)
    assert row.passed is True  # the median passes although one run did not
    assert "(60–90)" in report.markdown([row]) and "1.25× (1.20–1.40)" in report.markdown([row])


def test_a_run_that_measured_nothing_fails_the_target_of_the_series() -> None:
    failed = report.Row("1.", "all converged", None, "s", "≤ 1.3", False, note="not measured")
    runs = [[converge_row(60.0, 1.1)], [converge_row(61.0, 1.1)], [failed]]
    (row,) = report.aggregate(runs)
    assert row.passed is False and row.note.startswith("measured in 2 of 3 runs")


def test_strict_fails_on_a_failed_or_unmeasured_target_only() -> None:
    rows = report.rows(result({"create": {"error": "operator exited"}}))
    failed = report.failures(rows)
    assert "1. 10,000 created at once: operator peak RSS (VmHWM), start-up to converged" in failed
    assert not any(name.startswith("baseline") for name in failed)  # no target, no failure
    assert report.failures([converge_row(60.0, 1.1)]) == []
