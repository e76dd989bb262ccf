"""Every request the operator sends to the API server goes through here.

Server-side apply with one field manager for children (with the child's uid as a
precondition once we know it), a JSON merge patch of the status subresource, reads, deletes
and Events. Each call has connect and total timeouts and waits for a token of a client-side
rate limit; each write is counted (agentfleet_api_writes_total), so "no write when nothing
changed" is measurable. Failures become one exception type, ApiError, that says whether a
retry can help.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from agentfleet.api import constants as c
from agentfleet.telemetry import metrics

log = logging.getLogger(__name__)


class ApiError(Exception):
    """The API server refused a request, or could not be reached (status 0)."""

    def __init__(
        self,
        kind: str,
        name: str,
        status: int,
        message: str,
        reason: str = "",
        causes: frozenset[str] = frozenset(),
        fields: frozenset[str] = frozenset(),
    ) -> None:
        where = f"{kind} {name}".strip()
        answer = f"({status})" if status else "(unreachable)"
        super().__init__(f"{where} was rejected by the API server {answer}: {message}")
        self.kind = kind
        self.name = name
        self.status = status
        self.message = message
        self.reason = reason  # metav1.Status reason, e.g. Invalid, Forbidden, NotFound
        self.causes = causes  # metav1.StatusCause reasons, e.g. NamespaceTerminating
        self.fields = fields  # metav1.StatusCause fields, e.g. metadata.uid

    @property
    def namespace_terminating(self) -> bool:
        """The whole namespace is being deleted: nothing can or should be created in it."""
        return "NamespaceTerminating" in self.causes

    @property
    def quota_exceeded(self) -> bool:
        return self.status == 403 and "exceeded quota" in self.message

    @property
    def unserved(self) -> bool:
        """404 for the resource type itself (its CRD is not installed), not for one object:
        the API server answers that with a plain-text 404, not a metav1.Status."""
        return self.status == 404 and not self.reason

    @property
    def uid_mismatch(self) -> bool:
        """Our uid precondition failed: the object was deleted (409, "uid mismatch"), or
        replaced by another one of the same name (422: the uid we sent would change its
        immutable metadata.uid)."""
        deleted = self.status == 409 and "uid mismatch" in self.message
        return deleted or (self.status == 422 and "metadata.uid" in self.fields)

    @property
    def transient(self) -> bool:
        """The same request may succeed later without anyone changing anything."""
        return self.status in (0, 409, 429) or self.status >= 500


@dataclass(frozen=True)
class Ref:
    api_version: str
    plural: str
    namespace: str
    name: str
    kind: str = ""

    @classmethod
    def of(cls, obj: dict[str, Any], plural: str) -> Ref:
        meta = obj["metadata"]
        return cls(obj["apiVersion"], plural, meta["namespace"], meta["name"], obj["kind"])

    @property
    def collection_path(self) -> str:
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{base}/namespaces/{self.namespace}/{self.plural}"

    @property
    def path(self) -> str:
        return f"{self.collection_path}/{self.name}"


class RateLimiter:
    """Token bucket (client-go's flowcontrol): `qps` tokens a second, at most `burst` saved."""

    def __init__(self, qps: float, burst: int) -> None:
        self.qps = qps
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    async def acquire(self) -> None:
        if self.qps <= 0:
            return
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now
        self._tokens -= 1  # reserve now; callers queue up behind each other
        if self._tokens < 0:
            await asyncio.sleep(-self._tokens / self.qps)


async def connect(pool_size: int = 64) -> client.ApiClient:
    """In a Pod use its ServiceAccount, elsewhere $KUBECONFIG (or ~/.kube/config)."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        await config.load_kube_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = pool_size
    api = client.ApiClient(configuration)
    if not any(os.environ.get(v) for v in _PROXY_VARIABLES):
        # The client trusts the environment, so aiohttp reads ~/.netrc and the proxy
        # variables on every request: 5% of the operator's CPU in a burst, for nothing.
        api.rest_client.pool_manager._trust_env = False
    return api


_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")


_WRITE_VERBS = {"POST": "create", "DELETE": "delete", "PUT": "update"}
APPLY_PATCH = "application/apply-patch+yaml; charset=utf-8"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


class Kube:
    def __init__(
        self,
        api: client.ApiClient,
        limiter: RateLimiter | None = None,
        connect_timeout: float = 10.0,
        request_timeout: float = 30.0,
    ) -> None:
        self.api = api
        self.limiter = limiter or RateLimiter(0, 0)
        self.timeout = aiohttp.ClientTimeout(
            total=request_timeout, connect=connect_timeout, sock_connect=connect_timeout
        )

    async def _request(
        self,
        method: str,
        ref: Ref,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
        accept: str = "application/json",
    ) -> dict[str, Any]:
        if method == "GET":
            metrics.API_READS.labels(ref.kind).inc()
        else:
            verb = _verb(content_type) if method == "PATCH" else _WRITE_VERBS[method]
            metrics.API_WRITES.labels(verb, ref.kind).inc()
            log.debug("write: %s %s %s/%s", verb, ref.kind, ref.namespace, ref.name)
        await self.limiter.acquire()
        try:
            response = await self.api.call_api(
                path,
                method,
                query_params=query or [],
                body=body,
                header_params={"Content-Type": content_type, "Accept": accept},
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=self.timeout,
                response_types_map={200: "object", 201: "object", 202: "object"},
            )
            return dict(response or {})
        except ApiException as error:
            message, reason, causes, fields = _details(error)
            raise ApiError(
                ref.kind, ref.name, error.status, message, reason, causes, fields
            ) from error
        except (TimeoutError, aiohttp.ClientError) as error:
            message = f"{type(error).__name__}: {error}".rstrip(": ")
            raise ApiError(ref.kind, ref.name, 0, message) from error

    async def apply(
        self,
        obj: dict[str, Any],
        plural: str,
        uid: str | None,
        manager: str = c.FIELD_MANAGER,
        force: bool = True,
    ) -> dict[str, Any]:
        """Server-side apply, forced, because every field in `obj` is ours to own.

        With `uid`, the API server applies only to that very object (a precondition): an
        object someone deleted and re-created meanwhile is never taken over by mistake.
        `manager` and `force=False` are for the replicas hand-over (reconciler.py): a count
        someone else changed meanwhile is then a conflict, not overwritten."""
        ref = Ref.of(obj, plural)
        if uid:
            obj = {**obj, "metadata": {**obj["metadata"], "uid": uid}}
        query = [("fieldManager", manager), *([("force", "true")] if force else [])]
        # Sent as UTF-8 JSON bytes: the client's own encoding escapes characters beyond the
        # BMP (an emoji in an env value) as surrogate pairs, which the API server's YAML
        # decoder refuses. The charset parameter routes the bytes through untouched.
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
        return await self._request("PATCH", ref, ref.path, body, APPLY_PATCH, query)

    async def list(self, ref: Ref) -> list[dict[str, Any]]:
        """Every object of the collection (one page: for small collections only)."""
        listed = await self._request("GET", ref, ref.collection_path)
        return list(listed.get("items") or [])

    async def get(self, ref: Ref, metadata_only: bool = False) -> dict[str, Any] | None:
        """The object, or None if it does not exist. `metadata_only`: just its metadata, from
        the API server's watch cache (no etcd read, a small answer): enough to see whose it is."""
        try:
            if metadata_only:
                return await self._request(
                    "GET", ref, ref.path, query=[("resourceVersion", "0")], accept=METADATA_ONLY
                )
            return await self._request("GET", ref, ref.path)
        except ApiError as error:
            if error.status == 404 and not error.unserved:
                return None
            raise

    async def patch(self, ref: Ref, patch: Any, json_patch: bool = False) -> dict[str, Any]:
        """A JSON merge patch (e.g. a placement decision on a gated Pod), or with `json_patch`
        a JSON patch: a list of operations, `test` ones included."""
        query = [("fieldManager", c.FIELD_MANAGER)]
        kind = "application/json-patch+json" if json_patch else "application/merge-patch+json"
        return await self._request("PATCH", ref, ref.path, patch, kind, query)

    async def patch_status(
        self,
        namespace: str,
        name: str,
        patch: dict[str, Any],
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """A JSON merge patch of the status subresource: only what changed, with null for
        every key that should disappear (a key an older operator version wrote, say). With
        `resource_version`, only onto that version of the object (409 otherwise)."""
        ref = Ref(c.API_VERSION, c.PLURAL, namespace, name, c.KIND)
        query = [("fieldManager", c.FIELD_MANAGER)]
        body: dict[str, Any] = {"status": patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self._request(
            "PATCH", ref, ref.path + "/status", body, "application/merge-patch+json", query
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
            await self._request("DELETE", ref, ref.path, body)
        except ApiError as gone:
            if gone.status not in (404, 409):  # already gone, or replaced by another object
                raise

    async def post_event(
        self, body: dict[str, Any], reason: str, message: str, type_: str = "Warning"
    ) -> None:
        """An Event on the AIAgent, for `kubectl describe` and `kubectl get events`."""
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
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": c.FIELD_MANAGER},
            "reportingComponent": c.FIELD_MANAGER,
            "firstTimestamp": event_time,
            "lastTimestamp": event_time,
            "count": 1,
        }
        ref = Ref("v1", "events", meta["namespace"], "", "Event")
        await self._request("POST", ref, ref.collection_path, event)


def _verb(content_type: str) -> str:
    return "apply" if content_type.startswith("application/apply-patch+yaml") else "patch"


def _details(error: ApiException) -> tuple[str, str, frozenset[str], frozenset[str]]:
    """The human message, the reason, and the causes' reasons and fields of a metav1.Status
    error body."""
    try:
        status = json.loads(error.body or "")
    except (TypeError, ValueError):
        return str(error.body or error.reason).strip(), "", frozenset(), frozenset()
    if not isinstance(status, dict):
        return str(error.reason), "", frozenset(), frozenset()
    causes = (status.get("details") or {}).get("causes") or []
    reasons = frozenset(str(cause.get("reason")) for cause in causes if cause.get("reason"))
    fields = frozenset(str(cause.get("field")) for cause in causes if cause.get("field"))
    message = str(status.get("message") or error.reason)
    return message, str(status.get("reason") or ""), reasons, fields
