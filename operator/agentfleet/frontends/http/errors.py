"""How failures become HTTP answers.

- The caller's own mistakes pass through with the API server's words: 404, 409, and 422 in
  FastAPI's shape naming the request field at fault.
- Everything else is the API's problem (its own RBAC, the API server unreachable, a bug): a
  502 or 500 with a request id and nothing else; the reason goes to the log (limits.py).
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from agentfleet.frontends.http.limits import server_error
from agentfleet.kube.client import ApiError

# Which request field sets which part of the AIAgent spec, to name the field at fault.
DEPLOY_FIELDS = {
    "spec.image": "image",
    "spec.env": "env",
    "spec.gpu": "vram_gb",
    "spec.volumes": "volumes",
    "spec.volumeMounts": "volumes",
    "spec.probes": "health",
    "spec.agentType": "agent_type",
}
SPAWN_FIELDS = {
    "spec.image": "image_ref",
    "spec.env": "env",
    "spec.resources.requests.cpu": "cores",
    "spec.resources": "memory",
    "spec.agentType": "agent_type",
}


def body_field(field: str, fields: dict[str, str]) -> str:
    return next((name for prefix, name in fields.items() if field.startswith(prefix)), field)


def unprocessable(field: str, message: str) -> HTTPException:
    """422 in FastAPI's own shape, naming the request field at fault."""
    location = ["body", *field.replace("[", ".").replace("]", "").split(".")] if field else ["body"]
    return HTTPException(422, [{"loc": location, "msg": message, "type": "value_error"}])


class Answer(Exception):
    """A response body with a non-2xx status (a deploy that did not become Ready)."""

    def __init__(self, status: int, body: BaseModel) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def install(app: FastAPI) -> None:
    """The exception handlers of the API."""

    @app.exception_handler(ApiError)
    async def api_server_refused(request: Request, error: ApiError) -> JSONResponse:
        if error.status == 422:
            problem = unprocessable("", error.message)
            return JSONResponse({"detail": problem.detail}, status_code=422)
        if error.status in (404, 409):
            return JSONResponse({"detail": error.message}, status_code=error.status)
        # The API's own request was refused (its RBAC: the message names its identity) or
        # failed: the caller learns only that, and the id under which the log says why.
        return server_error(request, 502, f"API server answered {error.status}: {error.message}")

    @app.exception_handler(Answer)
    async def answer(_: Request, reply: Answer) -> JSONResponse:
        return JSONResponse(reply.body.model_dump(mode="json"), status_code=reply.status)

    @app.exception_handler(Exception)
    async def bug(request: Request, error: Exception) -> JSONResponse:
        return server_error(request, 500, f"{type(error).__name__}: {error}")
