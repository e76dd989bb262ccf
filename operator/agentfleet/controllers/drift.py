"""Decide, without calling the API, whether the cluster already holds what we want.

Two checks, both needed: the `applied-hash` annotation catches changes of *our* desired
state (including fields we stopped setting, which a subset test cannot see), and the subset
test catches drift (someone edited or removed a field we own). Only when both pass is the
write skipped, which is what keeps an idle fleet at zero writes.

The subset test must not see drift where the API server or a mutating webhook only added or
normalised something, or every reconcile would write again: quantities compare by value
(`1Gi` == `1024Mi`, `0.5` == `500m`), fields we do not set are ignored (defaults), and a list of
objects (env, ports, tolerations, containers) only needs each of our entries somewhere in it
(an entry a webhook injected, or an order another writer chose, is not drift). A value we set
that was changed or removed is drift, and so is one of our entries missing from a list.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from agentfleet.api import quantity
from agentfleet.api.constants import ANNOTATION_APPLIED_HASH

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


def applied_hash_of(obj: dict[str, Any]) -> str | None:
    """The applied-hash annotation of a stamped (desired) or observed object."""
    annotations = obj.get("metadata", {}).get("annotations") or {}
    found: str | None = annotations.get(ANNOTATION_APPLIED_HASH)
    return found


def contains(observed: Any, desired: Any, quantities: bool = False) -> bool:
    """Every field of `desired` is present in `observed` with an equal value (see above)."""
    if isinstance(desired, dict):
        return isinstance(observed, dict) and all(
            key in observed
            and contains(observed[key], value, quantities or key in _QUANTITY_PARENTS)
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(observed, list):
            return False
        if not any(isinstance(item, dict) for item in desired):
            return observed == desired  # scalar lists (command, args) are atomic
        return _each_entry_found(observed, desired, quantities)
    if desired == observed:
        return True
    return quantities and _same_quantity(observed, desired)


def _each_entry_found(observed: list[Any], desired: list[Any], quantities: bool) -> bool:
    """Each desired entry matches its own observed entry, in any order."""
    unused = list(observed)
    for wanted in desired:
        match = next((i for i, o in enumerate(unused) if contains(o, wanted, quantities)), None)
        if match is None:
            return False
        del unused[match]
    return True


def _same_quantity(a: Any, b: Any) -> bool:
    if not (quantity.is_quantity(a) and quantity.is_quantity(b)):
        return False
    return quantity.parse(a) == quantity.parse(b)


def takeover_patch(live: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch that makes every subtree we render exactly ours.

    Server-side apply never removes what another manager set, and a merge patch merges maps:
    a Service adopted from someone else would keep their port and their selector key. This
    patch replaces lists and, inside each part of the spec we render, sets every key we do
    not render to null. Top-level spec fields we do not render at all (clusterIP, strategy
    and other server defaults) and the labels and annotations of others are left alone."""
    patch: dict[str, Any] = {}
    for key, value in desired.items():
        if key != "metadata" and isinstance(value, dict):
            found = live.get(key)
            live_part: dict[str, Any] = found if isinstance(found, dict) else {}
            patch[key] = {k: _exactly(live_part.get(k), v) for k, v in value.items()}
        else:
            patch[key] = value
    return patch


def _exactly(live: Any, desired: Any) -> Any:
    if not (isinstance(desired, dict) and isinstance(live, dict)):
        return desired
    result: dict[str, Any] = {k: None for k in live if k not in desired}
    result.update({k: _exactly(live.get(k), v) for k, v in desired.items()})
    return result
