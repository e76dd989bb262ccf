"""Structured logs: every line says which agent it is about and, while tracing, which trace.

A filter on the root handler adds to each record the agent being reconciled or placed (a
context variable the workers set, so a line written deep inside the reconciler still names
it) and the active span's `trace_id`/`span_id`: in a JSON line they are fields of their own,
in a text line a suffix. runtime/runner.py installs it on the handler kopf configures (kopf's
JSON formatter with `--log-format json`), so kopf's own lines carry them too.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

from agentfleet.telemetry import tracing

# The agent ("namespace/name") the current task works on, if any.
AGENT: ContextVar[str | None] = ContextVar("agentfleet_agent", default=None)

# kopf's "full" text format with the context at the end of the line.
TEXT_FORMAT = "[%(asctime)s] %(name)-20.20s [%(levelname)-8.8s] %(message)s%(context)s"

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
LEVELS["error"] = logging.ERROR


@contextlib.contextmanager
def about_agent(namespace: str, name: str) -> Iterator[None]:
    """Lines logged in this block (in this task) name the agent."""
    token = AGENT.set(f"{namespace}/{name}")
    try:
        yield
    finally:
        AGENT.reset(token)


class ContextFilter(logging.Filter):
    """Adds `agent`, `trace_id` and `span_id` (when known) to every record; with `text`, also
    `context`, the same as a suffix for a text format."""

    def __init__(self, text: bool = False) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        fields: dict[str, str] = {}
        agent = AGENT.get()
        if agent is not None:
            fields["agent"] = agent
        ids = tracing.current_ids()
        if ids is not None:
            fields["trace_id"], fields["span_id"] = ids
        for key, value in fields.items():
            setattr(record, key, value)
        if self.text:
            record.context = "".join(f" {k}={v}" for k, v in fields.items())
        return True


def install(level: str, text: bool) -> None:
    """Add the context filter to every handler of the root logger and set its level."""
    root = logging.getLogger()
    root.setLevel(LEVELS[level])
    for handler in root.handlers:
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter(text))
