"""TLS for the viewer server (serve process): a secure context off localhost.

Browsers give a page WebCodecs and the microphone only in a secure context: https, or plain
http on localhost. A viewer on another machine therefore needs the page over TLS.
:func:`server_context` loads a certificate and key (``serve.tls_cert`` / ``serve.tls_key``);
:func:`self_signed` makes a short-lived certificate at start for ``--tls self-signed`` and
reports its SHA-256 fingerprint, which a person compares with what the browser shows before
accepting the certificate (and its SPKI hash, which chromium's
``--ignore-certificate-errors-spki-list`` takes).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from synesthesia.errors import StreamConfigError

__all__ = ["SELF_SIGNED", "Certificate", "server_context", "self_signed"]

#: The ``serve.tls_cert`` value that asks for a generated certificate.
SELF_SIGNED = "self-signed"


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path
    #: SHA-256 of the DER certificate, colon-separated hex (what browsers show).
    fingerprint: str
    #: base64 SHA-256 of the public key (SubjectPublicKeyInfo), for SPKI pinning.
    spki_sha256: str
    not_after: datetime.datetime


def server_context(cert: str | Path, key: str | Path) -> ssl.SSLContext:
    """A server-side TLS context (TLS 1.2+) from PEM files; errors name the setting."""
    for name, path in (("serve.tls_cert", cert), ("serve.tls_key", key)):
        if not Path(path).is_file():
            raise StreamConfigError(f"{name}: no such file: {path}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, ValueError) as exc:
        raise StreamConfigError(f"serve.tls_cert/serve.tls_key: cannot load {cert} with {key}: {exc}") from None
    return ctx


def _names(host: str) -> tuple[list[str], list[str]]:
    dns = ["localhost", socket.gethostname()]
    ips = ["127.0.0.1", "::1"]
    try:
        ipaddress.ip_address(host)
        if host not in ("0.0.0.0", "::"):
            ips.append(host)
    except ValueError:
        if host:
            dns.append(host)
    return sorted(set(dns)), sorted(set(ips))


def self_signed(host: str = "127.0.0.1", hours: float = 24.0, directory: str | Path | None = None,
                extra_ips: tuple[str, ...] = ()) -> Certificate:
    """A fresh EC P-256 certificate valid for ``hours`` for this host's names and ``host``.

    The key is written to a private (0700) directory, created when ``directory`` is None.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    if not 0 < hours <= 24 * 30:
        raise StreamConfigError(f"tls: certificate lifetime must be in (0, 720] hours, got {hours}")
    dns, ips = _names(host)
    ips = sorted(set(ips) | set(extra_ips))
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"synesthesia viewer ({dns[0]})")])
    san = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=hours))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    out = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="synesthesia-tls-"))
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert_path, key_path = out / "viewer-cert.pem", out / "viewer-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    der = cert.public_bytes(serialization.Encoding.DER)
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(der).hexdigest().upper()
    return Certificate(
        cert=cert_path, key=key_path,
        fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        spki_sha256=base64.b64encode(hashlib.sha256(spki).digest()).decode(),
        not_after=now + datetime.timedelta(hours=hours),
    )
