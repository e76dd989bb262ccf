"""Is the cluster what the renderers want, and since when? Checked by the harness.

The operator's own status is not evidence: an agent is converged when its Ready condition is
True for its current generation *and* every object it should have holds exactly what the
renderers produce for it. The content is judged by the API server: a dry-run apply of the
rendered object (stamped as the operator stamps it) under the operator's field manager
answers with what the object would be after the operator's next apply; its digest must be
the digest of the live object the child watch last saw. The watch also says since when each
object has held that content, so the moment of convergence is exact although the audit runs
after the measured window (its thousands of dry runs would otherwise load the API server the
operator is measured on).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agentfleet.api import constants as c
from benchmarks.fleet import ChildTracker, agents_path, collection_path, desired_children
from benchmarks.kube import ClusterAccess
from benchmarks.plain import PlainClient, content_digest


@dataclass
class ContentAudit:
    agents: int
    objects: int  # wanted objects
    missing: list[str]  # API paths of wanted objects that do not exist
    differing: list[str]  # ... that exist with other content
    unexpected: list[str]  # objects labelled as the operator's that no agent wants
    content_at: float  # when the last wanted object got its current content

    @property
    def ok(self) -> bool:
        return not (self.missing or self.differing or self.unexpected)

    def summary(self) -> str:
        parts = [
            f"{len(found)} {what}, e.g. {found[:3]}"
            for what, found in (
                ("missing", self.missing),
                ("differing from the renderers' output", self.differing),
                ("not wanted by any agent", self.unexpected),
            )
            if found
        ]
        return "; ".join(parts) or "every object as rendered"

    def as_dict(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "objects": self.objects,
            "missing_count": len(self.missing),
            "differing_count": len(self.differing),
            "unexpected_count": len(self.unexpected),
            "missing": self.missing[:20],
            "differing": self.differing[:20],
            "unexpected": self.unexpected[:20],
        }


def audit_content(
    access: ClusterAccess, tracker: ChildTracker, settle_seconds: float = 15.0
) -> ContentAudit:
    """Every agent of the tracker's namespace against what the renderers produce for it.
    A mismatch is looked at again for `settle_seconds` (the watch may be a moment behind
    the dry run) before it counts."""
    agents = access.list_items(agents_path(tracker.namespace))
    desired = desired_children(agents, tracker.served_kinds)
    admin = PlainClient(access.kubeconfig, qps=0, burst=0)
    answers = admin.dry_run(list(desired.values()), c.FIELD_MANAGER)
    expected = {
        path: content_digest(answer) if answer is not None else ""
        for path, answer in zip(desired, answers, strict=True)
    }
    deadline = time.monotonic() + settle_seconds
    while True:
        seen = tracker.snapshot()
        missing = [path for path in expected if path not in seen]
        differing = [p for p, d in expected.items() if p in seen and seen[p].digest != d]
        unexpected = [p for p, s in seen.items() if s.managed and p not in expected]
        if not (missing or differing or unexpected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    content_at = max((seen[p].since for p in expected if p in seen), default=0.0)
    return ContentAudit(len(agents), len(expected), missing, differing, unexpected, content_at)


@dataclass
class OwnershipAudit:
    """Every child of the namespace's agents, checked against the agents that exist."""

    agents: int
    children: int
    missing: list[str]  # "<Kind>/<agent>": a wanted child that does not exist
    orphans: list[str]  # a child whose controlling owner is no existing agent
    duplicates: list[str]  # an agent controlling two children of one kind

    def as_dict(self) -> dict[str, Any]:
        return {
            "agents": self.agents,
            "children": self.children,
            "missing": self.missing[:20],
            "orphans": self.orphans[:20],
            "duplicates": self.duplicates[:20],
            "missing_count": len(self.missing),
            "orphan_count": len(self.orphans),
            "duplicate_count": len(self.duplicates),
        }


PLAIN_KINDS = ("ServiceAccount", "Service", "Deployment")


def audit_ownership(
    access: ClusterAccess, namespace: str, names: Iterable[str] | None = None
) -> OwnershipAudit:
    """Each (named) agent has exactly one ServiceAccount, Service and Deployment that it
    controls, and every object the operator labels as its own has an existing controlling
    AIAgent."""
    from benchmarks.plain import BY_KIND

    agents = {
        a["metadata"]["uid"]: a["metadata"]["name"]
        for a in access.list_items(agents_path(namespace))
    }
    wanted = set(agents.values()) if names is None else set(names)
    selector = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
    missing, orphans, duplicates, total = [], [], [], 0
    for kind in PLAIN_KINDS:
        owned: dict[str, int] = {}
        for child in access.list_items(collection_path(BY_KIND[kind], namespace), selector):
            total += 1
            refs = child["metadata"].get("ownerReferences") or []
            owner = next((r for r in refs if r.get("controller") and r.get("kind") == c.KIND), None)
            if owner is None or owner.get("uid") not in agents:
                orphans.append(f"{kind}/{child['metadata']['name']}")
                continue
            name = agents[owner["uid"]]
            owned[name] = owned.get(name, 0) + 1
        missing += [f"{kind}/{name}" for name in sorted(wanted) if name not in owned]
        duplicates += [f"{kind}/{name}" for name, count in sorted(owned.items()) if count > 1]
    return OwnershipAudit(len(wanted), total, missing, orphans, duplicates)


def shared_objects(tracker: ChildTracker) -> list[dict[str, Any]]:
    """The objects the agents of the namespace share, with their size and owners."""
    return [
        {"object": path.split("/namespaces/")[1], "bytes": state.size, "owners": state.owners}
        for path, state in sorted(tracker.snapshot().items())
        if state.shared
    ]
