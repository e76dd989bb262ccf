"""A tiny stand-in for Prometheus' query API, so KEDA's prometheus scaler gets real answers.

The local cluster has no Prometheus (nothing scrapes kwok pods), yet KEDA's prometheus
trigger must be able to ask one. This server answers `GET|POST /api/v1/query` like
Prometheus does for an instant vector query, with values a test sets in a JSON file:
`{"<substring of a PromQL query>": <number>}`. The longest key found in the query wins;
no key found means an empty vector (Prometheus' answer for "no such series"). The file is
re-read on every query, so editing it changes the next answer. Each query is logged.

`python -m agentfleet_dev.fake_prometheus --port 9090 --values values.json`
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

QUERY_PATH = "/api/v1/query"
READY_PATHS = ("/-/ready", "/-/healthy")


def read_values(path: Path) -> dict[str, float]:
    """The query-substring → value table; a missing or half-written file is an empty table."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(key): float(value) for key, value in raw.items()} if isinstance(raw, dict) else {}


def write_values(path: Path, values: dict[str, float]) -> None:
    """Replace the table atomically (a reader never sees half a file)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    partial.replace(path)


def value_for(query: str, values: dict[str, float]) -> float | None:
    matches = [key for key in values if key in query]
    return values[max(matches, key=len)] if matches else None


def instant_vector(value: float | None, now: float) -> dict[str, Any]:
    """What Prometheus returns for an instant query: one sample, or none."""
    result = [] if value is None else [{"metric": {}, "value": [now, repr(value)]}]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def _handler(values_path: Path) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path in READY_PATHS:
                self._send(HTTPStatus.OK, "text/plain", b"Prometheus Server is Ready.\n")
            elif url.path == QUERY_PATH:
                self._answer(parse_qs(url.query))
            else:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            if url.path != QUERY_PATH:
                self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n")
                return
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode())
            self._answer({**parse_qs(url.query), **form})

        def _answer(self, params: dict[str, list[str]]) -> None:
            query = params.get("query", [""])[0]
            if not query:
                error = {"status": "error", "errorType": "bad_data", "error": "no query given"}
                self._send(HTTPStatus.BAD_REQUEST, "application/json", json.dumps(error).encode())
                return
            value = value_for(query, read_values(values_path))
            print(f"query={query!r} value={value}", flush=True)
            body = json.dumps(instant_vector(value, time.time())).encode()
            self._send(HTTPStatus.OK, "application/json", body)

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Queries are logged by `_answer`; per-request access lines would only be noise."""

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--values", type=Path, required=True, help="JSON {substring: value}")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), _handler(args.values))
    print(f"fake Prometheus on http://{args.host}:{args.port}, values from {args.values}")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
