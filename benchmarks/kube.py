"""The harness's own access to the cluster: the pinned kubectl and an admin API client.

The admin identity is only for the harness (creating agents, reading metrics, auditing);
the operator under test always runs with its own ServiceAccount token.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OPERATOR_MANIFESTS = ROOT / "manifests" / "operator"
CRD_FILE = ROOT / "crds" / "aiagents.agentfleet.io.yaml"


class BenchError(RuntimeError):
    """The benchmark could not measure what it set out to measure."""


@dataclass(frozen=True)
class ClusterAccess:
    kubeconfig: Path
    kubectl_path: Path
    local: bool  # our local control plane: kwok nodes, and we may add more

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.kubectl_path), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise BenchError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()[-2000:]}")
        return proc

    def apply_files(self, paths: Sequence[Path]) -> float:
        """`kubectl apply --server-side` of each file, all at once; seconds until the last
        one returned."""
        started = time.monotonic()
        procs = [
            (
                path,
                subprocess.Popen(
                    [
                        str(self.kubectl_path),
                        f"--kubeconfig={self.kubeconfig}",
                        "apply",
                        "--server-side",
                        "-o",
                        "name",
                        "-f",
                        str(path),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
            for path in paths
        ]
        failures = []
        for path, proc in procs:
            _, stderr = proc.communicate()
            if proc.returncode != 0:
                failures.append(f"{path.name}: {stderr.strip()[-1000:]}")
        elapsed = time.monotonic() - started
        if failures:
            raise BenchError("kubectl apply --server-side failed: " + "; ".join(failures))
        return elapsed

    @functools.cached_property
    def api(self) -> Any:
        """One admin API client for the whole run."""
        from kubernetes import config

        return config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.kubeconfig)
        )

    def get_raw(self, path: str, query: Sequence[tuple[str, str]] = ()) -> bytes:
        method, url, headers, body, _ = self.api.param_serialize(
            "GET", path, query_params=list(query), auth_settings=["BearerToken"]
        )
        response = self.api.call_api(method, url, headers, body)
        data: bytes = response.read()
        if not 200 <= response.status < 300:
            raise BenchError(f"GET {path}: {response.status} {data[:500]!r}")
        return data

    def list_items(
        self, path: str, label_selector: str = "", cached: bool = False
    ) -> list[dict[str, Any]]:
        """Every object of a collection. `cached` reads the API server's watch cache
        (cheap, milliseconds stale) for polling; otherwise a paginated consistent read."""
        query = [("labelSelector", label_selector)] if label_selector else []
        if cached:
            items: list[dict[str, Any]] = json.loads(
                self.get_raw(path, [*query, ("resourceVersion", "0")])
            )["items"]
            return items
        items, token = [], ""
        while True:
            page = json.loads(
                self.get_raw(
                    path, [*query, ("limit", "1000"), *([("continue", token)] * bool(token))]
                )
            )
            items.extend(page["items"])
            token = page["metadata"].get("continue", "")
            if not token:
                return items

    def create_namespace(self, name: str, labels: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": labels},
        }
        self.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(body))
        # The controller-manager writes the namespace's `default` ServiceAccount soon after;
        # wait, so that write does not land in a measured window.
        deadline = time.monotonic() + 60
        path = f"/api/v1/namespaces/{name}/serviceaccounts"
        while not any(
            sa["metadata"]["name"] == "default" for sa in self.list_items(path, cached=True)
        ):
            if time.monotonic() > deadline:
                raise BenchError(f"namespace {name} got no default ServiceAccount in 60 s")
            time.sleep(0.2)

    def install_crd(self) -> None:
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
        self.kubectl(
            "wait", "--for=condition=Established", "crd/aiagents.agentfleet.io", "--timeout=60s"
        )

    def delete_namespaces(self, selector: str, timeout: float = 900) -> None:
        """Delete the namespaces with this label and wait until they are gone (their objects
        and Pods with them), so that the garbage collector's work stays out of the next
        measured window."""
        self.kubectl("delete", "namespace", "-l", selector, "--wait=false", check=False)
        deadline = time.monotonic() + timeout
        while self.list_items("/api/v1/namespaces", selector):
            if time.monotonic() > deadline:
                raise BenchError(f"namespaces {selector} not gone after {timeout:.0f} s")
            time.sleep(1.0)

    def served(self, api_version: str, plural: str) -> bool:
        """Does the API server serve this resource (an optional CRD installed)?"""
        path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        try:
            found = json.loads(self.get_raw(path))
        except BenchError:
            return False
        return any(r.get("name") == plural for r in found.get("resources") or [])
