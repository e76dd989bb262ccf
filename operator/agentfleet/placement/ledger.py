"""The books: what every Pod holds on its node, rebuilt from the Pods themselves.

Each placed Pod carries the operator's decision in the annotation `agentfleet.io/placement`
(`format_placement` / `parse_placement`), so the books are right after an operator restart
(a full rebuild from a Pod list) and a Pod that is deleted frees its share the moment the
watch reports it. HAMi's two most reported bugs are exactly these two (anchors.md).

Besides VRAM per GPU, the books count the CPU, memory and GPU device requests of every Pod
bound to a node (or decided onto it and not bound yet), because the scheduler will refuse a
node whose allocatable those exhaust.

`Ledger.free(node)` joins a node's inventory with its books into a `NodeFree` summary, cached
until either changes, so one decision over 1,000 nodes does not rescan 8,000 GPUs.

The books trust only what the operator made and what really runs (the caller says which Pods
are the operator's, `trusted`: see controllers/placer.py). A trusted Pod's decision counts,
if it reads and agrees with what the Pod's immutable spec says (its node, its GPU count, the
VRAM its node affinity asks for); a decision that does not, or none at all on a Pod that holds
GPUs, fails closed: the Pod holds that many whole GPUs of its node ("unplaced"). Any other
Pod's annotation is ignored, and a bound Pod holds what it requests: a Pod nobody placed that
asks for `nvidia.com/gpu: 2` holds two whole GPUs. A decision once booked for a Pod (by uid)
stands: editing the annotation afterwards changes nothing.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, NamedTuple

from agentfleet.api import constants as c
from agentfleet.placement import labels as k
from agentfleet.placement import sizes
from agentfleet.placement.inventory import DEFAULT_MAX_GPUS, NodeInventory

EXCLUSIVE: Final = "exclusive"
SHARED: Final = "shared"
GPU_RESOURCES: Final = tuple(c.GPU_RESOURCE.values())
_DONE_PHASES: Final = ("Succeeded", "Failed")

PodKey = str  # "namespace/name"


# --- the annotation on each placed Pod ----------------------------------------------------


@dataclass(frozen=True)
class PlacementRecord:
    """The operator's decision for one Pod: which node, which GPU indices, VRAM per GPU.

    `vram_mib` is what the agent asked per GPU (0: none named). An exclusive placement holds
    its GPUs whole whatever it asked; a shared one commits `vram_mib` on each of its GPUs."""

    node: str
    gpus: tuple[int, ...]
    vram_mib: int
    agent: str
    sharing: str = EXCLUSIVE


def format_placement(record: PlacementRecord) -> str:
    """`{"agent":"ns/name","gpus":[0,3],"node":"gpu-a100-1","sharing":"exclusive","vramMiB":24576}`"""
    return json.dumps(
        {
            "agent": record.agent,
            "gpus": list(record.gpus),
            "node": record.node,
            "sharing": record.sharing,
            "vramMiB": record.vram_mib,
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def parse_placement(text: str) -> PlacementRecord:
    """The inverse of `format_placement`; ValueError says what is wrong. Unknown keys are
    ignored so that a newer operator's annotation still reads."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deep
        raise ValueError(f"not JSON: {type(error).__name__}") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    node, gpus, vram, agent = (data.get(key) for key in ("node", "gpus", "vramMiB", "agent"))
    sharing = data.get("sharing", EXCLUSIVE)
    if not isinstance(node, str) or not node:
        raise ValueError("node must be a non-empty string")
    if (
        not isinstance(gpus, list)
        or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in gpus)
        or len(set(gpus)) != len(gpus)
    ):
        raise ValueError("gpus must be a list of distinct GPU indices")
    if len(gpus) > DEFAULT_MAX_GPUS or any(i >= 2**31 for i in gpus):
        raise ValueError("gpus names more GPUs than a node has")
    if not isinstance(vram, int) or isinstance(vram, bool) or not 0 <= vram < 2**40:
        raise ValueError("vramMiB must be a whole number >= 0 (MiB of one GPU)")
    if not isinstance(agent, str):
        raise ValueError("agent must be a string (namespace/name)")
    if sharing not in (EXCLUSIVE, SHARED):
        raise ValueError(f"sharing must be {EXCLUSIVE} or {SHARED}")
    return PlacementRecord(node, tuple(gpus), vram, agent, sharing)


# --- what one Pod holds ----------------------------------------------------------------------


@dataclass(frozen=True)
class PodUsage:
    key: PodKey
    node: str  # where its CPU, memory and devices count
    cpu_millis: int = 0
    memory_bytes: int = 0
    devices: tuple[tuple[str, int], ...] = ()  # (nvidia.com/gpu, 2)
    placement: PlacementRecord | None = None  # None: its devices are whole GPUs, index unknown
    problem: str | None = None  # an unreadable or untrusted placement, or request
    uid: str = ""


def pod_key(pod: Mapping[str, Any]) -> PodKey:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def is_gated(pod: Mapping[str, Any]) -> bool:
    """Does the Pod still wait behind the placement gate (no decision taken yet)?"""
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(isinstance(g, dict) and g.get("name") == k.SCHEDULING_GATE for g in gates)


def usage_of(pod: Mapping[str, Any], trusted: bool = True) -> PodUsage | None:
    """What a Pod holds; None when it holds nothing: finished (Succeeded/Failed), being deleted,
    still gated, or neither bound to a node nor placed by us.

    `trusted`: the Pod is one the operator made for an agent (its Deployment's ReplicaSet's),
    so its placement annotation is read; otherwise it is ignored and only a bound Pod's
    requests count (see the module docstring for failing closed)."""
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase") in _DONE_PHASES:
        return None
    spec = pod.get("spec") or {}
    bound = spec.get("nodeName") or None
    gated = is_gated(pod)
    problem = None
    try:
        cpu, memory, devices = pod_requests(spec)
    except (ValueError, ArithmeticError) as error:
        cpu, memory, devices = 0, 0, {}
        problem = f"unreadable resource requests ({error})"
    placement = None
    pinned = None
    text = (meta.get("annotations") or {}).get(k.PLACEMENT)
    if trusted and not gated:
        pinned = pinned_node(spec)
        if text is not None:
            try:
                placement = parse_placement(str(text))
                _check_against_spec(placement, spec, bound or pinned, devices)
            except ValueError as error:
                placement = None
                problem = (
                    f"annotation {k.PLACEMENT} is unreadable or disagrees with the Pod ({error});"
                    " its GPUs stay booked whole"
                )
        elif devices:
            problem = "no placement decision on an agent Pod that holds GPUs: booked whole"
    elif text is not None and not gated:
        problem = f"not made by the operator for an agent: annotation {k.PLACEMENT} ignored"
    node = bound or (placement.node if placement else None) or pinned
    if not node:
        return None
    return PodUsage(
        key=pod_key(pod),
        node=str(node),
        cpu_millis=cpu,
        memory_bytes=memory,
        devices=tuple(sorted((r, n) for r, n in devices.items() if n)),
        placement=placement,
        problem=problem,
        uid=str(meta.get("uid") or ""),
    )


def _check_against_spec(
    record: PlacementRecord, spec: Mapping[str, Any], node: str | None, devices: Mapping[str, int]
) -> None:
    """A decision must agree with what the Pod's spec (immutable once ungated) says: the node
    it is bound or pinned to, the GPUs it requests, and at least the VRAM its node affinity
    asks of GPU Feature Discovery's label."""
    if node is not None and record.node != node:
        raise ValueError(f"it names node {record.node}, the Pod is on {node}")
    if len(record.gpus) != sum(devices.values()):
        raise ValueError(
            f"it names {len(record.gpus)} GPUs, the Pod requests {sum(devices.values())}"
        )
    floor = vram_floor(spec)
    if floor is not None and record.vram_mib < floor:
        raise ValueError(f"it books {record.vram_mib} MiB, the Pod asks for {floor}")


def _required_terms(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    affinity = spec.get("affinity") or {}
    node_affinity = affinity.get("nodeAffinity") if isinstance(affinity, dict) else None
    required = (node_affinity or {}).get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    terms = required.get("nodeSelectorTerms") if isinstance(required, dict) else None
    return [t for t in terms or () if isinstance(t, dict)]


def pinned_node(spec: Mapping[str, Any]) -> str | None:
    """The node a decision pinned the Pod to (`metadata.name In [node]` in every required
    term, as `decide.pin_to_node` writes it), or None."""
    found: set[str] = set()
    terms = _required_terms(spec)
    for term in terms:
        names = [
            field.get("values")
            for field in term.get("matchFields") or ()
            if isinstance(field, dict)
            and field.get("key") == "metadata.name"
            and field.get("operator") == "In"
        ]
        if len(names) != 1 or not isinstance(names[0], list) or len(names[0]) != 1:
            return None
        found.add(str(names[0][0]))
    return found.pop() if len(found) == 1 else None


def vram_floor(spec: Mapping[str, Any]) -> int | None:
    """MiB per GPU the Pod's required node affinity asks for (`nvidia.com/gpu.memory Gt N`,
    render/gpu.py: N+1), the smallest where terms differ; None when it asks nothing."""
    floors = []
    for term in _required_terms(spec):
        for expression in term.get("matchExpressions") or ():
            if (
                isinstance(expression, dict)
                and expression.get("key") == c.NVIDIA_LABEL_MEMORY_MIB
                and expression.get("operator") == "Gt"
            ):
                values = expression.get("values") or []
                text = str(values[0]) if values else ""
                if text.isdigit() and len(text) <= 12:
                    floors.append(int(text) + 1)
    return min(floors) if floors else None


def pod_requests(spec: Mapping[str, Any]) -> tuple[int, int, dict[str, int]]:
    """(millicores, bytes, {GPU resource: count}) the scheduler reserves for a Pod: the larger
    of its containers (plus sidecars) and any init container, plus the RuntimeClass overhead;
    pod-level `resources` replace the container sums for CPU and memory."""
    names = ("cpu", "memory", *GPU_RESOURCES)

    def amounts(resources: Mapping[str, Any] | None) -> dict[str, int]:
        resources = resources or {}
        wanted = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
        return {n: _amount(n, wanted[n]) for n in names if n in wanted}

    total: dict[str, int] = {}
    for container in spec.get("containers") or ():
        _add(total, amounts(container.get("resources")))
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for container in spec.get("initContainers") or ():
        need = amounts(container.get("resources"))
        if container.get("restartPolicy") == "Always":  # a sidecar runs alongside the others
            _add(sidecars, need)
            _peak(init_peak, sidecars)
        else:
            running = dict(sidecars)
            _add(running, need)
            _peak(init_peak, running)
    _add(total, sidecars)
    _peak(total, init_peak)
    pod_level = amounts(spec.get("resources"))
    for name in ("cpu", "memory"):
        if name in pod_level:
            total[name] = pod_level[name]
    _add(total, {n: _amount(n, v) for n, v in (spec.get("overhead") or {}).items() if n in names})
    devices = {r: total[r] for r in GPU_RESOURCES if r in total}
    return total.get("cpu", 0), total.get("memory", 0), devices


def _amount(name: str, value: Any) -> int:
    return sizes.cpu_millis(value) if name == "cpu" else sizes.whole(value)


def _add(into: dict[str, int], more: Mapping[str, int]) -> None:
    for name, amount in more.items():
        into[name] = into.get(name, 0) + amount


def _peak(into: dict[str, int], other: Mapping[str, int]) -> None:
    for name, amount in other.items():
        into[name] = max(into.get(name, 0), amount)


# --- the books ---------------------------------------------------------------------------


@dataclass
class GPUBooks:
    shared_mib: int = 0  # sum of shared commitments
    exclusive: int = 0  # Pods holding it whole (more than 1 is an over-commit someone forced)
    agents: dict[str, int] = field(default_factory=dict)  # agent -> Pods on this GPU

    def empty(self) -> bool:
        return not self.shared_mib and not self.exclusive and not self.agents


@dataclass
class NodeBooks:
    cpu_millis: int = 0
    memory_bytes: int = 0
    devices: dict[str, int] = field(default_factory=dict)
    pods: int = 0
    gpus: dict[int, GPUBooks] = field(default_factory=dict)
    # GPUs held by Pods without a (trusted, readable) decision: whole GPUs, index unknown.
    unplaced: dict[str, int] = field(default_factory=dict)
    version: int = field(default=0, compare=False)  # changes on every change (for caches)

    def empty(self) -> bool:
        return not (
            self.cpu_millis
            or self.memory_bytes
            or self.devices
            or self.pods
            or self.gpus
            or self.unplaced
        )


class GPUFree(NamedTuple):
    """One GPU a request of the node's sharing mode may use."""

    load: float  # used / memory after reported use (0..1)
    free_mib: int
    device: int  # the GPU index
    used_mib: int
    memory_mib: int
    agents: int


@dataclass(frozen=True)
class NodeFree:
    """What is left on one node, for the decision loop."""

    name: str
    spread: tuple[GPUFree, ...]  # usable GPUs, least loaded first
    packed: tuple[GPUFree, ...]  # the same, fullest first
    max_free_mib: int
    slots_free: int
    cpu_free: int
    memory_free: int
    used_mib: int  # of all GPUs, whole GPUs for exclusive holders
    total_mib: int
    gpu_count: int  # physical GPUs on the node
    agents: int  # distinct agents with Pods on the node's GPUs
    # decide.place's answers for this very state, by request shape: a replica of the same
    # agent is answered again from here on every node that has not changed since.
    answers: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def kth_free_mib(self, count: int) -> int:
        """The free VRAM of the count-th freest usable GPU (0 when there are fewer)."""
        if count == 1:
            return self.max_free_mib
        frees = sorted((g.free_mib for g in self.spread), reverse=True)
        return frees[count - 1] if len(frees) >= count else 0


class Ledger:
    """Committed VRAM per node and GPU, plus CPU, memory and device requests per node.

    Fed one Pod at a time from a watch (`upsert`, `remove`) or rebuilt from a list
    (`from_pods`); both give equal books. `assume` books a decision before the Pod's
    annotation comes back through the watch, so back-to-back decisions never double-book."""

    def __init__(self) -> None:
        self.pods: dict[PodKey, PodUsage] = {}
        self.nodes: dict[str, NodeBooks] = {}
        self._versions = itertools.count(1)
        # node -> (the NodeInventory it was computed for, its NodeFree); dropped when the
        # node's books change. Read-only outside this class (decide.place's hot loop).
        self.cached_free: dict[str, tuple[NodeInventory, NodeFree]] = {}

    @classmethod
    def from_pods(
        cls,
        pods: Iterable[Mapping[str, Any]],
        trusted: Callable[[Mapping[str, Any]], bool] = lambda pod: True,
    ) -> Ledger:
        ledger = cls()
        for pod in pods:
            ledger.upsert(pod, trusted(pod))
        return ledger

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ledger) and (self.pods, self.nodes) == (other.pods, other.nodes)

    __hash__ = None  # type: ignore[assignment]

    @property
    def problems(self) -> dict[PodKey, str]:
        return {key: u.problem for key, u in self.pods.items() if u.problem}

    def upsert(self, pod: Mapping[str, Any], trusted: bool = True) -> None:
        """A Pod was added or changed: book what it holds now instead of what it held. A
        decision booked for this very Pod (same uid) stands against a changed annotation."""
        key = pod_key(pod)
        usage = usage_of(pod, trusted)
        old = self.pods.get(key)
        if (
            usage is not None
            and old is not None
            and old.placement is not None
            and usage.uid
            and usage.uid == old.uid
            and usage.placement != old.placement
            and trusted
        ):
            usage = replace(
                usage,
                node=(pod.get("spec") or {}).get("nodeName") or old.placement.node,
                placement=old.placement,
                problem=f"annotation {k.PLACEMENT} changed after the decision; the decision stands",
            )
        self._replace(key, usage)

    def remove(self, key: PodKey) -> None:
        """A Pod was deleted (or finished): free what it held."""
        self._replace(key, None)

    def assume(self, pod: Mapping[str, Any], record: PlacementRecord) -> None:
        """Book a decision for a Pod whose annotation (and released gate) the watch has not
        shown yet."""
        meta = dict(pod.get("metadata") or {})
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            k.PLACEMENT: format_placement(record),
        }
        spec = dict(pod.get("spec") or {})
        spec["schedulingGates"] = [
            g for g in spec.get("schedulingGates") or () if g.get("name") != k.SCHEDULING_GATE
        ]
        self.upsert({**pod, "metadata": meta, "spec": spec})

    def books(self, node: str) -> NodeBooks:
        return self.nodes.get(node) or NodeBooks()

    def _replace(self, key: PodKey, usage: PodUsage | None) -> None:
        old = self.pods.pop(key, None)
        if old == usage:
            if usage is not None:
                self.pods[key] = usage
            return
        if old is not None:
            self._book(old, -1)
        if usage is not None:
            self.pods[key] = usage
            self._book(usage, +1)

    def _book(self, usage: PodUsage, sign: int) -> None:
        touched = {usage.node}
        node = self.nodes.setdefault(usage.node, NodeBooks())
        node.cpu_millis += sign * usage.cpu_millis
        node.memory_bytes += sign * usage.memory_bytes
        node.pods += sign
        for resource, count in usage.devices:
            node.devices[resource] = node.devices.get(resource, 0) + sign * count
            if not node.devices[resource]:
                del node.devices[resource]
            if usage.placement is None and resource in GPU_RESOURCES:
                node.unplaced[resource] = node.unplaced.get(resource, 0) + sign * count
                if not node.unplaced[resource]:
                    del node.unplaced[resource]
        record = usage.placement
        if record is not None:
            placed = self.nodes.setdefault(record.node, NodeBooks())
            touched.add(record.node)
            for index in record.gpus:
                gpu = placed.gpus.setdefault(index, GPUBooks())
                if record.sharing == SHARED:
                    gpu.shared_mib += sign * record.vram_mib
                else:
                    gpu.exclusive += sign
                gpu.agents[record.agent] = gpu.agents.get(record.agent, 0) + sign
                if not gpu.agents[record.agent]:
                    del gpu.agents[record.agent]
                if gpu.empty():
                    del placed.gpus[index]
        for name in touched:
            books = self.nodes[name]
            books.version = next(self._versions)
            self.cached_free.pop(name, None)
            if books.empty():
                del self.nodes[name]

    # --- what is free ---

    def free(self, node: NodeInventory) -> NodeFree:
        """The node's free GPUs, slots, CPU and memory; cached until the node or its books
        change. Used VRAM on a GPU is max(committed, reported by the node agent), so memory
        taken outside the scheduler is never handed out (HAMi #1069)."""
        cached = self.cached_free.get(node.name)
        if cached is not None and cached[0] is node:
            return cached[1]
        summary = _summarise(node, self.nodes.get(node.name) or NodeBooks())
        self.cached_free[node.name] = (node, summary)
        return summary

    def forget_node(self, name: str) -> None:
        """Drop the cached summary of a node that left the inventory."""
        self.cached_free.pop(name, None)


def unplaced_gpus(node: NodeInventory, books: NodeBooks) -> frozenset[int]:
    """The GPUs counted as held whole by Pods without a decision (`NodeBooks.unplaced`): which
    ones is unknown, so the ledger takes those nobody else holds, highest index first, and
    then shared ones (a time-sliced Pod may use all of a GPU's memory)."""
    count = books.unplaced.get(node.resource or "", 0)
    if count <= 0:
        return frozenset()
    order = sorted(
        node.gpus,
        key=lambda g: (not (books.gpus.get(g.index) or GPUBooks()).empty(), -g.index),
    )
    return frozenset(g.index for g in order[:count])


def _summarise(node: NodeInventory, books: NodeBooks) -> NodeFree:
    usable: list[GPUFree] = []
    used_total = 0
    total = 0
    agents: set[str] = set()
    unplaced = unplaced_gpus(node, books)
    for gpu in node.gpus:
        held = books.gpus.get(gpu.index) or GPUBooks()
        agents.update(held.agents)
        total += gpu.memory_mib
        if held.exclusive or not gpu.healthy or gpu.index in unplaced:
            used_total += gpu.memory_mib
            continue
        used = max(held.shared_mib, gpu.used_mib)
        used_total += min(used, gpu.memory_mib)
        if not node.shared and not held.empty():
            continue  # an exclusive request needs a GPU nobody holds
        free = max(gpu.memory_mib - used, 0)
        load = min(used / gpu.memory_mib, 1.0) if gpu.memory_mib else 0.0
        usable.append(GPUFree(load, free, gpu.index, used, gpu.memory_mib, len(held.agents)))
    resource = node.resource
    slots_used = books.devices.get(resource, 0) if resource else 0
    return NodeFree(
        name=node.name,
        spread=tuple(sorted(usable, key=lambda g: (g.load, -g.free_mib, g.device))),
        packed=tuple(sorted(usable, key=lambda g: (-g.load, g.free_mib, g.device))),
        max_free_mib=max((g.free_mib for g in usable), default=0),
        slots_free=node.slots - slots_used,
        cpu_free=node.cpu_millis - books.cpu_millis,
        memory_free=node.memory_bytes - books.memory_bytes,
        used_mib=used_total,
        total_mib=total,
        gpu_count=len(node.gpus),
        agents=len(agents),
    )
