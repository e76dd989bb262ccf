"""Count the operator's writes on the API server's own metrics.

`apiserver_request_total` counts every client's requests by verb and resource. In the
harness's measuring windows only the operator writes Deployments, Services and
ServiceAccounts (no subresource) and AIAgent status; the controller-manager writes
deployments/status, replicasets and pods, which are not counted. Events are different: the
Deployment and ReplicaSet controllers and the scheduler post them too during every rollout,
so the operator's own Events are told apart by identity, with a FlowSchema that matches
only the operator's ServiceAccount (API Priority and Fairness counts requests per
FlowSchema in `apiserver_flowcontrol_dispatched_requests_total`). A second FlowSchema
catches the operator's other writes, which gives a per-identity total to cross-check the
per-resource count and the operator's own `agentfleet_api_writes_total`. Both keep the
priority level that the operator's requests get anyway (`workload-low`, like every
ServiceAccount outside kube-system), so its share of the API server does not change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from agentfleet.api import constants as c
from benchmarks.kube import BenchError, ClusterAccess, OperatorIdentity

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE"})
# (group, resource, subresource) -> the column it is counted in.
OPERATOR_RESOURCES = {
    ("apps", "deployments", ""): "Deployment",
    ("", "services", ""): "Service",
    ("", "serviceaccounts", ""): "ServiceAccount",
    (c.GROUP, c.PLURAL, "status"): "AIAgent/status",
}
EVENT_RESOURCES = frozenset({("", "events", ""), ("events.k8s.io", "events", "")})

REQUESTS_METRIC = "apiserver_request_total"
DISPATCHED_METRIC = "apiserver_flowcontrol_dispatched_requests_total"
EVENTS_FLOW = "agentfleet-bench-operator-events"
WRITES_FLOW = "agentfleet-bench-operator-writes"
APF_WRITE_VERBS = ["create", "update", "patch", "delete", "deletecollection"]


def flow_schemas(identity: OperatorIdentity) -> list[dict[str, Any]]:
    """Two FlowSchemas for the operator's writes: Events, and everything else."""
    subject = {
        "kind": "ServiceAccount",
        "serviceAccount": {"name": identity.name, "namespace": identity.namespace},
    }

    def schema(name: str, precedence: int, groups: list[str], resources: list[str]) -> Any:
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
                        "subjects": [subject],
                        "resourceRules": [
                            {
                                "verbs": APF_WRITE_VERBS,
                                "apiGroups": groups,
                                "resources": resources,
                                "namespaces": ["*"],
                                "clusterScope": True,
                            }
                        ],
                    }
                ],
            },
        }

    return [
        schema(EVENTS_FLOW, 8800, ["", "events.k8s.io"], ["events"]),
        schema(WRITES_FLOW, 8810, ["*"], ["*"]),
    ]


@dataclass(frozen=True)
class Snapshot:
    requests: dict[tuple[str, str, str, str], float]  # (group, resource, subresource, verb)
    dispatched: dict[str, float]  # flow schema -> requests


@dataclass
class WriteCount:
    """Writes in one window."""

    by_resource: dict[str, int]  # the operator-only resources, from apiserver_request_total
    events_all_clients: int  # every client's Events (the controllers' rollout Events too)
    operator_events: int | None  # the operator's own Events, by identity
    identity_total: int | None  # every write of the operator's identity
    operator_metric: int | None = None  # agentfleet_api_writes_total, filled in by the caller
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """The operator's writes as the API server counted them (its Events only when they
        can be told apart by identity)."""
        return sum(self.by_resource.values()) + (self.operator_events or 0)

    @property
    def consistent(self) -> bool:
        """The API server's per-resource count, its per-identity count and the operator's
        own counter agree (where each is available)."""
        counts = {self.total, self.identity_total, self.operator_metric} - {None}
        return len(counts) == 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_resource": self.by_resource,
            "operator_events": self.operator_events,
            "events_all_clients": self.events_all_clients,
            "identity_total": self.identity_total,
            "operator_metric": self.operator_metric,
            "consistent": self.consistent,
            "notes": self.notes,
        }


class WriteMeter:
    def __init__(self, access: ClusterAccess, identity: OperatorIdentity) -> None:
        self.access = access
        self.identity = identity
        self.by_identity = False

    def install(self) -> None:
        """Install the FlowSchemas; without permission to, Events fall back to all clients."""
        proc = self.access.kubectl(
            "apply",
            "--server-side",
            "-f",
            "-",
            input="\n---\n".join(json.dumps(s) for s in flow_schemas(self.identity)),
            check=False,
        )
        self.by_identity = proc.returncode == 0

    def uninstall(self) -> None:
        if self.by_identity:
            self.access.kubectl(
                "delete", "flowschema", EVENTS_FLOW, WRITES_FLOW, "--ignore-not-found", check=False
            )

    def snapshot(self) -> Snapshot:
        text = self.access.get_raw("/metrics").decode()
        wanted = tuple(f"{name}{{" for name in (REQUESTS_METRIC, DISPATCHED_METRIC))
        # The API server's /metrics is megabytes of histograms; parse only the two counters.
        lines = "\n".join(line for line in text.splitlines() if line.startswith(wanted))
        requests: dict[tuple[str, str, str, str], float] = {}
        dispatched: dict[str, float] = {}
        for family in text_string_to_metric_families(lines + "\n"):
            for sample in family.samples:
                labels = sample.labels
                if sample.name == REQUESTS_METRIC and labels.get("verb") in WRITE_VERBS:
                    key = (
                        labels.get("group", ""),
                        labels.get("resource", ""),
                        labels.get("subresource", ""),
                        labels["verb"],
                    )
                    requests[key] = requests.get(key, 0.0) + sample.value
                elif sample.name == DISPATCHED_METRIC:
                    flow = labels.get("flow_schema", "")
                    dispatched[flow] = dispatched.get(flow, 0.0) + sample.value
        if not requests:
            raise BenchError(f"the API server's /metrics has no {REQUESTS_METRIC} write samples")
        return Snapshot(requests, dispatched)

    def between(self, before: Snapshot, after: Snapshot) -> WriteCount:
        by_resource = dict.fromkeys(OPERATOR_RESOURCES.values(), 0)
        events = 0
        for key, value in after.requests.items():
            delta = round(value - before.requests.get(key, 0.0))
            resource = key[:3]
            if resource in OPERATOR_RESOURCES:
                by_resource[OPERATOR_RESOURCES[resource]] += delta
            elif resource in EVENT_RESOURCES:
                events += delta
        operator_events = identity_total = None
        if self.by_identity:
            flows = {
                flow: round(after.dispatched.get(flow, 0.0) - before.dispatched.get(flow, 0.0))
                for flow in (EVENTS_FLOW, WRITES_FLOW)
            }
            operator_events = flows[EVENTS_FLOW]
            identity_total = flows[EVENTS_FLOW] + flows[WRITES_FLOW]
        count = WriteCount(by_resource, events, operator_events, identity_total)
        if not self.by_identity:
            count.notes.append("no FlowSchemas: the operator's Events are not in the total")
        return count
