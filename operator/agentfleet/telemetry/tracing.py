"""The operator's own traces: one span per reconcile and per placement decision.

Off unless `agentfleet run --tracing-endpoint URL` is given, and then free: until `enable()`
runs nothing of OpenTelemetry is imported (the operator's memory is a benchmark target) and
`span()` hands out a context manager that does nothing. Once enabled, spans go to the OTLP/HTTP
endpoint through the SDK's batch processor (its own thread: a slow collector never blocks the
event loop, and spans are dropped rather than queued without bound), sampled per trace.

The span's attributes name the agent (`agentfleet.agent.namespace`, `agentfleet.agent.name`),
so a collector (Jaeger, Tempo ...) finds every reconcile of one agent by tag; logs.py puts the
active span's trace id on every log line written inside it.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from agentfleet import __version__

SERVICE_NAME = "agentfleet-operator"
AGENT_NAMESPACE = "agentfleet.agent.namespace"
AGENT_NAME = "agentfleet.agent.name"

_tracer: Any = None  # an opentelemetry Tracer once enabled
_provider: Any = None


def enabled() -> bool:
    return _tracer is not None


def traces_url(endpoint: str) -> str:
    """An OTLP/HTTP base URL (what OTEL_EXPORTER_OTLP_ENDPOINT holds) or the traces URL."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def enable(endpoint: str, sampling_percent: float = 100.0) -> None:
    """Send spans to `endpoint` (OTLP over HTTP/protobuf). Imports the SDK."""
    global _tracer, _provider
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    attributes = {
        "service.name": SERVICE_NAME,
        "service.version": __version__,
        "k8s.namespace.name": os.environ.get("POD_NAMESPACE", ""),
        "k8s.pod.name": os.environ.get("POD_NAME", ""),
    }
    resource = Resource.create({k: v for k, v in attributes.items() if v})
    sampler = ParentBased(TraceIdRatioBased(min(max(sampling_percent, 0.0), 100.0) / 100))
    provider = TracerProvider(resource=resource, sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    _provider = provider
    _tracer = provider.get_tracer("agentfleet", __version__)


def shutdown() -> None:
    """Flush the spans still queued (on a clean stop) and stop the exporter's thread."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def span(name: str, **attributes: Any) -> contextlib.AbstractContextManager[Any]:
    """A span around the `with` block (it records an exception that escapes it); yields the
    span, or None while tracing is off. Attributes that are None are left out."""
    if _tracer is None:
        return contextlib.nullcontext()
    given = {key: value for key, value in attributes.items() if value is not None}
    manager: contextlib.AbstractContextManager[Any] = _tracer.start_as_current_span(
        name, attributes=given
    )
    return manager


def agent_span(name: str, namespace: str, agent: str, **attributes: Any) -> Any:
    return span(name, **{AGENT_NAMESPACE: namespace, AGENT_NAME: agent}, **attributes)


def annotate(current: Any, **attributes: Any) -> None:
    """Add what was learnt inside the block (an outcome, a node) to the span, if any."""
    if current is not None:
        current.set_attributes({k: v for k, v in attributes.items() if v is not None})


def record_error(error: BaseException) -> None:
    """Mark the active span failed with this error (one the caller handles itself)."""
    if _tracer is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode

    current = trace.get_current_span()
    current.record_exception(error)
    current.set_status(Status(StatusCode.ERROR, str(error)))


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the active span, in the hex form collectors show; None when
    tracing is off or no span is active."""
    if _tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
