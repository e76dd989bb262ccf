"""Every write the operator makes to the API server goes through here.

Server-side apply with one field manager for children, a merge patch of the status
subresource for the AIAgent, and deletes of children we no longer want. Each call is
counted (agentfleet_api_writes_total) so "no write when nothing changed" is measurable.
"""

from __future__ import annotations

import datetime
import json
import logging
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from agentfleet import constants as c
from agentfleet import metrics

log = logging.getLogger(__name__)

# Plural resource names of every kind the operator writes.
PLURALS = {
    ("v1", "ServiceAccount"): "serviceaccounts",
    ("v1", "Service"): "services",
    ("apps/v1", "Deployment"): "deployments",
    ("v1", "Event"): "events",
    (c.API_VERSION, c.KIND): c.PLURAL,
}

# 4xx answers that no retry can fix: the object itself is wrong.
_PERMANENT_STATUSES = {400, 403, 404, 422}


class Rejected(Exception):
    """The API server refused an object for a reason only a spec change can fix."""

    def __init__(
        self, kind: str, name: str, status: int, message: str, causes: frozenset[str] = frozenset()
    ) -> None:
        super().__init__(f"{kind} {name} was rejected by the API server ({status}): {message}")
        self.message = message
        self.status = status
        self.causes = causes  # metav1.StatusCause reasons, e.g. NamespaceTerminating

    @property
    def namespace_terminating(self) -> bool:
        """The whole namespace is being deleted: nothing can or should be created in it."""
        return "NamespaceTerminating" in self.causes


@dataclass(frozen=True)
class Ref:
    api_version: str
    kind: str
    namespace: str
    name: str

    @classmethod
    def of(cls, obj: dict[str, Any]) -> Ref:
        meta = obj["metadata"]
        return cls(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])

    @property
    def collection_path(self) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{base}/namespaces/{self.namespace}/{PLURALS[(self.api_version, self.kind)]}"

    @property
    def path(self) -> str:
        return f"{self.collection_path}/{self.name}"


async def connect() -> client.ApiClient:
    """In a Pod use its ServiceAccount, elsewhere $KUBECONFIG (or ~/.kube/config)."""
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config()
    return client.ApiClient()


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    async def _request(
        self,
        method: str,
        ref: Ref,
        path: str,
        body: Any,
        content_type: str,
        query: list[tuple[str, str]],
    ) -> dict[str, Any]:
        verb = method.lower() if method != "PATCH" else _verb(content_type)
        metrics.API_WRITES.labels(verb, ref.kind).inc()
        log.debug("write: %s %s %s/%s", verb, ref.kind, ref.namespace, ref.name)
        try:
            response = await self.api.call_api(
                path,
                method,
                query_params=query,
                body=body,
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                response_types_map={200: "object", 201: "object", 202: "object"},
            )
            return dict(response or {})
        except ApiException as error:
            if error.status in _PERMANENT_STATUSES:
                message, causes = _details(error)
                raise Rejected(ref.kind, ref.name, error.status, message, causes) from error
            raise

    async def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply; force, because every field in `obj` is ours to own."""
        ref = Ref.of(obj)
        query = [("fieldManager", c.FIELD_MANAGER), ("force", "true")]
        return await self._request(
            "PATCH", ref, ref.path, obj, "application/apply-patch+yaml", query
        )

    async def repair(self, obj: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch of the whole object: lists are replaced, not merged.

        Server-side apply cannot remove list entries another manager added (a Service port
        someone re-keyed with `kubectl patch` stays and duplicates ours); this can."""
        ref = Ref.of(obj)
        query = [("fieldManager", c.FIELD_MANAGER)]
        return await self._request(
            "PATCH", ref, ref.path, obj, "application/merge-patch+json", query
        )

    async def post_event(self, body: dict[str, Any], reason: str, message: str) -> None:
        """A Warning Event on the AIAgent, for `kubectl describe` and `kubectl get events`."""
        meta = body["metadata"]
        event_time = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": c.API_VERSION,
                "kind": c.KIND,
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": "Warning",
            "reason": reason,
            "message": message[:1024],
            "source": {"component": c.FIELD_MANAGER},
            "reportingComponent": c.FIELD_MANAGER,
            "firstTimestamp": event_time,
            "lastTimestamp": event_time,
            "count": 1,
        }
        ref = Ref("v1", "Event", meta["namespace"], "")
        await self._request("POST", ref, ref.collection_path, event, "application/json", [])

    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        ref = Ref(c.API_VERSION, c.KIND, namespace, name)
        query = [("fieldManager", c.FIELD_MANAGER)]
        return await self._request(
            "PATCH",
            ref,
            ref.path + "/status",
            {"status": status},
            "application/merge-patch+json",
            query,
        )

    async def delete(self, ref: Ref, uid: str) -> None:
        """Delete a child, but only the very object we saw (a precondition on its uid)."""
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"uid": uid},
            "propagationPolicy": "Background",
        }
        try:
            await self._request("DELETE", ref, ref.path, body, "application/json", [])
        except Rejected as gone:
            if gone.status != 404:
                raise


def _verb(content_type: str) -> str:
    return "apply" if content_type == "application/apply-patch+yaml" else "patch"


def _details(error: ApiException) -> tuple[str, frozenset[str]]:
    """The human message and the cause reasons of a metav1.Status error body."""
    try:
        status = json.loads(error.body or "")
    except (TypeError, ValueError):
        return str(error.reason), frozenset()
    causes = (status.get("details") or {}).get("causes") or []
    reasons = frozenset(str(cause.get("reason")) for cause in causes if cause.get("reason"))
    return str(status.get("message") or error.reason), reasons
