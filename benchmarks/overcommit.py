"""Did any GPU get more than it has? Checked from the Pods' placement annotations against the
Nodes' labels, independently of the operator's ledger.

Each placed Pod carries `agentfleet.io/placement` (JSON: node, GPU indexes, VRAM MiB per GPU,
exclusive or shared). A node's GPUs are what GPU Feature Discovery labels say: how many, the
MiB of each, and the sharing replicas (slots) of each. Per GPU of every node: the VRAM of the
Pods on it must fit; an exclusive Pod must be alone on its GPUs; shared Pods must not take
more slots than the GPU has; and every index must be a GPU the node has. Only Pods that still
hold their GPUs count (not Succeeded, Failed or being deleted).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from agentfleet.api import constants as c

PLACEMENT = f"{c.GROUP}/placement"


def _int(labels: dict[str, str], key: str, default: int) -> int:
    try:
        return int(labels.get(key, default))
    except ValueError:
        return default


def overcommitted(nodes: Iterable[dict[str, Any]], pods: Iterable[dict[str, Any]]) -> list[str]:
    """A sentence for every GPU given more than it has (none: no over-commit)."""
    gpus: dict[str, tuple[int, int, int]] = {}  # node -> (count, MiB each, slots each)
    for found in nodes:
        labels = found["metadata"].get("labels") or {}
        if "nvidia.com/gpu.count" in labels:
            count = _int(labels, "nvidia.com/gpu.count", 0)
            memory = _int(labels, "nvidia.com/gpu.memory", 0)
            slots = max(_int(labels, "nvidia.com/gpu.replicas", 1), 1)
            gpus[found["metadata"]["name"]] = (count, memory, slots)
    # (node, gpu) -> [(pod, MiB, exclusive)]
    users: dict[tuple[str, int], list[tuple[str, int, bool]]] = defaultdict(list)
    problems = []
    for pod in pods:
        meta = pod["metadata"]
        raw = (meta.get("annotations") or {}).get(PLACEMENT)
        phase = (pod.get("status") or {}).get("phase")
        if raw is None or meta.get("deletionTimestamp") or phase in ("Succeeded", "Failed"):
            continue
        record = json.loads(raw)
        name = f"{meta['namespace']}/{meta['name']}"
        node = str(record.get("node", ""))
        if node not in gpus:
            problems.append(f"{name} placed on {node!r}, which has no GPU labels")
            continue
        bound = (pod.get("spec") or {}).get("nodeName")
        if bound and bound != node:
            problems.append(f"{name} placed on {node} but bound to {bound}")
        for index in record.get("gpus") or []:
            users[(node, index)].append(
                (name, int(record.get("vramMiB") or 0), record.get("sharing") != "shared")
            )
    for (node, index), on_gpu in sorted(users.items()):
        count, memory, slots = gpus[node]
        where = f"{node} GPU {index}"
        if not 0 <= index < count:
            problems.append(f"{where}: the node has {count} GPUs")
            continue
        vram = sum(mib for _, mib, _ in on_gpu)
        if vram > memory:
            problems.append(f"{where}: {vram} MiB placed on {memory} MiB")
        if any(exclusive for _, _, exclusive in on_gpu) and len(on_gpu) > 1:
            problems.append(f"{where}: an exclusive Pod shares it with {len(on_gpu) - 1} more")
        if len(on_gpu) > slots:
            problems.append(f"{where}: {len(on_gpu)} Pods on {slots} slots")
    return problems
