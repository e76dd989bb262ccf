"""Leader election's pure parts: the write gate's deadline, the records it writes, the
identity, the flags. The election itself runs against a real API server in
tests/integration/test_leader.py."""

from __future__ import annotations

import datetime
import socket
from types import SimpleNamespace
from typing import Any

import pytest

from agentfleet.api.config import OperatorConfig
from agentfleet.kube.client import Kube, WritesRefused
from agentfleet.runtime import leader
from agentfleet.runtime.leader import LeaderElector, Record, Timing

WALL = datetime.datetime(2026, 12, 1, 12, 0, 0, 123456, tzinfo=datetime.UTC)


def elector(clock: list[float], name: str = "pod-a") -> LeaderElector:
    kube: Any = None  # the pure methods below never send a request
    return LeaderElector(
        kube,
        "agentfleet-system",
        "agentfleet-operator",
        name,
        Timing(15, 10, 2),
        clock=lambda: clock[0],
        wall=lambda: WALL,
    )


def lease(holder: str, transitions: int = 3, version: str = "42") -> dict[str, Any]:
    return {
        "metadata": {"name": "agentfleet-operator", "resourceVersion": version},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-12-01T11:00:00.000000Z",
            "renewTime": "2026-12-01T11:59:58.000000Z",
            "leaseTransitions": transitions,
        },
    }


def test_the_gate_refuses_until_the_lease_is_held_and_from_the_renew_deadline_on() -> None:
    clock = [100.0]
    candidate = elector(clock)
    assert candidate.refused() == "this replica (pod-a) is not the leader"
    candidate.held, candidate.renewed_at = True, 100.0  # a renewal sent at t=100
    clock[0] = 109.9
    assert candidate.refused() is None
    # Asked at the moment of each write, not by a timer: a process frozen past its deadline
    # (SIGSTOP) is refused at its very first write after waking.
    clock[0] = 110.0
    assert candidate.refused() == (
        "the leader Lease was last renewed 10.0s ago, past the 10s renew deadline"
    )
    assert not candidate.is_leader()


def test_leading_means_holding_a_live_lease_once_the_work_started() -> None:
    clock = [100.0]
    candidate = elector(clock)
    candidate.held, candidate.renewed_at = True, 100.0
    assert not candidate.is_leader()  # still claiming its shard, say: workers wait
    candidate.leading.set()
    candidate.leading_since = 100.0
    clock[0] = 105.0
    assert candidate.is_leader() and candidate.leading_for() == 5.0
    assert candidate.describe()["leader"] is True


def test_a_renewal_keeps_the_acquire_time_and_the_transitions() -> None:
    current = Record.of(lease("pod-a"))
    renewed = elector([0.0])._next(current)
    assert renewed.spec() == {
        "holderIdentity": "pod-a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-12-01T11:00:00.000000Z",
        "renewTime": "2026-12-01T12:00:00.123456Z",
        "leaseTransitions": 3,
    }
    assert renewed.resource_version == "42"  # written only onto the version read


def test_a_take_over_counts_one_transition_and_starts_a_new_term() -> None:
    for holder in ("pod-b", ""):  # from a live holder that lapsed, or a released Lease
        taken = elector([0.0])._next(Record.of(lease(holder)))
        assert taken.holder == "pod-a" and taken.transitions == 4
        assert taken.acquire_time == taken.renew_time == "2026-12-01T12:00:00.123456Z"
    first = elector([0.0])._next(None)
    assert (first.holder, first.transitions, first.resource_version) == ("pod-a", 0, "")


def test_records_compare_by_what_they_say_not_the_version_read() -> None:
    a = Record.of(lease("pod-a", version="1"))
    assert a.same(Record.of(lease("pod-a", version="2")))
    assert not a.same(Record.of(lease("pod-b", version="1")))
    assert not a.same(None)


def test_identity_is_the_pod_name_else_host_name_and_a_random_suffix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAME", "agentfleet-operator-7d9f-abcde")
    assert leader.identity() == "agentfleet-operator-7d9f-abcde"
    monkeypatch.delenv("POD_NAME")
    one, two = leader.identity(), leader.identity()
    assert one.startswith(socket.gethostname() + "_") and one != two


def test_timings_that_cannot_work_are_refused_naming_the_flags() -> None:
    assert OperatorConfig().problems() == []
    bad = OperatorConfig(leader_elect_lease_duration=10, leader_elect_renew_deadline=10)
    assert bad.problems() == [
        "--leader-elect-renew-deadline must be shorter than --leader-elect-lease-duration:"
        " a follower could take over while the leader still writes"
    ]
    assert OperatorConfig(leader_elect_retry_period=10).problems() == [
        "--leader-elect-retry-period must be shorter than --leader-elect-renew-deadline"
    ]


async def test_a_gated_client_sends_no_write_and_counts_it_refused() -> None:
    transport: Any = SimpleNamespace(connect_timeout=1.0)  # a write past the gate fails on it
    kube = Kube(transport)
    kube.gates.append(lambda: None)
    kube.gates.append(lambda: "this replica (pod-b) is not the leader")
    assert kube.refused() == "this replica (pod-b) is not the leader"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "coding", "namespace": "ai"},
    }
    with pytest.raises(WritesRefused) as refused:
        await kube.apply(deployment, "deployments", None)
    assert refused.value.transient  # retried, by whichever replica leads by then
    assert str(refused.value) == (
        "Deployment coding was not written: this replica (pod-b) is not the leader"
    )


def test_agentfleet_run_refuses_timings_that_cannot_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from agentfleet import main
    from agentfleet.runtime import runner

    started: list[Any] = []
    monkeypatch.setattr(runner, "run", lambda config, verbose: started.append(config))
    args = ["run", "--leader-elect", "--leader-elect-renew-deadline", "20"]
    result = CliRunner().invoke(main.app, args)
    assert result.exit_code == 2 and not started
    assert "--leader-elect-renew-deadline must be shorter" in result.output
    assert CliRunner().invoke(main.app, ["run", "--leader-elect"]).exit_code == 0
    assert started[0].leader_elect and started[0].leader_election_id == "agentfleet-operator"
