"""What every scenario works with: the knobs, the cluster, the operator, the meters."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.fleet import RUN_LABEL, AgentTracker, agent_manifest, write_chunks
from benchmarks.kube import ClusterAccess
from benchmarks.operator_process import OperatorProcess
from benchmarks.writes import Snapshot, WriteCount, WriteMeter

Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchConfig:
    agents: int = 1000
    idle_seconds: float = 60.0  # the idle window in which the operator must write nothing
    probes: int = 10  # agents created one by one while the others converge (first-status time)
    probe_interval: float = 1.0
    late_fraction: float = 0.25  # agents added for the SIGKILL scenario, as a share of N
    kill_fraction: float = 0.2  # SIGKILL once this share of those has converged
    create_parallel: int = 4  # concurrent `kubectl apply --server-side` for agents and edits
    baseline_parallel: int = 1  # ... and for the baseline (1: one kubectl, as in issue 17)
    baseline_ready: bool = True  # also time the baseline Deployments to all available
    baseline: bool = True  # False: no baseline (no ratios; e.g. a second 10,000 run)
    quiet_seconds: float = 3.0  # "idle" = empty work queue and no reconcile for this long
    workers: int | None = None  # the operator's --workers (None: its default)
    operator_args: tuple[str, ...] = ()  # more `agentfleet run` flags (e.g. --agent-selector)
    agent_labels: tuple[tuple[str, str], ...] = ()  # more labels on every agent (e.g. a shard)
    extras: bool = True  # later rows: placement (mesh, KEDA when they land)
    # which of create, idle, restart, edit, kill run (in that order); create always runs
    scenarios: tuple[str, ...] = ("create", "idle", "restart", "edit", "kill")

    @property
    def timeout(self) -> float:
        """Upper bound for one wait; generous, a timeout is a failure to measure."""
        return 300 + 0.6 * self.agents

    @property
    def restart_timeout(self) -> float:
        """How long a restarted operator may take to be idle before the scenario fails:
        four times the 60 s target at 1,000 agents, 13 minutes at 10,000."""
        return 180 + 0.06 * self.agents

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Window:
    """The start of a measured stretch: the writes so far, the operator's CPU, the clock."""

    snapshot: Snapshot
    operator_writes: int
    cpu_seconds: float
    started: float


@dataclass
class Bench:
    access: ClusterAccess
    config: BenchConfig
    meter: WriteMeter
    operator: OperatorProcess
    tracker: AgentTracker
    namespace: str
    run_id: str
    workdir: Path
    log: Log
    agents: list[dict[str, Any]] = field(default_factory=list)  # the N agents of scenario 1
    probes: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [a["metadata"]["name"] for a in self.agents]

    @property
    def all_names(self) -> list[str]:
        return [*self.names, *self.probes, *self.late]

    def manifests(self, prefix: str, count: int, tag: str) -> list[dict[str, Any]]:
        return [
            agent_manifest(
                f"{prefix}-{i:05d}",
                self.namespace,
                i,
                {RUN_LABEL: self.run_id, **dict(self.config.agent_labels)},
                tag,
            )
            for i in range(count)
        ]

    def chunk_files(self, objects: list[dict[str, Any]], stem: str, parts: int) -> list[Path]:
        return write_chunks(objects, self.workdir / "manifests", stem, parts)

    def open_window(self) -> Window:
        return Window(
            self.meter.snapshot(),
            self.operator.writes(),
            self.operator.stats().cpu_seconds,
            time.monotonic(),
        )

    def writes_since(self, window: Window, operator_writes: int | None = None) -> WriteCount:
        """Writes from the window's start until now. `operator_writes` overrides the
        operator-counter delta when the process changed in between."""
        count = self.meter.between(window.snapshot, self.meter.snapshot())
        count.operator_metric = (
            operator_writes
            if operator_writes is not None
            else self.operator.writes() - window.operator_writes
        )
        return count

    def wait_idle(self, seen_at_least: int = 0, timeout: float | None = None) -> float:
        return self.operator.wait_idle(
            self.config.quiet_seconds, seen_at_least, timeout=timeout or self.config.timeout
        )
