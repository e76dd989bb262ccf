"""A real OTLP receiver for the tracing tests: Jaeger v2 (the OpenTelemetry Collector with
Jaeger's in-memory store and query API), built from the Go module proxy like the other
binaries of the local control plane, run as a local process on free loopback ports."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from tests.conftest import OUTPUT, eventually


class Jaeger:
    def __init__(self, name: str = "jaeger") -> None:
        from agentfleet_dev import build
        from agentfleet_dev.cluster import free_ports

        self.binary = build.ensure(build.JAEGER, lambda m: print(m, file=sys.stderr))
        self.otlp_grpc, self.otlp_http, self.query, self.query_grpc, self.health = free_ports(5)
        self.dir = OUTPUT / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.dir / "jaeger.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_http}"

    def config(self) -> dict[str, Any]:
        """Only what the tests use: OTLP in, memory store, query API, health; every port ours."""
        loopback = "127.0.0.1:{}".format
        return {
            "service": {
                "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
                "pipelines": {
                    "traces": {
                        "receivers": ["otlp"],
                        "processors": ["batch"],
                        "exporters": ["jaeger_storage_exporter"],
                    }
                },
                "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "info"}},
            },
            "extensions": {
                "healthcheckv2": {"use_v2": True, "http": {"endpoint": loopback(self.health)}},
                "jaeger_query": {
                    "storage": {"traces": "memory"},
                    "http": {"endpoint": loopback(self.query)},
                    "grpc": {"endpoint": loopback(self.query_grpc)},
                },
                "jaeger_storage": {"backends": {"memory": {"memory": {"max_traces": 100000}}}},
            },
            "receivers": {
                "otlp": {
                    "protocols": {
                        "grpc": {"endpoint": loopback(self.otlp_grpc)},
                        "http": {"endpoint": loopback(self.otlp_http)},
                    }
                }
            },
            "processors": {"batch": {"timeout": "200ms"}},
            "exporters": {"jaeger_storage_exporter": {"trace_storage": "memory"}},
        }

    def __enter__(self) -> Jaeger:
        config = self.dir / "config.yaml"
        config.write_text(yaml.safe_dump(self.config()))
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(self.binary / "bin" / "jaeger"), f"--config={config}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        eventually(self.ready, timeout=60, what="Jaeger's query API")
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def ready(self) -> bool:
        assert self.process is not None
        assert self.process.poll() is None, f"jaeger exited:\n{self.log_tail()}"
        try:
            self.get("/api/services")
        except OSError:
            return False
        return True

    def log_tail(self) -> str:
        return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-30:])

    def get(self, path: str, **query: str) -> Any:
        url = f"http://127.0.0.1:{self.query}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())

    def traces(self, service: str, tags: dict[str, str], limit: int = 50) -> list[dict[str, Any]]:
        """Traces of `service` with a span carrying every tag (Jaeger's query API)."""
        found = self.get(
            "/api/traces", service=service, tags=json.dumps(tags), limit=str(limit), lookback="1h"
        )
        return list(found.get("data") or [])


def span_tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span.get("tags") or []}
