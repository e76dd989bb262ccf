"""One decision: which node and which GPUs for one replica, or why none fits.

`spread` is the origin deploy agent's rule, the least-loaded GPU with enough free VRAM (for
whole GPUs: the least-loaded node); `binpack` takes the fullest GPU (node) that still fits, to
keep whole GPUs free. Ties go to the node name, then the GPU index, so the same books always
give the same answer.

A refusal names the candidate that came closest, with numbers, and counts the nodes it never
considered and why, so a person knows whether to free VRAM, add a node, or fix a toleration.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from agentfleet.api.constants import Reason
from agentfleet.api.quantity import format_bytes, format_cpu, format_mib
from agentfleet.placement.inventory import Inventory
from agentfleet.placement.ledger import (
    GPUFree,
    Ledger,
    NodeFree,
    PlacementRecord,
    format_placement,
)
from agentfleet.placement.request import Request

Policy = Literal["spread", "binpack"]

# How far a node got before it failed; the furthest is the most relevant refusal.
_GPU, _VRAM, _CPU, _MEMORY, _FITS = range(5)
_REASONS: Final = (
    Reason.INSUFFICIENT_GPU,
    Reason.INSUFFICIENT_VRAM,
    Reason.INSUFFICIENT_CPU,
    Reason.INSUFFICIENT_MEMORY,
)
_ANSWERS_PER_NODE: Final = 256  # request shapes remembered per node state

# Why a node was never a candidate for this request (the inventory adds NotReady & co.).
NOT_SELECTED: Final = "not selected by nodeSelector/affinity"
TAINTED: Final = "tainted"
OTHER_PRODUCT: Final = "other GPU product"


@dataclass(frozen=True)
class Decision:
    node: str
    gpus: tuple[int, ...]
    vram_mib: int
    sharing: str
    agent: str

    @property
    def record(self) -> PlacementRecord:
        return PlacementRecord(self.node, self.gpus, self.vram_mib, self.agent, self.sharing)

    def annotation(self) -> str:
        """The value of `agentfleet.io/placement` to write on the Pod."""
        return format_placement(self.record)


@dataclass(frozen=True)
class Refusal:
    reason: str  # one of constants.PLACEMENT_FAILURES
    message: str
    best: str | None  # the candidate that came closest, if any
    skipped: tuple[tuple[str, int], ...]  # (why, how many nodes), most first


def place(
    request: Request, inventory: Inventory, ledger: Ledger, policy: Policy = "spread"
) -> Decision | Refusal:
    """Pick a node and GPUs for one replica, or say why nothing fits. Pure: book the decision
    with `ledger.assume(pod, decision.record)` before the next one."""
    candidates, skipped = _candidates(request, inventory)
    count, need = request.gpu_count, request.vram_mib or 0
    spread, shared = policy == "spread", request.shared
    cpu, memory = request.cpu_millis, request.memory_bytes
    best_key: tuple[float, float, str] | None = None
    best: tuple[NodeFree, tuple[GPUFree, ...]] | None = None
    closest: tuple[int, int, str] | None = None  # (stage, slack, node) of a refused node
    nodes, cached, free_of = inventory.nodes, ledger.cached_free, ledger.free
    shape = (count, need, spread, shared, cpu, memory)
    for name in candidates:
        node = nodes[name]
        hit = cached.get(name)  # ledger.free(node) without the call, as most nodes are cached
        free = hit[1] if hit is not None and hit[0] is node else free_of(node)
        answer = free.answers.get(shape)
        if answer is None:
            if len(free.answers) > _ANSWERS_PER_NODE:
                free.answers.clear()
            stage, slack, chosen = _fit(free, count, need, spread, cpu, memory)
            key = _score(free, chosen, need, shared, spread) if stage == _FITS else None
            answer = free.answers[shape] = (stage, slack, chosen, key)
        stage, slack, chosen, key = answer
        if key is not None:
            if best_key is None or key < best_key:
                best_key, best = key, (free, chosen)
        elif (
            closest is None
            or (stage, slack) > closest[:2]
            or ((stage, slack) == closest[:2] and name < closest[2])
        ):
            closest = (stage, slack, name)
    if best is not None:
        free, chosen = best
        return Decision(
            node=free.name,
            gpus=tuple(sorted(g.device for g in chosen)),
            vram_mib=need,
            sharing=request.sharing,
            agent=request.agent,
        )
    return _refusal(request, inventory, ledger, closest, skipped)


def _fit(
    free: NodeFree, count: int, need: int, spread: bool, cpu: int, memory: int
) -> tuple[int, int, tuple[GPUFree, ...]]:
    """(stage reached, how close it came, GPUs chosen): _FITS when the replica fits. The
    checks run in the order a person would fix them: GPUs, VRAM, CPU, memory."""
    chosen: tuple[GPUFree, ...] = ()
    if count:
        usable = free.spread
        if len(usable) < count or free.slots_free < count:
            return _GPU, min(len(usable), free.slots_free), chosen
        if free.max_free_mib < need:
            return _VRAM, free.kth_free_mib(count), chosen
        picked = []
        for gpu in usable if spread else free.packed:
            if gpu.free_mib >= need:
                picked.append(gpu)
                if len(picked) == count:
                    break
        else:
            return _VRAM, free.kth_free_mib(count), chosen
        chosen = tuple(picked)
    if free.cpu_free < cpu:
        return _CPU, free.cpu_free, chosen
    if free.memory_free < memory:
        return _MEMORY, free.memory_free, chosen
    return _FITS, 0, chosen


def _score(
    free: NodeFree, chosen: tuple[GPUFree, ...], need: int, shared: bool, spread: bool
) -> tuple[float, float, str]:
    """Lower is better: (GPU load after, node load after, name)."""
    if not chosen:  # CPU-only request: the node's GPU load is what spreading is about
        gpu_load = 0.0
        charge = 0
    elif shared:
        gpu_load = sum(
            (g.used_mib + need) / g.memory_mib if g.memory_mib else 1.0 for g in chosen
        ) / len(chosen)
        charge = need * len(chosen)
    else:  # whole GPUs: every chosen GPU ends up full; the node's load decides
        gpu_load = 1.0
        charge = sum(g.memory_mib for g in chosen)
    node_load = (free.used_mib + charge) / free.total_mib if free.total_mib else 0.0
    if spread:
        return (gpu_load, node_load, free.name)
    return (-gpu_load, -node_load, free.name)


def _candidates(request: Request, inventory: Inventory) -> tuple[set[str], Counter[str]]:
    """Eligible nodes this request may use, and why the others were left out; remembered
    until the inventory changes (replicas of one agent ask the same)."""
    key = (
        "candidates",
        request.node_selector,
        request.terms,
        request.tolerations,
        request.gpu_count > 0,
        request.vendor,
        request.shared,
        request.product,
    )
    remembered = inventory.memo.get(key)
    if remembered is None:
        remembered = inventory.memo[key] = _filter(request, inventory)
    return remembered


def _filter(request: Request, inventory: Inventory) -> tuple[set[str], Counter[str]]:
    """Each node left out is counted once, under the first rule that leaves it out."""
    skipped: Counter[str] = Counter(i.reason for i in inventory.ineligible.values())
    remaining = inventory.all()
    if request.node_selector or request.terms is not None:
        selected = inventory.select(dict(request.node_selector), request.terms)
        skipped[NOT_SELECTED] += len(remaining) - len(selected)
        remaining = selected
    tainted = remaining & inventory.tainted_against(request.tolerations)
    if tainted:
        skipped[TAINTED] += len(tainted)
        remaining -= tainted
    if request.gpu_count:
        with_vendor = remaining & inventory.with_vendor(request.vendor)
        skipped[f"no {request.vendor} GPU"] += len(remaining) - len(with_vendor)
        in_pool = with_vendor & inventory.pool(request.vendor, request.shared)
        mode = "exclusive GPUs only" if request.shared else "shared GPUs only"
        skipped[mode] += len(with_vendor) - len(in_pool)
        remaining = in_pool
        if request.product is not None:
            with_product = remaining & inventory.with_product(request.product)
            skipped[OTHER_PRODUCT] += len(remaining) - len(with_product)
            remaining = with_product
    return remaining, +skipped


def _refusal(
    request: Request,
    inventory: Inventory,
    ledger: Ledger,
    closest: tuple[int, int, str] | None,
    skipped: Counter[str],
) -> Refusal:
    ordered = tuple(sorted(skipped.items(), key=lambda item: (-item[1], item[0])))
    tail = ""
    if ordered:
        total = sum(n for _, n in ordered)
        parts = ", ".join(f"{n} {why}" for why, n in ordered)
        tail = f"; {total} node{'s' if total != 1 else ''} skipped: {parts}"
    want = _wanted(request)
    if closest is None:
        reason = Reason.INSUFFICIENT_GPU if request.gpu_count else Reason.INSUFFICIENT_CPU
        if not inventory.nodes and not inventory.ineligible:
            return Refusal(reason, f"no node has {want}: the cluster has no nodes", None, ordered)
        return Refusal(reason, f"no node has {want}: no candidate node{tail}", None, ordered)
    stage, _, name = closest
    free = ledger.free(inventory.nodes[name])
    message = f"no node has {want}: best is {name} ({_describe(stage, request, free)}){tail}"
    return Refusal(_REASONS[stage], message, name, ordered)


def _wanted(request: Request) -> str:
    """'24Gi free VRAM on one GPU', '16Gi free VRAM on one shared GPU', '2 free amd GPUs'."""
    count = request.gpu_count
    if not count:
        cpu, memory = format_cpu(request.cpu_millis), format_bytes(request.memory_bytes)
        return f"{cpu} CPU and {memory} of memory free"
    plural = "s" if count != 1 else ""
    kind = " ".join(
        part
        for part in (
            "shared" if request.shared else "",
            request.product or (request.vendor if request.vendor != "nvidia" else ""),
            f"GPU{plural}",
        )
        if part
    )
    if request.vram_mib:
        where = "one" if count == 1 else f"each of {count}"
        return f"{format_mib(request.vram_mib)} free VRAM on {where} {kind}"
    if request.shared:
        return f"{count} free slot{plural} on {kind}"
    return f"{count} free {kind}"


def _describe(stage: int, request: Request, free: NodeFree) -> str:
    agents = _count(free.agents, "agent")
    count = request.gpu_count
    if stage == _GPU:
        gpus = _count(free.gpu_count, "GPU")
        if request.shared:
            return f"{_count(max(free.slots_free, 0), 'free slot')} on {gpus}, {agents}"
        available = max(min(len(free.spread), free.slots_free), 0)
        return f"{available} of {gpus} free, {agents}"
    if stage == _VRAM:
        best = sorted(free.spread, key=lambda g: (-g.free_mib, g.device))[:count]
        size = format_mib(best[0].memory_mib)
        if count == 1:
            on_gpu = _count(best[0].agents, "agent")
            return f"{format_mib(best[0].free_mib, down=True)} free of {size}, {on_gpu}"
        frees = ", ".join(format_mib(g.free_mib, down=True) for g in best)
        return f"its {count} freest GPUs have {frees} free of {size} each, {agents}"
    if stage == _CPU:
        return f"{format_cpu(max(free.cpu_free, 0))} CPU free, {agents}"
    return f"{format_bytes(max(free.memory_free, 0), down=True)} memory free, {agents}"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def pin_to_node(affinity: Mapping[str, Any] | None, node: str) -> dict[str, Any]:
    """The Pod's affinity narrowed to one node, the only change Kubernetes allows on a gated
    Pod's node affinity: `metadata.name In [node]` is ANDed into every existing term (or
    becomes the only term)."""
    result = dict(affinity or {})
    node_affinity = dict(result.get("nodeAffinity") or {})
    required = dict(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    pin = {"key": "metadata.name", "operator": "In", "values": [node]}
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [
        {**term, "matchFields": [*(term.get("matchFields") or []), pin]} for term in terms
    ]
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    result["nodeAffinity"] = node_affinity
    return result
