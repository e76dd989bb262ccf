"""Prometheus metrics of the operator, named like controller-runtime's so dashboards carry over."""

from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

CONTROLLER = "aiagent"

RECONCILE_TOTAL = Counter(
    "controller_runtime_reconcile_total",
    "Total number of reconciliations per controller and result.",
    ["controller", "result"],
)
RECONCILE_ERRORS = Counter(
    "controller_runtime_reconcile_errors_total",
    "Total number of reconciliation errors per controller.",
    ["controller"],
)
RECONCILE_TIME = Histogram(
    "controller_runtime_reconcile_time_seconds",
    "Length of time per reconciliation per controller.",
    ["controller"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ACTIVE_WORKERS = Gauge(
    "controller_runtime_active_workers",
    "Number of currently used workers per controller.",
    ["controller"],
)
MAX_CONCURRENT = Gauge(
    "controller_runtime_max_concurrent_reconciles",
    "Maximum number of concurrent reconciles per controller.",
    ["controller"],
)
WORKQUEUE_DEPTH = Gauge("workqueue_depth", "Current depth of workqueue.", ["name"])
WORKQUEUE_ADDS = Counter(
    "workqueue_adds_total", "Total number of adds handled by workqueue.", ["name"]
)
WORKQUEUE_RETRIES = Counter(
    "workqueue_retries_total", "Total number of retries handled by workqueue.", ["name"]
)

# Ours: every request that changes (or could change) cluster state, by verb and kind.
# The zero-writes-when-idle promise is checked against this counter.
API_WRITES = Counter(
    "agentfleet_api_writes_total",
    "Write requests sent to the Kubernetes API server, by verb and kind.",
    ["verb", "kind"],
)
API_READS = Counter(
    "agentfleet_api_reads_total",
    "Read requests sent to the Kubernetes API server outside the watches, by kind.",
    ["kind"],
)
PLACEMENT_DECISION = Histogram(
    "agentfleet_placement_decision_seconds",
    "Time to decide one Pod's node and GPUs from the placement ledger (no API call).",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
WATCH_CONNECTED = Gauge(
    "agentfleet_watch_last_connected_timestamp_seconds",
    "When a watch request for this resource was last answered by the API server.",
    ["resource"],
)
WATCH_FAILURES = Counter(
    "agentfleet_watch_failures_total",
    "Watch requests that failed or got no answer, by resource.",
    ["resource"],
)

# client-go's leader election exports `leader_election_master_status{name}`; ours says which
# replica (its identity) leads: 1 while it may write, 0 while it follows or stopped writing.
LEADER = Gauge(
    "agentfleet_leader",
    "1 while this replica holds the leader Lease and may write, else 0.",
    ["identity"],
)
WRITES_REFUSED = Counter(
    "agentfleet_api_writes_refused_total",
    "Writes not sent because this replica was not entitled to write (not the leader, or a"
    " Lease past its renew deadline).",
    ["kind"],
)


class AgentConditions:
    """`agentfleet_agents{condition,status}`: how many agents are Ready, Stalled ...,
    counted from the operator's cache at scrape time (the operator sets `count`)."""

    def __init__(self) -> None:
        self.count: Callable[[], dict[tuple[str, str], int]] = dict

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "agentfleet_agents",
            "AIAgents served by this operator, by summary condition and status.",
            labels=["condition", "status"],
        )

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        for (condition, status), count in sorted(self.count().items()):
            family.add_metric([condition, status], count)
        yield family


AGENTS = AgentConditions()
REGISTRY.register(AGENTS)
