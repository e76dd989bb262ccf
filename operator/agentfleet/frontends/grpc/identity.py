"""Who a gRPC caller is, the way the Kubernetes API server would see them.

Over mutual TLS the client certificate names the caller as Kubernetes reads client
certificates: the subject's common name is the user, each organization a group, and every
authenticated caller is also in `system:authenticated`. A certificate whose extended key usage
excludes client authentication, or without a common name, names nobody (as in Kubernetes).
Without TLS (`--insecure`, for local use) a bearer token in the `authorization` metadata is
reviewed instead, exactly as the HTTP API does.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AUTHENTICATED = "system:authenticated"

User = dict[str, Any]  # as TokenReview's status.user: username, uid, groups, extra


class NotAuthenticated(Exception):
    """The caller presented nothing that names a user (the message says what was wrong)."""


def certificate_user(pem: bytes) -> User:
    """The user and groups of a verified client certificate (PEM)."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as error:
        raise NotAuthenticated(f"the client certificate cannot be read: {error}") from error
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    allowed = (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)
    if usage is not None and not any(oid in usage for oid in allowed):
        raise NotAuthenticated("the client certificate is not for client authentication")
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if not names or not names[0]:
        raise NotAuthenticated("the client certificate has no common name (the user)")
    groups = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return {"username": names[0], "groups": [*groups, AUTHENTICATED]}


def bearer_token(metadata: Any) -> str | None:
    """The token of an `authorization: Bearer <token>` metadata entry, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None
