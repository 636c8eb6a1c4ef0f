"""OPC-UA configuration: node ids, browse paths and security checked at start-up, with paths."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from pydantic import ValidationError

from sentio_iot.config import load_config
from sentio_iot.errors import ConfigError
from sentio_iot.producers.opcua.addresses import (
    BrowseStep,
    NodeIdText,
    parse_browse_path,
    parse_node_id,
)
from sentio_iot.producers.opcua.config import OpcUaServerConfig, SecurityMode
from sentio_iot.producers.opcua.security import DEFAULT_APPLICATION_URI, load_identity

GUID = "09087e75-8e5e-499b-954f-f2a9603db28a"


def server(**fields: Any) -> dict[str, Any]:
    return {
        "device_id": "plc1",
        "url": "opc.tcp://plc1.local:4840",
        "nodes": [{"node_id": "ns=2;i=1001", "metric": "speed"}],
    } | fields


def problems(*servers: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(data={"producers": {"opcua": list(servers)}})
    return caught.value.problems


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("ns=2;i=1001", NodeIdText(2, "i", 1001)),
        ("ns=2;s=Pump1.Speed", NodeIdText(2, "s", "Pump1.Speed")),
        ("ns=3;s=a;b=c", NodeIdText(3, "s", "a;b=c")),  # a string id keeps its semicolons
        ("i=2258", NodeIdText(0, "i", 2258)),
        (f"ns=1;g={GUID}", NodeIdText(1, "g", uuid.UUID(GUID))),
        ("ns=4;b=AQID", NodeIdText(4, "b", b"\x01\x02\x03")),
        ("nsu=urn:plant;s=Pump1.Speed", NodeIdText("urn:plant", "s", "Pump1.Speed")),
    ],
)
def test_node_id_forms(text: str, parsed: NodeIdText) -> None:
    assert parse_node_id(text) == parsed


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ns=2;x=1", "is not a node id"),
        ("ns=2;i=", "is not a node id"),
        ("ns=2;i=abc", "whole number"),
        ("ns=2;i=4294967296", "whole number"),
        ("ns=70000;i=1", "above 65535"),
        ("ns=2;g=not-a-guid", "looks like"),
        ("ns=2;b=***", "base64"),
        ("Pump1.Speed", "is not a node id"),
    ],
)
def test_malformed_node_ids(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_node_id(text)


def test_browse_paths() -> None:
    assert parse_browse_path("0:Objects/2:Plant/2:Pump 1/2:Speed") == (
        BrowseStep(0, "Objects"),
        BrowseStep(2, "Plant"),
        BrowseStep(2, "Pump 1"),
        BrowseStep(2, "Speed"),
    )
    for bad in ("", "/0:Objects", "0:Objects//2:Speed", "0:Objects/Plant", "x:Objects", "0:"):
        with pytest.raises(ValueError):
            parse_browse_path(bad)


def test_every_problem_is_reported_with_its_path() -> None:
    nodes = [
        {"node_id": "ns=2;i=1001", "metric": "speed"},
        {"node_id": "ns=2;x=1001", "metric": "pressure"},
        {"browse_path": "0:Objects/Plant/2:Pump1", "metric": "flow"},
        {"browse_path": "0:Objects/2:Plant", "node_id": "ns=2;i=1", "metric": "both"},
        {"metric": "neither"},
        {"node_id": "ns=2;i=7", "metric": "t", "deadband_absolute": 1, "deadband_percent": 5},
        {"node_id": "ns=2;i=8", "metric": "p", "deadband_percent": 120},
    ]
    assert problems(
        server(security_mode="SignAndEncrypt", nodes=nodes),
        server(url="http://plc2", security_mode="Sign", certificate_path="/etc/c.der"),
    ) == [
        "producers.opcua[0].certificate_path: security_mode SignAndEncrypt needs certificate_path; set both certificate_path and private_key_path, or security_mode None",
        "producers.opcua[0].private_key_path: security_mode SignAndEncrypt needs private_key_path; set both certificate_path and private_key_path, or security_mode None",
        "producers.opcua[0].nodes[1].node_id: 'ns=2;x=1001' is not a node id; use ns=<index>;i=<number>, ns=<index>;s=<name>, ns=<index>;g=<guid>, ns=<index>;b=<base64>, or nsu=<namespace uri>;s=<name>",
        "producers.opcua[0].nodes[2].browse_path: '0:Objects/Plant/2:Pump1': step 2 'Plant' is not <namespace index>:<browse name>; use <index>:<name>/<index>:<name>/..., e.g. 0:Objects/2:Plant/2:Pump1/2:Speed",
        "producers.opcua[0].nodes[3]: node for metric 'both' needs exactly one of node_id or browse_path",
        "producers.opcua[0].nodes[4]: node for metric 'neither' needs exactly one of node_id or browse_path",
        "producers.opcua[0].nodes[5]: node for metric 't': choose deadband_absolute or deadband_percent, not both",
        "producers.opcua[0].nodes[6].deadband_percent: 120: input should be less than or equal to 100",
        "producers.opcua[1].url: 'http://plc2' is not an OPC-UA endpoint; use opc.tcp://host:port[/path]",
        "producers.opcua[1].private_key_path: security_mode Sign needs private_key_path; set both certificate_path and private_key_path, or security_mode None",
    ]


def test_a_secured_server_is_verified_unless_said_otherwise() -> None:
    secured = {"certificate_path": "/etc/c.der", "private_key_path": "/etc/k.pem"}
    assert problems(server(security_mode="Sign", **secured)) == [
        "producers.opcua[0]: security_mode Sign verifies the server's certificate: set "
        "trusted_ca_path (the CA that issued it) or server_certificate_path (the server's own "
        "certificate), or verify_server_certificate: false to trust any"
    ]
    for trust in (
        {"trusted_ca_path": "/etc/sentio/plant-ca.pem"},
        {"server_certificate_path": "/etc/sentio/plc1.der"},
        {"verify_server_certificate": False},
    ):
        fields = server(security_mode="SignAndEncrypt", **secured, **trust)
        assert (
            OpcUaServerConfig.model_validate(fields).security_mode is SecurityMode.SIGN_AND_ENCRYPT
        )
    assert OpcUaServerConfig.model_validate(server()).verify_server_certificate is True


def test_login_and_metric_names() -> None:
    assert problems(server(password="x")) == ["producers.opcua[0]: a password needs a username"]
    assert problems(server(username="op", password="x", password_env="OPC_PASSWORD")) == [
        "producers.opcua[0]: give password or password_env, not both"
    ]
    twice = [
        {"node_id": "ns=2;i=1", "metric": "speed", "device_id": "pump1"},
        {"browse_path": "0:Objects/2:Pump1/2:Speed", "metric": "speed", "device_id": "pump1"},
        {"node_id": "ns=2;i=3", "metric": "speed", "device_id": "pump2"},
    ]
    assert problems(server(nodes=twice)) == [
        "producers.opcua[0]: metric 'speed' of device 'pump1' is configured twice; each node needs its own metric name"
    ]


def test_defaults_and_device_ids() -> None:
    config = OpcUaServerConfig.model_validate(
        server(
            nodes=[
                {"node_id": "ns=2;i=1", "metric": "a"},
                {"node_id": "i=2", "metric": "b", "device_id": "pump1"},
            ]
        )
    )
    assert config.security_mode is SecurityMode.NONE
    assert (config.publishing_interval_ms, config.sampling_interval_ms, config.queue_size) == (
        1000.0,
        500.0,
        10,
    )
    assert [config.device_of(node) for node in config.nodes] == ["plc1", "pump1"]
    assert [node.address for node in config.nodes] == ["ns=2;i=1", "i=2"]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        OpcUaServerConfig.model_validate(server(bogus=1))


def certificate(
    tmp_path: Path, name: str, *, pem: bool, uri: str = "urn:acme:sentio"
) -> tuple[Path, Path]:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, name, {}, [x509.UniformResourceIdentifier(uri)], [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    cert_path = tmp_path / f"{name}.{'pem' if pem else 'der'}"
    cert_path.write_bytes(cert.public_bytes(Encoding.PEM if pem else Encoding.DER))
    key_path = tmp_path / f"{name}.key"
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path


async def test_certificates_are_loaded_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate(tmp_path, "client", pem=True)
    other_cert, _ = certificate(tmp_path, "other", pem=False)
    secure = {
        "security_mode": "SignAndEncrypt",
        "certificate_path": str(cert),
        "private_key_path": str(key),
        "verify_server_certificate": False,
    }
    monkeypatch.setenv("OPC_PASSWORD", "pw")
    identity = await load_identity(
        OpcUaServerConfig.model_validate(
            server(
                **secure,
                server_certificate_path=str(other_cert),
                username="op",
                password_env="OPC_PASSWORD",
            )
        )
    )
    assert identity.application_uri == "urn:acme:sentio"  # from the certificate
    assert identity.certificate_der == x509.load_pem_x509_certificate(
        cert.read_bytes()
    ).public_bytes(Encoding.DER)
    assert identity.server_certificate_der == other_cert.read_bytes()
    assert (identity.private_key_format, identity.username, identity.password) == (
        "pem",
        "op",
        "pw",
    )

    plain = await load_identity(OpcUaServerConfig.model_validate(server()))
    assert (plain.application_uri, plain.certificate_der, plain.password) == (
        DEFAULT_APPLICATION_URI,
        None,
        None,
    )

    failures = {
        "private_key_path": secure | {"certificate_path": str(other_cert)},
        f"certificate_path {tmp_path / 'missing.der'} cannot be read": secure
        | {"certificate_path": str(tmp_path / "missing.der")},
        "is not an X.509 certificate": secure | {"certificate_path": str(key)},
        "OPC_MISSING (password_env) is not set": {"username": "op", "password_env": "OPC_MISSING"},
    }
    for expected, fields in failures.items():
        with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            await load_identity(OpcUaServerConfig.model_validate(server(**fields)))
