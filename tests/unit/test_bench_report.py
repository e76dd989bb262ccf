"""The benchmark table: a scenario left out on purpose is not a failed target."""

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
