"""The write path against a real API server: never take what isn't ours, always heal, say
exactly what the cluster holds (issue 16). Each test here failed on the operator before it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml
from kubernetes import client

from agentfleet.api import constants as c
from tests.conftest import Cluster, Operator, eventually, wait_for_other_test_namespaces_gone
from tests.integration.test_operator import agent_yaml, apply, condition, get_agent, wait_ready

pytestmark = pytest.mark.cluster


def stalled_with(cluster: Cluster, namespace: str, name: str, reason: str) -> dict[str, Any]:
    def check() -> dict[str, Any]:
        agent = get_agent(cluster, namespace, name)
        stalled = condition(agent, "Stalled")
        assert (stalled.get("status"), stalled.get("reason")) == ("True", reason), agent.get(
            "status"
        )
        return stalled

    return eventually(check, timeout=60, what=f"{name} Stalled/{reason}")


def warning_reasons(cluster: Cluster, namespace: str, name: str) -> list[str]:
    events = client.CoreV1Api(cluster.api()).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name},type=Warning"
    )
    return [e.reason for e in events.items]


def users_service(namespace: str, annotations: dict[str, str] | None = None) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "legacy", "namespace": namespace, "annotations": annotations},
            "spec": {"ports": [{"name": "web", "port": 80}], "selector": {"app": "legacy"}},
        }
    )


def test_a_users_service_with_the_agents_name_is_never_taken_or_deleted(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, users_service(namespace))
    apply(cluster, agent_yaml("legacy", namespace))
    stalled = stalled_with(cluster, namespace, "legacy", "ChildConflict")
    assert (
        f"Service {namespace}/legacy exists and is not managed by this AIAgent"
        in (stalled["message"])
    )
    eventually(
        lambda: "ChildConflict" in warning_reasons(cluster, namespace, "legacy"),
        what="a ChildConflict Warning event",
    )
    core = client.CoreV1Api(cluster.api())
    service = core.read_namespaced_service("legacy", namespace)
    assert not service.metadata.owner_references
    assert [p.port for p in service.spec.ports] == [80], "not a field of it was changed"
    # The Deployment and ServiceAccount are still made: only the clash waits for a person.
    client.AppsV1Api(cluster.api()).read_namespaced_deployment("legacy", namespace)

    cluster.kubectl("delete", "aia/legacy", "-n", namespace, "--wait=true")
    time.sleep(3)  # the garbage collector would have deleted an adopted Service by now
    assert core.read_namespaced_service("legacy", namespace).metadata.uid == service.metadata.uid


def test_the_adopt_annotation_hands_an_existing_service_over(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, users_service(namespace, {c.ANNOTATION_ADOPT: "true"}))
    uid = client.CoreV1Api(cluster.api()).read_namespaced_service("legacy", namespace).metadata.uid
    apply(cluster, agent_yaml("legacy", namespace))
    wait_ready(cluster, namespace, "legacy")
    service = client.CoreV1Api(cluster.api()).read_namespaced_service("legacy", namespace)
    assert service.metadata.uid == uid, "adopted in place"
    assert service.metadata.owner_references[0].kind == "AIAgent"
    assert [p.port for p in service.spec.ports] == [8080, 9090, 9091, 8081]


def test_the_service_account_the_spec_names_is_not_pruned_while_pods_use_it(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, agent_yaml("ident", namespace))
    wait_ready(cluster, namespace, "ident")
    core = client.CoreV1Api(cluster.api())
    uid = core.read_namespaced_service_account("ident", namespace).metadata.uid
    apply(cluster, agent_yaml("ident", namespace, serviceAccountName="ident"))
    wait_ready(cluster, namespace, "ident")
    time.sleep(3)  # a prune would happen on the reconciles that follow the rollout
    assert core.read_namespaced_service_account("ident", namespace).metadata.uid == uid
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/instance=ident")
    assert {p.spec.service_account_name for p in pods.items} == {"ident"}


def test_a_quota_refusal_heals_without_an_edit_once_the_quota_is_lifted(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.kubectl("create", "quota", "no-services", "--hard=services=0", "-n", namespace)
    apply(cluster, agent_yaml("quota", namespace))
    stalled = stalled_with(cluster, namespace, "quota", "QuotaExceeded")
    assert "exceeded quota: no-services" in stalled["message"]
    cluster.kubectl("delete", "quota", "no-services", "-n", namespace)
    started = time.monotonic()
    wait_ready(cluster, namespace, "quota", timeout=60)
    print(f"healed {time.monotonic() - started:.1f}s after the quota was lifted")


def test_status_replicas_counts_what_runs_not_what_was_asked(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    cluster.kubectl("create", "quota", "two-pods", "--hard=pods=2", "-n", namespace)
    apply(cluster, agent_yaml("capped", namespace, replicas=4))

    def two_running() -> None:
        status = get_agent(cluster, namespace, "capped").get("status") or {}
        assert status.get("replicas") == 2 and status.get("availableReplicas") == 2, status

    eventually(two_running, what="status.replicas == 2 of 4 asked")
    ready = condition(get_agent(cluster, namespace, "capped"), "Ready")
    assert ready["status"] == "False" and "2 of 4" in ready["message"]
    # Why only two: the quota refuses the other pods (issue 26: FailedCreate, not silence).
    assert ready["reason"] == "FailedCreate" and "exceeded quota: two-pods" in ready["message"]


def test_a_status_key_the_operator_no_longer_writes_disappears_once(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, agent_yaml("legacy-status", namespace))
    wait_ready(cluster, namespace, "legacy-status")
    # As an older operator version would have left it.
    cluster.kubectl(
        "patch", "aia/legacy-status", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps({"status": {"phase": "Running"}}),
    )  # fmt: skip
    eventually(
        lambda: "phase" not in get_agent(cluster, namespace, "legacy-status")["status"],
        timeout=30,
        what="the stale status key to disappear",
    )
    writes = operator.writes()
    cluster.kubectl("annotate", "aia/legacy-status", "-n", namespace, "example.com/poke=1")
    time.sleep(3)
    assert operator.writes() == writes, "it disappears once; no write on every reconcile"


def test_the_repair_path_leaves_no_second_field_manager_entry(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, agent_yaml("mended", namespace))
    wait_ready(cluster, namespace, "mended")
    patch = [{"op": "replace", "path": "/spec/ports/1/port", "value": 9999}]
    cluster.kubectl(
        "patch", "service", "mended", "-n", namespace, "--type=json", "-p", json.dumps(patch)
    )
    core = client.CoreV1Api(cluster.api())

    def restored() -> None:
        svc = core.read_namespaced_service("mended", namespace)
        assert [p.port for p in svc.spec.ports] == [8080, 9090, 9091, 8081]
        ours = [
            (m.manager, m.operation)
            for m in svc.metadata.managed_fields
            if m.manager == c.FIELD_MANAGER
        ]
        assert ours == [(c.FIELD_MANAGER, "Apply")]
        # ... and that entry owns the port the repair put back, so a later apply keeps it ours
        applied = next(m for m in svc.metadata.managed_fields if m.manager == c.FIELD_MANAGER)
        assert 'k:{"port":9090,"protocol":"TCP"}' in applied.fields_v1["f:spec"]["f:ports"]

    # The repair is three writes (merge patch, drop its Update entry, apply): wait for the end.
    eventually(restored, timeout=30, what="the Service restored with one field manager entry")
    time.sleep(2)
    restored()  # and it stays so: no fight with the operator


# --- a real mutating webhook, to prove normalisation is not drift --------------------------


def test_webhook_mutations_and_server_normalisation_cost_no_writes(
    cluster: Cluster, operator: Operator, namespace: str, mutating_webhook: str
) -> None:
    wait_for_other_test_namespaces_gone(cluster, namespace)
    cluster.kubectl("label", "namespace", namespace, f"{mutating_webhook}=on")
    resources = {"requests": {"cpu": "0.5", "memory": "1024Mi"}, "limits": {"memory": "1Gi"}}
    apply(cluster, agent_yaml("mutated", namespace, resources=resources))
    wait_ready(cluster, namespace, "mutated")
    deployment = client.AppsV1Api(cluster.api()).read_namespaced_deployment("mutated", namespace)
    container = deployment.spec.template.spec.containers[0]
    assert "INJECTED_BY_WEBHOOK" in [e.name for e in container.env], "the webhook ran"
    assert container.resources.requests == {"cpu": "500m", "memory": "1Gi"}, "normalised"
    time.sleep(3)
    writes, reconciles = operator.writes(), operator.reconciles()
    for i in range(3):
        cluster.kubectl(
            "annotate", "--overwrite", "aia/mutated", "-n", namespace, f"example.com/poke={i}"
        )
        time.sleep(1)
    eventually(lambda: operator.reconciles() >= reconciles + 3, timeout=30, what="reconciles")
    time.sleep(2)
    assert operator.writes() == writes


def test_resync_reconciles_an_idle_agent_and_writes_nothing(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    wait_for_other_test_namespaces_gone(cluster, namespace)
    apply(cluster, agent_yaml("idle", namespace))
    wait_ready(cluster, namespace, "idle")
    time.sleep(2)
    writes, reconciles = operator.writes(), operator.reconciles()
    # No event at all for 12 s: only the operator's resync (every ~10 s here) reconciles.
    time.sleep(12)
    assert operator.reconciles() > reconciles
    assert operator.writes() == writes


def test_any_unicode_in_a_spec_is_applied(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    """Characters beyond the BMP must reach the API server as UTF-8, not surrogate escapes."""
    env = [{"name": "GREETING", "value": "héllo 🚀 世界"}]
    apply(cluster, agent_yaml("rocket", namespace, env=env))
    wait_ready(cluster, namespace, "rocket")
    deployment = client.AppsV1Api(cluster.api()).read_namespaced_deployment("rocket", namespace)
    values = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert values["GREETING"] == "héllo 🚀 世界"
