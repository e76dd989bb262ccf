"""The PKI of a throwaway local cluster: a CA, the apiserver's serving cert, an admin client
cert (group system:masters) and the service-account signing key."""

from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=30)
SERVICE_IP = "10.96.0.1"  # first address of --service-cluster-ip-range


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(parts)


def _write_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


class PKI:
    """Files under `directory`: ca.crt, apiserver.{crt,key}, admin.{crt,key}, sa.{key,pub}.
    `serving_cert_dir` adds a controller-runtime style cert dir (tls.crt, tls.key, ca.crt)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def path(self, name: str) -> Path:
        return self.dir / name

    def create(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name("agentfleet-dev-ca"))
            .issuer_name(_name("agentfleet-dev-ca"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_cert(ca, self.path("ca.crt"))
        _write_key(ca_key, self.path("ca.key"))

        def leaf(
            name: str,
            subject: x509.Name,
            usage: x509.ObjectIdentifier,
            sans: list[x509.GeneralName] | None = None,
        ) -> None:
            cert, key = _issue(ca, ca_key, subject, usage, sans)
            _write_cert(cert, self.path(f"{name}.crt"))
            _write_key(key, self.path(f"{name}.key"))

        dns = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        ips = ["127.0.0.1", SERVICE_IP]
        leaf(
            "apiserver",
            _name("kube-apiserver"),
            ExtendedKeyUsageOID.SERVER_AUTH,
            [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips],
        )
        leaf("admin", _name("agentfleet-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH)

        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(sa_key, self.path("sa.key"))
        self.path("sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def serving_cert_dir(self, directory: Path, common_name: str) -> Path:
        """A serving cert for a program on loopback, signed by this CA, in the layout
        controller-runtime programs read from `--cert-dir` (KEDA's gRPC metrics service)."""
        ca = x509.load_pem_x509_certificate(self.path("ca.crt").read_bytes())
        ca_key = serialization.load_pem_private_key(self.path("ca.key").read_bytes(), None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{self.path('ca.key')} is not the EC key create() writes")
        sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.DNSName(common_name),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        cert, key = _issue(ca, ca_key, _name(common_name), ExtendedKeyUsageOID.SERVER_AUTH, sans)
        directory.mkdir(parents=True, exist_ok=True)
        _write_cert(cert, directory / "tls.crt")
        _write_key(key, directory / "tls.key")
        _write_cert(ca, directory / "ca.crt")
        return directory

    def client_cert(self, directory: Path, user: str, groups: tuple[str, ...] = ()) -> Path:
        """A client certificate as Kubernetes reads one (CN = user, one O per group), signed by
        this CA: `<directory>/<user>.crt` and `.key`, for mutual TLS clients."""
        ca = x509.load_pem_x509_certificate(self.path("ca.crt").read_bytes())
        ca_key = serialization.load_pem_private_key(self.path("ca.key").read_bytes(), None)
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"{self.path('ca.key')} is not the EC key create() writes")
        parts = [x509.NameAttribute(NameOID.COMMON_NAME, user)]
        parts += [x509.NameAttribute(NameOID.ORGANIZATION_NAME, group) for group in groups]
        cert, key = _issue(ca, ca_key, x509.Name(parts), ExtendedKeyUsageOID.CLIENT_AUTH, None)
        directory.mkdir(parents=True, exist_ok=True)
        _write_cert(cert, directory / f"{user}.crt")
        _write_key(key, directory / f"{user}.key")
        return directory / f"{user}.crt"


def _issue(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key
