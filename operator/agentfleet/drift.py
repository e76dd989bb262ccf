"""Decide, without calling the API, whether the cluster already holds what we want.

Two checks, both needed: the `applied-hash` annotation catches changes of *our* desired
state (including fields we stopped setting, which a subset test cannot see), and the subset
test catches drift (someone edited or removed a field we own). Only when both pass is the
write skipped, which is what keeps an idle fleet at zero writes.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from agentfleet import quantity
from agentfleet.constants import ANNOTATION_APPLIED_HASH

_QUANTITY_PARENTS = frozenset({"requests", "limits"})


def applied_hash(obj: dict[str, Any]) -> str:
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


def stamp(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of `obj` annotated with the hash of its own content."""
    stamped = copy.deepcopy(obj)
    annotations = stamped["metadata"].setdefault("annotations", {})
    annotations[ANNOTATION_APPLIED_HASH] = applied_hash(obj)
    return stamped


def is_current(desired: dict[str, Any], observed: dict[str, Any] | None) -> bool:
    """True when applying `desired` (stamped) would change nothing we care about."""
    if observed is None:
        return False
    wanted = desired["metadata"]["annotations"][ANNOTATION_APPLIED_HASH]
    found = (observed.get("metadata", {}).get("annotations") or {}).get(ANNOTATION_APPLIED_HASH)
    return wanted == found and contains(observed, desired)


def contains(observed: Any, desired: Any, quantities: bool = False) -> bool:
    """Every field of `desired` is present in `observed` with an equal value.

    Lists must match element by element (the API server keeps the order we applied).
    Resource quantities compare by value, because the server canonicalises them.
    """
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(
            key in observed
            and contains(observed[key], value, quantities or key in _QUANTITY_PARENTS)
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(observed, list)
            and len(observed) == len(desired)
            and all(contains(o, d, quantities) for o, d in zip(observed, desired, strict=True))
        )
    if desired == observed:
        return True
    return quantities and _same_quantity(observed, desired)


def _same_quantity(a: Any, b: Any) -> bool:
    if not (quantity.is_quantity(a) and quantity.is_quantity(b)):
        return False
    return quantity.parse(a) == quantity.parse(b)
