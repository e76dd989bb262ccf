"""Which shares of a fleet may overlap: decided from namespaces and label selectors; when a
claim must stop serving."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from agentfleet.runtime.sharding import (
    Claim,
    Scope,
    ShardClaim,
    conflicts,
    parse_selector,
    selectors_disjoint,
)

NOW = datetime.datetime(2026, 11, 30, 12, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("a", "b", "disjoint"),
    [
        ("agentfleet.io/shard=a", "agentfleet.io/shard=b", True),
        ("agentfleet.io/shard=a", "agentfleet.io/shard=a", False),
        ("agentfleet.io/shard=a", "!agentfleet.io/shard", True),
        ("agentfleet.io/shard in (a, b)", "agentfleet.io/shard=c", True),
        ("agentfleet.io/shard in (a, b)", "agentfleet.io/shard notin (a)", False),
        ("agentfleet.io/shard in (a)", "agentfleet.io/shard notin (a)", True),
        ("agentfleet.io/shard=a", "team=x", False),  # different keys: both can hold
        ("", "agentfleet.io/shard=a", False),  # everything overlaps everything
        ("agentfleet.io/shard", "!agentfleet.io/shard", True),
        ("agentfleet.io/shard!=a", "agentfleet.io/shard=a", True),
    ],
)
def test_selector_overlap(a: str, b: str, disjoint: bool) -> None:
    assert selectors_disjoint(a, b) is disjoint
    assert selectors_disjoint(b, a) is disjoint


def test_an_unreadable_selector_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot read"):
        parse_selector("a=b,(c")


def test_namespace_lists_that_do_not_meet_never_overlap() -> None:
    assert not Scope(("team-a",), "").overlaps(Scope(("team-b",), ""))
    assert Scope(("team-a", "shared"), "").overlaps(Scope(("shared",), ""))
    assert Scope((), "").overlaps(Scope(("team-b",), ""))


def claim(shard: str, selector: str, holder: str = "pod-1", live: bool = True) -> Claim:
    expires = NOW + datetime.timedelta(seconds=20 if live else -1)
    return Claim(shard, holder, Scope((), selector), expires)


def test_conflicts_name_the_overlapping_live_shard() -> None:
    mine = Scope((), "agentfleet.io/shard=a")
    found = conflicts(mine, "a2", "me", [claim("a", "agentfleet.io/shard=a")], NOW)
    assert found and "shard 'a'" in found[0]
    assert conflicts(mine, "a2", "me", [claim("b", "agentfleet.io/shard=b")], NOW) == []
    assert conflicts(mine, "a2", "me", [claim("a", "agentfleet.io/shard=a", live=False)], NOW) == []


def test_a_shard_held_by_another_live_operator_is_refused() -> None:
    mine = Scope((), "agentfleet.io/shard=a")
    found = conflicts(mine, "a", "pod-2", [claim("a", "agentfleet.io/shard=a", "pod-1")], NOW)
    assert found and "already served by pod-1" in found[0]
    assert conflicts(mine, "a", "pod-1", [claim("a", "agentfleet.io/shard=a", "pod-1")], NOW) == []


def test_a_claim_past_its_renew_deadline_refuses_every_write() -> None:
    """Two thirds of the Lease's duration: a peer may claim the share only after the whole
    duration, so this operator has stopped writing 10 s before (30 s Leases)."""
    clock = [0.0]
    kube: Any = None  # never asked: refused() is arithmetic on the last renewal
    claim = ShardClaim(kube, "a", Scope(), "agentfleet-system", "pod-1", clock=lambda: clock[0])
    assert claim.refused() == "shard 'a' is not claimed"
    claim.renewed_at = 0.0
    clock[0] = 19.9
    assert claim.refused() is None
    clock[0] = 20.0
    assert claim.refused() == (
        "the claim on shard 'a' was last renewed 20s ago, past its 20s renew deadline"
    )
