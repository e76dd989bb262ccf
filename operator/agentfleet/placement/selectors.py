"""Taints and tolerations, nodeSelector and required node affinity, read as the scheduler does.

The ledger must skip exactly the nodes the scheduler would refuse, or it would hand out VRAM on
a node the Pod can never bind to. `matches` checks one node; `inventory.Inventory.select`
answers the same question for a whole fleet at once from its label index.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BLOCKING_EFFECTS = ("NoSchedule", "NoExecute")  # PreferNoSchedule only lowers a score


@dataclass(frozen=True)
class Taint:
    key: str
    value: str
    effect: str

    @classmethod
    def of(cls, taint: Mapping[str, Any]) -> Taint:
        return cls(str(taint.get("key") or ""), str(taint.get("value") or ""), str(taint["effect"]))


@dataclass(frozen=True)
class Toleration:
    key: str = ""
    operator: str = "Equal"
    value: str = ""
    effect: str = ""  # empty tolerates every effect

    @classmethod
    def of(cls, toleration: Mapping[str, Any]) -> Toleration:
        return cls(
            str(toleration.get("key") or ""),
            str(toleration.get("operator") or "Equal"),
            str(toleration.get("value") or ""),
            str(toleration.get("effect") or ""),
        )

    def tolerates(self, taint: Taint) -> bool:
        """k8s.io/api/core/v1 Toleration.ToleratesTaint."""
        if self.effect and self.effect != taint.effect:
            return False
        if self.key and self.key != taint.key:
            return False
        if self.operator == "Exists":
            return True  # an empty key with Exists tolerates everything
        return self.operator == "Equal" and self.value == taint.value


def blocking_taint(taints: Sequence[Taint], tolerations: Sequence[Toleration]) -> Taint | None:
    """The first NoSchedule/NoExecute taint that no toleration covers, if any."""
    for taint in taints:
        if taint.effect in BLOCKING_EFFECTS and not any(t.tolerates(taint) for t in tolerations):
            return taint
    return None


@dataclass(frozen=True)
class Requirement:
    """One matchExpressions (or matchFields) entry of a nodeSelectorTerm."""

    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist, Gt, Lt
    values: tuple[str, ...] = ()

    @classmethod
    def of(cls, expression: Mapping[str, Any]) -> Requirement:
        return cls(
            str(expression["key"]),
            str(expression["operator"]),
            tuple(str(v) for v in expression.get("values") or ()),
        )

    def bound(self) -> int | None:
        """The integer of a Gt/Lt requirement; None when it has not exactly one integer."""
        return integer(self.values[0]) if len(self.values) == 1 else None

    def matches(self, labels: Mapping[str, str]) -> bool:
        """k8s.io/apimachinery labels.Requirement.Matches: NotIn and DoesNotExist match a node
        without the key; Gt/Lt need the key and an integer on both sides."""
        present = self.key in labels
        if self.operator == "In":
            return present and labels[self.key] in self.values
        if self.operator == "NotIn":
            return not present or labels[self.key] not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator in ("Gt", "Lt"):
            bound = self.bound()
            have = integer(labels.get(self.key))
            if bound is None or have is None:
                return False
            return have > bound if self.operator == "Gt" else have < bound
        return False


@dataclass(frozen=True)
class Term:
    """A nodeSelectorTerm: all of its requirements must hold. An empty term matches no node."""

    expressions: tuple[Requirement, ...] = ()
    fields: tuple[Requirement, ...] = ()  # only metadata.name is defined for nodes

    @classmethod
    def of(cls, term: Mapping[str, Any]) -> Term:
        return cls(
            tuple(Requirement.of(e) for e in term.get("matchExpressions") or ()),
            tuple(Requirement.of(f) for f in term.get("matchFields") or ()),
        )

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if not self.expressions and not self.fields:
            return False
        fields = {"metadata.name": name}
        return all(r.matches(labels) for r in self.expressions) and all(
            r.key == "metadata.name" and r.matches(fields) for r in self.fields
        )


def required_terms(affinity: Mapping[str, Any] | None) -> tuple[Term, ...] | None:
    """The ORed terms of requiredDuringSchedulingIgnoredDuringExecution; None when absent."""
    node_affinity = (affinity or {}).get("nodeAffinity") or {}
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return None
    return tuple(Term.of(t) for t in required.get("nodeSelectorTerms") or ())


def matches(
    name: str,
    labels: Mapping[str, str],
    node_selector: Mapping[str, str],
    terms: Sequence[Term] | None,
) -> bool:
    """Does the scheduler's NodeAffinity filter let a Pod with these constraints onto the node?"""
    if any(labels.get(k) != v for k, v in node_selector.items()):
        return False
    return terms is None or any(t.matches(name, labels) for t in terms)


_INTEGER = re.compile(r"^[+-]?[0-9]{1,18}$")  # what Go's strconv.ParseInt(s, 10, 64) takes


def integer(text: str | None) -> int | None:
    """A label value as Gt/Lt read it; None when Go would fail to parse it (Python's int()
    also takes "1_000" and spaces, which would make us match nodes the scheduler does not)."""
    if text is None or not _INTEGER.match(text):
        return None
    return int(text)
