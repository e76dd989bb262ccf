"""Label and annotation keys the placement ledger reads or writes, and their value formats.

GPU Feature Discovery and the AMD node labeller are read as they publish (see
tests/e2e/nodes/); the `agentfleet.io/` keys are written by our node agent (nodeagent/) and by
the operator on each placed Pod. Both sides import them from here, so a rename happens once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from agentfleet.api import constants as c

# --- NVIDIA GPU Feature Discovery (values: gpu.memory MiB per GPU, gpu.count physical GPUs,
# gpu.replicas sharing replicas per GPU, "0" or "1" when sharing is off) ----------------------
NVIDIA_PRODUCT: Final = c.NVIDIA_LABEL_PRODUCT
NVIDIA_MEMORY_MIB: Final = c.NVIDIA_LABEL_MEMORY_MIB
NVIDIA_COUNT: Final = c.NVIDIA_LABEL_COUNT
NVIDIA_REPLICAS: Final = "nvidia.com/gpu.replicas"
NVIDIA_SHARING: Final = c.NVIDIA_LABEL_SHARING

# --- AMD node labeller: "192G" (GiB per GPU, rounded) on a node whose GPUs agree, and
# "<prefix>gpu.vram.<N>G" = <count> per size (the only form on a node with mixed cards) ------
AMD_PREFIXES: Final = ("amd.com/", "beta.amd.com/")  # current first, then legacy
AMD_VRAM_SUFFIX: Final = "gpu.vram"
AMD_PRODUCT_SUFFIX: Final = "gpu.product-name"
AMD_SIZE: Final = re.compile(r"^([0-9]{1,7})G$")

# --- sharing strategies (GFD's gpu.sharing-strategy values) ----------------------------------
SHARING_NONE: Final = "none"
SHARED_STRATEGIES: Final = c.SHARED_STRATEGIES

# --- what our node agent publishes on its Node ----------------------------------------------
AGENT_GPU_COUNT: Final = f"{c.GROUP}/gpu.count"
AGENT_GPU_MEMORY_MIB: Final = f"{c.GROUP}/gpu.memory"  # MiB of the smallest GPU
AGENT_GPU_PRODUCT: Final = f"{c.GROUP}/gpu.product"  # "mixed" when the GPUs differ
AGENT_GPU_VENDOR: Final = f"{c.GROUP}/gpu.vendor"
AGENT_CPU_COUNT: Final = f"{c.GROUP}/cpu.count"
AGENT_MEMORY_MIB: Final = f"{c.GROUP}/memory.mib"
AGENT_DISK_GIB: Final = f"{c.GROUP}/disk.gib"
# Annotation: JSON list, one object per GPU:
#   {"index": 0, "name": "NVIDIA L4", "uuid": "GPU-…", "memoryMiB": 23034, "usedMiB": 512}
AGENT_GPUS: Final = f"{c.GROUP}/gpus"
# Annotation: JSON {"notes": [...]}: what detection could not see (no driver, NVML errors).
AGENT_DETECTION: Final = f"{c.GROUP}/detection"
MIXED_PRODUCT: Final = "mixed"

# --- the node agent's heartbeat: one coordination.k8s.io/v1 Lease per Node -------------------
NODE_AGENT_MANAGER: Final = "agentfleet-node-agent"  # field manager and managed-by value
LEASE_PREFIX: Final = "agentfleet-node-"
LEASE_NODE_LABEL: Final = f"{c.GROUP}/node"  # on each Lease: the Node it speaks for


def lease_name(node: str) -> str:
    """`agentfleet-node-<node>`: a valid Lease name for every valid Node name (<= 253 chars)."""
    return f"{LEASE_PREFIX}{node}"


def lease_node(lease: Mapping[str, Any]) -> str | None:
    """The Node a node agent's Lease speaks for: its label, else its name (lease_name); None
    for any other Lease. The operator, `agentfleet nodes` and `agentfleet gpus` all ask this."""
    meta = lease.get("metadata") or {}
    node = (meta.get("labels") or {}).get(LEASE_NODE_LABEL)
    name = str(meta.get("name") or "")
    if not node and name.startswith(LEASE_PREFIX):
        node = name.removeprefix(LEASE_PREFIX)
    return str(node) if node else None


# --- the operator's decision on each placed Pod ----------------------------------------------
PLACEMENT: Final = f"{c.GROUP}/placement"  # annotation: format_placement(record)
SCHEDULING_GATE: Final = c.SCHEDULING_GATE  # spec.schedulingGates[].name until a node is chosen

# --- label values ----------------------------------------------------------------------------
_LABEL_VALUE_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def label_value(text: str) -> str:
    """A valid label value from free text, the way GFD turns "NVIDIA L4" into "NVIDIA-L4"."""
    value = _LABEL_VALUE_BAD.sub("-", text.strip())[:63]
    return value.strip("-_.")
