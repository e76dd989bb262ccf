"""The targets of issue 17, and the table a run prints: value, ratio to baseline, target, result.

Targets are upper bounds stated for 1,000 and 10,000 agents; a smaller fleet is held to the
bound of the next size up, and a bound stated only for 10,000 applies at or below it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# ruff: noqa: RUF001  (the table is markdown for people: the multiplication sign and dash are meant)

Result = dict[str, Any]


@dataclass(frozen=True)
class Row:
    scenario: str
    measure: str
    value: float | None
    unit: str
    target: str = ""
    passed: bool | None = None  # None: no target, or nothing measured
    ratio: float | None = None  # a time divided by the baseline apply time of the same run
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def at_most(value: float | None, bound: float | None) -> bool | None:
    if value is None or bound is None:
        return None
    return value <= bound


@dataclass(frozen=True)
class Spec:
    """One row of the table: where its value is in the result, and its target."""

    key: str  # a scenario key, or "baseline"
    measure: str
    value: Callable[[Result], float | None]
    unit: str
    target: str = ""
    # (value, baseline seconds) -> passed; None when the row has no target
    check: Callable[[float, float | None], bool | None] | None = None
    timed: bool = False  # a time: also shown as a ratio to the baseline
    note: Callable[[Result], str] | None = None
    title: str = ""  # the scenario column, when not the key's own title


def specs(n: int) -> list[Spec]:
    rss_bound = 150.0 if n <= 1000 else 300.0 if n <= 10000 else None
    cpu_bound = 15.0 if n <= 1000 else None
    rows = [
        Spec(
            "baseline",
            "`kubectl apply --server-side` of the rendered objects",
            lambda r: r["apply_seconds"],
            "s",
            timed=True,
            note=lambda r: f"{r['objects']:,} objects, {r['kubectl_processes']} kubectl",
        ),
        Spec(
            "create",
            "all converged (children exist, status observed)",
            lambda r: r["converged_seconds"],
            "s",
            "≤ 1.2× baseline",
            lambda v, base: at_most(v / base, 1.2) if base else None,
            timed=True,
        ),
    ]
    if n >= 10000:
        rows.append(
            Spec(
                "create",
                "all converged within 10 minutes",
                lambda r: r["converged_seconds"],
                "s",
                "≤ 600 s",
                lambda v, _: v <= 600,
                timed=True,
            )
        )
    rows += [
        Spec("create", "all Ready", lambda r: r["ready_seconds"], "s", timed=True),
        Spec(
            "create",
            "operator CPU to converge",
            lambda r: r["cpu_seconds_to_converge"],
            "CPU-s",
            f"≤ {cpu_bound:g} CPU-s" if cpu_bound else "",
            (lambda v, _: at_most(v, cpu_bound)) if cpu_bound else None,
        ),
        Spec(
            "create",
            "operator RSS, converged",
            lambda r: r["process_converged"]["rss_mib"],
            "MiB",
            f"≤ {rss_bound:g} MiB" if rss_bound else "",
            (lambda v, _: at_most(v, rss_bound)) if rss_bound else None,
        ),
        Spec(
            "create",
            "writes per agent to converge (to Ready)",
            lambda r: r["writes_per_agent"],
            "writes",
            "≤ 4",
            lambda v, _: v <= 4,
        ),
        Spec(
            "create",
            "first status of a new agent (max)",
            lambda r: r["probe_first_status_max"],
            "s",
            "≤ 5 s",
            lambda v, _: v <= 5,
            timed=True,
            note=lambda r: (
                f"{r['probes']} agents, median {r['probe_first_status_median']} s, "
                f"{min(r.get('probe_backlog', []), default=0):,}+ others not yet converged"
            ),
            title=f"6. new agents while {n:,} converge",
        ),
        Spec(
            "idle",
            "writes",
            lambda r: r["writes"]["total"],
            "writes",
            "0",
            lambda v, _: v == 0,
        ),
        Spec("idle", "operator CPU", lambda r: r["cpu_seconds"], "CPU-s"),
        Spec(
            "restart",
            "start to idle",
            lambda r: r["idle_seconds"],
            "s",
            "≤ 60 s",
            lambda v, _: v <= 60,
            timed=True,
            note=(lambda r: "target set for 10,000") if n < 10000 else None,
        ),
        Spec(
            "restart",
            "writes",
            lambda r: r["writes"]["total"],
            "writes",
            "0",
            lambda v, _: v == 0,
        ),
        Spec(
            "restart",
            "operator RSS after restart",
            lambda r: r["process"]["rss_mib"],
            "MiB",
            note=lambda r: f"peak {r['process']['peak_rss_mib']:g} MiB",
        ),
        Spec("edit", "all rolled out", lambda r: r["rolled_out_seconds"], "s", timed=True),
        Spec(
            "edit",
            "writes per edit",
            lambda r: r["writes_per_edit"],
            "writes",
            "≤ 2",
            lambda v, _: v <= 2,
        ),
        Spec("edit", "operator CPU", lambda r: r["cpu_seconds"], "CPU-s"),
        Spec(
            "kill",
            "all converged after restart",
            lambda r: r["converged_seconds_after_restart"],
            "s",
            timed=True,
            note=lambda r: f"killed with {r['converged_at_kill']} of {r['late_agents']} converged",
        ),
        Spec(
            "kill",
            "orphan, duplicate or missing children",
            lambda r: sum(r["audit"][f"{k}_count"] for k in ("orphan", "duplicate", "missing")),
            "objects",
            "0",
            lambda v, _: v == 0,
        ),
        Spec(
            "kill",
            "operator RSS with all agents",
            lambda r: r["process"]["rss_mib"],
            "MiB",
            note=lambda r: (
                f"{r['agents_total']:,} agents, peak {r['process']['peak_rss_mib']:g} MiB"
            ),
        ),
        Spec(
            "baseline",
            "its Deployments all available",
            lambda r: r.get("available_seconds"),
            "s",
            timed=True,
        ),
    ]
    return rows


def titles(result: Result) -> dict[str, str]:
    n = f"{result['config']['agents']:,}"
    return {
        "baseline": "baseline",
        "create": f"1. {n} created at once",
        "idle": f"2. idle {result['config']['idle_seconds']:g} s",
        "restart": "3. restart, all converged",
        "edit": f"4. {n} spec edits",
        "kill": "5. SIGKILL mid-converge, restart",
    }


def rows(result: Result) -> list[Row]:
    """The table. A scenario that failed or did not run shows its rows unmeasured, and its
    targets as failed, with the reason."""
    scenarios = {**result.get("scenarios", {}), "baseline": result.get("baseline")}
    base_data = scenarios["baseline"]
    base = base_data.get("apply_seconds") if base_data and "error" not in base_data else None
    names = titles(result)
    table = []
    explained: set[str] = set()  # say why a scenario has no numbers once, on its first row
    for spec in specs(result["config"]["agents"]):
        title = spec.title or names[spec.key]
        data = scenarios.get(spec.key)
        if data and "skipped" in data:
            note = "skipped" if spec.key in explained else f"skipped: {data['skipped']}"
            explained.add(spec.key)
            table.append(Row(title, spec.measure, None, spec.unit, spec.target, None, note=note))
            continue
        if not data or "error" in data:
            why = data["error"] if data else "did not run"
            note = "not measured" if spec.key in explained else f"not measured: {why}"
            explained.add(spec.key)
            table.append(
                Row(
                    title,
                    spec.measure,
                    None,
                    spec.unit,
                    spec.target,
                    False if spec.target else None,
                    note=note,
                )
            )
            continue
        value = spec.value(data)
        if value is None:
            continue
        table.append(
            Row(
                title,
                spec.measure,
                value,
                spec.unit,
                spec.target,
                spec.check(value, base) if spec.check else None,
                round(value / base, 2) if spec.timed and base else None,
                spec.note(data) if spec.note else "",
            )
        )
    table.append(write_agreement(scenarios))
    table += [Row(**extra) for extra in result.get("extras", [])]
    return table


def write_agreement(scenarios: dict[str, Any]) -> Row:
    """The API server's per-resource count, its per-identity count and the operator's own
    counter saw the same writes, in every window where the same process ran throughout or
    was stopped cleanly (1 to 4)."""
    windows = [
        scenarios[key]["writes"]
        for key in ("create", "idle", "restart", "edit")
        if scenarios.get(key) and "writes" in scenarios[key]
    ]
    return Row(
        "writes",
        "API server per resource = per identity = operator counter",
        None,
        "",
        "agree",
        all(w["consistent"] for w in windows) if windows else None,
        note=", ".join(
            f"{w['total']}/{w['identity_total']}/{w['operator_metric']}" for w in windows
        ),
    )


def markdown(table: list[Row]) -> str:
    lines = [
        "| scenario | measure | value | × baseline | target | result |",
        "|---|---|---:|---:|---|---|",
    ]
    for row in table:
        value = "–" if row.value is None else f"{_number(row.value)} {row.unit}".strip()
        ratio = "" if row.ratio is None else f"{row.ratio:.2f}×"
        result = {True: "pass", False: "**FAIL**", None: ""}[row.passed]
        if row.note:
            result = f"{result} ({row.note})" if result else row.note
        lines.append(
            f"| {row.scenario} | {row.measure} | {value} | {ratio} | {row.target} | {result} |"
        )
    return "\n".join(lines)


def _number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}" if abs(value) < 10 else f"{value:,.1f}"


# Later rows (mesh, KEDA, placement): each returns rows as dicts for Row(**row). They run
# after the scenarios with the operator stopped; a missing feature gives a row saying so.
ExtraRows = Callable[[], list[dict[str, Any]]]


def placement_rows() -> list[dict[str, Any]]:
    """Issue 20: p99 of one GPU placement decision over 1,000 simulated GPU nodes."""
    measure = "decision p99, 1,000 GPU nodes"
    try:  # another helper's file, and agentfleet.placement may not be there yet
        placement = importlib.import_module("benchmarks.placement")
    except ImportError as missing:
        return [_missing("placement", measure, "ms", "≤ 2 ms", missing)]
    result = placement.run(nodes=1000, decisions=2000)
    return [
        {
            "scenario": "placement",
            "measure": measure,
            "value": result["p99_ms"],
            "unit": "ms",
            "target": "≤ 2 ms",
            "passed": result["p99_ms"] <= 2,
            "note": f"cpu p99 {result['cpu_p99_ms']} ms, {result['decisions']} decisions",
        }
    ]


def _missing(scenario: str, measure: str, unit: str, target: str, why: Exception) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "measure": measure,
        "value": None,
        "unit": unit,
        "target": target,
        "passed": None,
        "note": f"not measured: {why}",
    }


EXTRA_ROWS: list[ExtraRows] = [placement_rows]
