from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentfleet.placement import Ledger, PlacementRecord, format_placement, parse_placement
from agentfleet.placement.decide import pin_to_node
from agentfleet.placement.inventory import NodeInventory, node_from_object
from agentfleet.placement.ledger import GPUBooks, pod_requests, usage_of
from tests.unit.placement.fleet import NOW, nvidia_node, pod

records = st.builds(
    PlacementRecord,
    node=st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True),
    gpus=st.lists(st.integers(0, 15), unique=True, max_size=8).map(tuple),
    vram_mib=st.integers(0, 2**20),
    agent=st.text(max_size=30),
    sharing=st.sampled_from(("exclusive", "shared")),
)


@given(records)
def test_placement_annotation_round_trips(record: PlacementRecord) -> None:
    assert parse_placement(format_placement(record)) == record


def test_placement_annotation_format() -> None:
    record = PlacementRecord("gpu-a100-1", (0, 3), 24576, "ns/coder", "exclusive")
    assert format_placement(record) == (
        '{"agent":"ns/coder","gpus":[0,3],"node":"gpu-a100-1","sharing":"exclusive",'
        '"vramMiB":24576}'
    )


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("nope", "not JSON"),
        ("[]", "not a JSON object"),
        ('{"gpus":[0],"vramMiB":1,"agent":"a"}', "node"),
        ('{"node":"n","gpus":[0,0],"vramMiB":1,"agent":"a"}', "distinct"),
        ('{"node":"n","gpus":[-1],"vramMiB":1,"agent":"a"}', "distinct"),
        ('{"node":"n","gpus":[true],"vramMiB":1,"agent":"a"}', "distinct"),
        ('{"node":"n","gpus":[0],"vramMiB":"1Gi","agent":"a"}', "vramMiB"),
        ('{"node":"n","gpus":[0],"vramMiB":1,"agent":"a","sharing":"some"}', "sharing"),
    ],
)
def test_placement_annotation_errors_say_what_is_wrong(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_placement(text)


def test_unknown_keys_in_the_annotation_are_ignored() -> None:
    text = '{"node":"n","gpus":[1],"vramMiB":5,"agent":"a","uuids":["GPU-1"]}'
    assert parse_placement(text) == PlacementRecord("n", (1,), 5, "a")


# --- what a Pod holds ---------------------------------------------------------------------


def test_requests_take_the_larger_of_containers_and_init_containers_plus_overhead() -> None:
    spec = {
        "containers": [
            {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
            {"resources": {"limits": {"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"}}},
        ],
        "initContainers": [
            {"resources": {"requests": {"cpu": "4", "memory": "512Mi"}}},
            {"restartPolicy": "Always", "resources": {"requests": {"cpu": "250m"}}},
        ],
        "overhead": {"cpu": "100m", "memory": "64Mi"},
    }
    cpu, memory, devices = pod_requests(spec)
    assert cpu == 4000 + 100  # the first init container outweighs containers + sidecar
    assert memory == 2 * 2**30 + 64 * 2**20
    assert devices == {"nvidia.com/gpu": 1}


def test_sidecar_runs_beside_the_containers() -> None:
    spec = {
        "containers": [{"resources": {"requests": {"cpu": "1"}}}],
        "initContainers": [{"restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}}],
    }
    assert pod_requests(spec)[0] == 2000


def test_pod_level_resources_replace_container_sums() -> None:
    spec = {
        "resources": {"requests": {"cpu": "3", "memory": "3Gi"}},
        "containers": [{"resources": {"requests": {"cpu": "1", "nvidia.com/gpu": "2"}}}],
    }
    assert pod_requests(spec) == (3000, 3 * 2**30, {"nvidia.com/gpu": 2})


@pytest.mark.parametrize(
    "changes",
    [
        {"phase": "Succeeded"},
        {"phase": "Failed"},
        {"deleting": True},
        {"node_name": None},
    ],
)
def test_pods_that_hold_nothing(changes: dict[str, Any]) -> None:
    assert usage_of(pod("p", **{"node_name": "n1", **changes})) is None


def test_gated_pod_with_a_decision_counts_on_the_decided_node() -> None:
    record = PlacementRecord("n1", (2,), 1024, "team-a/x", "shared")
    usage = usage_of(pod("p", placement=format_placement(record), gpus=1))
    assert usage is not None
    assert (usage.node, usage.placement) == ("n1", record)
    assert usage.devices == (("nvidia.com/gpu", 1),)


@pytest.mark.parametrize("text", ["{broken", "[" * 100_000, '{"node": "n1"}'])
def test_unreadable_annotation_fails_closed(text: str) -> None:
    """On an agent Pod (trusted), an annotation that does not read keeps its GPUs booked:
    whole GPUs of its node, which ones unknown."""
    ledger = Ledger.from_pods([pod("p", node_name="n1", placement=text, gpus=1)])
    assert "unreadable" in ledger.problems["team-a/p"]
    books = ledger.books("n1")
    assert books.gpus == {} and books.devices == {"nvidia.com/gpu": 1}
    assert books.unplaced == {"nvidia.com/gpu": 1}
    free = ledger.free(gpu_node("n1", gpus=2))
    assert [g.device for g in free.spread] == [0]  # GPU 1 counts as held


def gpu_node(name: str, gpus: int, **kwargs: Any) -> NodeInventory:
    node = node_from_object(nvidia_node(name, gpus=gpus, **kwargs), NOW)
    assert isinstance(node, NodeInventory)
    return node


def test_a_pod_the_operator_did_not_make_holds_what_it_requests_not_what_it_claims() -> None:
    """A forged annotation on someone's Pod is ignored: a bound one holds the GPUs it requests
    (whole), an unbound one nothing (it cannot make a node look full)."""
    claim = format_placement(PlacementRecord("n1", (0, 1, 2, 3), 0, "team-a/x", "exclusive"))
    bound = pod("bound", node_name="n1", placement=claim, gpus=1)
    waiting = pod("waiting", placement=claim, gpus=4)
    ledger = Ledger.from_pods([bound, waiting], trusted=lambda p: False)
    assert ledger.books("n1").gpus == {}
    assert ledger.books("n1").unplaced == {"nvidia.com/gpu": 1}
    assert "team-a/waiting" not in ledger.pods
    assert "ignored" in ledger.problems["team-a/bound"]
    free = ledger.free(gpu_node("n1", gpus=4))
    assert (len(free.spread), free.slots_free) == (3, 3)


def test_a_non_agent_gpu_pod_on_a_shared_gpu_holds_the_whole_gpu() -> None:
    """Time-slicing does not split memory: a Pod with a slot may use all of its GPU."""
    ledger = Ledger.from_pods([pod("x", node_name="n1", gpus=1)], trusted=lambda p: False)
    node = gpu_node("n1", gpus=2, memory_mib=24000, replicas=4)
    free = ledger.free(node)
    assert [g.device for g in free.spread] == [0] and free.slots_free == 7
    (row,) = [r for r in gpu_table_of(node, ledger) if r.index == 1]
    assert row.committed_mib == 24000 and row.free_mib == 0 and "did not place" in row.state


def gpu_table_of(node: NodeInventory, ledger: Ledger) -> list[Any]:
    from agentfleet.placement import Inventory, gpu_table

    inventory = Inventory()
    inventory.nodes[node.name] = node
    return gpu_table(inventory, ledger)


def test_a_gated_pod_holds_nothing_whatever_its_annotation() -> None:
    claim = format_placement(PlacementRecord("n1", (0,), 0, "team-a/x", "exclusive"))
    gated = pod("g", placement=claim, gpus=1)
    gated["spec"]["schedulingGates"] = [{"name": "agentfleet.io/placement"}]
    assert usage_of(gated) is None


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (PlacementRecord("n2", (0,), 24576, "team-a/x", "shared"), "Pod is on n1"),
        (PlacementRecord("n1", (0, 1), 24576, "team-a/x", "shared"), "requests 1"),
        (PlacementRecord("n1", (0,), 1024, "team-a/x", "shared"), "asks for 24576"),
    ],
)
def test_a_decision_that_disagrees_with_the_pod_fails_closed(
    record: PlacementRecord, problem: str
) -> None:
    """The Pod's spec cannot change once ungated: its node, GPU count and the VRAM its node
    affinity asks for are the truth an edited annotation is checked against."""
    obj = pod("p", node_name="n1", placement=format_placement(record), gpus=1)
    obj["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["24575"]}
        ]}]
    }}}  # fmt: skip
    usage = usage_of(obj)
    assert usage is not None and usage.placement is None
    assert usage.problem is not None and problem in usage.problem


def test_the_pinned_node_is_where_an_unbound_decided_pod_counts() -> None:
    record = PlacementRecord("n1", (0,), 0, "team-a/x", "exclusive")
    obj = pod("p", placement=format_placement(record), gpus=1)
    obj["spec"]["affinity"] = pin_to_node(None, "n2")
    usage = usage_of(obj)
    assert usage is not None and usage.node == "n2" and usage.placement is None


def test_a_booked_decision_stands_against_an_edited_annotation() -> None:
    """Annotating one's own running agent Pod to free its GPU in the books changes nothing."""
    record = PlacementRecord("n1", (0,), 8192, "team-a/x", "shared")
    ledger = Ledger()
    running = pod("p", node_name="n1", placement=format_placement(record), gpus=1)
    running["metadata"]["uid"] = "u1"
    ledger.upsert(running)
    for edit in (
        format_placement(PlacementRecord("n1", (1,), 8192, "team-a/x", "shared")),
        "{broken",
        None,
    ):
        edited = pod("p", node_name="n1", placement=edit, gpus=1)
        edited["metadata"]["uid"] = "u1"
        ledger.upsert(edited)
        assert ledger.pods["team-a/p"].placement == record
        assert ledger.books("n1").gpus[0].shared_mib == 8192
    recreated = pod("p", node_name="n1", gpus=1)
    recreated["metadata"]["uid"] = "u2"  # another Pod of the same name: no decision of ours
    ledger.upsert(recreated)
    assert ledger.pods["team-a/p"].placement is None


# --- the books ----------------------------------------------------------------------------


def placed(name: str, node: str, gpus: tuple[int, ...], vram: int, sharing: str) -> dict[str, Any]:
    record = PlacementRecord(node, gpus, vram, f"team-a/{name}", sharing)
    return pod(name, node_name=node, placement=format_placement(record), gpus=len(gpus))


def test_three_replicas_of_twenty_gib_commit_sixty() -> None:
    ledger = Ledger.from_pods(placed(f"r{i}", "n1", (0,), 20480, "shared") for i in range(3))
    assert ledger.books("n1").gpus[0] == GPUBooks(
        shared_mib=61440, agents={"team-a/r0": 1, "team-a/r1": 1, "team-a/r2": 1}
    )
    assert ledger.books("n1").devices == {"nvidia.com/gpu": 3}
    assert ledger.books("n1").cpu_millis == 1500


def test_deleting_a_pod_frees_its_share_at_once() -> None:
    ledger = Ledger()
    ledger.upsert(placed("a", "n1", (0, 1), 40960, "exclusive"))
    deleting = placed("a", "n1", (0, 1), 40960, "exclusive")
    deleting["metadata"]["deletionTimestamp"] = "2026-11-30T12:00:00Z"
    ledger.upsert(deleting)
    assert ledger.books("n1").gpus == {} and not ledger.nodes
    assert ledger == Ledger()


def test_assumed_decision_equals_the_one_the_watch_brings_back() -> None:
    record = PlacementRecord("n1", (3,), 8192, "team-a/x", "shared")
    gated = pod("x", gpus=1)
    assumed = Ledger()
    assumed.assume(gated, record)
    watched = Ledger.from_pods([pod("x", gpus=1, placement=format_placement(record))])
    assert assumed == watched
    bound = pod("x", gpus=1, node_name="n1", placement=format_placement(record))
    assumed.upsert(bound)
    assert assumed == Ledger.from_pods([bound])


def test_free_summary_uses_the_larger_of_committed_and_reported_use() -> None:
    node = node_from_object(
        nvidia_node("n1", gpus=2, memory_mib=24000, replicas=4, used_mib=[10000, 0]), NOW, NOW
    )
    assert isinstance(node, NodeInventory)
    ledger = Ledger.from_pods(
        [placed("a", "n1", (0,), 4000, "shared"), placed("b", "n1", (1,), 6000, "shared")]
    )
    free = ledger.free(node)
    by_gpu = {g.device: g for g in free.spread}
    assert by_gpu[0].free_mib == 14000  # reported 10000 > committed 4000
    assert by_gpu[1].free_mib == 18000
    assert free.slots_free == 8 - 2
    assert [g.device for g in free.spread] == [1, 0]  # least loaded first
    assert [g.device for g in free.packed] == [0, 1]
    assert ledger.free(node) is free  # cached while nothing changes
    ledger.remove("team-a/b")
    assert ledger.free(node).max_free_mib == 24000


# --- incremental == rebuilt ---------------------------------------------------------------

pod_events = st.lists(
    st.tuples(
        st.integers(0, 6),  # which pod
        st.sampled_from(("gated", "bound", "running", "done", "deleting", "gone", "broken")),
        st.sampled_from(("n1", "n2")),
        st.lists(st.integers(0, 3), unique=True, max_size=3).map(tuple),
        st.integers(0, 40000),
        st.sampled_from(("exclusive", "shared")),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(pod_events)
def test_incremental_books_equal_a_full_rebuild(
    events: list[tuple[int, str, str, tuple[int, ...], int, str]],
) -> None:
    ledger = Ledger()
    cluster: dict[str, dict[str, Any]] = {}
    for index, state, node, gpus, vram, sharing in events:
        name = f"p{index}"
        key = f"team-a/{name}"
        if state == "gone":
            cluster.pop(key, None)
            ledger.remove(key)
            continue
        record = PlacementRecord(node, gpus, vram, f"team-a/agent{index % 3}", sharing)
        obj = pod(
            name,
            gpus=len(gpus),
            placement="{broken" if state == "broken" else format_placement(record),
            node_name=None if state == "gated" else node,
            phase="Succeeded" if state == "done" else "Running",
            deleting=state == "deleting",
        )
        cluster[key] = obj
        ledger.upsert(obj)
    pods = list(cluster.values())
    random.Random(len(pods)).shuffle(pods)
    assert ledger == Ledger.from_pods(pods)
    # and nothing lingers once every Pod is gone
    for key in list(cluster):
        ledger.remove(key)
    assert ledger == Ledger() and not ledger.nodes
