"""The API server's own record of who wrote what, and when: its audit log.

The local control plane (dev/agentfleet_dev/cluster.py) logs, at Metadata level, every write
of a ServiceAccount outside kube-system: the operators under test, each with an identity of
its own. Counting there, not in the operators' own metrics, also counts what a replica sent
but should not have (and what it sent before it was killed)."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cluster

LEASES = "leases"


@dataclass(frozen=True)
class Write:
    user: str
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    code: int
    received: datetime.datetime
    body: str = ""  # what was written, where the audit policy keeps it (AIAgent status)

    @classmethod
    def of(cls, event: dict[str, Any]) -> Write:
        ref = event.get("objectRef") or {}
        return cls(
            user=str((event.get("user") or {}).get("username") or ""),
            verb=str(event.get("verb") or ""),
            resource=str(ref.get("resource") or ""),
            subresource=str(ref.get("subresource") or ""),
            namespace=str(ref.get("namespace") or ""),
            name=str(ref.get("name") or ""),
            code=int((event.get("responseStatus") or {}).get("code") or 0),
            received=_time(event["requestReceivedTimestamp"]),
            body=json.dumps(event.get("requestObject"), sort_keys=True)
            if event.get("requestObject")
            else "",
        )

    @property
    def succeeded(self) -> bool:
        return 200 <= self.code < 300


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def log_of(cluster: Cluster) -> Path:
    """The audit log of our local control plane (beside its kubeconfig); skips the test on
    a cluster whose API server we did not start."""
    path = Path(cluster.kubeconfig).parent / "logs" / "audit.log"
    if not path.exists():
        pytest.skip("counting writes per identity needs the local control plane's audit log")
    return path


def writes(path: Path, users: Iterable[str] | None = None) -> list[Write]:
    """Every audited write (of these users), in the order the API server received them."""
    wanted = set(users) if users is not None else None
    found = []
    for line in path.read_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed API server
        if event.get("stage") != "ResponseComplete":
            continue
        write = Write.of(event)
        if wanted is None or write.user in wanted:
            found.append(write)
    return sorted(found, key=lambda w: w.received)


def service_account(namespace: str, name: str) -> str:
    return f"system:serviceaccount:{namespace}:{name}"


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)
