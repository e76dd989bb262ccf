"""Pod Security, judged by the apiserver's own Pod Security admission (issue 26, issue 28).

The corpus (tests/unit/podsecurity_corpus.py) probes every check the CRD's pass-through fields
can reach. Each case's pod, exactly as the operator renders it, is sent to the real apiserver
(a server-side dry run) in namespaces labelled `pod-security.kubernetes.io/enforce=restricted`
and `=baseline`: the operator must refuse exactly what Pod Security admission refuses. Then the
whole corpus runs through the real operator in a restricted namespace: every agent it accepts
gets its pods admitted, every escape is Stalled with PolicyViolation naming the field, and
none is left with 0 pods and no word. Last, an installation that allows more
(--allow-privileged, --pod-security=baseline) gets what it allowed, and a pod the operator let
through but the namespace refuses is reported by the agent (FailedCreate), then heals.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from agentfleet.api import constants as c
from agentfleet.api.config import Policy
from agentfleet.controllers import policy
from agentfleet.render import deployment
from agentfleet.render.context import RenderContext
from tests.conftest import (
    SHARD_LABEL,
    SUMMARY,
    Cluster,
    Operator,
    eventually,
    operator_kubeconfig,
    start_operator,
)
from tests.integration.test_operator import condition, get_agent
from tests.unit.conftest import agent_from
from tests.unit.podsecurity_corpus import CASES, Case, spec_of

pytestmark = pytest.mark.cluster

ENFORCE = "pod-security.kubernetes.io/enforce"
SHARD = "policy"


def labelled_namespace(cluster: Cluster, level: str) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, f"{ENFORCE}={level}")
    return name


@pytest.fixture
def restricted(cluster: Cluster) -> Iterator[str]:
    name = labelled_namespace(cluster, "restricted")
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def admission_verdict(core: client.CoreV1Api, namespace: str, case: Case) -> str | None:
    """Pod Security admission's reason for refusing the case's pod, None if it admits it."""
    pod_spec = deployment.pod_spec(agent_from(spec_of(case)), RenderContext())
    pod_spec["serviceAccountName"] = "default"  # the ServiceAccount admission wants one that exists
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"}, "spec": pod_spec}
    try:
        core.create_namespaced_pod(namespace, body, dry_run="All")
    except ApiException as error:
        message = str(json.loads(error.body or "{}").get("message", ""))
        status = error.status
    else:
        return None
    assert status == 403 and "violates PodSecurity" in message, (
        f"{case.name}: the corpus must hold valid pods only: {status} {message}"
    )
    return message


@pytest.mark.parametrize("level", ["restricted", "baseline"])
def test_the_operator_refuses_exactly_what_pod_security_admission_refuses(
    cluster: Cluster, level: str
) -> None:
    namespace = labelled_namespace(cluster, level)
    try:
        core = client.CoreV1Api(cluster.api())
        disagreements, refused = [], 0
        for case in CASES:
            said = admission_verdict(core, namespace, case)
            chosen = Policy(pod_security=level)  # type: ignore[arg-type]
            found = policy.pod_security(agent_from(spec_of(case)), chosen)
            refused += said is not None
            if (said is None) != (not found):
                disagreements.append(f"{case.name}: admission {said!r}, operator {found}")
        assert not disagreements, "\n".join(disagreements)
        SUMMARY.append(
            f"Pod Security {level}: {len(CASES)} corpus pods, {refused} refused by the"
            " apiserver's admission, the operator's verdict the same on every one"
        )
    finally:
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def corpus_agent(case: Case, namespace: str, labels: dict[str, str] | None = None) -> str:
    body = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": case.name, "namespace": namespace, "labels": labels or {}},
        "spec": {**spec_of(case), "replicas": 1},
    }
    return yaml.safe_dump(body)


def pods_of(core: client.CoreV1Api, namespace: str, name: str) -> list[Any]:
    selector = f"{c.LABEL_INSTANCE}={name}"
    return list(core.list_namespaced_pod(namespace, label_selector=selector).items)


def test_every_agent_the_operator_accepts_gets_its_pods_and_every_escape_says_why(
    cluster: Cluster, operator: Operator, restricted: str
) -> None:
    cluster.kubectl(
        "apply", "-f", "-", input="---\n".join(corpus_agent(case, restricted) for case in CASES)
    )
    core, apps = client.CoreV1Api(cluster.api()), client.AppsV1Api(cluster.api())

    def settled(case: Case) -> str:
        agent = get_agent(cluster, restricted, case.name)
        stalled = condition(agent, c.COND_STALLED)
        if case.refused:
            assert (stalled.get("status"), stalled.get("reason")) == ("True", "PolicyViolation")
            for check in case.refused:
                assert f": {check})" in stalled["message"], (check, stalled["message"])
            return "refused"
        assert stalled.get("status") == "False", (case.name, agent.get("status"))
        assert pods_of(core, restricted, case.name), f"{case.name}: no pod admitted yet"
        return "admitted"

    outcomes = {
        case.name: eventually(lambda case=case: settled(case), timeout=120, what=case.name)
        for case in CASES
    }
    for case in CASES:
        if case.refused:  # nothing was made for a refused agent
            with pytest.raises(ApiException) as missing:
                apps.read_namespaced_deployment(case.name, restricted)
            assert missing.value.status == 404
    admitted = sum(1 for outcome in outcomes.values() if outcome == "admitted")
    SUMMARY.append(
        f"Pod Security restricted, real operator: {admitted} corpus agents' pods admitted,"
        f" {len(CASES) - admitted} refused with PolicyViolation naming each check"
    )


# --- an installation that allows more ----------------------------------------------------------


@pytest.fixture(scope="module")
def loose_operator(cluster: Cluster, crd: None) -> Iterator[Operator]:
    """The deprecated --allow-privileged, and baseline as the level: what issue 28 asks to see
    on the real apiserver, and a way to let through pods a restricted namespace refuses."""
    handle = start_operator(
        operator_kubeconfig(cluster, name="policy-operator"),
        "--agent-selector",
        f"{SHARD_LABEL}={SHARD}",
        "--allow-privileged",
        "--pod-security=baseline",
        name="policy-operator",
    )
    try:
        yield handle
    finally:
        handle.stop()


def shard_agent(name: str, namespace: str, **spec: Any) -> str:
    return corpus_agent(Case(name, spec), namespace, {SHARD_LABEL: SHARD})


def test_allow_privileged_lets_through_escalation_root_and_capabilities_and_nothing_else(
    cluster: Cluster, loose_operator: Operator, namespace: str
) -> None:
    """issue 28: allowPrivilegeEscalation, running as root and added capabilities are refused
    by default (the corpus above) and allowed by --allow-privileged, on the real apiserver."""
    context = {
        "allowPrivilegeEscalation": True,
        "runAsNonRoot": False,
        "runAsUser": 0,
        "capabilities": {"add": ["SYS_ADMIN"]},
    }
    cluster.kubectl(
        "apply", "-f", "-", input=shard_agent("root", namespace, securityContext=context)
    )
    unconfined = {"seccompProfile": {"type": "Unconfined"}}
    cluster.kubectl(
        "apply", "-f", "-", input=shard_agent("open", namespace, securityContext=unconfined)
    )
    core = client.CoreV1Api(cluster.api())

    def root_runs() -> None:
        agent = get_agent(cluster, namespace, "root")
        assert condition(agent, c.COND_READY).get("status") == "True", agent.get("status")
        [pod] = pods_of(core, namespace, "root")
        given = pod.spec.containers[0].security_context
        assert (given.run_as_user, given.allow_privilege_escalation) == (0, True)
        assert given.capabilities.add == ["SYS_ADMIN"]

    eventually(root_runs, timeout=90, what="the root agent to run")

    def open_refused() -> None:
        stalled = condition(get_agent(cluster, namespace, "open"), c.COND_STALLED)
        assert stalled.get("reason") == "PolicyViolation", stalled
        assert "(Pod Security baseline: seccompProfile_baseline)" in stalled["message"]

    eventually(open_refused, timeout=60, what="seccomp Unconfined still refused")


def test_pods_pod_security_admission_refuses_stall_the_agent_until_the_namespace_allows_them(
    cluster: Cluster, loose_operator: Operator, restricted: str
) -> None:
    """The operator allows baseline here, the namespace enforces restricted: the Deployment is
    made and the ReplicaSet cannot create a pod. The agent says so with admission's own words
    (before: "rolling out: 0 of 1 replicas updated", forever), and heals when allowed."""
    chown = {"capabilities": {"add": ["CHOWN"]}}
    cluster.kubectl(
        "apply", "-f", "-", input=shard_agent("chown", restricted, securityContext=chown)
    )

    def refused() -> dict[str, Any]:
        agent = get_agent(cluster, restricted, "chown")
        stalled = condition(agent, c.COND_STALLED)
        assert (stalled.get("status"), stalled.get("reason")) == ("True", "FailedCreate"), agent
        assert condition(agent, c.COND_READY).get("reason") == "FailedCreate"
        return stalled

    stalled = eventually(refused, timeout=90, what="chown Stalled/FailedCreate")
    assert 'violates PodSecurity "restricted:latest"' in stalled["message"], stalled
    assert "capabilities" in stalled["message"]
    cluster.kubectl("label", "namespace", restricted, f"{ENFORCE}=baseline", "--overwrite")

    def healed() -> None:
        agent = get_agent(cluster, restricted, "chown")
        assert condition(agent, c.COND_READY).get("status") == "True", agent.get("status")
        assert condition(agent, c.COND_STALLED).get("status") == "False"

    eventually(healed, timeout=180, what="chown Ready once the namespace allows baseline")
