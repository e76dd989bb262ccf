"""Builders for Node and Pod objects shaped as the API server returns them."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import yaml

from agentfleet.placement import Inventory, Ledger, Request
from agentfleet.placement import labels as k

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)
READY = [{"type": "Ready", "status": "True", "reason": "KubeletReady"}]


def lease(
    node: str,
    renew: datetime.datetime = NOW,
    seconds: int = 40,
    namespace: str = k.LEASE_NAMESPACE,
) -> dict[str, Any]:
    """The node agent's heartbeat Lease for `node`, as it writes it."""
    return {
        "metadata": {
            "name": k.lease_name(node),
            "namespace": namespace,
            "labels": {k.LEASE_NODE_LABEL: node},
        },
        "spec": {
            "holderIdentity": k.lease_holder(node),
            "renewTime": renew.isoformat(),
            "leaseDurationSeconds": seconds,
        },
    }


def e2e_nodes() -> list[dict[str, Any]]:
    """The simulated nodes of tests/e2e/nodes, Ready as kwok keeps them."""
    nodes = []
    for path in sorted((ROOT / "tests/e2e/nodes").glob("*.yaml")):
        node = yaml.safe_load(path.read_text())
        node["status"]["conditions"] = READY
        nodes.append(node)
    return nodes


def e2e_node(name: str) -> dict[str, Any]:
    return next(n for n in e2e_nodes() if n["metadata"]["name"] == name)


def e2e_inventory() -> Inventory:
    return Inventory.of(e2e_nodes(), NOW)


def node(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    allocatable: dict[str, str] | None = None,
    taints: list[dict[str, str]] | None = None,
    ready: str = "True",
    unschedulable: bool = False,
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            "annotations": annotations or {},
        },
        "spec": {"taints": taints or [], **({"unschedulable": True} if unschedulable else {})},
        "status": {
            "allocatable": {"cpu": "16", "memory": "64Gi", **(allocatable or {})},
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def nvidia_node(
    name: str,
    gpus: int = 8,
    memory_mib: int = 81920,
    *,
    replicas: int = 1,
    product: str = "NVIDIA-A100-SXM4-80GB",
    used_mib: list[int] | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """A GPU Feature Discovery-labelled node; `used_mib` adds the node agent's annotation."""
    strategy = "time-slicing" if replicas > 1 else "none"
    labels = {
        "nvidia.com/gpu.product": product + ("-SHARED" if replicas > 1 else ""),
        "nvidia.com/gpu.count": str(gpus),
        "nvidia.com/gpu.memory": str(memory_mib),
        "nvidia.com/gpu.replicas": str(replicas),
        "nvidia.com/gpu.sharing-strategy": strategy,
        **kwargs.pop("labels", {}),
    }
    annotations = dict(kwargs.pop("annotations", {}))
    if used_mib is not None:
        annotations["agentfleet.io/gpus"] = json.dumps(
            [
                {
                    "index": i,
                    "name": "NVIDIA X",
                    "uuid": f"GPU-{i}",
                    "memoryMiB": memory_mib,
                    "usedMiB": used,
                }
                for i, used in enumerate(used_mib)
            ]
        )
        labels["agentfleet.io/gpu.count"] = str(gpus)
    allocatable = {"nvidia.com/gpu": str(gpus * replicas), **kwargs.pop("allocatable", {})}
    return node(name, labels=labels, annotations=annotations, allocatable=allocatable, **kwargs)


def pod(
    name: str,
    *,
    namespace: str = "team-a",
    node_name: str | None = None,
    placement: str | None = None,
    cpu: str = "500m",
    memory: str = "1Gi",
    gpus: int = 0,
    resource: str = "nvidia.com/gpu",
    phase: str = "Running",
    deleting: bool = False,
) -> dict[str, Any]:
    requests = {"cpu": cpu, "memory": memory}
    if gpus:
        requests[resource] = str(gpus)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "annotations": {}}
    if placement is not None:
        metadata["annotations"]["agentfleet.io/placement"] = placement
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-30T12:00:00Z"
    spec: dict[str, Any] = {"containers": [{"name": "agent", "resources": {"requests": requests}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": metadata, "spec": spec, "status": {"phase": phase}}


def replica_pod(name: str, request: Request) -> dict[str, Any]:
    """A gated Pod of the agent that made `request` (not bound to a node yet)."""
    resource = "amd.com/gpu" if request.vendor == "amd" else "nvidia.com/gpu"
    requests: dict[str, str] = {
        "cpu": f"{request.cpu_millis}m",
        "memory": str(request.memory_bytes),
    }
    if request.gpu_count:
        requests[resource] = str(request.gpu_count)
    namespace, _, agent = request.agent.partition("/")
    return {
        "metadata": {"name": name, "namespace": namespace or "team-a", "labels": {"agent": agent}},
        "spec": {"containers": [{"name": "agent", "resources": {"requests": requests}}]},
        "status": {"phase": "Pending"},
    }


def empty_ledger() -> Ledger:
    return Ledger()
