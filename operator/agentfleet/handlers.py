"""kopf glue: watch AIAgents and their children, keep caches, feed keys to the controller.

Only `@kopf.index` and `@kopf.on.event` handlers are used on purpose: with them kopf writes
nothing to the objects (no finalizers, no last-handled-configuration annotations, no
progress in status), so an idle fleet costs zero API writes and deletes never wait on us.
"""

from __future__ import annotations

from typing import Any

import kopf
import prometheus_client

from agentfleet import constants as c
from agentfleet import kube
from agentfleet.controller import Controller, OperatorConfig
from agentfleet.reconciler import Key, Reconciler

# kopf's positional resource selectors of the children, by kind.
CHILD_RESOURCES = {
    "ServiceAccount": ("v1", "serviceaccounts"),
    "Service": ("v1", "services"),
    "Deployment": ("apps/v1", "deployments"),
}
OURS = {c.LABEL_MANAGED_BY: c.MANAGED_BY}


def _trimmed(body: kopf.Body) -> dict[str, Any]:
    """What the caches keep of an object: everything but managedFields (large, unused)."""
    raw = dict(body)
    raw["metadata"] = {k: v for k, v in body["metadata"].items() if k != "managedFields"}
    return raw


def owner_key(body: kopf.Body | dict[str, Any]) -> Key | None:
    """The AIAgent that controls this object, if any."""
    for ref in body["metadata"].get("ownerReferences") or []:
        group = ref.get("apiVersion", "").split("/")[0]
        if ref.get("controller") and ref.get("kind") == c.KIND and group == c.GROUP:
            return (body["metadata"]["namespace"], ref["name"])
    return None


@kopf.index(c.GROUP, c.VERSION, c.PLURAL)
def agent_index(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Key, Any]:
    return {(namespace or "", name): _trimmed(body)}


def _child_index(body: kopf.Body, **_: Any) -> dict[Key, Any] | None:
    key = owner_key(body)
    return {key: _trimmed(body)} if key else None


# One index per child kind, each named (and so passed to handlers) as `<kind>_index`.
for _kind, _selector in CHILD_RESOURCES.items():
    kopf.index(*_selector, id=f"{_kind.lower()}_index", labels=OURS)(_child_index)


@kopf.index("v1", "namespaces")
def namespace_index(name: str, body: kopf.Body, **_: Any) -> dict[str, bool]:
    """Namespace name -> is it being deleted."""
    return {name: bool(body["metadata"].get("deletionTimestamp"))}


class IndexCache:
    """The reconciler's read-only view over kopf's in-memory indices."""

    def __init__(
        self,
        agents: kopf.Index[Key, dict[str, Any]],
        children: dict[str, kopf.Index[Key, dict[str, Any]]],
        namespaces: kopf.Index[str, bool],
    ) -> None:
        self.agents = agents
        self.children = children
        self.namespaces = namespaces

    def agent(self, key: Key) -> dict[str, Any] | None:
        return next(iter(self.agents.get(key, [])), None)

    def owned(self, kind: str, key: Key) -> list[dict[str, Any]]:
        return list(self.children[kind].get(key, []))

    def namespace_terminating(self, namespace: str) -> bool:
        return any(self.namespaces.get(namespace, []))


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Configure kopf, start metrics and the workers. kopf passes each index as a keyword
    argument named after it (agent_index, service_index, ...), empty until listed."""
    config: OperatorConfig = memo.get("config") or OperatorConfig()
    # kopf would post every handler log line as a Kubernetes Event: a write per event.
    # The operator posts its own Warning Events (on entering Stalled) instead.
    settings.posting.enabled = False
    settings.networking.request_timeout = 60
    settings.watching.server_timeout = 300
    if config.metrics_port:
        prometheus_client.start_http_server(config.metrics_port, config.metrics_address)
    api = await kube.connect()
    children = {kind: kwargs[f"{kind.lower()}_index"] for kind in CHILD_RESOURCES}
    cache = IndexCache(kwargs["agent_index"], children, kwargs["namespace_index"])
    reconciler = Reconciler(kube.Kube(api), cache, config.cluster_domain)
    controller = Controller(reconciler, workers=config.workers)
    controller.start()
    memo["api"] = api
    memo["controller"] = controller


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo["controller"].stop()
    await memo["api"].close()


@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL)
def agent_changed(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    memo["controller"].queue.add((namespace or "", name))


def _child_changed(type: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A child changed or vanished: its owner may need a repair or a status update."""
    key = owner_key(body)
    if key:
        controller = memo["controller"]
        controller.reconciler.observe_child(type, body)
        controller.queue.add(key)


for _kind, _selector in CHILD_RESOURCES.items():
    kopf.on.event(*_selector, id=f"{_kind.lower()}_changed", labels=OURS)(_child_changed)
