"""What one replica asks for: GPUs and VRAM, CPU and memory, and where it may run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet.api.models import GPU
from agentfleet.placement import sizes
from agentfleet.placement.ledger import EXCLUSIVE, SHARED, pod_requests
from agentfleet.placement.selectors import Term, Toleration, required_terms


@dataclass(frozen=True)
class Request:
    """One replica. `vram_mib` is needed on each of its `gpu_count` GPUs (None: any amount;
    an exclusive GPU is then taken whole, a shared one only uses a device-plugin slot)."""

    agent: str = ""  # namespace/name, recorded on the decision
    gpu_count: int = 0
    vram_mib: int | None = None
    vendor: str = "nvidia"
    sharing: str = EXCLUSIVE
    product: str | None = None
    cpu_millis: int = 0
    memory_bytes: int = 0
    tolerations: tuple[Toleration, ...] = ()
    node_selector: tuple[tuple[str, str], ...] = ()
    terms: tuple[Term, ...] | None = None  # required node affinity; None: no constraint

    @property
    def shared(self) -> bool:
        return self.sharing == SHARED


def request_for_pod(pod: Mapping[str, Any], gpu: GPU | None, agent: str) -> Request:
    """The request of one (gated) agent Pod: GPUs from the AIAgent's `spec.gpu`, everything
    else from the Pod spec the scheduler will see (requests incl. init containers and
    overhead, tolerations, nodeSelector, required node affinity)."""
    spec = pod.get("spec") or {}
    cpu, memory, _ = pod_requests(spec)
    wants_gpu = gpu is not None and gpu.count > 0
    return Request(
        agent=agent,
        gpu_count=gpu.count if gpu is not None and wants_gpu else 0,
        vram_mib=sizes.mib(gpu.vram) if gpu is not None and wants_gpu and gpu.vram else None,
        vendor=gpu.vendor.value if gpu is not None else "nvidia",
        sharing=gpu.sharing.value if gpu is not None else EXCLUSIVE,
        product=gpu.product if gpu is not None and wants_gpu else None,
        cpu_millis=cpu,
        memory_bytes=memory,
        tolerations=tuple(Toleration.of(t) for t in spec.get("tolerations") or ()),
        node_selector=tuple(sorted((spec.get("nodeSelector") or {}).items())),
        terms=required_terms(spec.get("affinity")),
    )
