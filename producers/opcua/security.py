"""Client security: the application certificate and key, the trusted server certificate, the login.

Files are read once at start-up; a missing or unreadable file, a key that does not belong to
the certificate, or an unset password variable is a ConfigError naming the field.

With Sign or SignAndEncrypt the server's certificate is verified by default before the
secure channel opens (:mod:`sentio_iot.producers.opcua.trust`): the certificate its endpoint
presents must be ``server_certificate_path`` or issued by ``trusted_ca_path``; otherwise the
connection is refused with :class:`UntrustedServer`, one line naming the fields and the fix,
and retried like any refused connection (the connector reports DISCONNECTED with the line).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import ua
from asyncua.client.client import Client
from asyncua.crypto import security_policies
from asyncua.crypto.uacrypto import CertProperties
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sentio_iot.errors import ConfigError, ConnectError
from sentio_iot.producers.opcua.config import OpcUaServerConfig, SecurityMode, SecurityPolicy
from sentio_iot.producers.opcua.trust import (
    ca_files,
    fingerprint,
    load_certificates,
    split_der_chain,
    untrusted,
)

DEFAULT_APPLICATION_URI = "urn:sentio-iot:opcua-client"

POLICIES: dict[SecurityPolicy, type[security_policies.SecurityPolicy]] = {
    SecurityPolicy.BASIC256SHA256: security_policies.SecurityPolicyBasic256Sha256,
}
MODES = {
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Everything a session needs to secure its channel and log in, loaded and checked."""

    application_uri: str
    certificate_der: bytes | None = None
    private_key: bytes | None = field(default=None, repr=False)
    private_key_format: str = "pem"
    private_key_password: str | None = field(default=None, repr=False)
    server_certificate_der: bytes | None = None
    trusted_ca_der: tuple[bytes, ...] = ()
    username: str | None = None
    password: str | None = field(default=None, repr=False)


async def load_identity(settings: OpcUaServerConfig) -> ClientIdentity:
    """Read and check the certificate files and the password; ConfigError names the field."""
    certificate: x509.Certificate | None = None
    key_bytes: bytes | None = None
    key_password = (
        settings.private_key_password.get_secret_value()
        if settings.private_key_password is not None
        else None
    )
    if settings.security_mode is not SecurityMode.NONE:
        certificate = await _certificate(settings, "certificate_path", settings.certificate_path)
        key_bytes = await _read(settings, "private_key_path", settings.private_key_path)
        _check_key(settings, certificate, key_bytes, key_password)
    server_certificate = None
    if settings.server_certificate_path is not None:
        server_certificate = await _certificate(
            settings, "server_certificate_path", settings.server_certificate_path
        )
    authorities: list[x509.Certificate] = []
    if settings.trusted_ca_path is not None:
        authorities = await _authorities(settings, settings.trusted_ca_path)
    return ClientIdentity(
        trusted_ca_der=tuple(c.public_bytes(Encoding.DER) for c in authorities),
        application_uri=settings.application_uri or _uri_of(certificate) or DEFAULT_APPLICATION_URI,
        certificate_der=certificate.public_bytes(Encoding.DER) if certificate else None,
        private_key=key_bytes,
        private_key_format="pem" if key_bytes and _is_pem(key_bytes) else "der",
        private_key_password=key_password,
        server_certificate_der=server_certificate.public_bytes(Encoding.DER)
        if server_certificate
        else None,
        username=settings.username,
        password=_password(settings),
    )


async def secure(client: Client, settings: OpcUaServerConfig, identity: ClientIdentity) -> None:
    """Set the application URI, the channel security and the login on a fresh client.

    Without a trusted server certificate this asks the server for its endpoints (network).
    """
    client.application_uri = identity.application_uri
    if identity.username is not None:
        client.set_user(identity.username)
    if identity.password is not None:
        client.set_password(identity.password)
    if settings.security_mode is SecurityMode.NONE:
        return
    if identity.certificate_der is None or identity.private_key is None:
        raise ConfigError(f"opcua {settings.device_id}: the client certificate was not loaded")
    presented = identity.server_certificate_der
    if settings.verify_server_certificate:
        presented = await verified_server_certificate(client, settings, identity)
    server_certificate = (
        CertProperties(presented, extension="der") if presented is not None else None
    )
    await client.set_security(
        POLICIES[settings.security_policy],
        certificate=CertProperties(identity.certificate_der, extension="der"),
        private_key=CertProperties(
            identity.private_key,
            extension=identity.private_key_format,
            password=identity.private_key_password,
        ),
        server_certificate=server_certificate,
        mode=MODES[settings.security_mode],
    )


class UntrustedServer(ConnectError):
    """The server presented a certificate the configuration does not trust."""


async def verified_server_certificate(
    client: Client, settings: OpcUaServerConfig, identity: ClientIdentity
) -> bytes:
    """The server certificate its endpoint presents (DER), once it is trusted; UntrustedServer
    (one line, with the fields and the fix) when it is not. Asks the server (network)."""
    endpoints = await client.connect_and_get_server_endpoints()
    policy = POLICIES[settings.security_policy]
    endpoint = Client.find_endpoint(endpoints, MODES[settings.security_mode], policy.URI)
    try:
        chain = [
            x509.load_der_x509_certificate(d) for d in split_der_chain(endpoint.ServerCertificate)
        ]
    except ValueError as exc:
        raise UntrustedServer(
            f"opcua {settings.device_id}: the server at {settings.url} presents no readable "
            f"certificate ({exc})"
        ) from exc
    if not chain:
        raise UntrustedServer(
            f"opcua {settings.device_id}: the server at {settings.url} presents no certificate"
        )
    pinned = (
        x509.load_der_x509_certificate(identity.server_certificate_der)
        if identity.server_certificate_der is not None
        else None
    )
    authorities = [x509.load_der_x509_certificate(d) for d in identity.trusted_ca_der]
    reason = untrusted(chain, pinned, authorities)
    if reason is not None:
        leaf = chain[0]
        raise UntrustedServer(
            f"opcua {settings.device_id}: the server at {settings.url} presents a certificate "
            f"that is not trusted ({leaf.subject.rfc4514_string()}, SHA-256 {fingerprint(leaf)}): "
            f"{reason}; fix: set trusted_ca_path to the CA that issued it, or "
            "server_certificate_path to this certificate once its fingerprint is confirmed "
            "with the server's administrator"
        )
    return chain[0].public_bytes(Encoding.DER)


async def _authorities(settings: OpcUaServerConfig, path: Path) -> list[x509.Certificate]:
    files = await asyncio.to_thread(ca_files, path)
    found: list[x509.Certificate] = []
    for file in files:
        content = await _read(settings, "trusted_ca_path", file)
        try:
            found += load_certificates(content)
        except ValueError as exc:
            raise ConfigError(
                f"opcua {settings.device_id}: trusted_ca_path {file} is not an X.509 certificate "
                "file (PEM or DER)"
            ) from exc
    if not found:
        raise ConfigError(
            f"opcua {settings.device_id}: trusted_ca_path {path} holds no certificate "
            "(.pem, .crt, .cer or .der); put the CA that issued the server's certificate there"
        )
    return found


async def _read(settings: OpcUaServerConfig, field: str, path: Path | None) -> bytes:
    if path is None:
        raise ConfigError(f"opcua {settings.device_id}: {field} is not set")
    try:
        return await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise ConfigError(
            f"opcua {settings.device_id}: {field} {path} cannot be read: {exc.strerror or exc}"
        ) from exc


async def _certificate(
    settings: OpcUaServerConfig, field: str, path: Path | None
) -> x509.Certificate:
    content = await _read(settings, field, path)
    try:
        if _is_pem(content):
            return x509.load_pem_x509_certificate(content)
        return x509.load_der_x509_certificate(content)
    except ValueError as exc:
        raise ConfigError(
            f"opcua {settings.device_id}: {field} {path} is not an X.509 certificate (DER or PEM)"
        ) from exc


def _check_key(
    settings: OpcUaServerConfig,
    certificate: x509.Certificate,
    key_bytes: bytes,
    password: str | None,
) -> None:
    secret = password.encode() if password is not None else None
    try:
        if _is_pem(key_bytes):
            key = serialization.load_pem_private_key(key_bytes, secret)
        else:
            key = serialization.load_der_private_key(key_bytes, secret)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"opcua {settings.device_id}: private_key_path {settings.private_key_path} cannot be loaded ({exc}); check the file and private_key_password"
        ) from exc
    mine = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    theirs = certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if mine != theirs:
        raise ConfigError(
            f"opcua {settings.device_id}: private_key_path {settings.private_key_path} does not belong to certificate_path {settings.certificate_path}"
        )


def _uri_of(certificate: x509.Certificate | None) -> str | None:
    """The application URI in the certificate's subjectAltName, which servers compare."""
    if certificate is None:
        return None
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = names.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


def _password(settings: OpcUaServerConfig) -> str | None:
    if settings.password is not None:
        return settings.password.get_secret_value()
    if settings.password_env is None:
        return None
    password = os.environ.get(settings.password_env)
    if password is None:
        raise ConfigError(
            f"opcua {settings.device_id}: environment variable {settings.password_env} (password_env) is not set; export the password there"
        )
    return password


def _is_pem(content: bytes) -> bool:
    return b"-----BEGIN" in content
