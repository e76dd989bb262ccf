"""What a GPU request means for the Pod: an extended resource and node label requirements.

The scheduler enforces these from the labels GPU Feature Discovery publishes, so an agent
that needs 24Gi of VRAM per GPU only lands on nodes whose GPUs have at least that much.
Free-VRAM accounting across agents is the placement ledger's job (placement/), not this one.
"""

from __future__ import annotations

from typing import Any

from agentfleet.api import constants as c
from agentfleet.api import quantity
from agentfleet.api.config import RenderConfig
from agentfleet.api.models import GPU, GPUSharing, GPUVendor

# Kubernetes evicts pods from a NotReady or unreachable node after these taints appear; the
# default 300 s is too long for a GPU agent that can be re-placed on a healthy node.
NODE_FAILURE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def wants_gpu(gpu: GPU | None) -> bool:
    return gpu is not None and gpu.count > 0


def resource_limits(gpu: GPU | None) -> dict[str, str]:
    if gpu is None or not wants_gpu(gpu):
        return {}
    return {c.GPU_RESOURCE[gpu.vendor.value]: str(gpu.count)}


def node_requirements(gpu: GPU | None) -> list[dict[str, Any]]:
    """matchExpressions that every node running this agent must satisfy."""
    if gpu is None or not wants_gpu(gpu) or gpu.vendor is not GPUVendor.NVIDIA:
        return []
    requirements: list[dict[str, Any]] = []
    if gpu.product:
        requirements.append(
            {"key": c.NVIDIA_LABEL_PRODUCT, "operator": "In", "values": [gpu.product]}
        )
    if gpu.vram:
        # Node affinity's Gt compares integers: "more than needed-1 MiB" is "at least needed".
        needed_mib = quantity.to_mebibytes(gpu.vram)
        requirements.append(
            {"key": c.NVIDIA_LABEL_MEMORY_MIB, "operator": "Gt", "values": [str(needed_mib - 1)]}
        )
    sharing_operator = "In" if gpu.sharing is GPUSharing.SHARED else "NotIn"
    requirements.append(
        {
            "key": c.NVIDIA_LABEL_SHARING,
            "operator": sharing_operator,
            "values": list(c.SHARED_STRATEGIES),
        }
    )
    return requirements


def summary(gpu: GPU | None) -> str:
    """For `kubectl get aia`: '1x nvidia >=24Gi shared', or 'cpu' when no GPU is wanted."""
    if gpu is None or not wants_gpu(gpu):
        return "cpu"
    parts = [f"{gpu.count}x {gpu.product or gpu.vendor.value}"]
    if gpu.vram:
        parts.append(f">={quantity.format_bytes(gpu.vram)}")
    if gpu.sharing is GPUSharing.SHARED:
        parts.append("shared")
    return " ".join(parts)


def hold_for_placement(template: dict[str, Any], gpu: GPU | None, config: RenderConfig) -> None:
    """A GPU agent's pods wait behind a scheduling gate until the operator's placement ledger
    has chosen their node and GPUs (one decision at a time, so VRAM is never over-committed);
    they carry a label the operator's Pod watch selects, and leave a failed node quickly."""
    if gpu is None or not wants_gpu(gpu) or not config.gpu_placement:
        return
    template["metadata"]["labels"][c.LABEL_GPU] = "true"
    spec = template["spec"]
    spec["schedulingGates"] = [{"name": c.SCHEDULING_GATE}]
    spec["tolerations"] = [
        *spec.get("tolerations", []),
        *(
            {
                "key": taint,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": config.node_failure_seconds,
            }
            for taint in NODE_FAILURE_TAINTS
        ),
    ]
