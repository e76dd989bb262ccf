"""Decisions on the simulated e2e nodes and on small hand-made fleets."""

from __future__ import annotations

import datetime
import re

import pytest

from agentfleet.api.constants import Reason
from agentfleet.api.models import GPU
from agentfleet.placement import (
    Decision,
    Inventory,
    Ledger,
    Refusal,
    Request,
    pin_to_node,
    place,
    request_for_pod,
)
from agentfleet.placement.selectors import Requirement, Term, Toleration
from tests.unit.placement.fleet import (
    NOW,
    e2e_inventory,
    e2e_nodes,
    node,
    nvidia_node,
    replica_pod,
)

GI = 1024  # MiB


def decide(
    request: Request, inventory: Inventory, ledger: Ledger, policy: str = "spread"
) -> Decision:
    answer = place(request, inventory, ledger, "binpack" if policy == "binpack" else "spread")
    assert isinstance(answer, Decision), answer
    return answer


def refuse(request: Request, inventory: Inventory, ledger: Ledger) -> Refusal:
    answer = place(request, inventory, ledger)
    assert isinstance(answer, Refusal), answer
    return answer


def book(ledger: Ledger, name: str, request: Request, decision: Decision) -> None:
    ledger.assume(replica_pod(name, request), decision.record)


# --- the examples on the simulated nodes ----------------------------------------------


def test_forty_agents_of_16gi_shared_exactly_one_fits_on_the_l4() -> None:
    inventory, ledger = e2e_inventory(), Ledger()
    answers = []
    for i in range(40):
        request = Request(
            agent=f"docs/agent-{i}",
            gpu_count=1,
            vram_mib=16 * GI,
            sharing="shared",
            cpu_millis=500,
            memory_bytes=2**30,
        )
        answer = place(request, inventory, ledger)
        if isinstance(answer, Decision):
            book(ledger, f"agent-{i}-0", request, answer)
        answers.append(answer)
    decisions = [a for a in answers if isinstance(a, Decision)]
    assert [(d.node, d.gpus, d.agent) for d in decisions] == [
        ("gpu-l4-timeslice-1", (0,), "docs/agent-0")
    ]
    refusals = [a for a in answers if isinstance(a, Refusal)]
    assert len(refusals) == 39
    assert {r.reason for r in refusals} == {Reason.INSUFFICIENT_VRAM}
    assert refusals[0].message == (
        "no node has 16Gi free VRAM on one shared GPU: best is gpu-l4-timeslice-1"
        " (6.4Gi free of 22.5Gi, 1 agent); 6 nodes skipped: 4 no nvidia GPU,"
        " 2 exclusive GPUs only"
    )
    assert refusals[0].best == "gpu-l4-timeslice-1"


def test_1000gi_is_refused_naming_the_best_node() -> None:
    refusal = refuse(
        Request(agent="a/huge", gpu_count=1, vram_mib=1000 * GI), e2e_inventory(), Ledger()
    )
    assert refusal.reason == Reason.INSUFFICIENT_VRAM
    assert refusal.best == "gpu-a100-1"  # 81920 MiB beats the H100's 81559
    assert refusal.message.startswith(
        "no node has 1000Gi free VRAM on one GPU: best is gpu-a100-1 (80Gi free of 80Gi, 0 agents)"
    )


def test_amd_request_lands_on_the_mi300x() -> None:
    decision = decide(
        Request(agent="a/rocm", gpu_count=2, vram_mib=128 * GI, vendor="amd"),
        e2e_inventory(),
        Ledger(),
    )
    assert (decision.node, decision.gpus, decision.sharing) == ("gpu-mi300x-1", (0, 1), "exclusive")


def test_named_product_only_lands_on_that_product() -> None:
    request = Request(agent="a/h", gpu_count=1, product="NVIDIA-H100-80GB-HBM3")
    assert decide(request, e2e_inventory(), Ledger()).node == "gpu-h100-1"
    missing = refuse(
        Request(agent="a/b", gpu_count=1, product="NVIDIA-B200"), e2e_inventory(), Ledger()
    )
    assert missing.best is None and missing.reason == Reason.INSUFFICIENT_GPU
    assert "no candidate" in missing.message and "2 other GPU product" in missing.message


def test_whole_gpus_run_out_with_insufficient_gpu() -> None:
    inventory, ledger = e2e_inventory(), Ledger()
    request = Request(agent="a/eight", gpu_count=8)
    for i in range(2):  # the A100 and the H100
        book(ledger, f"eight-{i}", request, decide(request, inventory, ledger))
    refusal = refuse(Request(agent="a/one", gpu_count=1), inventory, ledger)
    assert refusal.reason == Reason.INSUFFICIENT_GPU
    assert "best is gpu-a100-1 (0 of 8 GPUs free, 1 agent)" in refusal.message


def test_time_slicing_slots_run_out_before_vram() -> None:
    inventory, ledger = e2e_inventory(), Ledger()
    small = Request(agent="a/s", gpu_count=1, vram_mib=1 * GI, sharing="shared")
    for i in range(4):
        book(ledger, f"s-{i}", small, decide(small, inventory, ledger))
    refusal = refuse(small, inventory, ledger)
    assert refusal.reason == Reason.INSUFFICIENT_GPU
    assert "best is gpu-l4-timeslice-1 (0 free slots on 1 GPU, 1 agent)" in refusal.message


# --- policies -------------------------------------------------------------------------------


def two_shared_nodes() -> Inventory:
    return Inventory.of(
        [
            nvidia_node("n1", gpus=2, memory_mib=24 * GI, replicas=8),
            nvidia_node("n2", gpus=2, memory_mib=24 * GI, replicas=8),
        ],
        NOW,
    )


def test_spread_takes_the_least_loaded_gpu_binpack_the_fullest() -> None:
    inventory = two_shared_nodes()
    request = Request(agent="a/x", gpu_count=1, vram_mib=4 * GI, sharing="shared")
    spread, binpack = Ledger(), Ledger()
    spread_gpus = []
    binpack_gpus = []
    for i in range(4):
        chosen = decide(request, inventory, spread)
        book(spread, f"p{i}", request, chosen)
        spread_gpus.append((chosen.node, chosen.gpus))
        packed = decide(request, inventory, binpack, "binpack")
        book(binpack, f"p{i}", request, packed)
        binpack_gpus.append((packed.node, packed.gpus))
    # spread: every GPU once before any gets a second agent; ties by node name, then index
    assert spread_gpus == [("n1", (0,)), ("n2", (0,)), ("n1", (1,)), ("n2", (1,))]
    # binpack: the first GPU fills up (24Gi = 6 x 4Gi) before the next is touched
    assert binpack_gpus == [("n1", (0,))] * 4


def test_spread_of_whole_gpus_balances_nodes() -> None:
    inventory = Inventory.of([nvidia_node("n1", gpus=4), nvidia_node("n2", gpus=4)], NOW)
    request = Request(agent="a/x", gpu_count=1)
    ledger = Ledger()
    nodes = []
    for i in range(4):
        chosen = decide(request, inventory, ledger)
        book(ledger, f"p{i}", request, chosen)
        nodes.append(chosen.node)
    assert nodes == ["n1", "n2", "n1", "n2"]
    packed = Ledger()
    for i in range(4):
        chosen = decide(request, inventory, packed, "binpack")
        book(packed, f"p{i}", request, chosen)
        nodes.append(chosen.node)
    assert nodes[4:] == ["n1"] * 4


def test_memory_used_outside_the_scheduler_is_never_handed_out() -> None:
    busy = nvidia_node("busy", gpus=1, memory_mib=24 * GI, replicas=4, used_mib=[20 * GI])
    lease = {
        "metadata": {"labels": {"agentfleet.io/node": "busy"}},
        "spec": {"renewTime": NOW.isoformat(), "leaseDurationSeconds": 40},
    }
    inventory = Inventory.of([busy], NOW, [lease])
    refusal = refuse(
        Request(agent="a/x", gpu_count=1, vram_mib=8 * GI, sharing="shared"), inventory, Ledger()
    )
    assert refusal.reason == Reason.INSUFFICIENT_VRAM
    assert "(4Gi free of 24Gi, 0 agents)" in refusal.message


def test_same_books_give_the_same_decision_whatever_the_order() -> None:
    nodes = e2e_nodes()
    request = Request(agent="a/x", gpu_count=1, vram_mib=40 * GI)
    first = decide(request, Inventory.of(nodes, NOW), Ledger())
    again = decide(request, Inventory.of(list(reversed(nodes)), NOW), Ledger())
    assert first == again


# --- nodes left out and why ------------------------------------------------------------------


def test_refusal_counts_not_ready_and_tainted_nodes() -> None:
    inventory = Inventory.of(
        [
            nvidia_node("gpu-a100-1", gpus=1),
            nvidia_node("gpu-down", ready="False"),
            nvidia_node(
                "gpu-tainted", taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}]
            ),
        ],
        NOW,
    )
    ledger = Ledger()
    first = Request(agent="a/one", gpu_count=1, vram_mib=64 * GI)
    book(ledger, "one", first, decide(first, inventory, ledger))
    refusal = refuse(Request(agent="a/two", gpu_count=1, vram_mib=24 * GI), inventory, ledger)
    assert refusal.message == (
        "no node has 24Gi free VRAM on one GPU: best is gpu-a100-1 (0 of 1 GPU free, 1 agent);"
        " 2 nodes skipped: 1 NotReady, 1 tainted"
    )
    tolerant = Request(
        agent="a/two",
        gpu_count=1,
        vram_mib=24 * GI,
        tolerations=(Toleration("dedicated", "Equal", "ml", "NoSchedule"),),
    )
    assert decide(tolerant, inventory, ledger).node == "gpu-tainted"


def test_node_selector_and_affinity_narrow_the_candidates() -> None:
    inventory = e2e_inventory()
    in_zone_b = Request(
        agent="a/x", gpu_count=1, node_selector=(("topology.kubernetes.io/zone", "us-east-1b"),)
    )
    assert decide(in_zone_b, inventory, Ledger()).node == "gpu-h100-1"
    big_memory = Request(
        agent="a/x",
        gpu_count=1,
        terms=(Term((Requirement("nvidia.com/gpu.memory", "Gt", ("81600",)),)),),
    )
    assert decide(big_memory, inventory, Ledger()).node == "gpu-a100-1"
    nowhere = Request(agent="a/x", gpu_count=1, node_selector=(("zone", "mars"),))
    refusal = refuse(nowhere, inventory, Ledger())
    assert "7 not selected by nodeSelector/affinity" in refusal.message


def test_cpu_and_memory_are_checked_against_allocatable_minus_requests() -> None:
    inventory = Inventory.of([nvidia_node("n1", gpus=8, allocatable={"cpu": "4"})], NOW)
    ledger = Ledger()
    request = Request(agent="a/x", gpu_count=1, cpu_millis=1500, memory_bytes=20 * 2**30)
    for i in range(2):
        book(ledger, f"p{i}", request, decide(request, inventory, ledger))
    cpu = refuse(request, inventory, ledger)
    assert cpu.reason == Reason.INSUFFICIENT_CPU
    assert "best is n1 (1 CPU free, 1 agent)" in cpu.message
    memory = refuse(
        Request(agent="a/y", gpu_count=1, cpu_millis=100, memory_bytes=30 * 2**30),
        inventory,
        ledger,
    )
    assert memory.reason == Reason.INSUFFICIENT_MEMORY
    assert "best is n1 (24Gi memory free, 1 agent)" in memory.message


def test_furthest_node_decides_the_reason() -> None:
    inventory = Inventory.of(
        [nvidia_node("full", gpus=1), nvidia_node("small-cpu", gpus=1, allocatable={"cpu": "1"})],
        NOW,
    )
    ledger = Ledger()
    first = Request(agent="a/one", gpu_count=1, cpu_millis=100)
    book(
        ledger,
        "one",
        first,
        decide(
            Request(
                agent="a/one", gpu_count=1, node_selector=(("kubernetes.io/hostname", "full"),)
            ),
            inventory,
            ledger,
        ),
    )
    refusal = refuse(Request(agent="a/two", gpu_count=1, cpu_millis=2000), inventory, ledger)
    # "full" fails on GPUs, "small-cpu" got further and fails on CPU: CPU is what to fix
    assert (refusal.reason, refusal.best) == (Reason.INSUFFICIENT_CPU, "small-cpu")


def test_empty_cluster() -> None:
    refusal = refuse(Request(agent="a/x", gpu_count=1), Inventory(), Ledger())
    assert refusal.message == "no node has 1 free GPU: the cluster has no nodes"


def test_every_refusal_message_has_numbers() -> None:
    inventory = e2e_inventory()
    for request in (
        Request(agent="a/x", gpu_count=3, vram_mib=100 * GI),
        Request(agent="a/x", gpu_count=9),
        Request(agent="a/x", gpu_count=2, sharing="shared"),
        Request(agent="a/x", cpu_millis=500_000),
    ):
        refusal = refuse(request, inventory, Ledger())
        assert refusal.best is not None and refusal.best in refusal.message
        assert re.search(r"best is \S+ \(.*\d.*\)", refusal.message), refusal.message


# --- from a Pod and its AIAgent ----------------------------------------------------------------


def test_request_for_a_gated_pod() -> None:
    gpu = GPU.model_validate({"count": 1, "vram": "24Gi", "sharing": "shared"})
    pod = {
        "spec": {
            "containers": [{"resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}],
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "zone", "operator": "In", "values": ["a"]}
                                ]
                            }
                        ]
                    }
                }
            },
        }
    }
    request = request_for_pod(pod, gpu, "team-a/coder")
    assert request == Request(
        agent="team-a/coder",
        gpu_count=1,
        vram_mib=24576,
        vendor="nvidia",
        sharing="shared",
        cpu_millis=2000,
        memory_bytes=4 * 2**30,
        tolerations=(Toleration("nvidia.com/gpu", "Exists"),),
        node_selector=(("kubernetes.io/os", "linux"),),
        terms=(Term((Requirement("zone", "In", ("a",)),)),),
    )
    assert request_for_pod({"spec": {}}, None, "a/b").gpu_count == 0


def test_pin_to_node_ands_the_node_into_every_term() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]},
                ]
            }
        },
        "podAntiAffinity": {"x": 1},
    }
    pinned = pin_to_node(affinity, "gpu-a100-1")
    terms = pinned["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    pin = {"key": "metadata.name", "operator": "In", "values": ["gpu-a100-1"]}
    assert [t["matchFields"] for t in terms] == [[pin], [pin]]
    assert (
        terms[0]["matchExpressions"]
        == affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ][0]["matchExpressions"]
    )
    assert pinned["podAntiAffinity"] == {"x": 1}
    assert pin_to_node(None, "n")["nodeAffinity"] == {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}
            ]
        }
    }
    assert (
        "matchFields"
        not in affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
            "nodeSelectorTerms"
        ][0]
    )


@pytest.mark.parametrize("policy", ["spread", "binpack"])
def test_stale_heartbeat_nodes_are_skipped(policy: str) -> None:
    agent_node = nvidia_node("agent", gpus=1, used_mib=[0])
    lease = {
        "metadata": {"labels": {"agentfleet.io/node": "agent"}},
        "spec": {
            "renewTime": (NOW - datetime.timedelta(minutes=5)).isoformat(),
            "leaseDurationSeconds": 40,
        },
    }
    inventory = Inventory.of([agent_node, node("cpu")], NOW, [lease])
    answer = place(
        Request(agent="a/x", gpu_count=1),
        inventory,
        Ledger(),
        "binpack" if policy == "binpack" else "spread",
    )
    assert isinstance(answer, Refusal)
    assert "2 nodes skipped: 1 no nvidia GPU, 1 stale heartbeat" in answer.message


def test_gpus_still_shared_after_time_slicing_is_turned_off_are_not_handed_out_whole() -> None:
    sliced = nvidia_node("n1", gpus=2, memory_mib=24 * GI, replicas=4)
    inventory, ledger = Inventory.of([sliced], NOW), Ledger()
    shared = Request(agent="a/s", gpu_count=1, vram_mib=4 * GI, sharing="shared")
    book(ledger, "s0", shared, decide(shared, inventory, ledger))
    inventory.set_node(nvidia_node("n1", gpus=2, memory_mib=24 * GI), NOW)  # relabelled
    whole = Request(agent="a/w", gpu_count=1)
    assert decide(whole, inventory, ledger).gpus == (1,)
    book(ledger, "w0", whole, decide(whole, inventory, ledger))
    refusal = refuse(whole, inventory, ledger)
    assert (
        refusal.reason == Reason.INSUFFICIENT_GPU
        and "0 of 2 GPUs free, 2 agents" in refusal.message
    )
