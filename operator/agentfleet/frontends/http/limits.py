"""What bounds the HTTP API's cost, and what a failure tells a caller.

- A request body larger than the limit is refused (413) before anything parses it.
- At most N `POST /deploy` at once (each may hold a watch on the API server for minutes); one
  more is answered 429 with Retry-After, at once.
- Every response carries an X-Request-ID; a 5xx answers only that id, never the API's own
  identity or an internal message: those go to the API's log under the same id.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterator

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("agentfleet.api")

REQUEST_ID_HEADER = "X-Request-ID"


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes, by its Content-Length or, when it
    is sent in chunks, as soon as more than `limit` bytes arrived. At most `limit` bytes of a
    request are ever held."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._too_large(scope, receive, send)
            return
        body, more = bytearray(), True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.limit:
                await self._too_large(scope, receive, send)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # waits for the disconnect, as Starlette expects
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"the request body is larger than {self.limit} bytes"},
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


class TooBusy(HTTPException):
    def __init__(self, what: str, retry_after: int) -> None:
        super().__init__(
            429,
            f"too many {what} in progress; retry in {retry_after} s",
            {"Retry-After": str(retry_after)},
        )


class Slots:
    """At most `limit` holders at once; `take` refuses (429) instead of queueing, so waiting
    requests never pile up inside the API."""

    def __init__(self, limit: int, what: str, retry_after: int = 5) -> None:
        self.limit = limit
        self.what = what
        self.retry_after = retry_after
        self.held = 0

    @contextlib.contextmanager
    def take(self) -> Iterator[None]:
        if self.held >= self.limit:
            raise TooBusy(self.what, self.retry_after)
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1


class RequestIds:
    """ASGI middleware: a fresh id per request, in `request.state.request_id` and in the
    response's X-Request-ID header (a caller's own header is not trusted into our log)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"x-request-id"]
                message = {**message, "headers": [*headers, (b"x-request-id", rid.encode())]}
            await send(message)

        await self.app(scope, receive, with_id)


def request_id(request: Request) -> str:
    rid: str = getattr(request.state, "request_id", "") or uuid.uuid4().hex
    request.state.request_id = rid
    return rid


def server_error(request: Request, status: int, internal: str) -> JSONResponse:
    """A 5xx that says only that it failed and under which id the API logged why."""
    rid = request_id(request)
    log.error("request %s %s %s failed (%d): %s", rid, request.method, request.url.path,
              status, internal)  # fmt: skip
    return JSONResponse(
        {"detail": f"the API could not complete this request (request id {rid})"},
        status_code=status,
        headers={REQUEST_ID_HEADER: rid},
    )
