"""What every scenario works with: the knobs, the cluster, the meters, the fleets."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentfleet.api.config import OperatorConfig
from benchmarks.fleet import RUN_LABEL, AgentTracker, ChildTracker, agent_manifest
from benchmarks.kube import ClusterAccess
from benchmarks.operator_process import OperatorProcess
from benchmarks.plain import PlainClient
from benchmarks.watch import Watches
from benchmarks.writes import Meter, ServerCost, Snapshot, WriteCount

Log = Callable[[str], None]
SCENARIOS = ("create", "idle", "restart", "edit", "kill")
FLEETS = ("gpu", "mesh", "keda")
_DEFAULTS = OperatorConfig()


@dataclass(frozen=True)
class BenchConfig:
    agents: int = 1000
    idle_seconds: float = 60.0  # the idle window in which the operator must write nothing
    probes: int = 10  # agents created one by one while the others converge (first-status time)
    probe_interval: float = 1.0
    late_fraction: float = 0.25  # agents added for the SIGKILL scenario, as a share of N
    kill_fraction: float = 0.2  # SIGKILL once this share of those has converged
    baseline: bool = True  # False: no baseline (no ratios)
    quiet_seconds: float = 3.0  # "idle" = empty work queue and no reconcile for this long
    workers: int | None = None  # the operator's --workers (None: its default)
    operator_args: tuple[str, ...] = ()  # more `agentfleet run` flags (e.g. --agent-selector)
    agent_labels: tuple[tuple[str, str], ...] = ()  # more labels on every agent (e.g. a shard)
    # which of create, idle, restart, edit, kill run (in that order); create always runs
    scenarios: tuple[str, ...] = SCENARIOS
    fleets: tuple[str, ...] = FLEETS  # the later rows: GPU burst, mesh, autoscaled
    # mesh agents in one namespace at each size: shared objects must not grow (e.g. 100, 10000)
    mesh_growth: tuple[int, ...] = ()
    main: bool = True  # False: only the later rows / the mesh growth (no main fleet)
    # The interpreter the operator runs with ("": the harness's own); `python -m benchmarks`
    # gives it a runtime-only environment (benchmarks/runtime_env.py).
    operator_python: str = ""

    @property
    def clients(self) -> int:
        """The operator's workers: the baseline's concurrent clients, and the clients that
        create and edit the AIAgents on both sides."""
        return self.workers or _DEFAULTS.workers

    @property
    def qps(self) -> float:
        """The operator's default client-side rate limit, which the client keeps too."""
        return _DEFAULTS.qps

    @property
    def burst(self) -> int:
        return _DEFAULTS.burst

    def timeout(self, agents: int | None = None) -> float:
        """Upper bound for one wait; generous, a timeout is a failure to measure."""
        return 300 + 0.6 * (agents or self.agents)

    @property
    def restart_timeout(self) -> float:
        """How long a restarted operator may take to be idle before the scenario fails:
        four times the 60 s target at 1,000 agents, 13 minutes at 10,000."""
        return 180 + 0.06 * self.agents

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clients": self.clients, "qps": self.qps, "burst": self.burst}


@dataclass
class Window:
    """The start of a measured stretch: the API server's counters, the operator's, the clock."""

    snapshot: Snapshot
    operator_writes: int
    cpu_seconds: float
    started: float


@dataclass
class Fleet:
    """One namespace of agents, the watches on it, and the operator serving it (if any)."""

    bench: Bench
    namespace: str
    flavour: str
    agents: AgentTracker
    children: ChildTracker
    operator: OperatorProcess | None = None
    manifests: list[dict[str, Any]] = field(default_factory=list)  # the N agents
    probes: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [a["metadata"]["name"] for a in self.manifests]

    @property
    def all_names(self) -> list[str]:
        return [*self.names, *self.probes, *self.late]

    @property
    def running(self) -> OperatorProcess:
        assert self.operator is not None, "this fleet has no operator"
        return self.operator

    def make(self, prefix: str, count: int, tag: str) -> list[dict[str, Any]]:
        labels = {RUN_LABEL: self.bench.run_id, **dict(self.bench.config.agent_labels)}
        return [
            agent_manifest(f"{prefix}-{i:05d}", self.namespace, i, labels, tag, self.flavour)
            for i in range(count)
        ]

    def open_window(self) -> Window:
        operator = self.operator
        running = operator is not None and operator.process is not None
        return Window(
            self.bench.meter.snapshot(),
            operator.writes() if running and operator else 0,
            operator.stats().cpu_seconds if running and operator else 0.0,
            time.monotonic(),
        )

    def close_window(
        self, window: Window, operator_writes: int | None = None
    ) -> tuple[WriteCount, ServerCost]:
        """Writes and costs from the window's start until now. `operator_writes` overrides
        the operator-counter delta when the process changed in between."""
        after = self.bench.meter.snapshot()
        count = self.bench.meter.between(window.snapshot, after)
        if self.operator is not None:
            count.operator_metric = (
                operator_writes
                if operator_writes is not None
                else self.operator.writes() - window.operator_writes
            )
        return count, self.bench.meter.cost(window.snapshot, after)

    def wait_idle(self, seen_at_least: int = 0, timeout: float | None = None) -> float:
        config = self.bench.config
        return self.running.wait_idle(
            config.quiet_seconds, seen_at_least, timeout=timeout or config.timeout()
        )

    def close(self) -> None:
        if self.operator is not None:
            self.operator.close()
        self.agents.stop()
        self.children.stop()


@dataclass
class Bench:
    """One run: the cluster, the identities' kubeconfigs, the meters."""

    access: ClusterAccess
    config: BenchConfig
    meter: Meter
    watches: Watches
    run_id: str
    workdir: Path
    log: Log
    operator_kubeconfig: Path
    client_kubeconfig: Path

    @property
    def client(self) -> PlainClient:
        """The user: creates and edits AIAgents, and is the baseline."""
        return PlainClient(self.client_kubeconfig, self.config.qps, self.config.burst)

    def fleet(self, suffix: str, flavour: str = "plain", operator: bool = True) -> Fleet:
        """A new namespace with its watches, and an operator (not started yet) if asked."""
        namespace = f"bench-{self.run_id}-{suffix}"
        self.access.create_namespace(namespace, {RUN_LABEL: self.run_id})
        agents = AgentTracker(self.watches, namespace, self.log)
        children = ChildTracker(self.watches, self.access, namespace)
        agents.start()
        children.start()
        process = None
        if operator:
            process = OperatorProcess(
                self.operator_kubeconfig,
                self.workdir / f"operator-{suffix}.log",
                workers=self.config.workers,
                args=self.config.operator_args,
                python=self.config.operator_python,
            )
        return Fleet(self, namespace, flavour, agents, children, process)

    def drop(self, fleet: Fleet) -> None:
        """Stop the fleet's operator and watches and delete its namespace, waiting until it
        is gone so that the garbage collector's work stays out of the next window."""
        fleet.close()
        self.access.delete_namespaces(f"kubernetes.io/metadata.name={fleet.namespace}")
