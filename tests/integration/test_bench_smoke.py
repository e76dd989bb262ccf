"""`make bench` at 50 agents on the session's cluster: the harness runs every scenario end to
end, and what it measures holds for the operator as it is.

The harness starts, restarts and kills an operator of its own, so its agents carry a shard
label that the session's shared operator is told to ignore, and its operator serves only
that shard. Timings on a shared 2-core machine are not asserted; writes, convergence and
the children's ownership are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import harness, report
from benchmarks.context import BenchConfig
from benchmarks.kube import ClusterAccess
from benchmarks.writes import OPERATOR_ONLY
from tests.conftest import SHARD_LABEL, Cluster, eventually

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

AGENTS = 50
PROBES = 3
SHARD = "bench-smoke"


def no_namespace_terminating(cluster: Cluster) -> None:
    """Another test's namespace teardown makes the garbage collector delete Deployments,
    which the API server would count among the operator's kinds."""
    phases = cluster.kubectl(
        "get", "namespaces", "-o", "jsonpath={.items[*].status.phase}"
    ).stdout.split()
    assert "Terminating" not in phases, phases


@pytest.fixture(scope="module")
def bench(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    eventually(lambda: no_namespace_terminating(cluster), timeout=180, what="namespaces gone")
    config = BenchConfig(
        agents=AGENTS,
        idle_seconds=8,
        probes=PROBES,
        fleets=(),
        operator_args=("--agent-selector", f"{SHARD_LABEL}={SHARD}"),
        agent_labels=((SHARD_LABEL, SHARD),),
    )
    access = ClusterAccess(Path(cluster.kubeconfig), Path(cluster.kubectl_path), cluster.local)
    return harness.run(access, config, tmp_path_factory.mktemp("bench"), print)


def writes(bench: dict[str, Any], scenario: str) -> dict[str, Any]:
    counted: dict[str, Any] = bench["scenarios"][scenario]["writes"]
    return counted


def test_every_scenario_ran(bench: dict[str, Any]) -> None:
    failed = {k: v["error"] for k, v in bench["scenarios"].items() if "error" in v}
    assert not failed
    assert set(bench["scenarios"]) == {"create", "idle", "restart", "edit", "kill"}


def test_every_agent_converges_with_one_apply_per_child(bench: dict[str, Any]) -> None:
    create = bench["scenarios"]["create"]
    assert create["converged_seconds"] >= create["ready_seconds"] > 0
    audit = create["audit"]  # every child as the renderers want it, by the API server's word
    assert audit["agents"] == AGENTS + PROBES and audit["objects"] == 3 * (AGENTS + PROBES)
    assert audit["missing_count"] == audit["differing_count"] == audit["unexpected_count"] == 0
    # Exactly one server-side apply per child, however the reconciles interleave.
    assert writes(bench, "create")["by_resource"] | {"AIAgent/status": 0} == {
        "Deployment": AGENTS + PROBES,
        "Service": AGENTS + PROBES,
        "ServiceAccount": AGENTS + PROBES,
        "AIAgent/status": 0,
    }
    # Status patches follow what the operator observes of each rollout (Queued, progressing,
    # available), so their number varies with load by a write or two per fleet; the applies
    # above are exact, and a second status write per agent would double this.
    assert 3 < create["writes_per_agent"] <= 5.5
    assert writes(bench, "create")["operator_events"] == 0  # nothing stalled


def test_new_agents_get_a_status_while_the_fleet_converges(bench: dict[str, Any]) -> None:
    latencies = bench["scenarios"]["create"]["probe_first_status_seconds"]
    assert len(latencies) == PROBES and all(0 < seconds < 120 for seconds in latencies)


def test_an_idle_fleet_and_a_restart_write_nothing(bench: dict[str, Any]) -> None:
    assert writes(bench, "idle")["total"] == 0
    assert writes(bench, "idle")["identity_total"] in (0, None)
    restart = bench["scenarios"]["restart"]
    assert writes(bench, "restart")["total"] == 0
    assert writes(bench, "restart")["identity_total"] in (0, None)
    assert 0 < restart["idle_seconds"] < 120


def test_a_new_image_rewrites_only_the_deployments(bench: dict[str, Any]) -> None:
    edit = writes(bench, "edit")["by_resource"]
    assert edit["Deployment"] == AGENTS
    assert edit.get("Service", 0) == edit.get("ServiceAccount", 0) == 0
    assert edit["AIAgent/status"] >= AGENTS  # each agent reports its new generation
    assert bench["scenarios"]["edit"]["audit"]["differing_count"] == 0


def test_sigkill_mid_converge_leaves_no_orphan_duplicate_or_gap(bench: dict[str, Any]) -> None:
    kill = bench["scenarios"]["kill"]
    assert kill["ready_at_kill"] < kill["late_agents"], "killed too late to test anything"
    audit = kill["audit"]
    total = AGENTS + PROBES + kill["late_agents"]
    assert audit["agents"] == kill["agents_total"] == total
    assert audit["children"] == 3 * total
    assert audit["orphan_count"] == audit["duplicate_count"] == audit["missing_count"] == 0
    assert kill["content_audit"]["differing_count"] == 0


def test_the_three_write_counts_agree(bench: dict[str, Any]) -> None:
    """The API server's per-resource count and its per-identity count (FlowSchemas, the same
    scrape) see the same writes; the operator's own counter, scraped from another process a
    moment apart and counting every write it sent (also one whose connection failed before
    an answer, which it sends again), agrees within a write or two (CI saw one apart once)."""
    for scenario in ("create", "idle", "restart", "edit"):
        counted = writes(bench, scenario)
        kinds = {k: v for k, v in counted["by_resource"].items() if k in OPERATOR_ONLY}
        per_resource = sum(kinds.values()) + (counted["operator_events"] or 0)
        if bench["meta"]["writes_by_identity"]:
            assert counted["identity_total"] == counted["total"] == per_resource, counted
        assert counted["operator_metric"] is not None, (scenario, counted)
        assert abs(counted["operator_metric"] - per_resource) <= 2, (scenario, counted)


def test_the_baseline_creates_the_agents_then_applies_three_objects_each(
    bench: dict[str, Any],
) -> None:
    """One client and as many as the operator has workers; each pays for the AIAgents,
    applies the rendered children and waits for its Deployments."""
    variants = bench["baseline"]["variants"]
    assert set(variants) == {"1", str(bench["config"]["clients"])}
    for measured in variants.values():
        create, edit = measured["create"], measured["edit"]
        assert create["objects"] == 3 * AGENTS and edit["objects"] == AGENTS
        assert 0 < create["agents_seconds"] + create["apply_seconds"] <= create["total_seconds"]
        assert create["writes"]["total"] == edit["writes"]["total"] == 0  # no operator ran
        if bench["meta"]["writes_by_identity"]:  # the client wrote the agents, then children
            assert create["cost"]["identities"]["client"]["writes"] == 4 * AGENTS
            assert edit["cost"]["identities"]["client"]["writes"] == 2 * AGENTS
    fastest = bench["baseline"]["fastest"]
    assert fastest["create"]["seconds"] == min(
        v["create"]["total_seconds"] for v in variants.values()
    )


def test_the_table_has_every_target_row_measured(bench: dict[str, Any]) -> None:
    rows = [report.Row.of(row) for row in bench["rows"]]
    targeted = [row for row in rows if row.target]
    assert len(targeted) >= 10
    assert all(row.passed is not None for row in targeted), [
        row for row in targeted if row.passed is None
    ]
    ratios = [row for row in rows if row.target.endswith("baseline")]
    assert len(ratios) == 2 and all(row.ratio and row.ratio > 0 for row in ratios)
    table = report.markdown(rows)
    assert table.count("\n") == len(rows) + 1 and "writes per agent to converge" in table
    costs = report.cost_rows(bench)
    assert {row.window for row in costs} >= {"operator create", "baseline create, 1 client(s)"}
