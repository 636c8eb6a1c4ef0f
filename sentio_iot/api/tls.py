"""HTTPS/WSS for the API: the server's SSL context from ``api.tls``.

Each file is checked on its own first, so an unusable one is a one-line ConfigError that
names its field (``api.tls.cert_file``, ``api.tls.key_file``, ``api.tls.key_password``)
instead of OpenSSL's "PEM lib". TLS 1.2 at least; no client certificates are asked for
(callers authenticate with tokens).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sentio_iot.errors import ConfigError
from sentio_iot.secret_values import secret_value
from sentio_iot.settings.api import ApiTlsSettings

WHERE = "api.tls"


def _read(field: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{WHERE}.{field}: {path} does not exist; give the path of a PEM file"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{WHERE}.{field}: {path} is a folder; give the path of a PEM file"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"{WHERE}.{field}: {path} cannot be read ({exc.strerror}); fix its permissions"
        ) from None


def _check_key(path: Path, data: bytes, password: str | None) -> None:
    try:
        serialization.load_pem_private_key(data, password.encode() if password else None)
    except TypeError:  # encrypted without a password, or a password for a plain key
        if password is None:
            raise ConfigError(
                f"{WHERE}.key_password: {path} is encrypted; set key_password"
            ) from None
        raise ConfigError(
            f"{WHERE}.key_password: {path} is not encrypted; remove key_password"
        ) from None
    except ValueError:
        if password is not None and b"ENCRYPTED" in data:
            raise ConfigError(
                f"{WHERE}.key_password: it does not decrypt {path}; give the key's password"
            ) from None
        raise ConfigError(
            f"{WHERE}.key_file: {path} is not a PEM private key; give the key of cert_file"
        ) from None
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for odd keys
        raise ConfigError(f"{WHERE}.key_file: {path} cannot be used ({exc})") from None


def server_context(tls: ApiTlsSettings) -> ssl.SSLContext:
    """The API's server-side SSL context; ConfigError naming the field when a file is
    missing or unusable (or when the key is not the certificate's)."""
    if tls.cert_file is None or tls.key_file is None:
        raise ConfigError(f"{WHERE}: cert_file and key_file are both required for TLS")
    password = secret_value(tls.key_password)
    try:
        x509.load_pem_x509_certificate(_read("cert_file", tls.cert_file))
    except ValueError:
        raise ConfigError(
            f"{WHERE}.cert_file: {tls.cert_file} is not a PEM certificate; give the "
            "certificate (PEM) the API presents"
        ) from None
    _check_key(tls.key_file, _read("key_file", tls.key_file), password)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password)
    except ssl.SSLError as exc:
        reason = " ".join(str(getattr(exc, "reason", None) or exc).split())
        raise ConfigError(
            f"{WHERE}.key_file: {tls.key_file} cannot be used with cert_file {tls.cert_file} "
            f"({reason}); give the key the certificate was issued for"
        ) from None
    return context
