"""The operator's traces and logs (telemetry/): off costs nothing, on every line names its agent
and trace. (tests/integration/test_tracing.py sends them to a real Jaeger.)"""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest
from pythonjsonlogger.json import JsonFormatter

from agentfleet.telemetry import logs, tracing

# `agentfleet run` as the real command line builds it, with kopf's run loop replaced by a
# probe that loads what kopf would start and reports which OpenTelemetry modules are loaded.
PROBE = """
import json
import sys
import kopf

def probe(**kwargs):
    import agentfleet.controllers.placer
    import agentfleet.controllers.workers
    import agentfleet.runtime.handlers
    print(json.dumps(sorted(m for m in sys.modules if m.startswith("opentelemetry"))))

kopf.run = probe
from agentfleet.main import app
app(["run", *sys.argv[1:]], standalone_mode=False)
"""


def loaded_modules(*args: str) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    found: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return found


def test_tracing_off_imports_nothing_of_opentelemetry() -> None:
    """The operator's memory is a benchmark target: without --tracing-endpoint not even the
    OpenTelemetry API is loaded."""
    assert loaded_modules() == []
    on = loaded_modules("--tracing-endpoint", "http://127.0.0.1:9")
    assert "opentelemetry.sdk.trace" in on
    assert "opentelemetry.exporter.otlp.proto.http.trace_exporter" in on


def test_spans_are_null_while_tracing_is_off() -> None:
    assert not tracing.enabled()
    with tracing.agent_span("reconcile", "ns", "a") as span:
        assert span is None
        tracing.annotate(span, result="x")  # harmless
        assert tracing.current_ids() is None


def test_the_traces_url_is_the_otlp_http_path() -> None:
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("http://c:4318/v1/traces/") == "http://c:4318/v1/traces"


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("agentfleet.test-telemetry")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_names_its_agent_and_while_tracing_its_trace(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_log
    with logs.about_agent("team-a", "coder"):
        logger.info("inside")
    logger.info("outside")
    inside, outside = lines(stream)
    assert inside["agent"] == "team-a/coder" and "trace_id" not in inside
    assert "agent" not in outside

    # Sampled out (0%): a span context exists, nothing is exported, the test stays offline.
    tracing.enable("http://127.0.0.1:9", sampling_percent=0)
    try:
        with (
            logs.about_agent("team-a", "coder"),
            tracing.agent_span("reconcile", "team-a", "coder"),
        ):
            ids = tracing.current_ids()
            logger.info("traced")
        assert ids is not None
        traced = lines(stream)[-1]
        assert (traced["trace_id"], traced["span_id"]) == ids
        assert len(traced["trace_id"]) == 32 and len(traced["span_id"]) == 16
    finally:
        tracing.shutdown()
    assert not tracing.enabled()


def test_the_text_format_ends_with_the_context() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    token = logs.AGENT.set("ns/a")
    try:
        logs.ContextFilter(text=True).filter(record)
    finally:
        logs.AGENT.reset(token)
    assert logging.Formatter(logs.TEXT_FORMAT).format(record).endswith("hello agent=ns/a")
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    logs.ContextFilter(text=True).filter(plain)
    assert logging.Formatter(logs.TEXT_FORMAT).format(plain).endswith("hello")
