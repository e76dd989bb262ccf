from __future__ import annotations

import pytest

from agentfleet.placement.selectors import (
    Requirement,
    Taint,
    Term,
    Toleration,
    blocking_taint,
    matches,
    required_terms,
)

GPU_TAINT = Taint("nvidia.com/gpu", "present", "NoSchedule")


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        (Toleration("nvidia.com/gpu", "Equal", "present", "NoSchedule"), True),
        (Toleration("nvidia.com/gpu", "Equal", "present"), True),  # any effect
        (Toleration("nvidia.com/gpu", "Exists"), True),
        (Toleration("", "Exists"), True),  # tolerates everything
        (Toleration("nvidia.com/gpu", "Equal", "absent", "NoSchedule"), False),
        (Toleration("nvidia.com/gpu", "Exists", effect="NoExecute"), False),
        (Toleration("other", "Exists"), False),
    ],
)
def test_toleration_matches_like_the_scheduler(toleration: Toleration, tolerated: bool) -> None:
    assert toleration.tolerates(GPU_TAINT) is tolerated


def test_prefer_no_schedule_never_blocks() -> None:
    soft = Taint("spot", "true", "PreferNoSchedule")
    assert blocking_taint((soft,), ()) is None
    assert blocking_taint((soft, GPU_TAINT), ()) == GPU_TAINT


def test_toleration_from_a_pod_spec_entry() -> None:
    parsed = Toleration.of({"key": "k", "operator": "Exists", "effect": "NoExecute"})
    assert parsed == Toleration("k", "Exists", "", "NoExecute")


@pytest.mark.parametrize(
    ("requirement", "labels", "expected"),
    [
        (Requirement("zone", "In", ("a", "b")), {"zone": "a"}, True),
        (Requirement("zone", "In", ("a",)), {}, False),
        (Requirement("zone", "NotIn", ("a",)), {}, True),  # a node without the key matches
        (Requirement("zone", "NotIn", ("a",)), {"zone": "a"}, False),
        (Requirement("zone", "Exists"), {"zone": ""}, True),
        (Requirement("zone", "DoesNotExist"), {"zone": "a"}, False),
        (Requirement("mem", "Gt", ("24575",)), {"mem": "24576"}, True),
        (Requirement("mem", "Gt", ("24575",)), {"mem": "24575"}, False),
        (Requirement("mem", "Lt", ("100",)), {"mem": "99"}, True),
        (Requirement("mem", "Gt", ("1",)), {"mem": "1_000"}, False),  # Go does not parse it
        (Requirement("mem", "Gt", ("1", "2")), {"mem": "5"}, False),
        (Requirement("mem", "Gt", ("1",)), {}, False),
    ],
)
def test_requirement(requirement: Requirement, labels: dict[str, str], expected: bool) -> None:
    assert requirement.matches(labels) is expected


def test_empty_term_matches_nothing_and_terms_are_ored() -> None:
    assert not Term().matches("n", {"a": "1"})
    zone_a = Term((Requirement("zone", "In", ("a",)),))
    named = Term(fields=(Requirement("metadata.name", "In", ("n2",)),))
    assert matches("n1", {"zone": "a"}, {}, (zone_a, named))
    assert matches("n2", {"zone": "b"}, {}, (zone_a, named))
    assert not matches("n3", {"zone": "b"}, {}, (zone_a, named))
    assert not matches("n1", {"zone": "a"}, {}, ())  # an empty list of terms admits nothing
    assert not matches("n1", {"zone": "a"}, {"disk": "ssd"}, None)


def test_required_terms_of_a_pod_affinity() -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            },
            "preferredDuringSchedulingIgnoredDuringExecution": [],
        }
    }
    assert required_terms(affinity) == (Term((Requirement("zone", "In", ("a",)),)),)
    assert required_terms(None) is None
    assert required_terms({"podAntiAffinity": {}}) is None
