"""Room for the fleet's Pods on the local control plane: extra kwok CPU nodes.

The e2e nodes (tests/e2e/nodes) hold 500 Pods each. A run needs a Pod per agent (N plus the
N/4 of the SIGKILL scenario and the probes), another per agent while a new image rolls out,
and one per baseline Deployment; when the Ready nodes cannot hold that, kwok nodes like
`cpu-1` but with a large `pods` allocatable are added. kwok plays their kubelet.
"""

from __future__ import annotations

import json
import math
from typing import Any

from agentfleet.api import quantity
from benchmarks.kube import ClusterAccess

PODS_PER_NODE = 5000
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")


def pods_needed(agents: int, probes: int, late_fraction: float) -> int:
    fleet = agents + probes + math.ceil(agents * late_fraction)
    return fleet + agents + agents + 100  # a surge Pod per edited agent, the baseline, slack


def bench_node(name: str, zone: str) -> dict[str, Any]:
    capacity = {
        "cpu": "1000",
        "memory": "4Ti",
        "ephemeral-storage": "10Ti",
        "pods": str(PODS_PER_NODE),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "type": "kwok",
                "agentfleet.io/bench-node": name,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "topology.kubernetes.io/region": "us-east-1",
                "topology.kubernetes.io/zone": zone,
            },
        },
        "spec": {},
        # A Node's status is only taken when it is created.
        "status": {"capacity": capacity, "allocatable": capacity},
    }


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
