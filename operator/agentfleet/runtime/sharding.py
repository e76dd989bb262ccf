"""Splitting a fleet across operators, and proving no two of them serve the same agent.

A fleet larger than one operator can carry runs several operator Deployments, each serving a
share: `--namespace` lists and/or an `--agent-selector` (a label selector on AIAgents, applied
by the API server). Each one started with `--shard-id` claims its share in a Lease
(`agentfleet-shard-<id>`, annotated with its namespaces and selector) and renews it. Before
serving, it reads the other live claims and refuses to start when a share could overlap its
own, naming the other shard: two operators applying the same agent's children would fight.
Overlap is decided conservatively: two shares are disjoint only when their namespace lists do
not meet, or some label key is required to have values the other share rules out.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from agentfleet.api import constants as c
from agentfleet.api import timestamps
from agentfleet.kube.client import LEASES, ApiError, Kube, Ref

log = logging.getLogger(__name__)

LEASE_PREFIX = "agentfleet-shard-"
ANNOTATION_SCOPE = f"{c.GROUP}/shard-scope"

_TERM = re.compile(
    r"^\s*(?:(?P<not>!)\s*(?P<absent>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|!=|=)\s*(?P<value>[\w./-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


@dataclass(frozen=True)
class Requirement:
    """What a selector says about one label key: allowed values (None: any), and values or
    absence it rules out."""

    allowed: frozenset[str] | None = None  # None: not limited to a set
    excluded: frozenset[str] = frozenset()
    must_exist: bool = False
    must_not_exist: bool = False


def parse_selector(text: str) -> dict[str, Requirement]:
    """A label selector (`a=b,c!=d,e in (f,g),!h,i`) as one requirement per key; raises
    ValueError naming a term it cannot read."""
    result: dict[str, Requirement] = {}
    for term in _split(text):
        match = _TERM.match(term)
        if not match:
            raise ValueError(f"cannot read the label selector term {term!r}")
        if match["absent"]:
            key, add = match["absent"], Requirement(must_not_exist=True)
        elif match["op"] in ("=", "=="):
            key, add = match["key"], Requirement(frozenset({match["value"]}), must_exist=True)
        elif match["op"] == "!=":
            key, add = match["key"], Requirement(excluded=frozenset({match["value"]}))
        elif match["setop"] == "in":
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            key, add = match["key"], Requirement(values, must_exist=True)
        elif match["setop"] == "notin":
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            key, add = match["key"], Requirement(excluded=values)
        else:
            key, add = match["key"], Requirement(must_exist=True)
        result[key] = _and(result.get(key, Requirement()), add)
    return result


def _split(text: str) -> list[str]:
    """Terms split at commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for char in text:
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
            continue
        depth += {"(": 1, ")": -1}.get(char, 0)
        current += char
    if current.strip():
        terms.append(current)
    return [t for t in terms if t.strip()]


def _and(a: Requirement, b: Requirement) -> Requirement:
    allowed = (
        a.allowed
        if b.allowed is None
        else b.allowed
        if a.allowed is None
        else (a.allowed & b.allowed)
    )
    return Requirement(
        allowed,
        a.excluded | b.excluded,
        a.must_exist or b.must_exist,
        a.must_not_exist or b.must_not_exist,
    )


def _keys_conflict(a: Requirement, b: Requirement) -> bool:
    """Can no label value satisfy both requirements?"""
    both = _and(a, b)
    if both.must_exist and both.must_not_exist:
        return True
    return both.allowed is not None and not both.allowed - both.excluded


def selectors_disjoint(a: str, b: str) -> bool:
    """True when no set of labels can match both selectors (decided key by key)."""
    left, right = parse_selector(a), parse_selector(b)
    return any(_keys_conflict(left[key], right[key]) for key in left.keys() & right.keys())


@dataclass(frozen=True)
class Scope:
    """The share of the fleet one operator serves."""

    namespaces: tuple[str, ...] = ()  # empty: every namespace
    selector: str = ""

    def overlaps(self, other: Scope) -> bool:
        if (
            self.namespaces
            and other.namespaces
            and not set(self.namespaces) & set(other.namespaces)
        ):
            return False
        return not selectors_disjoint(self.selector, other.selector)

    def describe(self) -> str:
        where = ",".join(self.namespaces) if self.namespaces else "all namespaces"
        return f"{where}, selector {self.selector!r}" if self.selector else where

    def to_json(self) -> str:
        return json.dumps({"namespaces": list(self.namespaces), "selector": self.selector})

    @classmethod
    def from_json(cls, text: str) -> Scope:
        raw = json.loads(text)
        return cls(tuple(raw.get("namespaces") or ()), str(raw.get("selector") or ""))


@dataclass(frozen=True)
class Claim:
    shard: str
    holder: str
    scope: Scope
    expires: datetime.datetime
    acquired: datetime.datetime | None = None


def claim_of(lease: dict[str, Any]) -> Claim | None:
    """A shard claim from its Lease, or None if the Lease is not one."""
    meta = lease.get("metadata") or {}
    name = str(meta.get("name") or "")
    text = (meta.get("annotations") or {}).get(ANNOTATION_SCOPE)
    spec = lease.get("spec") or {}
    renewed = timestamps.parse(spec.get("renewTime"))
    if not name.startswith(LEASE_PREFIX) or text is None or renewed is None:
        return None
    duration = datetime.timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))
    return Claim(
        name.removeprefix(LEASE_PREFIX),
        str(spec.get("holderIdentity") or ""),
        Scope.from_json(text),
        renewed + duration,
        timestamps.parse(spec.get("acquireTime")),
    )


def conflicts(
    mine: Scope, shard: str, holder: str, claims: list[Claim], now: datetime.datetime
) -> list[str]:
    """Why this operator must not serve `mine`: one sentence per live, overlapping claim."""
    found = []
    for claim in claims:
        if claim.expires <= now:
            continue
        if claim.shard == shard:
            if claim.holder != holder:
                found.append(
                    f"shard {shard!r} is already served by {claim.holder} (its Lease is live"
                    f" until {claim.expires:%H:%M:%S}Z)"
                )
            continue
        if mine.overlaps(claim.scope):
            found.append(
                f"shard {claim.shard!r} ({claim.scope.describe()}) may serve the same agents as"
                f" this one ({mine.describe()})"
            )
    return found


class ShardConflict(Exception):
    """Another live operator's share could overlap this one's: serving would fight."""


class ShardClaim:
    """This operator's claim on its share: checked against the others, then held in a Lease
    renewed every third of its duration, and let go on a clean shutdown."""

    def __init__(
        self,
        kube: Kube,
        shard: str,
        scope: Scope,
        namespace: str,
        holder: str,
        duration_seconds: int = 30,
    ) -> None:
        self.kube, self.shard, self.scope = kube, shard, scope
        self.namespace, self.holder, self.duration = namespace, holder, duration_seconds
        self.acquired = datetime.datetime.now(datetime.UTC)

    @property
    def ref(self) -> Ref:
        return LEASES.ref(self.namespace, LEASE_PREFIX + self.shard)

    async def _claims(self) -> list[Claim]:
        listed = await self.kube.list(LEASES.ref(self.namespace))
        return [claim for lease in listed if (claim := claim_of(lease)) is not None]

    async def _write(self, renew: datetime.datetime) -> None:
        lease = LEASES.body(
            metadata={
                "name": self.ref.name,
                "namespace": self.namespace,
                "labels": {c.LABEL_PART_OF: c.PART_OF},
                "annotations": {ANNOTATION_SCOPE: self.scope.to_json()},
            },
            spec={
                "holderIdentity": self.holder,
                "leaseDurationSeconds": self.duration,
                "acquireTime": timestamps.format_micro_time(self.acquired),
                "renewTime": timestamps.format_micro_time(renew),
            },
        )
        await self.kube.apply(lease, LEASES.plural, None)

    async def acquire(self, settle_seconds: float = 1.0) -> None:
        """Claim the share, or raise ShardConflict naming who already serves it."""
        now = datetime.datetime.now(datetime.UTC)
        found = conflicts(self.scope, self.shard, self.holder, await self._claims(), now)
        if found:
            raise ShardConflict("; ".join(found))
        self.acquired = now
        await self._write(now)
        # Two operators that started at the same moment both passed the check: after a
        # moment each sees the other, and the one that claimed later steps back.
        await asyncio.sleep(settle_seconds)
        now = datetime.datetime.now(datetime.UTC)
        others = [cl for cl in await self._claims() if cl.shard != self.shard]
        earlier = [cl for cl in others if cl.acquired is not None and cl.acquired < self.acquired]
        found = conflicts(self.scope, self.shard, self.holder, earlier, now)
        if found:
            await self.release()
            raise ShardConflict("; ".join(found))

    async def renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.duration / 3)
            try:
                await self._write(datetime.datetime.now(datetime.UTC))
            except ApiError:
                log.warning("could not renew the shard Lease %s", self.ref.name, exc_info=True)

    async def release(self) -> None:
        """Let the claim lapse at once, so a replacement operator can start."""
        expired = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
        try:
            await self._write(expired)
        except ApiError:
            log.warning("could not release the shard Lease %s", self.ref.name, exc_info=True)
