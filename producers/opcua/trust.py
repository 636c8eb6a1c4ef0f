"""Whether an OPC-UA server's certificate is one the configuration trusts.

A server is trusted when the certificate its endpoint presents is ``server_certificate_path``
itself, or was issued (directly, or through the intermediates the server sends after it) by
a certificate of ``trusted_ca_path``, and is within its validity dates. Anything else is
refused before the secure channel opens, with one line naming the fields and the fix.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding

MAX_CHAIN = 8
SUFFIXES = {".pem", ".crt", ".cer", ".der"}


def split_der_chain(data: bytes) -> list[bytes]:
    """The DER certificates of an OPC-UA ``ServerCertificate`` (one, or a chain concatenated)."""
    certificates: list[bytes] = []
    rest = data
    while rest:
        if len(rest) < 2 or rest[0] != 0x30:
            raise ValueError("not a DER certificate sequence")
        size, header = rest[1], 2
        if size & 0x80:
            count = size & 0x7F
            size, header = int.from_bytes(rest[2 : 2 + count], "big"), 2 + count
        end = header + size
        if end > len(rest):
            raise ValueError("a DER certificate is cut short")
        certificates.append(rest[:end])
        rest = rest[end:]
    return certificates


def load_certificates(content: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM file (one or more) or a DER file (one, or a chain)."""
    if b"-----BEGIN" in content:
        return x509.load_pem_x509_certificates(content)
    return [x509.load_der_x509_certificate(part) for part in split_der_chain(content)]


def ca_files(path: Path) -> list[Path]:
    """The file itself, or the certificate files of a folder."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES)
    return [path]


def fingerprint(certificate: x509.Certificate) -> str:
    digest = hashlib.sha256(certificate.public_bytes(Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, 16, 2)) + "..."


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _within_dates(certificate: x509.Certificate, now: datetime.datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def untrusted(
    chain: Sequence[x509.Certificate],
    pinned: x509.Certificate | None,
    authorities: Sequence[x509.Certificate],
    now: datetime.datetime | None = None,
) -> str | None:
    """Why the server's chain is not trusted; None when it is."""
    now = now or datetime.datetime.now(datetime.UTC)
    leaf = chain[0]
    if pinned is not None and leaf == pinned:
        return None
    if not _within_dates(leaf, now):
        return (
            f"it is valid from {leaf.not_valid_before_utc:%Y-%m-%d} to "
            f"{leaf.not_valid_after_utc:%Y-%m-%d} only"
        )
    current, intermediates = leaf, list(chain[1:])
    for _ in range(MAX_CHAIN):
        for authority in authorities:
            if current == authority or _issued_by(current, authority):
                return None if _within_dates(authority, now) else "its CA has expired"
        issuer = next((c for c in intermediates if _issued_by(current, c)), None)
        if issuer is None or not _within_dates(issuer, now):
            break
        intermediates.remove(issuer)
        current = issuer
    if pinned is not None and not authorities:
        return "it is not server_certificate_path"
    if pinned is None:
        return "no certificate of trusted_ca_path issued it"
    return "it is not server_certificate_path and no certificate of trusted_ca_path issued it"
