"""Room for the fleet's Pods on the local control plane: extra kwok CPU and GPU nodes.

The e2e nodes (tests/e2e/nodes) hold 500 Pods each. The main fleet needs a Pod per agent (N
plus the N/4 of the SIGKILL scenario and the probes) and another per agent while a new image
rolls out; the baseline and the later fleets run in namespaces deleted before the next one
starts. When the Ready nodes cannot hold that, kwok nodes like `cpu-1` but with a large
`pods` allocatable are added. kwok plays their kubelet.

The GPU burst needs GPUs: kwok nodes labelled as GPU Feature Discovery labels a node with
eight time-sliced 80 GiB GPUs, four slots each (`nvidia.com/gpu` allocatable 32), enough of
them for every GPU agent and a quarter more.
"""

from __future__ import annotations

import json
import math
from typing import Any

from agentfleet.api import quantity
from benchmarks.kube import ClusterAccess

PODS_PER_NODE = 5000
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
GPUS_PER_NODE = 8
GPU_MEMORY_MIB = 81920
GPU_SLOTS = 4  # time-slicing replicas per GPU


def pods_needed(agents: int, probes: int, late_fraction: float) -> int:
    fleet = agents + probes + math.ceil(agents * late_fraction)
    return fleet + agents + 100  # a surge Pod per edited agent, slack


def bench_node(name: str, zone: str, gpus: bool = False) -> dict[str, Any]:
    capacity = {
        "cpu": "1000",
        "memory": "4Ti",
        "ephemeral-storage": "10Ti",
        "pods": str(PODS_PER_NODE),
    }
    labels = {
        "type": "kwok",
        "agentfleet.io/bench-node": name,
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "topology.kubernetes.io/region": "us-east-1",
        "topology.kubernetes.io/zone": zone,
    }
    if gpus:
        capacity["nvidia.com/gpu"] = str(GPUS_PER_NODE * GPU_SLOTS)
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB-SHARED",
            "nvidia.com/gpu.count": str(GPUS_PER_NODE),
            "nvidia.com/gpu.memory": str(GPU_MEMORY_MIB),
            "nvidia.com/gpu.replicas": str(GPU_SLOTS),
            "nvidia.com/gpu.sharing-strategy": "time-slicing",
        }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake"}, "labels": labels},
        "spec": {},
        # A Node's status is only taken when it is created.
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def ensure_gpus(access: ClusterAccess, agents: int) -> list[str]:
    """GPU nodes with slots for `agents` one-slot agents and a quarter more; their names."""
    wanted = math.ceil(agents * 1.25 / (GPUS_PER_NODE * GPU_SLOTS))
    existing = {node["metadata"]["name"] for node in access.list_items("/api/v1/nodes")}
    names = [f"bench-gpu-{i}" for i in range(1, wanted + 1)]
    added = [name for name in names if name not in existing]
    if added:
        access.kubectl(
            "create",
            "-f",
            "-",
            input="\n---\n".join(
                json.dumps(bench_node(name, ZONES[i % len(ZONES)], gpus=True))
                for i, name in enumerate(added)
            ),
        )
        for name in added:
            access.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=120s")
    return names


def ensure_capacity(access: ClusterAccess, needed: int) -> list[str]:
    """Add bench nodes until the Ready nodes can hold `needed` Pods; their names."""
    nodes = access.list_items("/api/v1/nodes")
    have = sum(
        int(quantity.parse(node.get("status", {}).get("allocatable", {}).get("pods", "0")))
        for node in nodes
        if any(
            cond.get("type") == "Ready" and cond.get("status") == "True"
            for cond in node.get("status", {}).get("conditions") or []
        )
    )
    if have >= needed:
        return []
    existing = {node["metadata"]["name"] for node in nodes}
    added = []
    index = 0
    while have < needed:
        index += 1
        name = f"bench-cpu-{index}"
        if name in existing:
            continue
        access.kubectl(
            "create", "-f", "-", input=json.dumps(bench_node(name, ZONES[index % len(ZONES)]))
        )
        added.append(name)
        have += PODS_PER_NODE
    for name in added:
        access.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=120s")
    return added
