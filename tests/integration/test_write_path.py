"""The write path against a real API server: never take what isn't ours, always heal, say
exactly what the cluster holds (issue 16). Each test here failed on the operator before it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from agentfleet.api import constants as c
from tests.conftest import (
    ROOT,
    SHARD_LABEL,
    Cluster,
    Operator,
    eventually,
    start_operator,
    wait_for_other_test_namespaces_gone,
)
from tests.integration.test_chart import token_kubeconfig
from tests.integration.test_operator import agent_yaml, apply, condition, get_agent, wait_ready

pytestmark = pytest.mark.cluster


def poke(cluster: Cluster, namespace: str, name: str) -> Callable[[], None]:
    """An edit that makes the operator reconcile the agent again and changes nothing of it."""

    def annotate() -> None:
        value = str(time.monotonic_ns())
        cluster.kubectl("annotate", "--overwrite", f"aia/{name}", "-n", namespace,
                        f"example.com/poke={value}")  # fmt: skip

    return annotate


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

    def collected() -> None:  # had the Service been adopted, it would have gone with these
        left = cluster.kubectl("get", "deployment,serviceaccount", "legacy", "-n", namespace,
                               "--ignore-not-found", "-o", "name").stdout  # fmt: skip
        assert left.strip() == "", left

    eventually(collected, what="the garbage collector to delete the agent's own children")
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
    # A prune would happen on a reconcile after the rollout: wait for one with nothing to do.
    operator.wait_for_a_quiet_reconcile(poke(cluster, namespace, "ident"))
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
    operator.wait_for_a_quiet_reconcile(poke(cluster, namespace, "legacy-status"))
    writes = operator.writes_seen_by_the_api_server()
    operator.wait_for_a_quiet_reconcile(poke(cluster, namespace, "legacy-status"))
    assert operator.writes_seen_by_the_api_server() == writes, "it disappears once"


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
    operator.wait_for_a_quiet_reconcile(poke(cluster, namespace, "mended"))
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
    operator.wait_for_a_quiet_reconcile(poke(cluster, namespace, "mutated"))
    writes = operator.writes_seen_by_the_api_server()
    for _ in range(3):  # one at a time: each is a reconcile of its own
        operator.wait_for_a_quiet_reconcile(poke(cluster, namespace, "mutated"))
    assert operator.writes_seen_by_the_api_server() == writes


def test_resync_reconciles_an_idle_agent_and_writes_nothing(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    wait_for_other_test_namespaces_gone(cluster, namespace)
    apply(cluster, agent_yaml("idle", namespace))
    wait_ready(cluster, namespace, "idle")
    operator.wait_for_a_quiet_reconcile(poke(cluster, namespace, "idle"))
    writes = operator.writes_seen_by_the_api_server()
    # No event at all: only the operator's resync (every ~10 s here) reconciles.
    operator.wait_for_a_quiet_reconcile()
    assert operator.writes_seen_by_the_api_server() == writes


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


# --- the cluster changes under the operator ---------------------------------------------------


def test_agents_in_a_terminating_namespace_are_left_to_the_garbage_collector(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    """The namespace controller deletes the children (and the agent, in whatever order): the
    operator re-creates nothing and writes nothing, not even a refused create."""
    wait_for_other_test_namespaces_gone(cluster, namespace)
    apply(cluster, agent_yaml("doomed", namespace))
    wait_ready(cluster, namespace, "doomed")
    # Someone else's finalizer keeps the namespace Terminating after its content is gone.
    held = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "held", "namespace": namespace, "finalizers": [HOLD]}}  # fmt: skip
    apply(cluster, json.dumps(held))
    operator.wait_for_a_quiet_reconcile(poke(cluster, namespace, "doomed"))
    writes, reconciles = operator.writes_seen_by_the_api_server(), operator.reconciles()
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
    try:

        def emptied() -> None:
            left = cluster.kubectl("get", "aia,deployment,service,serviceaccount", "-n",
                                   namespace, "-o", "name").stdout.split()  # fmt: skip
            assert left == [], left

        eventually(emptied, timeout=90, what="the namespace controller to delete everything")
        # The operator saw its children go (each an event that reconciles the agent) ...
        eventually(lambda: operator.reconciles() > reconciles and operator.settled(),
                   timeout=60, what="the reconciles of the deleted children")  # fmt: skip
        # ... and wrote nothing.
        assert operator.writes_seen_by_the_api_server() == writes
        phase = cluster.kubectl("get", "namespace", namespace, "-o", "jsonpath={.status.phase}")
        assert phase.stdout == "Terminating"
    finally:
        cluster.kubectl("patch", "configmap", "held", "-n", namespace, "--type=merge",
                        "-p", '{"metadata":{"finalizers":null}}', check=False)  # fmt: skip


HOLD = "example.com/hold"


def test_a_deployment_past_its_progress_deadline_makes_the_agent_stalled(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    selector = {"agentfleet.io/test": "no-such-node"}  # its Pod can be scheduled nowhere
    apply(cluster, agent_yaml("stuck", namespace, replicas=1, placement={"nodeSelector": selector}))
    eventually(
        lambda: (
            cluster.kubectl("get", "deployment", "stuck", "-n", namespace, check=False).returncode
            == 0
        ),
        what="the Deployment",
    )
    # The operator leaves progressDeadlineSeconds to the user (Kubernetes' default is 600 s).
    cluster.kubectl("patch", "deployment", "stuck", "-n", namespace, "--type=merge",
                    "-p", '{"spec":{"progressDeadlineSeconds":2}}')  # fmt: skip
    stalled = stalled_with(cluster, namespace, "stuck", "ProgressDeadlineExceeded")
    assert "Deployment stuck exceeded its progress deadline" in stalled["message"]
    ready = condition(get_agent(cluster, namespace, "stuck"), "Ready")
    assert ready["status"] == "False"


def test_forbidden_by_rbac_not_yet_granted_is_retried_and_heals(
    cluster: Cluster, crd: None, namespace: str, tmp_path: Path
) -> None:
    """An operator whose RBAC lacks `create` on Services (a rule not yet propagated): the agent
    is Stalled/Forbidden, and becomes Ready once the rule exists, without an edit. The rest is
    the operator's own RBAC: its ClusterRole, and its Role in agentfleet-system (the node
    agents' Leases: the operator reconciles nothing before every watch has listed)."""
    account = "late-rbac"
    rules = []
    manifests = ROOT / "manifests" / "operator"
    cluster.kubectl(
        "apply", "-f", str(manifests / "namespace.yaml"), "-f", str(manifests / "rbac.yaml")
    )
    rbac = yaml.safe_load_all((manifests / "rbac.yaml").read_text())
    (role,) = [d for d in rbac if d and d["kind"] == "ClusterRole"]
    for rule in role["rules"]:
        if "services" in rule["resources"] and "create" in rule["verbs"]:
            others = [r for r in rule["resources"] if r != "services"]
            if others:
                rules.append({**rule, "resources": others})
            rules.append({**rule, "resources": ["services"],
                          "verbs": [v for v in rule["verbs"] if v != "create"]})  # fmt: skip
        else:
            rules.append(rule)
    name = f"t-late-rbac-{namespace}"
    cluster.kubectl("create", "serviceaccount", account, "-n", namespace)
    partial = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
               "metadata": {"name": name}, "rules": rules}  # fmt: skip
    apply(cluster, json.dumps(partial))
    cluster.kubectl("create", "clusterrolebinding", name, f"--clusterrole={name}",
                    f"--serviceaccount={namespace}:{account}")  # fmt: skip
    cluster.kubectl("create", "rolebinding", name, "-n", "agentfleet-system",
                    "--role=agentfleet-operator",
                    f"--serviceaccount={namespace}:{account}")  # fmt: skip
    token = cluster.kubectl("create", "token", account, "-n", namespace, "--duration=1h")
    kubeconfig = token_kubeconfig(cluster, token.stdout.strip(), tmp_path / "late.kubeconfig")
    selector = f"{SHARD_LABEL}=late-rbac"
    late = start_operator(
        kubeconfig, "--namespace", namespace, "--agent-selector", selector, name="late-rbac"
    )
    try:
        body = yaml.safe_load(agent_yaml("late", namespace))
        body["metadata"]["labels"] = {SHARD_LABEL: "late-rbac"}
        apply(cluster, yaml.safe_dump(body))
        stalled = stalled_with(cluster, namespace, "late", "Forbidden")
        assert "services" in stalled["message"] and "retrying" in stalled["message"]
        cluster.kubectl("create", "role", "services", "-n", namespace, "--verb=create",
                        "--resource=services")  # fmt: skip
        cluster.kubectl("create", "rolebinding", "services", "-n", namespace, "--role=services",
                        f"--serviceaccount={namespace}:{account}")  # fmt: skip
        wait_ready(cluster, namespace, "late", timeout=90)  # the backoff is capped at 30 s
    finally:
        late.stop()
        cluster.kubectl("delete", "clusterrolebinding,clusterrole", name, check=False)
        cluster.kubectl("delete", "rolebinding", name, "-n", "agentfleet-system", check=False)
