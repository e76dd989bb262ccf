"""A cluster many teams share (issue 26): what a user without operator rights can do to the
operator and to its GPU books, each tried on the real API server with that user's own token.

The user is a ServiceAccount of the test namespace that may only create, read, patch and
delete Pods and Leases there. Spec and node inputs are hostile too: out-of-range quantities,
an object stored before the bounds existed, a node claiming ten million GPUs, a status message
longer than a Condition may hold. GPU tests run on a fresh simulated node with one GPU,
tainted so that only the agents of the test go there.
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from agentfleet.api import constants as c
from agentfleet.api import models
from agentfleet.placement import labels as k
from tests.conftest import (
    OUTPUT,
    ROOT,
    SHARD_LABEL,
    SUMMARY,
    Cluster,
    Operator,
    eventually,
    operator_kubeconfig,
    start_operator,
)
from tests.integration.test_operator import agent_yaml, apply, condition, get_agent, wait_ready

pytestmark = pytest.mark.cluster

SHARD = "trust"
NODE_LABEL = "agentfleet-test/trust-node"
REPLACE_SECONDS = 5


@pytest.fixture(scope="module")
def trust_operator(cluster: Cluster, crd: None) -> Iterator[Operator]:
    """An operator for this module's agents only, re-placing unschedulable Pods after 5 s."""
    handle = start_operator(
        operator_kubeconfig(cluster, name="trust-operator"),
        "--agent-selector", f"{SHARD_LABEL}={SHARD}",
        "--unschedulable-seconds", str(REPLACE_SECONDS),
        name="trust-operator",
    )  # fmt: skip
    yield handle
    handle.stop()


def agent(name: str, namespace: str, **spec: Any) -> str:
    body = yaml.safe_load(agent_yaml(name, namespace, **{"replicas": 1, **spec}))
    body["metadata"]["labels"] = {SHARD_LABEL: SHARD}
    return yaml.safe_dump(body)


def on_node(node: str) -> dict[str, Any]:
    """spec.placement that takes an agent to the test's node (and only there)."""
    return {
        "nodeSelector": {NODE_LABEL: node},
        "tolerations": [{"key": NODE_LABEL, "operator": "Exists", "effect": "NoSchedule"}],
    }


def placed(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    """The agent's Placed condition once the placer has decided (or refused)."""

    def decided() -> dict[str, Any]:
        found = condition(get_agent(cluster, namespace, name), "Placed")
        assert found.get("reason") not in (None, "Pending"), found
        return found

    return eventually(decided, timeout=60, what=f"{name}'s placement")


def pods_of(cluster: Cluster, namespace: str, name: str) -> list[Any]:
    core = client.CoreV1Api(cluster.api())
    selector = f"{c.LABEL_INSTANCE}={name}"
    return [
        p
        for p in core.list_namespaced_pod(namespace, label_selector=selector).items
        if not p.metadata.deletion_timestamp
    ]


# --- a user without operator rights ----------------------------------------------------------


@dataclass
class User:
    """kubectl as a ServiceAccount that may only handle Pods and Leases of one namespace."""

    cluster: Cluster
    kubeconfig: Path
    namespace: str

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl(
            f"--kubeconfig={self.kubeconfig}", "-n", self.namespace, *args, input=input, check=False
        )

    def create(self, obj: dict[str, Any]) -> None:
        result = self.kubectl("create", "-f", "-", input=json.dumps(obj))
        assert result.returncode == 0, result.stderr


@pytest.fixture
def user(cluster: Cluster, namespace: str) -> User:
    rbac = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "tenant", "namespace": namespace},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "tenant", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["pods"],
                    "verbs": ["create", "get", "list", "patch", "delete"],
                },
                {
                    "apiGroups": ["coordination.k8s.io"],
                    "resources": ["leases"],
                    "verbs": ["create", "get", "patch", "delete"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "tenant", "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
            "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": namespace}],
        },
    ]
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": rbac})
    )
    token = cluster.kubectl("create", "token", "tenant", "-n", namespace).stdout.strip()
    admin = json.loads(
        cluster.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "tenant",
        "clusters": [{"name": "cluster", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": "tenant", "user": {"token": token}}],
        "contexts": [{"name": "tenant", "context": {"cluster": "cluster", "user": "tenant"}}],
    }
    path = OUTPUT / f"tenant-{namespace}.kubeconfig"
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    tenant = User(cluster, path, namespace)
    assert "no" in tenant.kubectl("auth", "can-i", "create", "aiagents.agentfleet.io").stdout
    return tenant


def bare_pod(name: str, node: str, gpus: int = 1, **metadata: Any) -> dict[str, Any]:
    """A Pod anyone with Pod rights can create, asking for GPUs on the test's node."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, **metadata},
        "spec": {
            "containers": [
                {
                    "name": "x",
                    "image": "example.com/x:1",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
            **on_node(node),
        },
    }


# --- a node of the test's own ------------------------------------------------------------------


def node_body(name: str, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                NODE_LABEL: name,
                "nvidia.com/gpu.product": "NVIDIA-TEST-80GB",
                "nvidia.com/gpu.count": "1",
                "nvidia.com/gpu.memory": "81920",
                "nvidia.com/gpu.replicas": "1",
                "nvidia.com/gpu.sharing-strategy": "none",
                **labels,
            },
        },
        "spec": {"taints": [{"key": NODE_LABEL, "value": name, "effect": "NoSchedule"}]},
        "status": {
            "allocatable": {"cpu": "8", "memory": "64Gi", "pods": "20", "nvidia.com/gpu": "1"},
            "capacity": {"cpu": "8", "memory": "64Gi", "pods": "20", "nvidia.com/gpu": "1"},
        },
    }


def create_node(cluster: Cluster, node: dict[str, Any]) -> str:
    name = str(node["metadata"]["name"])
    cluster.kubectl("create", "-f", "-", input=json.dumps(node))

    def ready() -> None:
        got = client.CoreV1Api(cluster.api()).read_node(name)
        conditions = {x.type: x.status for x in got.status.conditions or []}
        assert conditions.get("Ready") == "True", conditions

    eventually(ready, timeout=60, what=f"{name} Ready")
    return name


@pytest.fixture
def gpu_node(cluster: Cluster) -> Iterator[str]:
    """A simulated node with one exclusive 80Gi GPU, for this test's agents only."""
    if not cluster.local:
        pytest.skip("adds a simulated GPU node")
    name = create_node(cluster, node_body(f"trust-{uuid.uuid4().hex[:6]}"))
    yield name
    cluster.kubectl("delete", "node", name, "--wait=false", check=False)


@pytest.fixture
def shared_gpu_node(cluster: Cluster) -> Iterator[str]:
    """One time-sliced 80Gi GPU with four slots: agents split its VRAM by the books alone."""
    if not cluster.local:
        pytest.skip("adds a simulated GPU node")
    node = node_body(
        f"shared-{uuid.uuid4().hex[:6]}",
        **{"nvidia.com/gpu.replicas": "4", "nvidia.com/gpu.sharing-strategy": "time-slicing"},
    )
    for key in ("allocatable", "capacity"):
        node["status"][key]["nvidia.com/gpu"] = "4"
    name = create_node(cluster, node)
    yield name
    cluster.kubectl("delete", "node", name, "--wait=false", check=False)


# --- bounded input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"gpu": {"count": 1, "vram": "1e999999"}}, "gpu.vram must be more than 0 and at most 1Ti"),
        ({"gpu": {"count": 1, "vram": "-1Gi"}}, "gpu.vram must be more than 0"),
        ({"gpu": {"count": 1, "vram": 0}}, "gpu.vram must be more than 0"),
        ({"gpu": {"count": 1, "vram": "2Ti"}}, "at most 1Ti"),
        ({"gpu": {"count": 1, "vram": "1" * 65}}, "spec.gpu.vram"),
        ({"resources": {"requests": {"cpu": "-1"}}}, "cpu must be more than 0"),
        ({"resources": {"limits": {"memory": "100Ti"}}}, "memory must be more than 0 and at most"),
        ({"resources": {"requests": {"ephemeral-storage": "0"}}}, "ephemeral-storage must be"),
        ({"resources": {"requests": {"example.com/dongle": "2Ei"}}}, "every other amount"),
        (
            {"resources": {"requests": {f"example.com/r{i}": "1" for i in range(17)}}},
            "spec.resources.requests",
        ),
        ({"replicas": 100000}, "spec.replicas"),
        ({"env": [{"name": "X", "value": "x" * 40000}]}, "spec.env[0].value"),
    ],
)
def test_out_of_range_quantities_and_counts_are_refused_by_the_api_server(
    cluster: Cluster, crd: None, namespace: str, spec: dict[str, Any], message: str
) -> None:
    result = cluster.kubectl("apply", "-f", "-", input=agent("bad", namespace, **spec), check=False)
    assert result.returncode != 0, f"accepted: {spec}"
    assert message in result.stderr, result.stderr
    with pytest.raises(ValueError, match=r"gpu|resources|replicas|env"):
        models.AgentSpec.model_validate({"agentType": "coding", "image": "i", **spec})


@pytest.fixture
def crd_without_bounds(cluster: Cluster, crd: None) -> Iterator[None]:
    """The CRD as it was before quantities were bounded (while the test stores an object),
    then the real one again: an old object in etcd that the CEL rules never saw."""
    real = ROOT / "crds" / "aiagents.agentfleet.io.yaml"
    old = yaml.safe_load(real.read_text())
    schema = old["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    vram = schema["properties"]["spec"]["properties"]["gpu"]["properties"]["vram"]
    vram.pop("x-kubernetes-validations")
    vram.pop("maxLength")
    apply_crd = ("apply", "--server-side", "--force-conflicts", "-f", "-")
    cluster.kubectl(*apply_crd, input=yaml.safe_dump(old))
    try:
        yield
    finally:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(real))
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{c.CRD_NAME}")


def test_an_old_object_with_a_huge_quantity_stalls_at_once_and_stalls_nothing_else(
    cluster: Cluster, trust_operator: Operator, namespace: str, crd_without_bounds: None
) -> None:
    """Stored before the bounds: the operator refuses it with a reason naming the field (it
    used to convert "1e999999" to MiB for tens of seconds on its event loop, every retry)."""

    def stored() -> None:
        apply(cluster, agent("huge", namespace, gpu={"count": 1, "vram": "1e999999"}))

    eventually(stored, timeout=30, what="the unbounded CRD to take the object")
    real = ROOT / "crds" / "aiagents.agentfleet.io.yaml"
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(real))

    def stalled() -> dict[str, Any]:
        found = condition(get_agent(cluster, namespace, "huge"), "Stalled")
        assert found.get("status") == "True", found
        return found

    stall = eventually(stalled, timeout=30, what="Stalled on the huge quantity")
    assert stall["reason"] == "InvalidSpec" and "gpu.vram" in stall["message"], stall
    assert "too large" in stall["message"], stall
    apply(cluster, agent("plain", namespace))
    wait_ready(cluster, namespace, "plain", timeout=30)
    assert trust_operator.healthy()


def test_a_status_message_longer_than_a_condition_holds_is_cut_not_lost(
    cluster: Cluster, trust_operator: Operator, namespace: str
) -> None:
    """The API server's refusal of a Deployment names every bad field; with 200 of them it is
    longer than metav1.Condition's 32768 characters, and a status patch carrying it whole
    would fail every time."""
    env = [
        {"name": f"E{i}", "valueFrom": {"fieldRef": {"fieldPath": "x" * 250}}} for i in range(200)
    ]
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe", "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "x", "image": "x", "env": env}]},
            },
        },
    }
    refused = cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(deployment), check=False
    )
    assert len(refused.stderr) > models.CONDITION_MESSAGE_LIMIT, "the premise: a long refusal"
    apply(cluster, agent("loud", namespace, env=env))

    def stalled() -> dict[str, Any]:
        found = condition(get_agent(cluster, namespace, "loud"), "Stalled")
        assert found.get("status") == "True", found
        return found

    stall = eventually(stalled, timeout=30, what="a Stalled condition despite the long message")
    assert len(stall["message"]) <= models.CONDITION_MESSAGE_LIMIT
    assert stall["message"].endswith("(cut)") and "fieldPath" in stall["message"]


def test_a_node_claiming_ten_million_gpus_is_skipped_with_its_reason(
    cluster: Cluster, trust_operator: Operator, namespace: str
) -> None:
    if not cluster.local:
        pytest.skip("adds a simulated GPU node")
    node = node_body(f"huge-{uuid.uuid4().hex[:6]}", **{"nvidia.com/gpu.count": "10000000"})
    for key in ("allocatable", "capacity"):
        node["status"][key]["nvidia.com/gpu"] = "10000000"
    name = create_node(cluster, node)
    try:
        apply(cluster, agent("big", namespace, gpu={"count": 1}, placement=on_node(name)))
        refusal = placed(cluster, namespace, "big")
        assert refusal["status"] == "False" and "1 too many GPUs" in refusal["message"], refusal
        apply(cluster, agent("plain", namespace))
        wait_ready(cluster, namespace, "plain", timeout=30)
        assert trust_operator.healthy()
        rss = rss_mib(trust_operator)
        SUMMARY.append(f"trust: operator RSS {rss} MiB with a node claiming 10,000,000 GPUs")
        # Measured before the ceiling: 1,590 MiB and still growing. A regression guard, far
        # above what the operator uses.
        assert rss < 400, f"the operator grew to {rss} MiB"
        nodes = subprocess.run(
            [sys.executable, "-m", "agentfleet", "nodes", "--kubeconfig", cluster.kubeconfig,
             "-o", "json"],
            capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
        (view,) = [v for v in json.loads(nodes) if v["name"] == name]
        assert view["placement"].startswith("too many GPUs: nvidia.com/gpu.count=10000000")
    finally:
        cluster.kubectl("delete", "node", name, "--wait=false", check=False)


def rss_mib(operator: Operator) -> int:
    for line in Path(f"/proc/{operator.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


# --- the books trust only what the operator made ----------------------------------------------


def test_forged_agent_pods_cannot_make_a_node_look_full(
    cluster: Cluster, trust_operator: Operator, namespace: str, user: User, gpu_node: str
) -> None:
    """Bare Pods labelled like a GPU agent's with a made-up decision, held by a gate of their
    own: the books ignore them, and a real agent gets the GPU."""
    claim = json.dumps(
        {"agent": f"{namespace}/real", "gpus": [0], "node": gpu_node, "vramMiB": 0,
         "sharing": "exclusive"}
    )  # fmt: skip
    for i in range(3):
        forged = bare_pod(
            f"forged-{i}",
            gpu_node,
            labels={c.LABEL_GPU: "true", c.LABEL_INSTANCE: "real"},
            annotations={k.PLACEMENT: claim},
        )
        forged["spec"]["schedulingGates"] = [{"name": "example.com/hold"}]
        user.create(forged)
    apply(cluster, agent("real", namespace, gpu={"count": 1}, placement=on_node(gpu_node)))
    found = wait_ready(cluster, namespace, "real")
    assert condition(found, "Placed")["status"] == "True"
    ours = [p for p in pods_of(cluster, namespace, "real") if p.spec.node_name]
    assert [p.spec.node_name for p in ours] == [gpu_node]
    forged_pods = [
        p for p in pods_of(cluster, namespace, "real") if p.metadata.name.startswith("forged")
    ]
    assert all(p.spec.scheduling_gates for p in forged_pods), "the operator touched a forged Pod"


def test_a_gpu_pod_that_is_not_an_agent_holds_its_gpu(
    cluster: Cluster, trust_operator: Operator, namespace: str, user: User, gpu_node: str
) -> None:
    """Whoever made it, a bound Pod that requests a GPU holds it: the agent is refused with a
    reason instead of being pinned to a node the scheduler will not bind it to."""
    user.create(bare_pod("training", gpu_node))

    def bound() -> None:
        pod = client.CoreV1Api(cluster.api()).read_namespaced_pod("training", namespace)
        assert pod.spec.node_name == gpu_node

    eventually(bound, timeout=30, what="the training Pod to be bound")
    apply(cluster, agent("late", namespace, gpu={"count": 1}, placement=on_node(gpu_node)))
    refusal = placed(cluster, namespace, "late")
    assert (refusal["status"], refusal["reason"]) == ("False", "InsufficientGPU"), refusal
    (pod,) = pods_of(cluster, namespace, "late")
    assert pod.spec.scheduling_gates, "it waits gated, not pinned and Pending"


@pytest.mark.parametrize("edit", ["smaller", "elsewhere", "unreadable", "removed"])
def test_editing_the_decision_on_ones_own_agent_pod_frees_nothing(
    cluster: Cluster,
    trust_operator: Operator,
    namespace: str,
    user: User,
    shared_gpu_node: str,
    edit: str,
) -> None:
    """On a time-sliced GPU only the books keep agents' VRAM apart (the device plugin hands
    out slots): annotating one's running agent Pod must not free its VRAM there."""
    node = shared_gpu_node
    shared = {"count": 1, "vram": "60Gi", "sharing": "shared"}
    apply(cluster, agent("first", namespace, gpu=shared, placement=on_node(node)))
    wait_ready(cluster, namespace, "first")
    (pod,) = pods_of(cluster, namespace, "first")
    decision = json.loads(pod.metadata.annotations[k.PLACEMENT])
    value = {
        "smaller": json.dumps({**decision, "vramMiB": 1024}),
        "elsewhere": json.dumps({**decision, "node": "gpu-a100-1"}),
        "unreadable": "{not json",
        "removed": None,
    }[edit]
    patch = {"metadata": {"annotations": {k.PLACEMENT: value}}}
    result = user.kubectl(
        "patch", "pod", pod.metadata.name, "--type=merge", "-p", json.dumps(patch)
    )
    assert result.returncode == 0, result.stderr
    second = {"count": 1, "vram": "40Gi", "sharing": "shared"}
    apply(cluster, agent("second", namespace, gpu=second, placement=on_node(node)))
    refusal = placed(cluster, namespace, "second")
    assert refusal["status"] == "False", refusal
    assert refusal["reason"] in ("InsufficientVRAM", "InsufficientGPU"), refusal


def test_a_placed_pod_the_scheduler_cannot_bind_is_placed_again(
    cluster: Cluster, trust_operator: Operator, namespace: str, user: User, gpu_node: str
) -> None:
    """A Pod that is being deleted holds its GPU for the scheduler until it is gone, while
    the ledger has freed it: the decision cannot be honoured. The agent says so (not
    Placed=True while Pending) and its Pod is replaced after --unschedulable-seconds."""
    user.create(bare_pod("leaving", gpu_node, finalizers=["example.com/hold"]))
    core = client.CoreV1Api(cluster.api())

    def bound() -> None:
        assert core.read_namespaced_pod("leaving", namespace).spec.node_name == gpu_node

    eventually(bound, timeout=30, what="the leaving Pod to be bound")
    assert user.kubectl("delete", "pod", "leaving", "--wait=false").returncode == 0
    try:
        apply(cluster, agent("stuck", namespace, gpu={"count": 1}, placement=on_node(gpu_node)))

        def unschedulable() -> dict[str, Any]:
            found = condition(get_agent(cluster, namespace, "stuck"), "Placed")
            assert found.get("reason") == "Unschedulable", found
            return found

        found = eventually(unschedulable, timeout=60, what="Placed=False/Unschedulable")
        assert found["status"] == "False" and gpu_node in found["message"], found
        (first,) = pods_of(cluster, namespace, "stuck")

        def replaced() -> None:
            uids = [p.metadata.uid for p in pods_of(cluster, namespace, "stuck")]
            assert uids and first.metadata.uid not in uids, uids

        eventually(replaced, timeout=REPLACE_SECONDS + 30, what="the Pod to be replaced")
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=stuck,reason=Unschedulable"
        ).items
        assert events and "placed again" in events[0].message
    finally:
        cluster.kubectl(
            "patch", "pod", "leaving", "-n", namespace, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip
    wait_ready(cluster, namespace, "stuck", timeout=60)


# --- heartbeats -------------------------------------------------------------------------------


def heartbeat(node: str, namespace: str, renewed: datetime.datetime) -> dict[str, Any]:
    """A node agent Lease as the node agent writes it."""
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": k.lease_name(node),
            "namespace": namespace,
            "labels": {k.LEASE_NODE_LABEL: node, c.LABEL_MANAGED_BY: k.NODE_AGENT_MANAGER},
        },
        "spec": {
            "holderIdentity": k.lease_holder(node),
            "leaseDurationSeconds": 3600,
            "renewTime": renewed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }


def test_a_lease_outside_the_node_agents_namespace_makes_no_node_stale(
    cluster: Cluster, trust_operator: Operator, namespace: str, user: User
) -> None:
    """A node whose node agent heartbeats (a fresh Lease in agentfleet-system) stays
    eligible when a user writes an expired Lease for it, named and labelled like the real
    one, in their own namespace."""
    if not cluster.local:
        pytest.skip("adds a simulated GPU node")
    node = node_body(f"hb-{uuid.uuid4().hex[:6]}", **{k.AGENT_GPU_COUNT: "1"})
    node["metadata"]["annotations"][k.AGENT_GPUS] = json.dumps(
        [{"index": 0, "name": "NVIDIA TEST", "memoryMiB": 81920, "usedMiB": 0}]
    )
    now = datetime.datetime.now(datetime.UTC)
    real = heartbeat(node["metadata"]["name"], k.LEASE_NAMESPACE, now)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(real))
    name = create_node(cluster, node)
    try:
        forged = heartbeat(name, namespace, now - datetime.timedelta(days=1))
        forged["spec"]["leaseDurationSeconds"] = 1
        user.create(forged)
        apply(cluster, agent("beat", namespace, gpu={"count": 1}, placement=on_node(name)))
        found = placed(cluster, namespace, "beat")
        assert found["status"] == "True", found
    finally:
        cluster.kubectl("delete", "node", name, "--wait=false", check=False)
        cluster.kubectl("delete", "lease", real["metadata"]["name"], "-n", k.LEASE_NAMESPACE,
                        check=False)  # fmt: skip
