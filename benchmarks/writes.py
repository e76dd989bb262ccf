"""What the API server counted in a window: the operator's writes, every identity's requests,
the watch events it sent, and the CPU the control plane spent.

`apiserver_request_total` counts every client's requests by verb and resource (dry runs,
which the harness's content audit sends, are left out). In the harness's windows only the
operator writes its children's kinds (no subresource) and AIAgent status, with two
exceptions: the Deployment and ReplicaSet controllers and the scheduler post Events at every
rollout, and KEDA updates the ScaledObjects it adopts (a finalizer). So the writes of each
identity are also counted by identity: FlowSchemas that match one ServiceAccount each (API
Priority and Fairness counts requests per FlowSchema in
`apiserver_flowcontrol_dispatched_requests_total`). For the operator: its Events, its other
writes, its reads; for the client (the user creating AIAgents, and the baseline): its
writes and its reads. All of them keep the priority level ServiceAccounts get anyway
(`workload-low`, like every ServiceAccount outside kube-system), so the operator and the
baseline compete for the API server in the same class. The operator's own
`agentfleet_api_writes_total` is the third count of its writes; the three must agree.

The same snapshot reads `apiserver_watch_events_total` / `apiserver_watch_events_sizes`
(what the API server sent to watchers: the fan-out) and the control plane's CPU from /proc
(controlplane.py), so each window shows what one write cost the cluster.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agentfleet.api import constants as c
from agentfleet.render.children import CHILD_KINDS
from benchmarks import controlplane
from benchmarks.identity import Identity
from benchmarks.kube import BenchError, ClusterAccess

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
# (group, resource, subresource) -> the column it is counted in: every kind the operator
# owns (render/children.py), and the AIAgents' status.
OPERATOR_RESOURCES = {
    **{(row.group, row.plural, ""): row.kind for row in CHILD_KINDS},
    (c.GROUP, c.PLURAL, "status"): "AIAgent/status",
}
# The kinds only the operator writes in a window (KEDA also updates ScaledObjects).
OPERATOR_ONLY = tuple(kind for kind in OPERATOR_RESOURCES.values() if kind != "ScaledObject")
EVENT_RESOURCES = frozenset({("", "events", ""), ("events.k8s.io", "events", "")})

REQUESTS_METRIC = "apiserver_request_total"
DISPATCHED_METRIC = "apiserver_flowcontrol_dispatched_requests_total"
WATCH_EVENTS_METRIC = "apiserver_watch_events_total"
WATCH_BYTES_METRIC = "apiserver_watch_events_sizes_sum"
APF_WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]
APF_READ_VERBS = ["get", "list", "watch"]
PREFIX = "agentfleet-bench"


def flow_names(role: str) -> dict[str, str]:
    """The FlowSchemas of one identity (`operator` or `client`), by what they count."""
    names = {"writes": f"{PREFIX}-{role}-writes", "reads": f"{PREFIX}-{role}-reads"}
    if role == "operator":
        names["events"] = f"{PREFIX}-operator-events"
    return names


def flow_schemas(role: str, identity: Identity) -> list[dict[str, Any]]:
    """FlowSchemas that count one identity's requests: Events (the operator's, told apart
    from the controllers'), other writes, reads."""

    def schema(name: str, precedence: int, verbs: list[str], resources: list[str]) -> Any:
        groups = ["", "events.k8s.io"] if resources == ["events"] else ["*"]
        reads = verbs == APF_READ_VERBS  # discovery and other paths are reads too
        return {
            "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
            "kind": "FlowSchema",
            "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "agentfleet"}},
            "spec": {
                # Below every built-in schema that could match a ServiceAccount outside
                # kube-system (service-accounts is 9000), above none that matters.
                "matchingPrecedence": precedence,
                "priorityLevelConfiguration": {"name": "workload-low"},
                "distinguisherMethod": {"type": "ByUser"},
                "rules": [
                    {
                        "subjects": [identity.subject],
                        "resourceRules": [
                            {
                                "verbs": verbs,
                                "apiGroups": groups,
                                "resources": resources,
                                "namespaces": ["*"],
                                "clusterScope": True,
                            }
                        ],
                        **(
                            {"nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}
                            if reads
                            else {}
                        ),
                    }
                ],
            },
        }

    names = flow_names(role)
    base = 8800 if role == "operator" else 8850
    schemas = []
    if "events" in names:
        schemas.append(schema(names["events"], base, APF_WRITE_VERBS, ["events"]))
    schemas.append(schema(names["writes"], base + 10, APF_WRITE_VERBS, ["*"]))
    schemas.append(schema(names["reads"], base + 20, APF_READ_VERBS, ["*"]))
    return schemas


@dataclass(frozen=True)
class Snapshot:
    at: float  # monotonic
    requests: dict[tuple[str, str, str, str], float]  # (group, resource, subresource, verb)
    dispatched: dict[str, float]  # flow schema -> requests
    watch_events: float
    watch_bytes: float
    cpu: dict[str, float]  # control-plane process -> CPU seconds so far
    harness_cpu: float  # the harness's own (its watches, audits, clients)


@dataclass
class WriteCount:
    """The operator's writes in one window."""

    by_resource: dict[str, int]  # the operator's kinds, from apiserver_request_total
    events_all_clients: int  # every client's Events (the controllers' rollout Events too)
    operator_events: int | None  # the operator's own Events, by identity
    identity_total: int | None  # every write of the operator's identity
    operator_metric: int | None = None  # agentfleet_api_writes_total, filled in by the caller
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """The operator's writes as the API server counted them: by identity when the
        FlowSchemas exist, else its kinds (without its Events)."""
        if self.identity_total is not None:
            return self.identity_total
        return sum(self.by_resource[kind] for kind in OPERATOR_ONLY)

    @property
    def consistent(self) -> bool:
        """The API server's per-resource count, its per-identity count and the operator's
        own counter agree (where each is available)."""
        per_resource = sum(self.by_resource[k] for k in OPERATOR_ONLY) + (self.operator_events or 0)
        counts = {per_resource, self.identity_total, self.operator_metric} - {None}
        return len(counts) == 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_resource": {k: v for k, v in self.by_resource.items() if v},
            "operator_events": self.operator_events,
            "events_all_clients": self.events_all_clients,
            "identity_total": self.identity_total,
            "operator_metric": self.operator_metric,
            "consistent": self.consistent,
            "notes": self.notes,
        }


@dataclass
class ServerCost:
    """What the API server handled and the control plane spent in one window."""

    seconds: float
    requests: int  # every client's requests (dry runs left out)
    writes: int  # every client's writes
    identities: dict[str, dict[str, int]]  # role -> {writes, reads[, events]}
    watch_events: int
    watch_bytes: int
    cpu: dict[str, float]  # control-plane process -> CPU seconds in the window
    harness_cpu: float

    @property
    def actor_writes(self) -> int:
        """The writes of the measured identities (operator and client): what the window's
        actors asked for; the controllers' and kwok's follow from them."""
        return sum(
            counts.get("writes", 0) + counts.get("events", 0) for counts in self.identities.values()
        )

    def as_dict(self) -> dict[str, Any]:
        apiserver = self.cpu.get("kube-apiserver")
        writes = self.actor_writes
        return {
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "writes": self.writes,
            "identities": self.identities,
            "actor_writes": writes,
            "watch_events": self.watch_events,
            "watch_mib": round(self.watch_bytes / 2**20, 2),
            "cpu_seconds": {name: round(value, 2) for name, value in self.cpu.items()},
            "control_plane_cpu_seconds": round(sum(self.cpu.values()), 2),
            "harness_cpu_seconds": round(self.harness_cpu, 2),
            "apiserver_cpu_ms_per_actor_write": (
                round(apiserver * 1000 / writes, 2) if apiserver is not None and writes else None
            ),
            "apiserver_cpu_ms_per_request": (
                round(apiserver * 1000 / self.requests, 3)
                if apiserver is not None and self.requests
                else None
            ),
            "watch_events_per_actor_write": round(self.watch_events / writes, 2)
            if writes
            else None,
        }


class Meter:
    def __init__(self, access: ClusterAccess, identities: dict[str, Identity]) -> None:
        self.access = access
        self.identities = identities  # role ("operator", "client") -> identity
        self.by_identity = False
        self.pids = controlplane.processes(access.kubeconfig)

    def install(self) -> None:
        """Install the FlowSchemas; without permission to, writes are counted by resource."""
        schemas = [s for role, who in self.identities.items() for s in flow_schemas(role, who)]
        proc = self.access.kubectl(
            "apply",
            "--server-side",
            "-f",
            "-",
            input="\n---\n".join(json.dumps(s) for s in schemas),
            check=False,
        )
        self.by_identity = proc.returncode == 0

    def uninstall(self) -> None:
        if self.by_identity:
            names = [n for role in self.identities for n in flow_names(role).values()]
            self.access.kubectl("delete", "flowschema", *names, "--ignore-not-found", check=False)

    def snapshot(self) -> Snapshot:
        cpu = controlplane.cpu_seconds(self.pids)
        harness_cpu = time.process_time()
        at = time.monotonic()
        text = self.access.get_raw("/metrics").decode()
        wanted = tuple(
            f"{name}{{"
            for name in (
                REQUESTS_METRIC,
                DISPATCHED_METRIC,
                WATCH_EVENTS_METRIC,
                WATCH_BYTES_METRIC,
            )
        )
        # The API server's /metrics is megabytes of histograms; parse only these counters.
        lines = "\n".join(line for line in text.splitlines() if line.startswith(wanted))
        requests: dict[tuple[str, str, str, str], float] = {}
        dispatched: dict[str, float] = {}
        watch_events = watch_bytes = 0.0
        for family in text_string_to_metric_families(lines + "\n"):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == REQUESTS_METRIC:
                    if labels.get("dry_run"):
                        continue  # the harness's content audit
                    key = (
                        labels.get("group", ""),
                        labels.get("resource", ""),
                        labels.get("subresource", ""),
                        labels.get("verb", ""),
                    )
                    requests[key] = requests.get(key, 0.0) + sample.value
                elif sample.name == DISPATCHED_METRIC:
                    flow = labels.get("flow_schema", "")
                    dispatched[flow] = dispatched.get(flow, 0.0) + sample.value
                elif sample.name == WATCH_EVENTS_METRIC:
                    watch_events += sample.value
                elif sample.name == WATCH_BYTES_METRIC:
                    watch_bytes += sample.value
        if not requests:
            raise BenchError(f"the API server's /metrics has no {REQUESTS_METRIC} samples")
        return Snapshot(at, requests, dispatched, watch_events, watch_bytes, cpu, harness_cpu)

    def between(self, before: Snapshot, after: Snapshot) -> WriteCount:
        """The operator's writes between two snapshots."""
        by_resource = dict.fromkeys(OPERATOR_RESOURCES.values(), 0)
        events = 0
        for key, value in after.requests.items():
            if key[3] not in WRITE_VERBS:
                continue
            delta = round(value - before.requests.get(key, 0.0))
            resource = key[:3]
            if resource in OPERATOR_RESOURCES:
                by_resource[OPERATOR_RESOURCES[resource]] += delta
            elif resource in EVENT_RESOURCES:
                events += delta
        operator_events = identity_total = None
        if self.by_identity and "operator" in self.identities:
            flows = self._flows(before, after, "operator")
            operator_events = flows["events"]
            identity_total = flows["events"] + flows["writes"]
        count = WriteCount(by_resource, events, operator_events, identity_total)
        if not self.by_identity:
            count.notes.append("no FlowSchemas: the operator's Events are not in the total")
        return count

    def cost(self, before: Snapshot, after: Snapshot) -> ServerCost:
        """What the API server handled and the control plane spent between two snapshots."""
        requests = writes = 0
        for key, value in after.requests.items():
            delta = round(value - before.requests.get(key, 0.0))
            requests += delta
            if key[3] in WRITE_VERBS:
                writes += delta
        identities = (
            {role: self._flows(before, after, role) for role in self.identities}
            if self.by_identity
            else {}
        )
        return ServerCost(
            seconds=after.at - before.at,
            requests=requests,
            writes=writes,
            identities=identities,
            watch_events=round(after.watch_events - before.watch_events),
            watch_bytes=round(after.watch_bytes - before.watch_bytes),
            cpu={
                name: after.cpu[name] - before.cpu[name] for name in after.cpu if name in before.cpu
            },
            harness_cpu=after.harness_cpu - before.harness_cpu,
        )

    def _flows(self, before: Snapshot, after: Snapshot, role: str) -> dict[str, int]:
        return {
            what: round(after.dispatched.get(flow, 0.0) - before.dispatched.get(flow, 0.0))
            for what, flow in flow_names(role).items()
        }
