"""The one way to talk to the API server: the operator, its informers, the CLI, the HTTP API
and the node agent all send their requests through here.

- `connect(target)` finds the cluster the way kubectl does and says which namespace to use.
- `Ref` says where an object or a collection lives (the kinds we address by hand are rows
  of `Kind` below; the children's come from render/children.py), so paths are built here only.
- `Kube.request` sends one request with connect and total timeouts, after a token of the
  client-side rate limit, and counts it (agentfleet_api_writes_total, ..._reads_total), so
  "no write when nothing changed" is measurable. `Kube.stream` opens a response to read line
  by line (followed logs), `Kube.watch` reads a watch's events.
- Every failure is one exception type, `ApiError`, with the API server's own message and the
  predicates callers decide on (not found, already exists, invalid, whether a retry can help).

Server-side apply with one field manager (with the object's uid as a precondition once we know
it), JSON merge patches of the status subresource, reads, deletes and Events are methods here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from agentfleet.api import constants as c
from agentfleet.api import timestamps
from agentfleet.kube import config
from agentfleet.kube.config import ConfigError as ConfigError
from agentfleet.kube.transport import Transport
from agentfleet.telemetry import metrics

log = logging.getLogger(__name__)


# --- errors ----------------------------------------------------------------------------------


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

    @property
    def unreachable(self) -> bool:
        """No answer at all: connection refused or reset, or a timeout."""
        return self.status == 0

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def invalid(self) -> bool:
        """Refused by validation (schema, CEL rules): the input was wrong, nothing changed."""
        return self.status == 422

    @property
    def gone(self) -> bool:
        """A watch's resourceVersion is too old (compacted): list again."""
        return self.status == 410

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
        """Our uid precondition failed: the object was deleted or replaced by another one."""
        return self.status == 409 and "uid mismatch" in self.message

    @property
    def transient(self) -> bool:
        """The same request may succeed later without anyone changing anything."""
        return self.status in (0, 409, 429) or self.status >= 500


def status_error(
    kind: str, name: str, status: int, body: str | bytes | None, http_reason: str | None
) -> ApiError:
    """The error an API server answer means: its metav1.Status message, reason and cause
    reasons, or the body's own text when it is no Status (a plain-text 404 for a resource
    the server does not serve)."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body or "")
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        return ApiError(kind, name, status, text.strip() or http_reason or f"HTTP {status}")
    causes = (parsed.get("details") or {}).get("causes") or []
    reasons = frozenset(
        str(cause["reason"]) for cause in causes if isinstance(cause, dict) and cause.get("reason")
    )
    message = str(parsed.get("message") or http_reason or f"HTTP {status}")
    return ApiError(kind, name, status, message, str(parsed.get("reason") or ""), reasons)


def _unreachable(ref: Ref, error: BaseException) -> ApiError:
    message = f"{type(error).__name__}: {error}".rstrip(": ")
    return ApiError(ref.kind, ref.name, 0, message)


# --- where things live -----------------------------------------------------------------------


@dataclass(frozen=True)
class Ref:
    """An object (with `name`) or a collection (without): `namespace` "" is a cluster-scoped
    kind, or every namespace when listing or watching a namespaced one. `api_version` "" is a
    path outside the API groups (/version)."""

    api_version: str
    plural: str
    namespace: str = ""
    name: str = ""
    kind: str = ""

    @classmethod
    def of(cls, obj: dict[str, Any], plural: str) -> Ref:
        meta = obj["metadata"]
        return cls(
            obj["apiVersion"], plural, meta.get("namespace") or "", meta["name"], obj["kind"]
        )

    @property
    def collection_path(self) -> str:
        if not self.api_version:
            return f"/{self.plural}"
        base = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        if self.namespace:
            base += f"/namespaces/{quote(self.namespace)}"
        return f"{base}/{self.plural}"

    @property
    def path(self) -> str:
        """The object's own path; the collection's when there is no name (a create, a list)."""
        if not self.name:
            return self.collection_path
        return f"{self.collection_path}/{quote(self.name)}"


@dataclass(frozen=True)
class Kind:
    """A kind addressed by hand (not a child of the table in render/children.py)."""

    api_version: str
    plural: str
    kind: str

    def ref(self, namespace: str = "", name: str = "") -> Ref:
        return Ref(self.api_version, self.plural, namespace, name, self.kind)

    def body(self, **fields: Any) -> dict[str, Any]:
        """An object of this kind to send: apiVersion, kind and `fields` (metadata, spec ...)."""
        return {"apiVersion": self.api_version, "kind": self.kind, **fields}


AGENTS = Kind(c.API_VERSION, c.PLURAL, c.KIND)
VERSION = Ref("", "version", kind="Version")  # the API server's /version
PODS = Kind("v1", "pods", "Pod")
NODES = Kind("v1", "nodes", "Node")
EVENTS = Kind("v1", "events", "Event")
LEASES = Kind(c.COORDINATION_API, "leases", "Lease")
TOKEN_REVIEWS = Kind("authentication.k8s.io/v1", "tokenreviews", "TokenReview")
ACCESS_REVIEWS = Kind("authorization.k8s.io/v1", "subjectaccessreviews", "SubjectAccessReview")


# --- connecting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Which cluster and namespace, the way kubectl's flags say it."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str | None = None


async def connect(
    target: Target = Target(),
    *,
    pool_size: int = 64,
    limiter: RateLimiter | None = None,
    connect_timeout: float = 10.0,
    request_timeout: float = 30.0,
    prefer_in_cluster: bool = False,
) -> Kube:
    """kubectl's order: --kubeconfig, $KUBECONFIG, ~/.kube/config (its current context or
    --context), then the Pod's own ServiceAccount (kube/config.py; `prefer_in_cluster`: the
    Pod's first, for the processes the chart runs). The namespace: -n, else the context's,
    else the Pod's, else default."""
    cluster = await config.load(target.kubeconfig, target.context, prefer_in_cluster)
    transport = Transport(cluster, pool_size, connect_timeout, request_timeout)
    namespace = target.namespace or cluster.namespace or "default"
    return Kube(transport, limiter, namespace)


# --- the client ------------------------------------------------------------------------------


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


JSON = "application/json"
APPLY_PATCH = "application/apply-patch+yaml; charset=utf-8"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
_WRITE_VERBS = {"POST": "create", "DELETE": "delete", "PUT": "update"}


class Kube:
    """One API server, as `connect` found it; `namespace` is the one to use when none is
    named (-n, the context's, the Pod's)."""

    def __init__(
        self,
        transport: Transport,
        limiter: RateLimiter | None = None,
        namespace: str = "default",
    ) -> None:
        self.transport = transport
        self.limiter = limiter or RateLimiter(0, 0)
        self.namespace = namespace
        self.connect_timeout = transport.connect_timeout

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def request(
        self,
        method: str,
        ref: Ref,
        *,
        subresource: str = "",
        body: Any = None,
        content_type: str = JSON,
        query: list[tuple[str, str]] | None = None,
        accept: str = JSON,
        limits: aiohttp.ClientTimeout | None = None,
    ) -> dict[str, Any]:
        """One request; its answer as a dict. `limits`: other timeouts than the usual ones
        (a long list page)."""
        if method == "GET":
            metrics.API_READS.labels(ref.kind).inc()
        else:
            verb = _verb(content_type) if method == "PATCH" else _WRITE_VERBS[method]
            metrics.API_WRITES.labels(verb, ref.kind).inc()
            log.debug("write: %s %s %s/%s", verb, ref.kind, ref.namespace, ref.name)
        path = f"{ref.path}/{subresource}" if subresource else ref.path
        await self.limiter.acquire()
        try:
            status, reason, answer = await self.transport.request(
                method,
                path,
                query=query,
                body=body,
                content_type=content_type,
                accept=accept,
                limits=limits,
            )
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _unreachable(ref, error) from error
        if status >= 300:
            raise status_error(ref.kind, ref.name, status, answer, reason)
        return dict(json.loads(answer)) if answer else {}

    async def version(self) -> dict[str, Any]:
        """The API server's /version: that it answers at all (no permission needed)."""
        return await self.request("GET", VERSION)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        ref: Ref,
        query: list[tuple[str, str]],
        *,
        subresource: str = "",
        limits: aiohttp.ClientTimeout | None = None,
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """A GET whose answer is read as it comes (a watch, a followed log). Without
        `limits` only connecting is limited: a followed log may stay open for days. Errors
        while reading the answer are aiohttp's own (the caller knows whether the answer may
        go silent)."""
        path = f"{ref.path}/{subresource}" if subresource else ref.path
        await self.limiter.acquire()
        async with contextlib.AsyncExitStack() as stack:
            try:
                response = await stack.enter_async_context(
                    self.transport.stream(
                        path, query=query, accept="application/json, */*", limits=limits
                    )
                )
                if response.status >= 300:
                    body = await response.read()
                    raise status_error(
                        ref.kind, ref.name, response.status, body, response.reason
                    )
            except (TimeoutError, aiohttp.ClientError) as error:
                raise _unreachable(ref, error) from error
            yield response.content

    async def watch(
        self,
        ref: Ref,
        query: list[tuple[str, str]],
        *,
        limits: aiohttp.ClientTimeout | None = None,
        opened: Callable[[], None] | None = None,
    ) -> AsyncGenerator[tuple[str, dict[str, Any]]]:
        """The (type, object) events of one watch request (ADDED, MODIFIED, DELETED,
        BOOKMARK) until the server ends it; `opened` is called once the server answered. An
        ERROR event is raised as ApiError (`gone`: the version is too old, list again).
        Iterate inside `contextlib.aclosing` to release the connection when stopping early."""
        async with self.stream(ref, [("watch", "true"), *query], limits=limits) as content:
            if opened:
                opened()
            async for line in lines(content):
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = str(event.get("type")), event.get("object") or {}
                if kind == "ERROR":
                    message = str(obj.get("message") or "watch error")
                    code = obj.get("code")
                    status = code if isinstance(code, int) else 500
                    raise ApiError(
                        ref.kind, ref.name, status, message, str(obj.get("reason") or "")
                    )
                yield kind, obj

    # --- what the operator writes ---

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
        return await self.request("PATCH", ref, body=body, content_type=APPLY_PATCH, query=query)

    async def list(
        self, ref: Ref, query: list[tuple[str, str]] | None = None
    ) -> list[dict[str, Any]]:
        """Every object of the collection (one page: for small collections only)."""
        listed = await self.request("GET", ref, query=query)
        return list(listed.get("items") or [])

    async def get(self, ref: Ref, metadata_only: bool = False) -> dict[str, Any] | None:
        """The object, or None if it does not exist. `metadata_only`: just its metadata, from
        the API server's watch cache (no etcd read, a small answer): enough to see whose it is."""
        try:
            if metadata_only:
                return await self.request(
                    "GET", ref, query=[("resourceVersion", "0")], accept=METADATA_ONLY
                )
            return await self.request("GET", ref)
        except ApiError as error:
            if error.not_found and not error.unserved:
                return None
            raise

    async def patch(self, ref: Ref, patch: Any, json_patch: bool = False) -> dict[str, Any]:
        """A JSON merge patch (e.g. a placement decision on a gated Pod), or with `json_patch`
        a JSON patch: a list of operations, `test` ones included."""
        query = [("fieldManager", c.FIELD_MANAGER)]
        kind = JSON_PATCH if json_patch else MERGE_PATCH
        return await self.request("PATCH", ref, body=patch, content_type=kind, query=query)

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
        query = [("fieldManager", c.FIELD_MANAGER)]
        body: dict[str, Any] = {"status": patch}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        return await self.request(
            "PATCH",
            AGENTS.ref(namespace, name),
            subresource="status",
            body=body,
            content_type=MERGE_PATCH,
            query=query,
        )

    async def delete(self, ref: Ref, uid: str) -> None:
        """Delete a child, but only the very object we saw (a precondition on its uid)."""
        try:
            await self.request("DELETE", ref, body=delete_options("Background", uid))
        except ApiError as gone:
            if gone.status not in (404, 409):  # already gone, or replaced by another object
                raise

    async def post_event(
        self, body: dict[str, Any], reason: str, message: str, type_: str = "Warning"
    ) -> None:
        """An Event on the AIAgent, for `kubectl describe` and `kubectl get events`."""
        meta = body["metadata"]
        event_time = timestamps.format_time()
        event = EVENTS.body(
            metadata={"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            involvedObject=AGENTS.body(
                name=meta["name"], namespace=meta["namespace"], uid=meta.get("uid")
            ),
            type=type_,
            reason=reason,
            message=message[:1024],
            source={"component": c.FIELD_MANAGER},
            reportingComponent=c.FIELD_MANAGER,
            firstTimestamp=event_time,
            lastTimestamp=event_time,
            count=1,
        )
        await self.request("POST", EVENTS.ref(meta["namespace"]), body=event)


def delete_options(propagation: str, uid: str | None = None) -> dict[str, Any]:
    """How to delete: `propagation` Background or Foreground (the object stays visible until
    its dependents are gone); with `uid`, only that very object (a precondition)."""
    options: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": propagation,
    }
    if uid:
        options["preconditions"] = {"uid": uid}
    return options


def _verb(content_type: str) -> str:
    return "apply" if content_type.startswith("application/apply-patch+yaml") else "patch"


async def lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Every line of a stream, however long (aiohttp's own line reader stops at 64 KiB: a
    large object in a watch, a long log line), without its newline; blank ones included."""
    buffer = b""
    async for chunk in content.iter_chunked(256 * 1024):
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line
    if buffer:
        yield buffer
