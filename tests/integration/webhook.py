"""A real admission webhook, served on loopback over TLS, for tests.

At /mutate it injects an env var into the first container of every Deployment it is called
for, the way service meshes, secret injectors and policy engines mutate objects the operator
applies. At /deny it refuses whatever it is called for with DENIED, the way a policy engine
refuses pods. The local kube-apiserver runs on the same machine, so it can call
https://127.0.0.1:<port>.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

INJECTED = {"name": "INJECTED_BY_WEBHOOK", "value": "1"}
DENIED = "agentfleet-test policy engine: pods in this namespace need an approved image"


def self_signed(directory: Path) -> tuple[Path, Path, bytes]:
    """A serving certificate for 127.0.0.1 that is its own CA: (cert, key, PEM bytes)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "agentfleet-test-webhook")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=6))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, pem


def patch_for(obj: dict[str, Any]) -> list[dict[str, Any]]:
    containers = obj.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    if not containers:
        return []
    env = containers[0].get("env")
    if env is None:
        return [{"op": "add", "path": "/spec/template/spec/containers/0/env", "value": [INJECTED]}]
    if any(e.get("name") == INJECTED["name"] for e in env):
        return []  # idempotent, as real webhooks are
    return [{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": INJECTED}]


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        request = review["request"]
        deny = urlsplit(self.path).path == "/deny"  # the apiserver adds ?timeout=...
        patch = [] if deny else patch_for(request.get("object") or {})
        response: dict[str, Any] = {"uid": request["uid"], "allowed": not deny}
        if deny:
            response["status"] = {"code": 403, "message": DENIED}
        if patch:
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        body = json.dumps({**{k: review[k] for k in ("apiVersion", "kind")}, "response": response})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *_: Any) -> None:
        pass


class Webhook:
    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory()
        cert, key, self.ca_pem = self_signed(Path(self._dir.name))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/mutate"

    def configuration(self, name: str, namespace_label: str) -> dict[str, Any]:
        """A MutatingWebhookConfiguration for Deployments in namespaces with the label."""
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": "inject.agentfleet.test",
                    "clientConfig": {
                        "url": self.url,
                        "caBundle": base64.b64encode(self.ca_pem).decode(),
                    },
                    "rules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["deployments"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {namespace_label: "on"}},
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Ignore",
                    "timeoutSeconds": 5,
                }
            ],
        }

    def denying_configuration(self, name: str, namespace_label: str) -> dict[str, Any]:
        """A ValidatingWebhookConfiguration refusing Pods in namespaces with the label."""
        return {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": name},
            "webhooks": [
                {
                    "name": "deny.agentfleet.test",
                    "clientConfig": {
                        "url": self.url.replace("/mutate", "/deny"),
                        "caBundle": base64.b64encode(self.ca_pem).decode(),
                    },
                    "rules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ],
                    "namespaceSelector": {"matchLabels": {namespace_label: "on"}},
                    "admissionReviewVersions": ["v1"],
                    "sideEffects": "None",
                    "failurePolicy": "Fail",
                    "timeoutSeconds": 5,
                }
            ],
        }

    def __enter__(self) -> Webhook:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self._dir.cleanup()
