"""Property tests of the ledger against an oracle that recounts everything from the raw Pods.

For random fleets, Pods already running and request sequences (with Pods bound, deleted and
finished in between), every decision is checked against the books as the oracle sees them
right before it: the chosen GPUs exist, nobody else holds them whole, their VRAM and the
node's slots, CPU and memory suffice. Every refusal is checked by brute force to be right
(no node fits) and to name its best candidate with numbers. Decisions are deterministic and
the incrementally kept ledger always equals a full rebuild from the Pods.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agentfleet.api.constants import Reason
from agentfleet.placement import (
    Decision,
    Inventory,
    Ledger,
    NodeInventory,
    PlacementRecord,
    Refusal,
    Request,
    format_placement,
    parse_placement,
    place,
)
from agentfleet.placement.ledger import pod_requests
from agentfleet.placement.selectors import Toleration, blocking_taint, matches
from tests.unit.placement.fleet import NOW, node

PRODUCTS = ("GPU-A", "GPU-B")
TAINT = {"key": "dedicated", "value": "ml", "effect": "NoSchedule"}
TOLERATE = (Toleration("dedicated", "Equal", "ml", "NoSchedule"),)


@st.composite
def gpu_nodes(draw: st.DrawFn, name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A Node object (and the node agent's Lease when it reports VRAM in use)."""
    vendor = draw(st.sampled_from(("nvidia", "nvidia", "amd", None)))
    gpus = draw(st.integers(1, 4))
    labels = {"zone": draw(st.sampled_from(("a", "b")))}
    annotations: dict[str, str] = {}
    allocatable = {"cpu": str(draw(st.integers(1, 8))), "memory": f"{draw(st.integers(4, 64))}Gi"}
    lease = None
    if vendor == "nvidia":
        memory = draw(st.sampled_from((8192, 16384, 24000, 81920)))
        replicas = draw(st.sampled_from((1, 1, 2, 4)))
        labels |= {
            "nvidia.com/gpu.product": draw(st.sampled_from(PRODUCTS)),
            "nvidia.com/gpu.count": str(gpus),
            "nvidia.com/gpu.memory": str(memory),
            "nvidia.com/gpu.replicas": str(replicas),
            "nvidia.com/gpu.sharing-strategy": "time-slicing" if replicas > 1 else "none",
        }
        allocatable["nvidia.com/gpu"] = str(gpus * replicas)
        if draw(st.booleans()):  # the node agent reports VRAM in use
            used = draw(st.lists(st.integers(0, memory), min_size=gpus, max_size=gpus))
            annotations["agentfleet.io/gpus"] = json.dumps(
                [{"index": i, "memoryMiB": memory, "usedMiB": u} for i, u in enumerate(used)]
            )
            lease = {
                "metadata": {"labels": {"agentfleet.io/node": name}},
                "spec": {"renewTime": NOW.isoformat(), "leaseDurationSeconds": 40},
            }
    elif vendor == "amd":
        labels |= {"amd.com/gpu.vram": f"{draw(st.sampled_from((64, 192)))}G"}
        allocatable["amd.com/gpu"] = str(gpus)
    obj = node(
        name,
        labels=labels,
        annotations=annotations,
        allocatable=allocatable,
        taints=[TAINT] if draw(st.integers(0, 4)) == 0 else [],
        ready="True" if draw(st.integers(0, 5)) else "False",
    )
    return obj, lease


@st.composite
def requests(draw: st.DrawFn, fleet: list[dict[str, Any]]) -> Request:
    """Mostly requests shaped after a node of the fleet (so that many fit, and many just
    miss), sometimes anything at all."""
    labels = draw(st.sampled_from(fleet))["metadata"]["labels"]
    strategy = labels.get("nvidia.com/gpu.sharing-strategy")
    like_a_node = draw(st.integers(0, 4)) > 0
    return Request(
        agent=draw(st.sampled_from(("t/a", "t/b", "t/c"))),
        gpu_count=draw(st.integers(0, 3) if not like_a_node else st.integers(1, 2)),
        vram_mib=draw(st.none() | st.sampled_from((1024, 4096, 8192, 12000, 20000, 70000))),
        vendor="amd"
        if "amd.com/gpu.vram" in labels and like_a_node
        else draw(st.sampled_from(("nvidia", "nvidia", "amd"))),
        sharing=("shared" if strategy == "time-slicing" else "exclusive")
        if like_a_node
        else draw(st.sampled_from(("exclusive", "shared"))),
        product=draw(st.none() | st.sampled_from(PRODUCTS)),
        cpu_millis=draw(st.sampled_from((0, 250, 1000, 3000))),
        memory_bytes=draw(st.sampled_from((0, 2**30, 8 * 2**30))),
        tolerations=draw(st.sampled_from(((), TOLERATE))),
        node_selector=draw(st.sampled_from(((), (), (("zone", "a"),)))),
    )


def actions(fleet: list[dict[str, Any]]) -> st.SearchStrategy[tuple[str, Any, Any]]:
    return st.one_of(
        st.tuples(st.just("place"), requests(fleet), st.sampled_from(("spread", "binpack"))),
        st.tuples(st.sampled_from(("bind", "delete", "finish")), st.integers(0, 100), st.none()),
    )


# --- the oracle -----------------------------------------------------------------------------


@dataclass
class GPUState:
    exclusive: int = 0
    shared_mib: int = 0
    holders: int = 0


def oracle_books(
    pods: list[dict[str, Any]],
) -> tuple[dict[str, list[int]], dict[tuple[str, int], GPUState]]:
    """Per node [cpu, memory, nvidia slots, amd slots] and per GPU holders, from raw Pods."""
    nodes: dict[str, list[int]] = {}
    gpus: dict[tuple[str, int], GPUState] = {}
    for pod in pods:
        meta, spec = pod["metadata"], pod["spec"]
        if meta.get("deletionTimestamp") or pod["status"]["phase"] in ("Succeeded", "Failed"):
            continue
        text = meta.get("annotations", {}).get("agentfleet.io/placement")
        record = parse_placement(text) if text else None
        where = spec.get("nodeName") or (record.node if record else None)
        if where is None:
            continue
        cpu, memory, devices = pod_requests(spec)
        totals = nodes.setdefault(where, [0, 0, 0, 0])
        totals[0] += cpu
        totals[1] += memory
        totals[2] += devices.get("nvidia.com/gpu", 0)
        totals[3] += devices.get("amd.com/gpu", 0)
        if record is not None:
            for index in record.gpus:
                state = gpus.setdefault((record.node, index), GPUState())
                state.holders += 1
                if record.sharing == "shared":
                    state.shared_mib += record.vram_mib
                else:
                    state.exclusive += 1
    return nodes, gpus


def usable_gpus(
    request: Request, entry: NodeInventory, gpus: dict[tuple[str, int], GPUState]
) -> list[int]:
    """GPU indices of the node this request could take one replica's share of."""
    need = request.vram_mib or 0
    result = []
    for gpu in entry.gpus:
        state = gpus.get((entry.name, gpu.index), GPUState())
        if request.shared:
            used = max(state.shared_mib, gpu.used_mib)
            fits = not state.exclusive and gpu.memory_mib - used >= need
        else:
            fits = state.holders == 0 and gpu.memory_mib - gpu.used_mib >= need
        if fits:
            result.append(gpu.index)
    return result


def node_admits(request: Request, entry: NodeInventory) -> bool:
    """Everything but capacity: taints, selector, vendor, sharing mode, product."""
    if blocking_taint(entry.taints, request.tolerations) is not None:
        return False
    if not matches(entry.name, entry.labels, dict(request.node_selector), request.terms):
        return False
    if request.gpu_count == 0:
        return True
    return (
        entry.has_gpus
        and entry.vendor == request.vendor
        and entry.shared == request.shared
        and (request.product is None or entry.product == request.product)
    )


def capacity_fits(
    request: Request, entry: NodeInventory, totals: list[int], gpu_count: int
) -> bool:
    cpu, memory, nvidia, amd = totals
    slots_used = amd if entry.vendor == "amd" else nvidia
    return (
        entry.cpu_millis - cpu >= request.cpu_millis
        and entry.memory_bytes - memory >= request.memory_bytes
        and (gpu_count == 0 or entry.slots - slots_used >= gpu_count)
    )


def feasible_nodes(request: Request, inventory: Inventory, pods: list[dict[str, Any]]) -> list[str]:
    nodes, gpus = oracle_books(pods)
    return [
        entry.name
        for entry in inventory.nodes.values()
        if node_admits(request, entry)
        and len(usable_gpus(request, entry, gpus)) >= request.gpu_count
        and capacity_fits(request, entry, nodes.get(entry.name, [0, 0, 0, 0]), request.gpu_count)
    ]


def check_decision(
    decision: Decision, request: Request, inventory: Inventory, pods: list[dict[str, Any]]
) -> None:
    entry = inventory.nodes.get(decision.node)
    assert entry is not None, f"{decision.node} is not an eligible node"
    assert node_admits(request, entry)
    nodes, gpus = oracle_books(pods)
    assert len(decision.gpus) == request.gpu_count == len(set(decision.gpus))
    assert set(decision.gpus) <= set(usable_gpus(request, entry, gpus)), (
        decision,
        {i: gpus.get((entry.name, i)) for i in decision.gpus},
        entry.gpus,
    )
    assert capacity_fits(request, entry, nodes.get(entry.name, [0, 0, 0, 0]), request.gpu_count)


def check_refusal(
    refusal: Refusal, request: Request, inventory: Inventory, pods: list[dict[str, Any]]
) -> None:
    assert feasible_nodes(request, inventory, pods) == [], refusal
    assert refusal.reason in (
        Reason.INSUFFICIENT_GPU,
        Reason.INSUFFICIENT_VRAM,
        Reason.INSUFFICIENT_CPU,
        Reason.INSUFFICIENT_MEMORY,
    )
    if refusal.best is None:
        assert re.search(r": (no candidate node|the cluster has no nodes)", refusal.message)
        skipped = sum(n for _, n in refusal.skipped)
        assert skipped == len(inventory.nodes) + len(inventory.ineligible)
    else:
        assert refusal.best in inventory.nodes
        assert node_admits(request, inventory.nodes[refusal.best])
        assert re.search(rf"best is {re.escape(refusal.best)} \([^)]*\d[^)]*\)", refusal.message)


def pod_for(name: str, request: Request, decision: Decision) -> dict[str, Any]:
    resource = "amd.com/gpu" if request.vendor == "amd" else "nvidia.com/gpu"
    wanted = {"cpu": f"{request.cpu_millis}m", "memory": str(request.memory_bytes)}
    if request.gpu_count:
        wanted[resource] = str(request.gpu_count)
    return {
        "metadata": {
            "name": name,
            "namespace": "t",
            "annotations": {"agentfleet.io/placement": decision.annotation()},
        },
        "spec": {"containers": [{"name": "agent", "resources": {"requests": wanted}}]},
        "status": {"phase": "Pending"},
    }


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_placing_replica_after_replica_never_over_commits(data: st.DataObject) -> None:
    drawn = [data.draw(gpu_nodes(f"n{i}")) for i in range(data.draw(st.integers(1, 5)))]
    node_objects = [obj for obj, _ in drawn]
    leases = [lease for _, lease in drawn if lease]
    inventory = Inventory.of(node_objects, NOW, leases)
    ledger = Ledger()
    pods: dict[str, dict[str, Any]] = {}

    for step, (action, what, policy) in enumerate(
        data.draw(st.lists(actions(node_objects), max_size=25))
    ):
        if action != "place":
            if not pods:
                continue
            key = sorted(pods)[what % len(pods)]
            pod = pods[key]
            if pod["status"]["phase"] != "Pending" and action != "delete":
                continue  # the kubelet never revives a finished Pod
            if action == "bind":
                pod["spec"]["nodeName"] = parse_placement(
                    pod["metadata"]["annotations"]["agentfleet.io/placement"]
                ).node
                pod["status"]["phase"] = "Running"
                ledger.upsert(pod)
            elif action == "finish":
                pod["status"]["phase"] = "Succeeded"
                ledger.upsert(pod)
            else:
                del pods[key]
                ledger.remove(key)
            continue
        request = what
        answer = place(request, inventory, ledger, policy)
        assert place(request, inventory, ledger, policy) == answer  # deterministic
        if isinstance(answer, Refusal):
            event(f"refused: {answer.reason}{'' if answer.best else ' (no candidate)'}")
            check_refusal(answer, request, inventory, list(pods.values()))
            continue
        event(f"placed {request.sharing} x{request.gpu_count} {policy}")
        check_decision(answer, request, inventory, list(pods.values()))
        pod = pod_for(f"p{step}", request, answer)
        ledger.assume(pod, answer.record)
        pods[f"t/p{step}"] = pod

    # The books kept one event at a time equal a rebuild from the Pods, in any order.
    shuffled = list(pods.values())
    random.Random(len(shuffled)).shuffle(shuffled)
    assert ledger == Ledger.from_pods(shuffled)
    # No GPU is held whole by two, or whole and shared, or shared beyond its memory.
    _, gpus = oracle_books(list(pods.values()))
    for (name, index), state in gpus.items():
        gpu = inventory.nodes[name].gpus[index]
        assert state.exclusive <= 1 and not (state.exclusive and state.shared_mib)
        assert state.shared_mib <= gpu.memory_mib


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_spread_and_binpack_pick_the_best_gpu_for_one_shared_replica(
    data: st.DataObject,
) -> None:
    """Among all GPUs one shared replica fits on, spread takes the least loaded after the
    placement and binpack the fullest (the node and index only break ties)."""
    memories = data.draw(st.lists(st.sampled_from((16384, 24000)), min_size=1, max_size=4))
    node_objects = [
        node(
            f"n{i}",
            labels={
                "nvidia.com/gpu.count": "2",
                "nvidia.com/gpu.memory": str(memory),
                "nvidia.com/gpu.sharing-strategy": "time-slicing",
                "nvidia.com/gpu.replicas": "8",
            },
            allocatable={"nvidia.com/gpu": "16"},
        )
        for i, memory in enumerate(memories)
    ]
    inventory = Inventory.of(node_objects, NOW)
    existing = []
    for i, entry in enumerate(inventory.nodes.values()):
        for index in range(2):
            vram = data.draw(st.sampled_from((0, 2048, 6000, 12000)))
            if vram:
                record = PlacementRecord(entry.name, (index,), vram, f"t/e{i}{index}", "shared")
                existing.append(
                    {
                        "metadata": {
                            "name": f"e{i}{index}",
                            "namespace": "t",
                            "annotations": {"agentfleet.io/placement": format_placement(record)},
                        },
                        "spec": {"nodeName": entry.name, "containers": []},
                        "status": {"phase": "Running"},
                    }
                )
    ledger = Ledger.from_pods(existing)
    need = data.draw(st.sampled_from((1024, 4096, 10000)))
    request = Request(agent="t/x", gpu_count=1, vram_mib=need, sharing="shared")
    _, gpus = oracle_books(existing)
    options = {
        (entry.name, index): (gpus.get((entry.name, index), GPUState()).shared_mib + need)
        / entry.gpus[index].memory_mib
        for entry in inventory.nodes.values()
        for index in usable_gpus(request, entry, gpus)
    }
    for policy in ("spread", "binpack"):
        answer = place(request, inventory, ledger, policy)  # type: ignore[arg-type]
        if not options:
            assert isinstance(answer, Refusal)
            continue
        assert isinstance(answer, Decision)
        load = options[(answer.node, answer.gpus[0])]
        best = min(options.values()) if policy == "spread" else max(options.values())
        assert abs(load - best) < 1e-12, (policy, answer, options)
