"""Leader election on a real API server: several replicas, one writer.

First the elector itself, in this process with short timings (a take-over after the lease
duration, at once after a release, a frozen leader that wakes up past its deadline, an
outage that the leader rides out). Then real operator processes with the chart's timings
(lease 15 s, renew deadline 10 s, retry 2 s), each replica with its own ServiceAccount so
the API server's audit log tells their writes apart: SIGKILL of the leader, a clean stop,
and a leader frozen (SIGSTOP) past its deadline that must have stopped writing before the
new leader starts."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client as sync_client

from agentfleet.api import constants as c
from agentfleet.kube import client as kube
from agentfleet.runtime.leader import LeaderElector, Timing
from tests.conftest import (
    SHARD_LABEL,
    SUMMARY,
    Cluster,
    Operator,
    eventually,
    operator_kubeconfig,
    start_operator,
)
from tests.integration import audit
from tests.integration.test_operator import agent_yaml

pytestmark = pytest.mark.cluster

LEASE_NAMESPACE = "agentfleet-system"
FAST = Timing(lease_duration=3, renew_deadline=2, retry_period=0.25)
BUSY = 15  # agents the leader is working on when it is frozen


# --- the elector, in process -------------------------------------------------------------------


@pytest.fixture
def kubeconfig(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> str:
    cluster.kubectl("create", "namespace", LEASE_NAMESPACE, check=False)
    monkeypatch.setenv("KUBECONFIG", cluster.kubeconfig)
    return cluster.kubeconfig


@contextlib.asynccontextmanager
async def connected() -> AsyncIterator[kube.Kube]:
    """An API client on the test's own event loop (2 s timeouts, as the side client)."""
    connection = await kube.connect(pool_size=4, connect_timeout=2, request_timeout=2)
    try:
        yield connection
    finally:
        await connection.close()


def candidates(api: kube.Kube, *names: str, **kwargs: Any) -> list[LeaderElector]:
    """Electors on one connection pool, each with a client of its own (its write gates)."""
    lease = f"test-{uuid.uuid4().hex[:8]}"
    return [
        LeaderElector(kube.Kube(api.transport), LEASE_NAMESPACE, lease, name, FAST, **kwargs)
        for name in names
    ]


async def until(check: Any, within: float = 15, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_one_candidate_leads_and_another_takes_over_a_lease_duration_later(
    kubeconfig: str,
) -> None:
    async with connected() as api:
        a, b = candidates(api, "a", "b")
        a.start()
        await until(a.is_leader, what="a to lead")
        b.start()
        await asyncio.sleep(FAST.lease_duration + 1)
        assert a.is_leader() and not b.is_leader(), "a live leader keeps the Lease"
        await a.stop()  # a crash: no release
        last_renewal = a.renewed_at
        assert last_renewal is not None
        await until(b.is_leader, within=FAST.lease_duration + 5, what="b to take over")
        assert b.leading_since is not None
        handover = b.leading_since - last_renewal
        # Never before a lease duration after the old leader's last renewal was sent...
        assert handover >= FAST.lease_duration, handover
        # ... and the old leader's gate had closed by its renew deadline.
        assert a.refused() is not None
        assert handover <= FAST.lease_duration + 3 * FAST.retry_period + 1, handover
        lease = await b.kube.get(b.ref)
        assert lease is not None
        assert lease["spec"]["holderIdentity"] == "b" and lease["spec"]["leaseTransitions"] == 1
        await b.release()


async def test_a_released_lease_is_taken_over_at_the_next_try(kubeconfig: str) -> None:
    async with connected() as api:
        a, b = candidates(api, "a", "b")
        a.start()
        await until(a.is_leader, what="a to lead")
        b.start()
        await asyncio.sleep(2 * FAST.retry_period)
        released = time.monotonic()
        await a.release()
        assert a.refused() is not None, "a writes nothing once it let go"
        await until(b.is_leader, within=5, what="b to take over")
        assert time.monotonic() - released < FAST.retry_period + 1
        await b.release()


async def test_a_leader_frozen_past_its_deadline_writes_nothing_and_gives_up_when_it_wakes(
    kubeconfig: str,
) -> None:
    async with connected() as api:
        lost: list[str] = []
        a, b = candidates(api, "a", "b", on_lost=lost.append)
        a.start()
        await until(a.is_leader, what="a to lead")
        b.start()
        # Frozen: its loop does not run (as under SIGSTOP), its clock goes on.
        await a.stop()
        a.stopped = False
        await until(b.is_leader, within=FAST.lease_duration + 5, what="b to take over")
        # Awake: its very first write is refused, before its loop has even noticed...
        assert a.refused() is not None and a.refused() != "this replica (a) is not the leader"
        # ... and its next try finds the Lease taken: it gives up (the process exits non-zero).
        assert not await a.try_acquire_or_renew()
        assert lost == ["the leader Lease is now held by b"]
        assert not a.is_leader() and a.refused() == "this replica (a) is not the leader"
        await b.release()


async def test_a_leader_rides_out_an_outage_when_nobody_else_took_the_lease(
    kubeconfig: str,
) -> None:
    async with connected() as api:
        lost: list[str] = []
        a, b = candidates(api, "a", "b", on_lost=lost.append)
        a.start()
        await until(a.is_leader, what="a to lead")
        b.start()
        await asyncio.sleep(2 * FAST.retry_period)
        # Both lose the API server for longer than the lease duration.
        away = await unreachable()
        live_a, live_b = a.kube, b.kube
        a.kube = b.kube = away
        await until(lambda: not a.is_leader(), within=FAST.renew_deadline + 2, what="a to stop")
        assert a.refused() is not None and "renew deadline" in str(a.refused())
        await asyncio.sleep(FAST.lease_duration)
        a.kube, b.kube = live_a, live_b
        # The Lease is still a's, unchanged: nobody else can have led; a writes again, b follows.
        await until(a.is_leader, within=5, what="a to resume")
        await asyncio.sleep(FAST.lease_duration + 1)
        assert a.is_leader() and not b.is_leader() and lost == []
        lease = await a.kube.get(a.ref)
        assert lease is not None and lease["spec"]["leaseTransitions"] == 0
        await a.release()
        await b.stop()
        await away.close()


async def unreachable() -> kube.Kube:
    """An API client whose server address answers nothing (a closed port on loopback)."""
    from agentfleet.kube import config
    from agentfleet.kube.transport import Transport
    from agentfleet_dev.cluster import free_ports

    cluster = dataclasses.replace(
        await config.load(), server=f"https://127.0.0.1:{free_ports(1)[0]}"
    )
    return kube.Kube(Transport(cluster, 4, connect_timeout=1, request_timeout=1))


# --- operator processes ------------------------------------------------------------------------


def replica(cluster: Cluster, lease: str, name: str) -> Operator:
    """One replica of a leader-elected operator, as the chart runs it (default timings), with
    its own identity for the API server."""
    kubeconfig = operator_kubeconfig(cluster, name=f"le-{name}", service_account=f"af-le-{name}")
    return start_operator(
        kubeconfig,
        "--leader-elect",
        "--leader-election-id",
        lease,
        "--agent-selector",
        f"{SHARD_LABEL}=leader",
        name=f"leader-{name}",
        env={"POD_NAME": f"replica-{name}", "POD_NAMESPACE": LEASE_NAMESPACE},
    )


@pytest.fixture
def replicas(cluster: Cluster, crd: None) -> Iterator[dict[str, Operator]]:
    lease = f"test-{uuid.uuid4().hex[:8]}"
    pair = {name: replica(cluster, lease, name) for name in ("a", "b")}
    try:
        yield pair
    finally:
        for operator in pair.values():
            if operator.process.poll() is None:
                os.kill(operator.process.pid, signal.SIGCONT)
                operator.stop()


def user(name: str) -> str:
    return audit.service_account(LEASE_NAMESPACE, f"af-le-{name}")


def leader_of(replicas: dict[str, Operator]) -> tuple[str, str]:
    """(leader, follower) once exactly one leads."""

    def one() -> tuple[str, str]:
        leading = [name for name, operator in replicas.items() if operator.leads()]
        assert len(leading) == 1, leading
        (first,) = leading
        return first, next(name for name in replicas if name != first)

    return eventually(one, timeout=40, what="one leader")


def create(cluster: Cluster, namespace: str, name: str) -> None:
    body = yaml.safe_load(agent_yaml(name, namespace, replicas=1))
    body["metadata"]["labels"] = {SHARD_LABEL: "leader"}
    sync_client.CustomObjectsApi(cluster.api()).create_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.PLURAL, body
    )


def reconciled(cluster: Cluster, namespace: str, name: str) -> None:
    agent = sync_client.CustomObjectsApi(cluster.api()).get_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.PLURAL, name
    )
    status = agent.get("status") or {}
    assert status.get("observedGeneration") == agent["metadata"]["generation"], status


def deployed(cluster: Cluster, namespace: str, name: str) -> None:
    """The reconcile applied the agent's children (its status follows one status window,
    `--status-window-seconds`, later: by design, not by the take-over)."""
    try:
        sync_client.AppsV1Api(cluster.api()).read_namespaced_deployment(name, namespace)
    except sync_client.exceptions.ApiException as error:
        raise AssertionError(f"no Deployment {namespace}/{name} yet ({error.status})") from None


def measure(cluster: Cluster, namespace: str, name: str, since: float, timeout: float) -> float:
    """Seconds from `since` until the agent was reconciled (its children applied); waits for
    its status too."""
    eventually(
        lambda: deployed(cluster, namespace, name),
        timeout=timeout,
        interval=0.1,
        what=f"{name} reconciled",
    )
    took = time.monotonic() - since
    eventually(lambda: reconciled(cluster, namespace, name), timeout=30, what=f"{name}'s status")
    return took


def test_sigkill_of_the_leader_the_follower_reconciles_within_the_lease_duration(
    cluster: Cluster, namespace: str, replicas: dict[str, Operator]
) -> None:
    path = audit.log_of(cluster)
    first, second = leader_of(replicas)
    create(cluster, namespace, "before")
    measure(cluster, namespace, "before", time.monotonic(), 60)
    eventually(lambda: replicas[second].ready().get("status") == "ok", what="warm follower")
    killed = time.monotonic()
    killed_at = audit.now()
    replicas[first].process.kill()
    create(cluster, namespace, "after")
    took = measure(cluster, namespace, "after", killed, 15 + 5)
    with_status = time.monotonic() - killed
    assert replicas[second].leads()
    SUMMARY.append(
        f"leader election: SIGKILL of the leader -> new agent reconciled in {took:.1f}s"
        f" (its status after {with_status:.1f}s)"
    )
    # The take-over costs nothing for what had settled: no write to the first agent's objects.
    mine = [w for w in audit.writes(path, [user(second)]) if w.received > killed_at]
    assert not [w for w in mine if w.namespace == namespace and w.name == "before"], mine


def test_a_clean_stop_hands_over_at_once(
    cluster: Cluster, namespace: str, replicas: dict[str, Operator]
) -> None:
    first, second = leader_of(replicas)
    eventually(lambda: replicas[second].ready().get("status") == "ok", what="warm follower")
    stopped = time.monotonic()
    replicas[first].process.send_signal(signal.SIGTERM)
    create(cluster, namespace, "after-stop")
    took = measure(cluster, namespace, "after-stop", stopped, 5)
    with_status = time.monotonic() - stopped
    SUMMARY.append(
        f"leader election: SIGTERM of the leader -> new agent reconciled in {took:.1f}s"
        f" (its status after {with_status:.1f}s)"
    )
    assert replicas[first].process.wait(20) == 0, "a clean stop exits 0"
    assert "released Lease" in replicas[first].log_path.read_text()


def test_a_frozen_leader_has_stopped_writing_before_the_new_leader_starts(
    cluster: Cluster, namespace: str, replicas: dict[str, Operator]
) -> None:
    path = audit.log_of(cluster)
    first, second = leader_of(replicas)
    # The leader is busy when it is frozen: it has started on a burst of agents.
    for i in range(BUSY):
        create(cluster, namespace, f"busy-{i}")
    eventually(lambda: reconciled(cluster, namespace, "busy-0"), timeout=60, interval=0.05)
    frozen_at = audit.now()
    os.kill(replicas[first].process.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    create(cluster, namespace, "while-frozen")
    took = measure(cluster, namespace, "while-frozen", frozen, 60)
    for i in range(BUSY):
        eventually(lambda i=i: reconciled(cluster, namespace, f"busy-{i}"), timeout=30)
    woken_at = audit.now()
    os.kill(replicas[first].process.pid, signal.SIGCONT)
    # Awake, it finds the Lease taken and exits non-zero, writing nothing more.
    assert replicas[first].process.wait(30) != 0
    log = replicas[first].log_path.read_text()
    assert "lost leadership: the leader Lease is now held by replica-" in log, log[-2000:]
    ours = [w for w in audit.writes(path, [user(first), user(second)]) if w.received > frozen_at]
    work = [w for w in ours if w.resource != audit.LEASES]
    old = [w for w in work if w.user == user(first)]
    new = [w for w in work if w.user == user(second)]
    assert new, "the new leader did the work"
    # A write that had passed both write gates (the request's and its connection's) when the
    # process was frozen still goes out when it wakes: no client can recall bytes it was about
    # to send (client-go has the same window; only a fencing token would close it). Those
    # arrive at once, at most one per worker; nothing is started after waking.
    in_flight = [w for w in old if w.received > woken_at]
    assert len(in_flight) <= 4, in_flight
    assert all(w.received - woken_at < datetime.timedelta(seconds=2) for w in in_flight), in_flight
    old = [w for w in old if w.received <= woken_at]
    if old:
        assert max(w.received for w in old) < min(w.received for w in new)
        gap = min(w.received for w in new) - max(w.received for w in old)
        assert gap > datetime.timedelta(seconds=4), gap  # renew deadline 10 s < lease 15 s
    SUMMARY.append(
        f"leader election: leader frozen (SIGSTOP) -> new agent reconciled in {took:.1f}s;"
        f" {len(old)} writes of the old leader after the freeze began, all before the new"
        f" leader's first"
    )
