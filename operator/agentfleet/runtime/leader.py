"""Leader election: several replicas, one writer (client-go's leaderelection, on a Lease).

Replicas started with `--leader-elect` all watch and keep their caches current (kopf's
indices, the child informers, the placement books); only the holder of a
`coordination.k8s.io/v1` Lease reconciles, places GPUs, writes status and claims shards. A
follower's work queue already holds every agent, so a take-over costs no re-list: its first
reconciles find nothing to change and write nothing.

client-go's rules, with its defaults (lease duration 15 s, renew deadline 10 s, retry 2 s):
- A candidate tries every retry period. It takes the Lease when nobody holds it, or when the
  record it reads has not changed for a lease duration *on its own clock*: the holder's
  renewTime is never compared with the local clock, so skewed clocks cannot make two leaders.
  Every write of the Lease carries the resourceVersion read (optimistic concurrency): of two
  candidates one wins, the other gets 409.
- The leader renews every retry period, and may write only while its last successful renewal
  was *sent* less than a renew deadline ago. Every write asks that right before it is sent
  (a gate of kube.client.Kube), not a timer: a process that was frozen (SIGSTOP, a stalled
  node) and wakes up past its deadline sends nothing. A follower takes over a lease duration
  after the last change it saw, and it saw that change after the renewal had been sent: the
  old leader has stopped writing at least 5 s before the new one may start.
- A clean stop (SIGTERM) stops the work, then releases the Lease (ReleaseOnCancel): the
  follower takes over at its next try, not a lease duration later.

Two departures from client-go, both on the safe side:
- A leader whose renewals fail past the deadline stops writing at once and keeps trying. If
  it then finds the Lease held by another replica, it exits non-zero (client-go's behaviour:
  the kubelet restarts it, as a follower). If it finds the Lease still its own, nobody else
  can have led meanwhile (taking over changes the holder, and the renewal carries the
  resourceVersion it read), so it renews and writes again: an API server or etcd outage
  longer than the renew deadline does not restart the operator.
- A candidate whose read of the Lease fails forgets what it had seen, so it takes over only
  after a lease duration of successful reads showing the same record. After an outage the
  old leader, which renews at its first successful try, keeps the Lease instead of racing
  the followers for it.

kopf's own peering (KopfPeering objects, priorities) pauses whole operators and has no
renew deadline; kubernetes_asyncio's elector uses the wall clock, has no per-request
timeouts, no release and no way to stop writes at the deadline. Hence this small one.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agentfleet.api import constants as c
from agentfleet.kube.client import ApiError, Kube, Ref
from agentfleet.telemetry import metrics

log = logging.getLogger(__name__)
LEASE_API = "coordination.k8s.io/v1"


def identity() -> str:
    """$POD_NAME in a Pod (unique among running Pods, stable across container restarts);
    elsewhere the host name and a random suffix, as controller-runtime does."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4().hex[:10]}"


def micro_time(when: datetime.datetime) -> str:
    """A metav1.MicroTime."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Timing:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0


@dataclass(frozen=True)
class Record:
    """What a Lease says about its holder (client-go's LeaderElectionRecord), and the
    resourceVersion it was read at (not part of the comparison)."""

    holder: str
    lease_duration_seconds: int
    acquire_time: str
    renew_time: str
    transitions: int
    resource_version: str = ""

    @classmethod
    def of(cls, lease: dict[str, Any]) -> Record:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=str(spec.get("acquireTime") or ""),
            renew_time=str(spec.get("renewTime") or ""),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str((lease.get("metadata") or {}).get("resourceVersion") or ""),
        )

    def same(self, other: Record | None) -> bool:
        """The same record, whatever version it was read at."""
        return other is not None and self.spec() == other.spec()

    def spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


class LeaderElector:
    """One replica's candidacy. `leading` is set while it may write; `refused` is the write
    gate every client of this replica asks before it sends a write."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing = Timing(),
        on_lost: Callable[[str], None] = lambda why: None,
        on_started: Callable[[], Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.kube = kube
        self.ref = Ref(LEASE_API, "leases", namespace, name, "Lease")
        self.identity = identity
        self.timing = timing
        self.on_lost = on_lost
        self.on_started = on_started
        self.clock, self.wall = clock, wall
        self.leading = asyncio.Event()
        self.held = False  # this replica holds the Lease (it may be past its deadline)
        self.renewed_at: float | None = None  # clock() when the last good renewal was sent
        self.leading_since: float | None = None
        self.observed: Record | None = None  # the last record read or written
        self.observed_at = 0.0  # clock() when it was first seen
        self.stopped = False
        self._started_once = False
        self._task: asyncio.Task[None] | None = None
        metrics.LEADER.labels(identity).set(0)

    # --- what the rest of the process asks ------------------------------------------------

    def refused(self) -> str | None:
        """None while this replica may write, else why not: the write gate."""
        if not self.held or self.renewed_at is None:
            return f"this replica ({self.identity}) is not the leader"
        late = self.clock() - self.renewed_at
        if late >= self.timing.renew_deadline:
            return (
                f"the leader Lease was last renewed {late:.1f}s ago, past the"
                f" {self.timing.renew_deadline:g}s renew deadline"
            )
        return None

    def is_leader(self) -> bool:
        """Leading: holding a live Lease, and the work started (`leading` is what the
        workers wait for; it is set once on_started, e.g. the shard claim, is done)."""
        return self.leading.is_set() and self.refused() is None

    def leading_for(self) -> float:
        """Seconds this replica has been leading without a break (0 when it is not)."""
        if self.leading_since is None or not self.is_leader():
            return 0.0
        return self.clock() - self.leading_since

    def describe(self) -> dict[str, Any]:
        """For /readyz: who this is, whether it leads, and who does as far as it knows."""
        return {
            "identity": self.identity,
            "leader": self.is_leader(),
            "holder": self.observed.holder if self.observed else None,
            "lease": f"{self.ref.namespace}/{self.ref.name}",
        }

    # --- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="leader-election")

    async def run(self) -> None:
        """Try every retry period, at a steady cadence, until stopped or lost."""
        while not self.stopped:
            began = self.clock()
            try:
                await self.try_acquire_or_renew()
            except asyncio.CancelledError:
                raise
            except Exception:  # the candidacy must outlive any one bad answer
                log.exception("leader election: unexpected failure; trying again")
            if self.stopped:
                return
            self._check_deadline()
            await asyncio.sleep(max(0.0, self.timing.retry_period - (self.clock() - began)))

    async def try_acquire_or_renew(self) -> bool:
        """One try: read the Lease, then create, take over or renew it. True when this
        replica holds a freshly renewed Lease."""
        sent = self.clock()  # the renewal counts from before it was asked for
        try:
            lease = await self.kube.get(self.ref)
        except ApiError as error:
            self.observed = None  # unseen time does not count towards a take-over
            log.warning("leader election: cannot read Lease %s: %s", self.ref.name, error)
            return False
        if lease is None:
            return await self._write(self._next(None), sent, create=True)
        record = Record.of(lease)
        if not record.same(self.observed):
            self.observed_at = self.clock()
        self.observed = record
        if record.holder and record.holder != self.identity:
            if self.held:
                self._lose(f"the leader Lease is now held by {record.holder}")
                return False
            if self.clock() - self.observed_at < self.timing.lease_duration:
                return False  # held by a live leader
            log.info(
                "leader election: %s did not renew the Lease for %.0fs; taking over",
                record.holder,
                self.clock() - self.observed_at,
            )
        return await self._write(self._next(record), sent)

    def _next(self, current: Record | None) -> Record:
        """The record that renews (same holder: acquireTime and transitions kept) or takes
        over (one transition more) the current one, at its resourceVersion."""
        now = micro_time(self.wall())
        duration = int(self.timing.lease_duration)
        if current is None:
            return Record(self.identity, duration, now, now, 0)
        if current.holder == self.identity:
            acquired, transitions = current.acquire_time or now, current.transitions
        else:
            acquired, transitions = now, current.transitions + 1
        return Record(self.identity, duration, acquired, now, transitions, current.resource_version)

    def _lease(self, record: Record) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.ref.name,
            "namespace": self.ref.namespace,
            "labels": {c.LABEL_PART_OF: c.PART_OF},
        }
        if record.resource_version:
            metadata["resourceVersion"] = record.resource_version
        return {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": metadata,
            "spec": record.spec(),
        }

    async def _write(self, record: Record, sent: float, create: bool = False) -> bool:
        try:
            if create:
                written = await self.kube.create(self._lease(record), "leases")
            else:
                written = await self.kube.replace(self._lease(record), "leases")
        except ApiError as error:
            if error.status == 409:
                log.info("leader election: another replica wrote the Lease first")
            else:
                log.warning("leader election: cannot write Lease %s: %s", self.ref.name, error)
            return False
        self.observed = Record.of(written)
        self.observed_at = self.clock()
        self.renewed_at = sent
        if not self.held:
            self.held = True
            log.info(
                "leader election: %s now leads (Lease %s/%s)",
                self.identity,
                self.ref.namespace,
                self.ref.name,
            )
        if not self.leading.is_set() and self.refused() is None:
            # (A renewal that took longer than the deadline to be answered does not count:
            # the next one, sent now, will.)
            await self._begin()
        return True

    async def _begin(self) -> None:
        """Start the work: the first time after on_started (e.g. claiming the shard), later
        (after an outage, the Lease still ours) at once."""
        if self._started_once:
            log.warning(
                "leader election: renewed the Lease after an outage; nobody else led"
                " meanwhile, so writing again"
            )
        else:
            self._started_once = True
            if self.on_started is not None:
                try:
                    await self.on_started()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    self._lose(f"could not start leading: {error}")
                    return
        self.leading_since = self.clock()
        self.leading.set()
        metrics.LEADER.labels(self.identity).set(1)

    def _check_deadline(self) -> None:
        """Past the renew deadline: stop writing now (the gate already refuses), and say so."""
        if self.leading.is_set() and self.refused() is not None:
            self.leading.clear()
            metrics.LEADER.labels(self.identity).set(0)
            log.error(
                "leader election: %s; stopped writing, still trying to renew",
                self.refused(),
            )

    def _lose(self, why: str) -> None:
        self.held = False
        self.leading.clear()
        self.stopped = True
        metrics.LEADER.labels(self.identity).set(0)
        log.error("leader election: lost leadership: %s", why)
        self.on_lost(why)

    # --- stopping -------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop trying; the Lease stays as it is (see release)."""
        self.stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def release(self) -> None:
        """Give the Lease up once the work has stopped (client-go's ReleaseOnCancel): a
        follower takes over at its next try instead of a lease duration later."""
        await self.stop()
        if not self.held or self.observed is None:
            return
        self.held = False
        self.leading.clear()
        metrics.LEADER.labels(self.identity).set(0)
        now = micro_time(self.wall())
        released = Record(
            "", 1, now, now, self.observed.transitions, self.observed.resource_version
        )
        try:
            await self.kube.replace(self._lease(released), "leases")
            log.info("leader election: released Lease %s", self.ref.name)
        except ApiError as error:  # someone else holds it by now, or the API is away
            log.warning("leader election: could not release Lease %s: %s", self.ref.name, error)


class SoleReplica:
    """Without --leader-elect: the one replica always leads (the make demo / local case)."""

    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.leading = asyncio.Event()
        self.leading.set()
        self.started = time.monotonic()
        metrics.LEADER.labels(identity).set(1)

    def refused(self) -> str | None:
        return None

    def is_leader(self) -> bool:
        return True

    def leading_for(self) -> float:
        return time.monotonic() - self.started

    def describe(self) -> dict[str, Any]:
        return {"identity": self.identity, "leader": True, "holder": None, "lease": None}


Leadership = LeaderElector | SoleReplica
