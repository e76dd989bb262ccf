"""Random and hostile AIAgents, drawn from the CRD's own schema (specs.py), applied to the real
API server with an operator running.

For every spec:
- the API server admits it, or refuses it cleanly (400/422 with a message: a CEL rule, a
  list-map duplicate); never a 5xx;
- an admitted agent settles: its status reports its generation, with `Ready=True`, or a
  `Ready` condition whose reason and message name what is wrong (`Stalled` for a spec or a
  child the API server refuses, `Placed=False` for GPUs that do not fit, a rollout that waits);
- the operator neither crashes (process alive, /healthz 200, no reconcile ending in an
  exception) nor stalls the others: a plain canary agent created every few examples is Ready
  within CANARY_SECONDS (normally 1-3 s);
- a second reconcile of the settled agent (its annotations touched: a watch event, no new
  generation) writes nothing, as the API server counts the operator's identity's writes.

Each example's agent is deleted before the next one, so that writes are attributable.
`make fuzz` runs the long profile (AGENTFLEET_FUZZ_EXAMPLES, default 30 here).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, note, settings
from kubernetes import client
from kubernetes.client import ApiException

from agentfleet.api import constants as c
from soak.kube import Identity, Kubectl
from soak.operator import OperatorProcess
from tests.conftest import OUTPUT, SHARD_LABEL, SUMMARY, Cluster, eventually
from tests.fuzz.specs import agent_specs

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]

EXAMPLES = int(os.environ.get("AGENTFLEET_FUZZ_EXAMPLES", "30"))
SHARD = "fuzz"
IDENTITY = "agentfleet-fuzz"
CANARY_EVERY = 8  # examples
CANARY_SECONDS = 30.0
SETTLE_SECONDS = 90.0
# A Ready=False status is taken as settled once nothing about the agent changed for this
# long: longer than the 10 s the operator waits between status writes that only move counts.
QUIET_SECONDS = 12.0
TOUCH = "fuzz.agentfleet.io/touch"


@dataclass
class Fuzz:
    cluster: Cluster
    operator: OperatorProcess
    identity: Identity
    custom: Any
    namespaces: tuple[str, str]
    examples: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    canary_seconds: list[float] = field(default_factory=list)

    def metric(self, name: str) -> float:
        return self.operator.total(name)

    def healthy(self) -> None:
        self.operator.check_alive()
        url = f"http://127.0.0.1:{self.operator.health_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as response:
            assert response.status == 200

    def agent(self, namespace: str, name: str) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL, name
        )
        return body

    def idle(self) -> bool:
        samples = self.operator.samples()
        busy = self.operator.total("workqueue_depth", samples) + self.operator.total(
            "controller_runtime_active_workers", samples
        )
        return busy == 0


@pytest.fixture(scope="module")
def fuzz(cluster: Cluster, crd: None) -> Iterator[Fuzz]:
    kubectl = Kubectl(cluster.kubectl_path, cluster.kubeconfig)
    identity = Identity(kubectl, IDENTITY, OUTPUT)
    operator = OperatorProcess(
        identity.install(),
        OUTPUT / "fuzz-operator.log",
        "--verbose",
        "--agent-selector",
        f"{SHARD_LABEL}={SHARD}",
    )
    namespaces = (f"fuzz-{uuid.uuid4().hex[:6]}", f"fuzz-{uuid.uuid4().hex[:6]}")
    for namespace in namespaces:
        cluster.kubectl("create", "namespace", namespace)
    operator.start()
    state = Fuzz(cluster, operator, identity, client.CustomObjectsApi(cluster.api()), namespaces)
    try:
        yield state
    finally:
        operator.stop()
        for namespace in namespaces:
            cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        identity.uninstall()
        SUMMARY.append(
            f"fuzz: {state.examples} specs: {dict(state.outcomes)}; canaries Ready in "
            f"max {max(state.canary_seconds, default=0):.1f} s ({len(state.canary_seconds)})"
        )


def body_of(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{c.GROUP}/{c.VERSION}",
        "kind": "AIAgent",
        "metadata": {"name": name, "namespace": namespace, "labels": {SHARD_LABEL: SHARD}},
        "spec": spec,
    }


def condition(agent: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (agent.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def canary(fuzz: Fuzz) -> None:
    """A plain agent: Ready quickly whatever the fuzzed agents do."""
    name = f"canary-{uuid.uuid4().hex[:8]}"
    namespace = fuzz.namespaces[0]
    spec = {"agentType": "custom", "image": "ghcr.io/agentfleet/agent-canary:1"}
    started = time.monotonic()
    fuzz.custom.create_namespaced_custom_object(
        c.GROUP, c.VERSION, namespace, c.PLURAL, body_of(namespace, name, spec)
    )

    def ready() -> None:
        ready = condition(fuzz.agent(namespace, name), "Ready")
        assert ready and ready["status"] == "True", ready

    eventually(ready, timeout=CANARY_SECONDS, what=f"canary {name} to be Ready")
    fuzz.canary_seconds.append(time.monotonic() - started)


def settle(fuzz: Fuzz, namespace: str, name: str) -> dict[str, Any]:
    """Wait until the agent's status reports its generation and says where it stands: Ready,
    Stalled, or Ready=False unchanged for QUIET_SECONDS with the operator idle."""
    last: dict[str, Any] = {}
    since = time.monotonic()

    def settled() -> dict[str, Any]:
        nonlocal last, since
        agent = fuzz.agent(namespace, name)
        status = agent.get("status") or {}
        if status != last.get("status"):
            last, since = agent, time.monotonic()
        assert status.get("observedGeneration") == agent["metadata"]["generation"], status
        ready = condition(agent, "Ready")
        assert ready is not None, status
        assert ready.get("reason") and ready.get("message"), f"a Ready without a word: {ready}"
        stalled = condition(agent, "Stalled")
        if ready["status"] == "True" or (stalled and stalled["status"] == "True"):
            return agent
        assert time.monotonic() - since >= QUIET_SECONDS, "still moving"
        assert fuzz.idle(), "the operator is busy"
        return agent

    return eventually(settled, timeout=SETTLE_SECONDS, interval=0.5, what=f"{name} to settle")


def second_reconcile_writes(fuzz: Fuzz, namespace: str, name: str) -> int:
    """Touch the agent's annotations (an event, no new generation), wait for the reconcile it
    causes to finish, and return the writes the API server received from the operator."""
    eventually(fuzz.idle, timeout=30, what="the operator to be idle")
    writes = fuzz.identity.writes()
    reconciles = fuzz.metric("controller_runtime_reconcile_total")
    patch = {"metadata": {"annotations": {TOUCH: str(time.monotonic())}}}
    fuzz.custom.patch_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL, name, patch)

    def reconciled() -> None:
        assert fuzz.metric("controller_runtime_reconcile_total") > reconciles
        assert fuzz.idle()

    eventually(reconciled, timeout=30, what=f"the reconcile of {name} after the touch")
    return fuzz.identity.writes() - writes


def traceback_count(fuzz: Fuzz) -> int:
    path = Path(fuzz.operator.log_path)
    return path.read_text(errors="replace").count("Traceback") if path.exists() else 0


# Hostile values seen or feared (issue 26) and the paths past a valid Deployment (placed,
# refused placement, unschedulable), tried first on every run.
HOSTILE = [
    {"agentType": "coding", "image": "i:1", "gpu": {"count": 1, "vram": "1e999999"}},
    {"agentType": "coding", "image": "i:1", "gpu": {"count": 1, "vram": "-1Gi"}},
    {"agentType": "coding", "image": "i:1", "resources": {"requests": {"cpu": "1e999999"}}},
    {"agentType": "coding", "image": "i:1", "resources": {"limits": {"memory": "-5"}}},
    {"agentType": "custom", "image": " i:1 ", "env": [{"name": "A\u0000B", "value": "\u2603"}]},
    {"agentType": "custom", "image": "i:1", "securityContext": {"capabilities": {"drop": []}}},
    {"agentType": "custom", "image": "i:1", "mesh": {"mode": "ambient", "allowFrom": []}},
    {"agentType": "custom", "image": "i:1", "autoscaling": {"minReplicas": 0, "maxReplicas": 1}},
    {"agentType": "coding", "image": "i:1", "gpu": {"count": 1, "vram": "24Gi"}},
    {"agentType": "coding", "image": "i:1", "gpu": {"count": 16, "sharing": "shared"}},
    {"agentType": "custom", "image": "i:1", "resources": {"requests": {"cpu": "100000"}}},
]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking against a live cluster
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
    ],
)
@given(spec=agent_specs())
@example(spec=HOSTILE[0])
@example(spec=HOSTILE[1])
@example(spec=HOSTILE[2])
@example(spec=HOSTILE[3])
@example(spec=HOSTILE[4])
@example(spec=HOSTILE[5])
@example(spec=HOSTILE[6])
@example(spec=HOSTILE[7])
@example(spec=HOSTILE[8])
@example(spec=HOSTILE[9])
@example(spec=HOSTILE[10])
def test_a_spec_is_refused_cleanly_or_settles_named_and_stays_quiet(
    fuzz: Fuzz, spec: dict[str, Any]
) -> None:
    if fuzz.examples % CANARY_EVERY == 0:
        canary(fuzz)
    fuzz.examples += 1
    namespace = fuzz.namespaces[fuzz.examples % 2]
    name = f"f-{fuzz.examples}"
    note(json.dumps(spec, ensure_ascii=False))
    errors = fuzz.metric("controller_runtime_reconcile_errors_total")
    tracebacks = traceback_count(fuzz)
    refusal = create(fuzz, body_of(namespace, name, spec))
    if refusal is not None:
        # 504: the API server ran out of its request timeout validating a large hostile spec
        # (CEL on every quantity) on a loaded machine: its refusal, not the operator's.
        assert refusal.status in (400, 422, 504), f"refused with {refusal.status}: {refusal.body}"
        assert json.loads(refusal.body).get("message"), refusal.body
        fuzz.outcomes[f"refused {refusal.status}"] += 1
        return
    try:
        agent = settle(fuzz, namespace, name)
        ready = condition(agent, "Ready") or {}
        stalled = condition(agent, "Stalled") or {}
        outcome = "Ready" if ready.get("status") == "True" else f"Ready=False/{ready.get('reason')}"
        if stalled.get("status") == "True":
            outcome = f"Stalled/{stalled.get('reason')}"
        fuzz.outcomes[outcome] += 1
        note(f"settled: {outcome}: {ready.get('message')}")
        written = second_reconcile_writes(fuzz, namespace, name)
        assert written == 0, f"a second reconcile of a settled agent wrote {written} times"
        fuzz.healthy()
        assert fuzz.metric("controller_runtime_reconcile_errors_total") == errors, (
            f"a reconcile ended in an exception:\n{fuzz.operator.log_tail(60)}"
        )
        assert traceback_count(fuzz) == tracebacks, fuzz.operator.log_tail(60)
    finally:
        fuzz.custom.delete_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL, name)
        eventually(lambda: _gone(fuzz, namespace, name), timeout=30, what=f"{name} to be deleted")


def create(fuzz: Fuzz, body: dict[str, Any]) -> ApiException | None:
    """Create the agent; the API server's refusal, if it refused."""
    meta = body["metadata"]
    try:
        fuzz.custom.create_namespaced_custom_object(
            c.GROUP, c.VERSION, meta["namespace"], c.PLURAL, body
        )
    except ApiException as error:
        return error
    return None


def _gone(fuzz: Fuzz, namespace: str, name: str) -> bool:
    try:
        fuzz.agent(namespace, name)
    except ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


def test_a_last_canary_is_ready_after_every_spec(fuzz: Fuzz) -> None:
    """After the last example too (and, above, every CANARY_EVERY examples)."""
    canary(fuzz)
    fuzz.healthy()
