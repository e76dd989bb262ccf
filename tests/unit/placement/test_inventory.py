from __future__ import annotations

import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfleet.placement import GPUDevice, Ineligible, Inventory, NodeInventory, node_from_object
from agentfleet.placement import inventory as inv
from agentfleet.placement.inventory import heartbeat_of
from agentfleet.placement.selectors import Requirement, Term, matches
from tests.unit.placement.fleet import NOW, e2e_node, e2e_nodes, lease, node, nvidia_node


def read(obj: dict[str, Any], **kwargs: Any) -> NodeInventory:
    result = node_from_object(obj, NOW, **kwargs)
    assert isinstance(result, NodeInventory), result
    return result


def refused(obj: dict[str, Any], **kwargs: Any) -> Ineligible:
    result = node_from_object(obj, NOW, **kwargs)
    assert isinstance(result, Ineligible), result
    return result


# --- the simulated e2e nodes -------------------------------------------------------------------


def test_a100_node_from_gpu_feature_discovery_labels() -> None:
    a100 = read(e2e_node("gpu-a100-1"))
    assert a100.vendor == "nvidia"
    assert a100.product == "NVIDIA-A100-SXM4-80GB"
    assert a100.gpus == tuple(GPUDevice(i, 81920) for i in range(8))
    assert (a100.sharing, a100.shared, a100.slots) == ("none", False, 8)
    assert (a100.cpu_millis, a100.memory_bytes) == (96_000, 1152 * 2**30)


def test_time_sliced_l4_is_one_physical_gpu_with_four_slots() -> None:
    l4 = read(e2e_node("gpu-l4-timeslice-1"))
    assert l4.gpus == (GPUDevice(0, 23034),)
    assert (l4.sharing, l4.shared, l4.slots) == ("time-slicing", True, 4)
    assert l4.product == "NVIDIA-L4-SHARED"


def test_mi300x_node_from_the_amd_labeller() -> None:
    mi300x = read(e2e_node("gpu-mi300x-1"))
    assert mi300x.vendor == "amd"
    assert mi300x.resource == "amd.com/gpu"
    assert mi300x.product == "AMD_Instinct_MI300X_OAM"
    assert mi300x.gpus == tuple(GPUDevice(i, 192 * 1024) for i in range(8))


def test_cpu_nodes_have_no_gpus() -> None:
    cpu = read(e2e_node("cpu-1"))
    assert (cpu.vendor, cpu.gpus, cpu.slots, cpu.has_gpus) == (None, (), 0, False)
    assert cpu.cpu_millis == 16_000


def test_inventory_of_the_e2e_fleet_pools_nodes_by_vendor_and_sharing() -> None:
    fleet = Inventory.of(e2e_nodes(), NOW)
    assert len(fleet.nodes) == 7 and not fleet.ineligible
    assert fleet.pool("nvidia", False) == {"gpu-a100-1", "gpu-h100-1"}
    assert fleet.pool("nvidia", True) == {"gpu-l4-timeslice-1"}
    assert fleet.pool("amd", False) == {"gpu-mi300x-1"}
    assert fleet.with_product("NVIDIA-H100-80GB-HBM3") == {"gpu-h100-1"}


# --- other label shapes ----------------------------------------------------------------------


def test_amd_mixed_node_reads_per_size_counts() -> None:
    mixed = node(
        "amd-mixed",
        labels={"amd.com/gpu.vram.64G": "2", "amd.com/gpu.vram.192G": "4"},
        allocatable={"amd.com/gpu": "6"},
    )
    gpus = read(mixed).gpus
    assert [g.memory_mib for g in gpus] == [65536] * 2 + [196608] * 4
    assert [g.index for g in gpus] == list(range(6))


def test_amd_beta_prefix_alone_is_read() -> None:
    legacy = node(
        "amd-legacy", labels={"beta.amd.com/gpu.vram.32G": "2"}, allocatable={"amd.com/gpu": "2"}
    )
    assert read(legacy).gpus == (GPUDevice(0, 32768), GPUDevice(1, 32768))


def test_node_agent_alone_describes_gpus_and_reports_use() -> None:
    agent_only = node(
        "agent-only",
        labels={"agentfleet.io/gpu.count": "2"},
        annotations={
            "agentfleet.io/gpus": json.dumps(
                [
                    {"index": 1, "name": "NVIDIA L4", "memoryMiB": 23034, "usedMiB": 100},
                    {"index": 0, "name": "NVIDIA L4", "memoryMiB": 23034, "usedMiB": 0},
                ]
            )
        },
        allocatable={"nvidia.com/gpu": "2"},
    )
    result = read(agent_only, heartbeat=NOW, lease_seconds=40)
    assert result.gpus == (GPUDevice(0, 23034, 0), GPUDevice(1, 23034, 100))
    assert result.heartbeat_deadline == NOW + datetime.timedelta(seconds=40)


def test_node_agent_use_overlays_gpu_feature_discovery() -> None:
    labelled = nvidia_node("a", gpus=2, memory_mib=81920, used_mib=[0, 4096])
    result = read(labelled, heartbeat=NOW)
    assert result.gpus == (GPUDevice(0, 81920, 0), GPUDevice(1, 81920, 4096))


def test_older_gfd_without_strategy_label_is_time_slicing_when_replicated() -> None:
    labels = {"nvidia.com/gpu.memory": "16384", "nvidia.com/gpu.replicas": "2"}
    old = node("old", labels=labels, allocatable={"nvidia.com/gpu": "4"})
    result = read(old)
    assert (result.sharing, len(result.gpus), result.slots) == ("time-slicing", 2, 4)


@pytest.mark.parametrize(
    ("labels", "allocatable", "annotations", "reason"),
    [
        ({"nvidia.com/gpu.memory": "80GB"}, {"nvidia.com/gpu": "1"}, {}, "nvidia.com/gpu.memory"),
        ({"nvidia.com/gpu.memory": "1_000"}, {"nvidia.com/gpu": "1"}, {}, "nvidia.com/gpu.memory"),
        ({"nvidia.com/gpu.count": "-1"}, {"nvidia.com/gpu": "1"}, {}, "nvidia.com/gpu.count"),
        (
            {"nvidia.com/gpu.count": "1", "nvidia.com/gpu.sharing-strategy": "magic"},
            {"nvidia.com/gpu": "1"},
            {},
            "sharing-strategy",
        ),
        ({"amd.com/gpu.vram": "192GB"}, {"amd.com/gpu": "8"}, {}, "amd.com/gpu.vram"),
        ({"amd.com/gpu.vram.64G": "two"}, {"amd.com/gpu": "2"}, {}, "not a count"),
        (
            {"amd.com/gpu.vram": "192G", "amd.com/gpu.vram.64G": "8"},
            {"amd.com/gpu": "8"},
            {},
            "disagrees",
        ),
        ({}, {"nvidia.com/gpu": "lots"}, {}, "allocatable"),
        ({}, {"nvidia.com/gpu": "1", "amd.com/gpu": "1"}, {}, "both"),
        ({}, {}, {"agentfleet.io/gpus": "{not json"}, "agentfleet.io/gpus"),
        ({}, {}, {"agentfleet.io/gpus": '[{"index": 3, "memoryMiB": 1}]'}, "indices"),
        (
            {"nvidia.com/gpu.count": "8", "nvidia.com/gpu.memory": "81920"},
            {"nvidia.com/gpu": "8"},
            {"agentfleet.io/gpus": '[{"index": 0, "memoryMiB": 81920}]'},
            "reports 1 GPUs",
        ),
    ],
)
def test_unreadable_label_makes_node_ineligible_with_a_reason(
    labels: dict[str, str], allocatable: dict[str, str], annotations: dict[str, str], reason: str
) -> None:
    bad = node("bad", labels=labels, allocatable=allocatable, annotations=annotations)
    result = refused(bad, heartbeat=NOW)
    assert result.reason == inv.UNREADABLE
    assert reason in result.detail
    assert result.inventory is None


# --- eligibility -----------------------------------------------------------------------------


def test_not_ready_node_is_skipped_but_its_gpus_are_still_read() -> None:
    result = refused(nvidia_node("down", ready="Unknown"))
    assert result.reason == inv.NOT_READY
    assert "Ready=Unknown" in result.detail
    assert result.inventory is not None and len(result.inventory.gpus) == 8


def test_node_without_ready_condition_is_not_ready() -> None:
    bare = nvidia_node("new")
    bare["status"]["conditions"] = []
    assert refused(bare).reason == inv.NOT_READY


def test_cordoned_node_is_skipped() -> None:
    assert refused(nvidia_node("cordoned", unschedulable=True)).reason == inv.UNSCHEDULABLE


def test_expired_node_agent_lease_is_a_stale_heartbeat() -> None:
    agent = nvidia_node("a", gpus=1, used_mib=[0])
    long_ago = NOW - datetime.timedelta(seconds=100)
    result = refused(agent, heartbeat=long_ago, lease_seconds=40)
    assert result.reason == inv.STALE
    assert "expired 60s ago" in result.detail
    assert isinstance(
        node_from_object(agent, NOW, NOW - datetime.timedelta(seconds=39), 40), NodeInventory
    )


def test_node_agent_labels_without_a_lease_are_stale() -> None:
    assert refused(nvidia_node("a", gpus=1, used_mib=[0])).reason == inv.STALE


def test_node_without_node_agent_needs_no_lease() -> None:
    assert read(nvidia_node("plain")).heartbeat_deadline is None


def test_heartbeat_of_a_lease() -> None:
    lease = {"spec": {"renewTime": "2026-11-30T11:59:30.123456Z", "leaseDurationSeconds": 20}}
    renew, seconds = heartbeat_of(lease)
    assert renew == datetime.datetime(2026, 11, 30, 11, 59, 30, 123456, tzinfo=datetime.UTC)
    assert seconds == 20
    assert heartbeat_of({"spec": {}}) == (None, inv.DEFAULT_LEASE_SECONDS)


def test_inventory_follows_leases_and_expires_on_refresh() -> None:
    fleet = Inventory()
    agent = nvidia_node("a", gpus=1, used_mib=[0])
    assert isinstance(fleet.set_node(agent, NOW), Ineligible)  # no Lease seen yet
    fleet.set_lease(lease("a"), NOW)
    assert "a" in fleet.nodes
    assert fleet.next_expiry() == NOW + datetime.timedelta(seconds=40)
    assert fleet.refresh(NOW + datetime.timedelta(seconds=30)) == []
    assert fleet.refresh(NOW + datetime.timedelta(seconds=41)) == ["a"]
    assert fleet.ineligible["a"].reason == inv.STALE
    assert fleet.pool("nvidia", False) == set()


def forged(heartbeat: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of a valid heartbeat Lease with metadata or holder changed."""
    meta = {**heartbeat["metadata"], **{k: v for k, v in changes.items() if k != "holder"}}
    spec = {**heartbeat["spec"], "holderIdentity": changes.get("holder", "x")}
    return {"metadata": meta, "spec": spec if "holder" in changes else heartbeat["spec"]}


@pytest.mark.parametrize(
    "lease_of_a",
    [
        pytest.param(forged(lease("a"), namespace="team-x"), id="another namespace"),
        pytest.param(forged(lease("a"), name="my-lease"), id="not named for the node"),
        pytest.param(forged(lease("a"), name="agentfleet-node-b"), id="named for another node"),
        pytest.param(forged(lease("a"), holder="someone"), id="held by someone else"),
    ],
)
def test_only_the_node_agents_own_lease_is_a_heartbeat(lease_of_a: dict[str, Any]) -> None:
    """A Lease labelled for node `a` anywhere else, or not named and held for it, makes `a`
    neither fresh nor stale."""
    fleet = Inventory.of([nvidia_node("a", gpus=1, used_mib=[0])], NOW, [lease_of_a])
    assert fleet.ineligible["a"].detail == "node agent labels but no node agent Lease"
    fleet.set_lease(lease("a"), NOW)
    assert "a" in fleet.nodes
    old = lease("a", NOW - datetime.timedelta(minutes=5))
    fleet.set_lease({**lease_of_a, "spec": {**lease_of_a["spec"], **old["spec"]}}, NOW)
    assert "a" in fleet.nodes or lease_of_a["metadata"]["name"] == "agentfleet-node-a", (
        "a forged Lease made the node stale"
    )
    assert inv.lease_node(lease_of_a, inv.k.LEASE_NAMESPACE) is None


def test_a_lease_that_stops_being_valid_stops_vouching() -> None:
    fleet = Inventory.of([nvidia_node("a", gpus=1, used_mib=[0])], NOW, [lease("a")])
    assert "a" in fleet.nodes
    fleet.set_lease(forged(lease("a"), holder="someone"), NOW)
    assert fleet.ineligible["a"].reason == inv.STALE
    fleet.set_lease(lease("a"), NOW)
    fleet.remove_lease(lease("a"), NOW)
    assert fleet.ineligible["a"].reason == inv.STALE


def test_leases_count_in_the_namespace_the_inventory_is_told() -> None:
    elsewhere = lease("a", namespace="gpu-agents")
    fleet = Inventory.of([nvidia_node("a", gpus=1, used_mib=[0])], NOW, [elsewhere])
    assert "a" not in fleet.nodes
    fleet = Inventory.of(
        [nvidia_node("a", gpus=1, used_mib=[0])], NOW, [elsewhere], lease_namespace="gpu-agents"
    )
    assert "a" in fleet.nodes


# --- nodes are input: a ceiling on GPUs per node ----------------------------------------------


@pytest.mark.parametrize(
    ("labels", "allocatable", "annotations", "named"),
    [
        ({"nvidia.com/gpu.count": "10000000"}, {"nvidia.com/gpu": "8"}, {}, "gpu.count"),
        ({"nvidia.com/gpu.memory": "81920"}, {"nvidia.com/gpu": "10000000"}, {}, "allocatable"),
        (
            {"nvidia.com/gpu.replicas": "1"},
            {"nvidia.com/gpu": "9223372036854775807"},
            {},
            "allocatable",
        ),
        ({"amd.com/gpu.vram": "192G"}, {"amd.com/gpu": "10000000"}, {}, "allocatable"),
        ({"amd.com/gpu.vram.192G": "10000000"}, {"amd.com/gpu": "8"}, {}, "counts"),
        (
            {},
            {"nvidia.com/gpu": "8"},
            {"agentfleet.io/gpus": json.dumps([{"index": i, "memoryMiB": 1} for i in range(65)])},
            "agentfleet.io/gpus",
        ),
    ],
)
def test_a_node_claiming_more_gpus_than_the_ceiling_is_ineligible_and_cheap(
    labels: dict[str, str],
    allocatable: dict[str, str],
    annotations: dict[str, str],
    named: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built: list[int] = []

    def counted(*args: Any) -> GPUDevice:
        built.append(1)
        return GPUDevice(*args)

    monkeypatch.setattr(inv, "GPUDevice", counted)
    obj = node("huge", labels=labels, allocatable=allocatable, annotations=annotations)
    result = refused(obj, heartbeat=NOW, lease_seconds=40)
    assert len(built) <= 65, "built one object per claimed GPU"
    assert result.reason == inv.TOO_MANY_GPUS and named in result.detail, result
    assert "more than the 64 a node may have" in result.detail
    fleet = Inventory.of([obj], NOW, [lease("huge")])
    assert fleet.ineligible["huge"].reason == inv.TOO_MANY_GPUS


def test_the_ceiling_is_configurable() -> None:
    eight = nvidia_node("eight", gpus=8)
    assert refused(eight, max_gpus=4).reason == inv.TOO_MANY_GPUS
    assert len(read(eight, max_gpus=8).gpus) == 8
    assert "eight" in Inventory.of([eight], NOW, max_gpus=8).nodes


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000 + "]" * 100_000,
        json.dumps([{"index": 0, "memoryMiB": 10**400}]),
        json.dumps([{"index": 0, "memoryMiB": 2**41}]),
        json.dumps({"index": 0}),
        "9" * 5000,
    ],
)
def test_hostile_node_agent_annotations_make_the_node_unreadable(text: str) -> None:
    obj = node("n", annotations={"agentfleet.io/gpus": text}, allocatable={"nvidia.com/gpu": "1"})
    assert refused(obj, heartbeat=NOW, lease_seconds=40).reason == inv.UNREADABLE
def test_a_deleted_node_leaves_no_heartbeat_behind() -> None:
    """Node names come and go with the fleet (autoscaled pools, the soak's churn): the
    inventory must hold nothing of a node once it is deleted."""
    fleet = Inventory()
    for i in range(50):
        name = f"pool-{i}"
        fleet.set_lease(lease(name), NOW)
        fleet.set_node(nvidia_node(name, gpus=1, used_mib=[0]), NOW)
        assert name in fleet.nodes
        fleet.remove_node(name)
    assert fleet._heartbeats == {} and fleet._stored == {} and fleet.nodes == {}


# --- the index agrees with the per-node rules --------------------------------------------------

KEYS = ("zone", "tier", "gpu.memory")
VALUES = ("a", "b", "10", "20", "1_0")


@st.composite
def label_sets(draw: st.DrawFn) -> dict[str, str]:
    return draw(st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3))


requirements = st.builds(
    Requirement,
    st.sampled_from(KEYS),
    st.sampled_from(("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", "Bogus")),
    st.lists(st.sampled_from(VALUES), max_size=2).map(tuple),
)
fields = st.builds(
    Requirement,
    st.sampled_from(("metadata.name", "metadata.uid")),
    st.sampled_from(("In", "NotIn")),
    st.lists(st.sampled_from(("n0", "n1", "n2")), max_size=2).map(tuple),
)
terms = st.builds(
    Term, st.lists(requirements, max_size=3).map(tuple), st.lists(fields, max_size=1).map(tuple)
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(label_sets(), min_size=1, max_size=5),
    st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=2),
    st.none() | st.lists(terms, max_size=3).map(tuple),
)
def test_index_selects_exactly_the_nodes_the_scheduler_admits(
    fleet_labels: list[dict[str, str]],
    node_selector: dict[str, str],
    node_terms: tuple[Term, ...] | None,
) -> None:
    fleet = Inventory.of(
        [node(f"n{i}", labels=labels) for i, labels in enumerate(fleet_labels)], NOW
    )
    expected = {
        name
        for name, entry in fleet.nodes.items()
        if matches(name, entry.labels, node_selector, node_terms)
    }
    assert fleet.select(node_selector, node_terms) == expected


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.sampled_from(("set", "remove"))), max_size=25))
def test_incremental_inventory_equals_a_fresh_one(events: list[tuple[int, str]]) -> None:
    shapes = [
        nvidia_node("n0", gpus=2),
        nvidia_node("n1", gpus=1, replicas=4, memory_mib=23034, product="NVIDIA-L4"),
        node("n2", labels={"amd.com/gpu.vram": "192G"}, allocatable={"amd.com/gpu": "8"}),
        nvidia_node("n3", ready="False"),
        node("n4", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}]),
    ]
    fleet = Inventory()
    present: dict[str, dict[str, Any]] = {}
    for index, action in events:
        name = f"n{index}"
        if action == "set":
            fleet.set_node(shapes[index], NOW)
            present[name] = shapes[index]
        else:
            fleet.remove_node(name)
            present.pop(name, None)
    fresh = Inventory.of(present.values(), NOW)
    assert fleet.nodes == fresh.nodes
    assert fleet.ineligible == fresh.ineligible
    for vendor in ("nvidia", "amd"):
        for shared in (True, False):
            assert fleet.pool(vendor, shared) == fresh.pool(vendor, shared)
    assert fleet.select({"kubernetes.io/hostname": "n0"}, None) == fresh.select(
        {"kubernetes.io/hostname": "n0"}, None
    )
    assert fleet.tainted_against(()) == fresh.tainted_against(())
