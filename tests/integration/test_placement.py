"""GPU/VRAM placement on the simulated GPU nodes, with the real kube-scheduler binding what the
operator decided (issue 20). The invariant checked everywhere: the Pods bound to each node
never hold more GPUs, or more VRAM on one GPU, than the node has."""

from __future__ import annotations

import json
import signal
import time
from collections import defaultdict
from typing import Any

import pytest
import yaml
from kubernetes import client

from agentfleet.api import constants as c
from agentfleet.placement import labels as k
from agentfleet.placement import parse_placement
from tests.conftest import (
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

# Per-GPU memory (MiB) and GPU count of the simulated nodes, from tests/e2e/nodes.
GPU_NODES = {"gpu-a100-1": (81920, 8), "gpu-h100-1": (81559, 8), "gpu-l4-timeslice-1": (23034, 1)}


def gpu_agent(name: str, namespace: str, shard: str | None = None, **spec: Any) -> str:
    body = yaml.safe_load(agent_yaml(name, namespace, **{"replicas": 1, **spec}))
    if shard:
        body["metadata"]["labels"] = {SHARD_LABEL: shard}
    return yaml.safe_dump(body)


def agent_pods(cluster: Cluster, namespace: str | None = None) -> list[Any]:
    core = client.CoreV1Api(cluster.api())
    selector = f"{c.LABEL_GPU}=true"
    if namespace:
        return list(core.list_namespaced_pod(namespace, label_selector=selector).items)
    return list(core.list_pod_for_all_namespaces(label_selector=selector).items)


def assert_nothing_over_committed(cluster: Cluster) -> dict[str, int]:
    """Every bound, live GPU Pod's decision, checked against the nodes: returns pods per node."""
    exclusive: dict[tuple[str, int], list[str]] = defaultdict(list)
    shared: dict[tuple[str, int], int] = defaultdict(int)
    per_node: dict[str, int] = defaultdict(int)
    for pod in agent_pods(cluster):
        if pod.metadata.deletion_timestamp or pod.status.phase in ("Succeeded", "Failed"):
            continue
        text = (pod.metadata.annotations or {}).get(k.PLACEMENT)
        if not pod.spec.node_name:
            assert pod.spec.scheduling_gates or text, f"{pod.metadata.name} bound without us"
            continue
        assert text, f"{pod.metadata.name} was bound without a placement decision"
        decision = parse_placement(text)
        assert pod.spec.node_name == decision.node, "bound where the ledger decided"
        per_node[decision.node] += 1
        for gpu in decision.gpus:
            if decision.sharing == "shared":
                shared[(decision.node, gpu)] += decision.vram_mib
            else:
                exclusive[(decision.node, gpu)].append(pod.metadata.name)
    for (node, gpu), holders in exclusive.items():
        assert len(holders) == 1, f"{node} GPU {gpu} held by {holders}"
        assert gpu < GPU_NODES[node][1]
    for (node, gpu), mib in shared.items():
        assert mib <= GPU_NODES[node][0], f"{node} GPU {gpu}: {mib} MiB committed"
        assert (node, gpu) not in exclusive
    return dict(per_node)


def placed_condition(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    def decided() -> dict[str, Any]:
        placed = condition(get_agent(cluster, namespace, name), "Placed")
        assert placed.get("reason") not in (None, "Pending"), placed
        return placed

    return eventually(decided, timeout=90, what=f"{name}'s placement decision")


def test_gpu_agents_land_where_the_ledger_decides_and_run(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, gpu_agent("llm", namespace, replicas=3, gpu={"count": 1, "vram": "40Gi"}))
    agent = wait_ready(cluster, namespace, "llm")
    placed = condition(agent, "Placed")
    assert placed["status"] == "True" and "3 replica(s) placed" in placed["message"]
    replicas = agent["status"]["placement"]["replicas"]
    assert len(replicas) == 3 and all(r["vramMiB"] == 40960 for r in replicas)
    assert agent["status"]["placement"]["committedVRAM"] == "120Gi"
    pods = agent_pods(cluster, namespace)
    assert len(pods) == 3 and all(p.status.phase == "Running" for p in pods)
    if cluster.local:
        assert {p.spec.node_name for p in pods} <= {"gpu-a100-1", "gpu-h100-1"}
        assert_nothing_over_committed(cluster)


def test_an_impossible_request_says_why_and_binds_no_pod(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    apply(cluster, gpu_agent("huge", namespace, gpu={"count": 1, "vram": "1000Gi"}))
    placed = placed_condition(cluster, namespace, "huge")
    assert (placed["status"], placed["reason"]) == ("False", "InsufficientVRAM")
    assert "no node has 1000Gi free VRAM" in placed["message"]
    if cluster.local:
        assert "best is gpu-a100-1 (80Gi" in placed["message"]
    ready = condition(get_agent(cluster, namespace, "huge"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InsufficientVRAM")
    wide = cluster.kubectl("get", "aia", "huge", "-n", namespace, "-o", "wide").stdout
    assert "InsufficientVRAM" in wide
    # The reconcile (and placement pass) that would have bound it: one with nothing left to do.
    operator.wait_for_a_quiet_reconcile(
        lambda: cluster.kubectl("annotate", "aia/huge", "-n", namespace, "example.com/poke=1")
    )
    (pod,) = agent_pods(cluster, namespace)
    assert not pod.spec.node_name and pod.spec.scheduling_gates, "it waits gated, not Pending"


def test_a_hundred_agents_created_at_once_over_commit_nothing(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    if not cluster.local:
        pytest.skip("needs the simulated GPU nodes")
    shapes = [
        {"count": 1, "vram": "40Gi"},
        {"count": 2, "vram": "20Gi"},
        {"count": 1, "vram": "8Gi", "sharing": "shared"},
    ]
    docs = [gpu_agent(f"burst-{i}", namespace, gpu=shapes[i % len(shapes)]) for i in range(100)]
    apply(cluster, "---\n".join(docs))
    for i in range(100):
        placed_condition(cluster, namespace, f"burst-{i}")
    per_node = assert_nothing_over_committed(cluster)
    placed = sum(1 for p in agent_pods(cluster, namespace) if p.spec.node_name)
    refused = [condition(get_agent(cluster, namespace, f"burst-{i}"), "Placed") for i in range(100)]
    assert placed + sum(1 for r in refused if r["status"] == "False") == 100
    assert all(
        r["reason"] in ("InsufficientGPU", "InsufficientVRAM")
        for r in refused
        if r["status"] == "False"
    )
    print(f"100 agents: {placed} placed ({per_node}), {100 - placed} refused with a reason")


def test_a_restart_mid_burst_keeps_the_books(cluster: Cluster, crd: None, namespace: str) -> None:
    if not cluster.local:
        pytest.skip("needs the simulated GPU nodes")
    shard = start_operator(
        operator_kubeconfig(cluster, name="placement-operator"),
        "--agent-selector", f"{SHARD_LABEL}=placement",
        name="placement-operator",
    )  # fmt: skip
    docs = [
        gpu_agent(f"r-{i}", namespace, shard="placement", gpu={"count": 1, "vram": "40Gi"})
        for i in range(30)
    ]
    apply(cluster, "---\n".join(docs))

    def some_decided() -> int:
        decided = sum(
            1
            for p in agent_pods(cluster, namespace)
            if k.PLACEMENT in (p.metadata.annotations or {})
        )
        assert decided >= 3, decided
        return decided

    eventually(some_decided, timeout=60, what="the first decisions")
    shard.process.send_signal(signal.SIGKILL)
    shard.process.wait(10)
    restarted = start_operator(
        operator_kubeconfig(cluster, name="placement-operator"),
        "--agent-selector", f"{SHARD_LABEL}=placement",
        name="placement-operator-2",
    )  # fmt: skip
    try:
        for i in range(30):
            placed_condition(cluster, namespace, f"r-{i}")
        assert_nothing_over_committed(cluster)
    finally:
        restarted.stop()


def test_a_failed_nodes_agents_are_placed_again_within_a_minute(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    if not cluster.local:
        pytest.skip("needs the simulated GPU nodes")
    apply(cluster, gpu_agent("mover", namespace, gpu={"count": 1, "vram": "40Gi"}))
    wait_ready(cluster, namespace, "mover")
    (pod,) = agent_pods(cluster, namespace)
    node = pod.spec.node_name
    core = client.CoreV1Api(cluster.api())
    core.patch_node(node, {"metadata": {"annotations": {"kwok.x-k8s.io/node": None}}})
    not_ready = [{"type": "Ready", "status": "False", "reason": "KubeletDown",
                  "message": "test: the node failed",
                  "lastHeartbeatTime": now(), "lastTransitionTime": now()}]  # fmt: skip
    try:
        cluster.kubectl(
            "patch", "node", node, "--subresource=status", "--type=strategic",
            "-p", json.dumps({"status": {"conditions": not_ready}}),
        )  # fmt: skip
        failed_at = time.monotonic()

        def moved() -> str:
            live = [
                p for p in agent_pods(cluster, namespace)
                if p.spec.node_name and not p.metadata.deletion_timestamp
            ]  # fmt: skip
            assert live and live[0].spec.node_name != node, [p.spec.node_name for p in live]
            return str(live[0].spec.node_name)

        new_node = eventually(moved, timeout=90, what="the replica to be placed elsewhere")
        elapsed = time.monotonic() - failed_at
        SUMMARY.append(
            f"node failure: a GPU agent's replica re-placed from {node} to {new_node}"
            f" {elapsed:.0f} s after the node failed (toleration 30 s)"
        )
        assert elapsed < 60 + 15  # 30 s toleration + the taint manager's and our own delays
        events = core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=mover,reason=Replaced"
        ).items
        assert events and node in events[0].message and new_node in events[0].message
        wait_ready(cluster, namespace, "mover")
    finally:
        core.patch_node(node, {"metadata": {"annotations": {"kwok.x-k8s.io/node": "fake"}}})
        eventually(lambda: node_ready(cluster, node), timeout=120, what=f"{node} Ready again")


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def node_ready(cluster: Cluster, name: str) -> bool:
    node = client.CoreV1Api(cluster.api()).read_node(name)
    ready = next(x for x in node.status.conditions if x.type == "Ready")
    taints = [t.key for t in node.spec.taints or []]
    return ready.status == "True" and not any(
        "not-ready" in t or "unreachable" in t for t in taints
    )


def test_a_refused_agent_is_placed_when_a_node_that_fits_joins(
    cluster: Cluster, operator: Operator, namespace: str
) -> None:
    if not cluster.local:
        pytest.skip("adds a simulated GPU node")
    apply(cluster, gpu_agent("waiting", namespace, gpu={"count": 1, "vram": "150Gi"}))
    placed = placed_condition(cluster, namespace, "waiting")
    assert (placed["status"], placed["reason"]) == ("False", "InsufficientVRAM")
    # Refused, it waits for capacity: no tight loop of retries or writes meanwhile.
    reconciles, writes = operator.reconciles(), operator.writes_seen_by_the_api_server()
    time.sleep(10)  # a rate, not a negative check: how many over this window
    assert operator.reconciles() - reconciles < 20, "retried in a tight loop"
    assert operator.writes_seen_by_the_api_server() - writes <= 2, "rewrote the same refusal"

    node = yaml.safe_load((ROOT / "tests/e2e/nodes/gpu-a100-1.yaml").read_text())
    node["metadata"]["name"] = name = "gpu-b200-joined"
    node["metadata"]["labels"].update({
        "kubernetes.io/hostname": name, "agentfleet.io/e2e-node": name,
        "nvidia.com/gpu.product": "NVIDIA-B200", "nvidia.com/gpu.count": "1",
        "nvidia.com/gpu.memory": "184320", "nvidia.com/gpu.family": "blackwell",
    })  # fmt: skip
    for key in ("capacity", "allocatable"):
        node["status"][key]["nvidia.com/gpu"] = "1"
    core = client.CoreV1Api(cluster.api())
    cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(node))
    try:
        agent = wait_ready(cluster, namespace, "waiting")  # no edit: the new node was enough
        assert condition(agent, "Placed")["status"] == "True"
        (pod,) = agent_pods(cluster, namespace)
        assert pod.spec.node_name == name
    finally:
        cluster.kubectl("delete", "aia", "waiting", "-n", namespace, "--wait=true")
        eventually(
            lambda: not agent_pods(cluster, namespace), timeout=60, what="the pod to be gone"
        )
        core.delete_node(name)
