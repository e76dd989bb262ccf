"""What each Node offers: GPUs with their VRAM, device-plugin slots, CPU and memory.

Read from the labels GPU Feature Discovery, the AMD node labeller and our node agent publish,
and from `status.allocatable`. A Node is either a `NodeInventory` the ledger may place on, or
`Ineligible` with a reason that refusal messages count ("2 nodes skipped: 1 NotReady, ...").
A label we cannot read makes its node ineligible; it never raises.

`Inventory` keeps all nodes of the fleet with indices (by label, taint set, vendor pool and
product) so that filtering 1,000 nodes for one request is a few set operations.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentfleet.api import constants as c
from agentfleet.api import timestamps
from agentfleet.placement import labels as k
from agentfleet.placement import sizes
from agentfleet.placement.selectors import Taint, Term, Toleration, blocking_taint, integer

# Why a node is skipped for every request (counted in refusal messages under these words).
NOT_READY = "NotReady"
UNSCHEDULABLE = "unschedulable"
STALE = "stale heartbeat"
UNREADABLE = "unreadable labels"

DEFAULT_LEASE_SECONDS = 40  # what the node agent uses when a Lease omits its duration


@dataclass(frozen=True)
class GPUDevice:
    """One physical GPU. `used_mib` is what the node agent saw in use (NVML), 0 when unknown;
    a GPU the node agent reports unhealthy (NVML lost it) is never handed out."""

    index: int
    memory_mib: int
    used_mib: int = 0
    healthy: bool = True


@dataclass(frozen=True)
class NodeInventory:
    name: str
    labels: Mapping[str, str] = field(repr=False)
    taints: tuple[Taint, ...] = ()
    vendor: str | None = None  # "nvidia" | "amd" | None (no GPUs)
    product: str | None = None
    sharing: str = k.SHARING_NONE  # none | time-slicing | mps
    gpus: tuple[GPUDevice, ...] = ()
    slots: int = 0  # allocatable nvidia.com/gpu or amd.com/gpu (GPUs x sharing replicas)
    cpu_millis: int = 0
    memory_bytes: int = 0
    heartbeat_deadline: datetime.datetime | None = None  # node agent Lease renewTime + duration

    @property
    def shared(self) -> bool:
        """Time-slicing or MPS: several Pods split each GPU's VRAM."""
        return self.sharing in k.SHARED_STRATEGIES

    @property
    def resource(self) -> str | None:
        """The extended resource a Pod asks for to get these GPUs."""
        return c.GPU_RESOURCE.get(self.vendor or "")

    @property
    def has_gpus(self) -> bool:
        return self.vendor is not None and self.slots > 0 and bool(self.gpus)


@dataclass(frozen=True)
class Ineligible:
    """A node no request may use right now; `inventory` is what could be read of it."""

    node: str
    reason: str  # NOT_READY | UNSCHEDULABLE | STALE | UNREADABLE
    detail: str
    inventory: NodeInventory | None = None


class _Unreadable(ValueError):
    pass


def heartbeat_of(lease: Mapping[str, Any]) -> tuple[datetime.datetime | None, int]:
    """(renewTime, leaseDurationSeconds) of a coordination.k8s.io/v1 Lease."""
    spec = lease.get("spec") or {}
    seconds = spec.get("leaseDurationSeconds")
    duration = seconds if isinstance(seconds, int) and seconds > 0 else DEFAULT_LEASE_SECONDS
    renew = spec.get("renewTime") or spec.get("acquireTime")
    return timestamps.parse(renew), duration


def node_from_object(
    node: Mapping[str, Any],
    now: datetime.datetime,
    heartbeat: datetime.datetime | None = None,
    lease_seconds: int | None = None,
) -> NodeInventory | Ineligible:
    """Read one Node object (as the API returns it).

    `heartbeat` is the renewTime of the node agent's Lease for this node (None: no Lease). A
    node that carries node-agent data but has no Lease, or whose Lease expired, is stale: the
    VRAM in use it reported can no longer be trusted."""
    meta = node.get("metadata") or {}
    name = str(meta.get("name") or "")
    labels = {str(key): str(value) for key, value in (meta.get("labels") or {}).items()}
    annotations = meta.get("annotations") or {}
    spec = node.get("spec") or {}
    deadline = None
    if heartbeat is not None:
        deadline = heartbeat + datetime.timedelta(seconds=lease_seconds or DEFAULT_LEASE_SECONDS)

    inventory: NodeInventory | None = None
    problem = ""
    try:
        inventory = _read(name, labels, annotations, spec, node.get("status") or {}, deadline)
    except _Unreadable as error:
        problem = str(error)

    ready = _ready_condition(node)
    if ready is not None:
        return Ineligible(name, NOT_READY, ready, inventory)
    if spec.get("unschedulable"):
        return Ineligible(name, UNSCHEDULABLE, "cordoned (spec.unschedulable)", inventory)
    has_agent_data = k.AGENT_GPUS in annotations or k.AGENT_GPU_COUNT in labels
    if deadline is not None and now > deadline:
        late = int((now - deadline).total_seconds())
        detail = f"node agent Lease expired {late}s ago"
        return Ineligible(name, STALE, detail, inventory)
    if deadline is None and has_agent_data:
        return Ineligible(name, STALE, "node agent labels but no node agent Lease", inventory)
    if inventory is None:
        return Ineligible(name, UNREADABLE, problem)
    return inventory


def _ready_condition(node: Mapping[str, Any]) -> str | None:
    """None when Ready=True, else why not."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return None
            return f"Ready={condition.get('status')} ({condition.get('reason') or 'no reason'})"
    return "no Ready condition"


def _read(
    name: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, Any],
    spec: Mapping[str, Any],
    status: Mapping[str, Any],
    deadline: datetime.datetime | None,
) -> NodeInventory:
    allocatable = status.get("allocatable") or {}
    cpu = _quantity(allocatable, "cpu", sizes.cpu_millis)
    memory = _quantity(allocatable, "memory", sizes.whole)
    nvidia_slots = _quantity(allocatable, c.GPU_RESOURCE["nvidia"], sizes.whole)
    amd_slots = _quantity(allocatable, c.GPU_RESOURCE["amd"], sizes.whole)
    agent_gpus = _agent_gpus(annotations)
    try:
        taints = tuple(Taint.of(t) for t in spec.get("taints") or ())
    except (KeyError, TypeError, AttributeError) as error:
        raise _Unreadable(f"spec.taints: {error}") from error

    nvidia_labelled = any(key in labels for key in (k.NVIDIA_MEMORY_MIB, k.NVIDIA_COUNT))
    amd_labelled = any(_amd_vram_labels(labels))
    if nvidia_slots and amd_slots:
        raise _Unreadable("both nvidia.com/gpu and amd.com/gpu are allocatable")
    vendor, product, sharing = None, None, k.SHARING_NONE
    gpus: tuple[GPUDevice, ...] = ()
    slots = 0
    if amd_slots or (amd_labelled and not nvidia_slots):
        vendor, slots = "amd", amd_slots
        gpus = _amd_gpus(labels, amd_slots)
        product = _first(labels, [p + k.AMD_PRODUCT_SUFFIX for p in k.AMD_PREFIXES])
    elif nvidia_slots or nvidia_labelled or agent_gpus is not None:
        vendor, slots = "nvidia", nvidia_slots
        product = labels.get(k.NVIDIA_PRODUCT) or labels.get(k.AGENT_GPU_PRODUCT)
        sharing = _nvidia_sharing(labels)
        gpus = _nvidia_gpus(labels, nvidia_slots, agent_gpus)
    if agent_gpus is not None and vendor == "nvidia":
        gpus = _with_reported_use(gpus, agent_gpus)
    return NodeInventory(
        name=name,
        labels=labels,
        taints=taints,
        vendor=vendor,
        product=product,
        sharing=sharing,
        gpus=gpus,
        slots=slots,
        cpu_millis=cpu,
        memory_bytes=memory,
        heartbeat_deadline=deadline,
    )


def _quantity(allocatable: Mapping[str, Any], key: str, parse: Callable[[str | int], int]) -> int:
    value = allocatable.get(key)
    if value is None:
        return 0
    try:
        return parse(value)
    except (ValueError, ArithmeticError) as error:
        raise _Unreadable(f"status.allocatable[{key}]={value!r} is not a quantity") from error


def _label_int(labels: Mapping[str, str], key: str, minimum: int) -> int | None:
    text = labels.get(key)
    if text is None:
        return None
    value = integer(text)
    if value is None or value < minimum:
        raise _Unreadable(f"{key}={text!r} is not a whole number >= {minimum}")
    return value


def _nvidia_sharing(labels: Mapping[str, str]) -> str:
    strategy = labels.get(k.NVIDIA_SHARING)
    replicas = _label_int(labels, k.NVIDIA_REPLICAS, 0)
    if strategy is None:  # GFD before v0.15 had no strategy label, only replicas
        return c.TIME_SLICING if replicas and replicas > 1 else k.SHARING_NONE
    if strategy not in (k.SHARING_NONE, *k.SHARED_STRATEGIES):
        raise _Unreadable(f"{k.NVIDIA_SHARING}={strategy!r} is not none, time-slicing or mps")
    return strategy


def _nvidia_gpus(
    labels: Mapping[str, str], slots: int, agent_gpus: list[GPUDevice] | None
) -> tuple[GPUDevice, ...]:
    memory = _label_int(labels, k.NVIDIA_MEMORY_MIB, 1)
    count = _label_int(labels, k.NVIDIA_COUNT, 0)
    if count is None and memory is None and agent_gpus is not None:
        return tuple(agent_gpus)  # only our node agent describes this node's GPUs
    if count is None:
        replicas = _label_int(labels, k.NVIDIA_REPLICAS, 0) or 1
        count = slots // replicas
    if agent_gpus is not None and len(agent_gpus) != count:
        raise _Unreadable(
            f"the node agent reports {len(agent_gpus)} GPUs but {k.NVIDIA_COUNT} says {count}"
        )
    if memory is None:  # unknown VRAM: only requests that name no VRAM can use these GPUs
        per_gpu = [g.memory_mib for g in agent_gpus] if agent_gpus else [0] * count
        return tuple(GPUDevice(i, mib) for i, mib in enumerate(per_gpu))
    return tuple(GPUDevice(i, memory) for i in range(count))


def _with_reported_use(
    gpus: tuple[GPUDevice, ...], agent_gpus: list[GPUDevice]
) -> tuple[GPUDevice, ...]:
    reported = {g.index: g for g in agent_gpus}
    return tuple(
        GPUDevice(g.index, g.memory_mib, reported[g.index].used_mib, reported[g.index].healthy)
        if g.index in reported
        else g
        for g in gpus
    )


def _agent_gpus(annotations: Mapping[str, Any]) -> list[GPUDevice] | None:
    """The node agent's per-GPU annotation (None when absent)."""
    text = annotations.get(k.AGENT_GPUS)
    if text is None:
        return None
    try:
        entries = json.loads(text)
        gpus = [
            GPUDevice(
                int(e["index"]),
                int(e["memoryMiB"]),
                int(e.get("usedMiB") or 0),
                e.get("healthy", True) is not False,
            )
            for e in entries
        ]
    except (TypeError, ValueError, KeyError) as error:
        raise _Unreadable(
            f"annotation {k.AGENT_GPUS} is not the node agent's JSON: {error}"
        ) from None
    if sorted(g.index for g in gpus) != list(range(len(gpus))) or any(
        g.memory_mib < 0 or g.used_mib < 0 for g in gpus
    ):
        raise _Unreadable(f"annotation {k.AGENT_GPUS} has bad GPU indices or sizes")
    return sorted(gpus, key=lambda g: g.index)


def _amd_vram_labels(labels: Mapping[str, str]) -> Iterable[str]:
    for prefix in k.AMD_PREFIXES:
        base = prefix + k.AMD_VRAM_SUFFIX
        for key in labels:
            if key == base or key.startswith(base + "."):
                yield key


def _amd_gpus(labels: Mapping[str, str], slots: int) -> tuple[GPUDevice, ...]:
    """GPUs from `amd.com/gpu.vram=192G` (all alike, as many as allocatable) or, on a node with
    mixed cards, from `amd.com/gpu.vram.<N>G=<count>` (current prefix first, then beta)."""
    for prefix in k.AMD_PREFIXES:
        base = prefix + k.AMD_VRAM_SUFFIX
        counted = {
            key[len(base) + 1 :]: value
            for key, value in labels.items()
            if key.startswith(base + ".")
        }
        if counted:
            sizes_mib: list[int] = []
            for size, count in sorted(counted.items()):
                per_gpu = _amd_size(f"{base}.{size}", size)
                how_many = integer(count)
                if how_many is None or how_many < 0:
                    raise _Unreadable(f"{base}.{size}={count!r} is not a count")
                sizes_mib += [per_gpu] * how_many
            uniform = labels.get(base)
            if uniform is not None and {_amd_size(base, uniform)} != set(sizes_mib):
                raise _Unreadable(f"{base}={uniform} disagrees with {base}.<size> counts")
            return tuple(GPUDevice(i, mib) for i, mib in enumerate(sorted(sizes_mib)))
    uniform_key = _first_key(labels, [p + k.AMD_VRAM_SUFFIX for p in k.AMD_PREFIXES])
    if uniform_key is None:  # the device plugin runs but no labeller: VRAM unknown
        return tuple(GPUDevice(i, 0) for i in range(slots))
    per_gpu = _amd_size(uniform_key, labels[uniform_key])
    return tuple(GPUDevice(i, per_gpu) for i in range(slots))


def _amd_size(key: str, text: str) -> int:
    match = k.AMD_SIZE.match(text)
    if not match:
        raise _Unreadable(f"{key}={text!r} is not a size like 192G")
    return int(match.group(1)) * 1024  # the labeller's "G" is GiB, rounded


def _first_key(labels: Mapping[str, str], keys: Sequence[str]) -> str | None:
    return next((key for key in keys if key in labels), None)


def _first(labels: Mapping[str, str], keys: Sequence[str]) -> str | None:
    key = _first_key(labels, keys)
    return labels[key] if key else None


# --- the fleet ---------------------------------------------------------------------------


@dataclass
class _Stored:
    node: Mapping[str, Any]
    result: NodeInventory | Ineligible


class Inventory:
    """Every Node, kept current from a Node watch and a Lease watch, with lookup indices.

    Only eligible nodes are indexed; ineligible ones are kept for refusal messages and for the
    GPU table. Mutations bump `version` so derived caches know when to recompute."""

    def __init__(self) -> None:
        self.version = 0
        self.nodes: dict[str, NodeInventory] = {}
        self.ineligible: dict[str, Ineligible] = {}
        self._stored: dict[str, _Stored] = {}
        self._heartbeats: dict[str, tuple[datetime.datetime | None, int]] = {}
        self._labels: dict[str, dict[str, set[str]]] = {}
        self._taints: dict[tuple[Taint, ...], set[str]] = {}
        self._pools: dict[tuple[str, bool], set[str]] = {}
        self._products: dict[str, set[str]] = {}
        # Answers derived from this exact fleet (decide.py's candidate sets); emptied on
        # every change.
        self.memo: dict[Any, Any] = {}

    @classmethod
    def of(
        cls,
        nodes: Iterable[Mapping[str, Any]],
        now: datetime.datetime,
        leases: Iterable[Mapping[str, Any]] = (),
    ) -> Inventory:
        """A fleet from listed Nodes and node agent Leases."""
        inventory = cls()
        for lease in leases:
            holder = k.lease_node(lease)
            if holder:
                inventory._heartbeats[holder] = heartbeat_of(lease)
        for node in nodes:
            inventory.set_node(node, now)
        return inventory

    # --- mutations ---

    def set_node(
        self, node: Mapping[str, Any], now: datetime.datetime
    ) -> NodeInventory | Ineligible:
        """Add or replace a node (from a Node watch event)."""
        name = str(node["metadata"]["name"])
        heartbeat, seconds = self._heartbeats.get(name, (None, DEFAULT_LEASE_SECONDS))
        result = node_from_object(node, now, heartbeat, seconds)
        self._unindex(name)
        self._stored[name] = _Stored(node, result)
        self._index(result)
        self._changed()
        return result

    def remove_node(self, name: str) -> None:
        self._unindex(name)
        self._stored.pop(name, None)
        self._changed()

    def _changed(self) -> None:
        self.version += 1
        self.memo.clear()

    def set_lease(self, lease: Mapping[str, Any], now: datetime.datetime) -> None:
        """A node agent Lease was created or renewed (from a Lease watch event)."""
        node = k.lease_node(lease)
        if node:
            self._heartbeats[node] = heartbeat_of(lease)
            self._reevaluate(node, now)

    def remove_lease(self, node: str, now: datetime.datetime) -> None:
        self._heartbeats.pop(node, None)
        self._reevaluate(node, now)

    def refresh(self, now: datetime.datetime) -> list[str]:
        """Re-read nodes whose heartbeat has expired since; returns their names. Call it on a
        timer (see `next_expiry`): an expiry is the absence of an event."""
        expired = [
            name
            for name, node in self.nodes.items()
            if node.heartbeat_deadline is not None and now > node.heartbeat_deadline
        ]
        for name in expired:
            self._reevaluate(name, now)
        return expired

    def next_expiry(self) -> datetime.datetime | None:
        """When the earliest heartbeat of an eligible node runs out."""
        deadlines = [n.heartbeat_deadline for n in self.nodes.values() if n.heartbeat_deadline]
        return min(deadlines) if deadlines else None

    def _reevaluate(self, name: str, now: datetime.datetime) -> None:
        stored = self._stored.get(name)
        if stored is not None:
            self.set_node(stored.node, now)

    def _index(self, result: NodeInventory | Ineligible) -> None:
        if isinstance(result, Ineligible):
            self.ineligible[result.node] = result
            return
        name = result.name
        self.nodes[name] = result
        for key, value in result.labels.items():
            self._labels.setdefault(key, {}).setdefault(value, set()).add(name)
        self._taints.setdefault(result.taints, set()).add(name)
        if result.has_gpus and result.vendor:
            self._pools.setdefault((result.vendor, result.shared), set()).add(name)
            if result.product:
                self._products.setdefault(result.product, set()).add(name)

    def _unindex(self, name: str) -> None:
        self.ineligible.pop(name, None)
        old = self.nodes.pop(name, None)
        if old is None:
            return
        for key, value in old.labels.items():
            _discard(self._labels[key], value, name)
            if not self._labels[key]:
                del self._labels[key]
        _discard(self._taints, old.taints, name)
        if old.has_gpus and old.vendor:
            _discard(self._pools, (old.vendor, old.shared), name)
            if old.product:
                _discard(self._products, old.product, name)

    # --- queries (sets of eligible node names) ---

    def all(self) -> set[str]:
        return set(self.nodes)

    def pool(self, vendor: str, shared: bool) -> set[str]:
        """Nodes with allocatable GPUs of this vendor in this sharing mode."""
        return self._pools.get((vendor, shared), set())

    def with_vendor(self, vendor: str) -> set[str]:
        return self.pool(vendor, True) | self.pool(vendor, False)

    def with_product(self, product: str) -> set[str]:
        return self._products.get(product, set())

    def tainted_against(self, tolerations: Sequence[Toleration]) -> set[str]:
        """Nodes with a NoSchedule/NoExecute taint these tolerations do not cover."""
        tainted: set[str] = set()
        for taints, names in self._taints.items():
            if taints and blocking_taint(taints, tolerations) is not None:
                tainted |= names
        return tainted

    def select(self, node_selector: Mapping[str, str], terms: Sequence[Term] | None) -> set[str]:
        """Nodes the scheduler's NodeAffinity filter admits (`selectors.matches` for all nodes)."""
        chosen = self.all()
        for key, value in node_selector.items():
            chosen &= self._labels.get(key, {}).get(value, set())
        if terms is None:
            return chosen
        admitted: set[str] = set()
        for term in terms:
            admitted |= self._term(term)
        return chosen & admitted

    def _term(self, term: Term) -> set[str]:
        if not term.expressions and not term.fields:
            return set()
        chosen = self.all()
        for requirement in term.expressions:
            chosen &= self._requirement(requirement.key, requirement.operator, requirement.values)
        for requirement in term.fields:
            names = set(requirement.values) & chosen
            if requirement.key != "metadata.name" or requirement.operator not in ("In", "NotIn"):
                return set()
            chosen = names if requirement.operator == "In" else chosen - names
        return chosen

    def _requirement(self, key: str, operator: str, values: tuple[str, ...]) -> set[str]:
        by_value = self._labels.get(key, {})
        if operator in ("In", "NotIn"):
            hits = set().union(*(by_value.get(v, set()) for v in values))
            return hits if operator == "In" else self.all() - hits
        if operator in ("Exists", "DoesNotExist"):
            present = set().union(*by_value.values())
            return present if operator == "Exists" else self.all() - present
        if operator in ("Gt", "Lt") and len(values) == 1 and integer(values[0]) is not None:
            bound = integer(values[0])
            assert bound is not None
            hits = set()
            for value, names in by_value.items():
                have = integer(value)
                if have is not None and (have > bound if operator == "Gt" else have < bound):
                    hits |= names
            return hits
        return set()


def _discard(index: dict[Any, set[str]], key: Any, name: str) -> None:
    names = index.get(key)
    if names is not None:
        names.discard(name)
        if not names:
            del index[key]
