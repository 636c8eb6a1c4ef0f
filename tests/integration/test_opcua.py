"""The OPC-UA connector against real asyncua servers started in this process on 127.0.0.1.

Each test starts a server (about a second), runs the connector as the runtime would
(``connect()``, ``run()`` in a task, ``close()``), writes values server-side and checks the
exact readings and events the connector emitted.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from pki import certificate_authority, issue

from sentio_iot.producers.connector import ConnectorContext
from sentio_iot.producers.opcua.config import OpcUaServerConfig
from sentio_iot.producers.opcua.connector import OpcUaConnector
from sentio_iot.producers.recording import RecordingEmitter, wait_until
from sentio_iot.records import EventKind, Metric, Quality, Reading

NAMESPACE = "urn:sentio-iot:tests:plant"
T0 = datetime(2025, 3, 1, 8, 0, 0, 250000, tzinfo=UTC)
LABELS = {"tenant": "acme", "site": "plant1", "line": "L1"}
USER, PASSWORD = "operator", "s3cret-pump"


@pytest.fixture(scope="session")
def running_stack() -> None:
    """These tests need no Kafka or other stack service: only the in-process servers below."""


def us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Recorder(RecordingEmitter):
    """What the connector emitted, with the lookups these tests ask for."""

    def of(self, metric: str) -> list[Metric]:
        return [m for r in self.readings for m in r.metrics if m.name == metric]

    def reading_of(self, metric: str) -> list[Reading]:
        return [r for r in self.readings if r.metrics[0].name == metric]


@dataclass
class Plant:
    """A started server and its variables by name."""

    server: Server
    url: str
    variables: dict[str, Any]

    async def write(self, name: str, value: Any, variant: ua.VariantType, when: datetime) -> None:
        data_value = ua.DataValue(ua.Variant(value, variant), SourceTimestamp=when)
        await self.variables[name].write_value(data_value)

    async def write_status(
        self, name: str, status: int, when: datetime, value: Any = None, variant: Any = None
    ) -> None:
        data_value = ua.DataValue(
            ua.Variant(value, variant), StatusCode=ua.StatusCode(status), SourceTimestamp=when
        )
        await self.variables[name].write_value(data_value)


VARIABLES: list[tuple[str, Any, str, Any, ua.VariantType]] = [
    # name, node id, browse name, initial value, type
    ("speed", "s=Pump1.Speed", "Speed", 1450.0, ua.VariantType.Double),
    ("pressure", "i=1001", "Pressure", 2.5, ua.VariantType.Float),
    ("cycles", "i=1002", "Cycles", -7, ua.VariantType.Int32),
    ("mode", "i=1003", "Mode", 3, ua.VariantType.UInt16),
    ("running", "i=1004", "Running", True, ua.VariantType.Boolean),
    ("state", "i=1005", "State", "running", ua.VariantType.String),
    ("energy", "i=1006", "Energy", 123456789012, ua.VariantType.Int64),
    ("temperature", "s=Pump1.Temperature", "Temperature", 61.5, ua.VariantType.Double),
    ("vibration", "s=Pump1.Vibration", "Vibration", 10.0, ua.VariantType.Double),
]


@asynccontextmanager
async def plant_server(
    port: int,
    *,
    certificate: Path | None = None,
    private_key: Path | None = None,
    application_uri: str = "urn:sentio-iot:tests:server",
) -> AsyncIterator[Plant]:
    """A server with Objects/Plant/Pump1/<variables>; secure only when given a certificate."""
    server = Server(user_manager=PasswordUsers() if certificate else None)
    await server.init()
    url = f"opc.tcp://127.0.0.1:{port}/sentio/"
    server.set_endpoint(url)
    await server.set_application_uri(application_uri)
    if certificate is not None and private_key is not None:
        server.set_security_policy(
            [
                ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ua.SecurityPolicyType.Basic256Sha256_Sign,
            ]
        )
        await server.load_certificate(str(certificate))
        await server.load_private_key(str(private_key))
        server.set_identity_tokens([ua.UserNameIdentityToken])
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    idx = await server.register_namespace(NAMESPACE)
    plant = await server.nodes.objects.add_folder(f"ns={idx};s=Plant", f"{idx}:Plant")
    pump = await plant.add_object(f"ns={idx};s=Pump1", f"{idx}:Pump1")
    variables = {}
    for name, node_id, browse_name, initial, variant in VARIABLES:
        variables[name] = await pump.add_variable(
            f"ns={idx};{node_id}", f"{idx}:{browse_name}", ua.Variant(initial, variant)
        )
    await server.start()
    try:
        yield Plant(server, url, variables)
    finally:
        await server.stop()


class PasswordUsers:
    """The server's user manager: one user with one password."""

    def get_user(
        self,
        iserver: Any,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        return User(role=UserRole.User) if (username, password) == (USER, PASSWORD) else None


def settings(url: str, nodes: list[dict[str, Any]], **fields: Any) -> OpcUaServerConfig:
    return OpcUaServerConfig.model_validate(
        {
            "device_id": "plc1",
            "url": url,
            "publishing_interval_ms": 20,
            "sampling_interval_ms": 0,
            "watchdog_interval_s": 0.5,
            "request_timeout_s": 2,
            "reconnect_initial_s": 0.1,
            "reconnect_max_s": 0.5,
            "labels": {"line": "L1"},
            "nodes": nodes,
        }
        | fields
    )


@asynccontextmanager
async def running(config: OpcUaServerConfig) -> AsyncIterator[Recorder]:
    """The connector as the runtime drives it; run() must still be running at the end."""
    before = asyncio.all_tasks()
    recorder = Recorder()
    connector = OpcUaConnector(config, recorder, ConnectorContext(tenant="acme", site="plant1"))
    await connector.connect()
    task = asyncio.create_task(connector.run())
    try:
        yield recorder
        assert not task.done(), "run() ended on its own"
    finally:
        task.cancel()
        async with asyncio.timeout(5):  # cancelling run() ends it, whatever it was doing
            await asyncio.gather(task, return_exceptions=True)
        await connector.close()
        await connector.close()  # safe twice
        await asyncio.sleep(0.05)
        assert client_tasks(asyncio.all_tasks() - before) == [], "tasks left behind"


def client_tasks(tasks: set[asyncio.Task[Any]]) -> list[str]:
    """Tasks still running that are not the in-process servers' own."""
    left = []
    for task in tasks:
        code = getattr(task.get_coro(), "cr_code", None)
        filename = code.co_filename if code is not None else ""
        ours = any(part in filename for part in ("asyncua/client", "asyncua/common", "producers"))
        if not task.done() and ours:
            left.append(f"{task.get_name()} {code.co_name if code else ''} {filename}")
    return left


ALL_NODES = [
    {"node_id": "ns=2;s=Pump1.Speed", "metric": "speed", "unit": "rpm", "device_id": "pump1"},
    {"node_id": "ns=2;i=1001", "metric": "pressure", "unit": "bar", "device_id": "pump1"},
    {"node_id": "ns=2;i=1002", "metric": "cycles", "device_id": "pump1"},
    {"node_id": f"nsu={NAMESPACE};i=1003", "metric": "mode", "device_id": "pump1"},
    {"node_id": "ns=2;i=1004", "metric": "running", "device_id": "pump1"},
    {"node_id": "ns=2;i=1005", "metric": "state", "device_id": "pump1"},
    {"node_id": "ns=2;i=1006", "metric": "energy", "unit": "J", "device_id": "pump1"},
    {
        "browse_path": "0:Objects/2:Plant/2:Pump1/2:Temperature",
        "metric": "temperature",
        "unit": "degC",
        "device_id": "pump1",
        "labels": {"sensor": "pt100"},
    },
    {"browse_path": "0:Objects/2:Plant/2:Pump9/2:Speed", "metric": "ghost_speed"},
]


async def test_values_types_qualities_and_units() -> None:
    async with plant_server(free_port()) as plant, running(settings(plant.url, ALL_NODES)) as got:
        await wait_until(lambda: len(got.readings) == 8)
        initial = {r.metrics[0].name: r.metrics[0] for r in got.readings}
        assert initial == {
            "speed": Metric("speed", 1450.0, "rpm", Quality.GOOD),
            "pressure": Metric("pressure", 2.5, "bar", Quality.GOOD),
            "cycles": Metric("cycles", -7.0, None, Quality.GOOD),
            "mode": Metric("mode", 3.0, None, Quality.GOOD),
            "running": Metric("running", 1.0, None, Quality.GOOD),
            "state": Metric("state", None, None, Quality.GOOD, "running"),
            "energy": Metric("energy", 123456789012.0, "J", Quality.GOOD),
            "temperature": Metric("temperature", 61.5, "degC", Quality.GOOD),
        }
        assert {r.device_id for r in got.readings} == {"pump1"}
        assert sorted(r.seq for r in got.readings) == list(range(1, 9))
        assert got.reading_of("temperature")[0].labels == LABELS | {"sensor": "pt100"}
        assert got.reading_of("speed")[0].labels == LABELS
        assert [r.source for r in got.readings] == ["opcua"] * 8
        # the browse path that leads nowhere is an event; the server and the rest carry on
        ghost = [e for e in got.events if e.kind is EventKind.ERROR]
        assert [(e.device_id, e.details["node"]) for e in ghost] == [
            ("plc1", "0:Objects/2:Plant/2:Pump9/2:Speed")
        ]
        assert "BadNoMatch" in ghost[0].message
        connected = [e for e in got.events if e.kind is EventKind.CONNECTED]
        assert connected[0].details["nodes_subscribed"] == "8/9"

        got.readings.clear()
        await plant.write("speed", 1502.5, ua.VariantType.Double, at(1))
        await plant.write("pressure", 3.25, ua.VariantType.Float, at(2))
        await plant.write("cycles", 42, ua.VariantType.Int32, at(3))
        await plant.write("running", False, ua.VariantType.Boolean, at(4))
        await plant.write("state", "stopped", ua.VariantType.String, at(5))
        await plant.write("energy", 2**40, ua.VariantType.Int64, at(6))
        await wait_until(lambda: len(got.readings) == 6)
        assert [(r.metrics[0], r.ts_us) for r in got.readings] == [
            (Metric("speed", 1502.5, "rpm", Quality.GOOD), us(at(1))),
            (Metric("pressure", 3.25, "bar", Quality.GOOD), us(at(2))),
            (Metric("cycles", 42.0, None, Quality.GOOD), us(at(3))),
            (Metric("running", 0.0, None, Quality.GOOD), us(at(4))),
            (Metric("state", None, None, Quality.GOOD, "stopped"), us(at(5))),
            (Metric("energy", float(2**40), "J", Quality.GOOD), us(at(6))),
        ]

        # a Bad status written server-side: BAD without value, and an event naming the status
        got.readings.clear()
        got.events.clear()
        await plant.write_status("speed", ua.StatusCodes.BadSensorFailure, at(7))
        await plant.write_status(
            "temperature",
            ua.StatusCodes.UncertainLastUsableValue,
            at(8),
            61.0,
            ua.VariantType.Double,
        )
        await plant.write("speed", 1499.0, ua.VariantType.Double, at(9))
        await wait_until(lambda: len(got.readings) == 3)
        # one publish may group changes by node: order across nodes is not kept, within one it is
        assert sorted(((r.metrics[0], r.ts_us) for r in got.readings), key=lambda x: x[1]) == [
            (Metric("speed", None, "rpm", Quality.BAD), us(at(7))),
            (Metric("temperature", 61.0, "degC", Quality.UNCERTAIN), us(at(8))),
            (Metric("speed", 1499.0, "rpm", Quality.GOOD), us(at(9))),
        ]
        events = sorted(got.events, key=lambda e: e.details["metric"])
        assert [
            (e.device_id, e.kind, e.details["status"], e.details["status_code"]) for e in events
        ] == [
            ("pump1", EventKind.ERROR, "BadSensorFailure", "0x808C0000"),
            ("pump1", EventKind.INFO, "Good", "0x00000000"),
            ("pump1", EventKind.INFO, "UncertainLastUsableValue", "0x40900000"),
        ]
        assert [(e.details["metric"], e.details["node"]) for e in events[:2]] == [
            ("speed", "ns=2;s=Pump1.Speed"),
            ("speed", "ns=2;s=Pump1.Speed"),
        ]
        assert events[1].details["previous_status"] == "BadSensorFailure"
        assert got.dead_letters == []


async def test_deadband_suppresses_small_changes() -> None:
    nodes = [
        {
            "node_id": "ns=2;s=Pump1.Vibration",
            "metric": "vibration",
            "unit": "mm/s",
            "deadband_absolute": 1.0,
        },
        {"node_id": "ns=2;s=Pump1.Speed", "metric": "speed", "unit": "rpm"},
    ]
    async with plant_server(free_port()) as plant, running(settings(plant.url, nodes)) as got:
        await wait_until(lambda: len(got.readings) == 2)
        for step, value in enumerate([10.5, 10.9, 12.5, 12.0, 13.6, 13.0]):
            await plant.write("vibration", value, ua.VariantType.Double, at(step))
        await plant.write("speed", 1.0, ua.VariantType.Double, at(10))  # a marker after them
        await wait_until(lambda: len(got.of("speed")) == 2)
        # each change is compared with the previous sample: 10.9->12.5 and 12.0->13.6 pass
        assert [m.value for m in got.of("vibration")] == [10.0, 12.5, 13.6]
        assert [r.ts_us for r in got.reading_of("vibration")[1:]] == [us(at(2)), us(at(4))]


def write_certificate(
    tmp_path: Path, name: str, uri: str, use: x509.ObjectIdentifier, pem: bool
) -> tuple[Path, Path]:
    key = cert_gen.generate_private_key()
    certificate = cert_gen.generate_self_signed_app_certificate(
        key,
        name,
        {"organizationName": "Sentio tests"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")],
        extended=[use],
        days=2,
    )
    cert_path = tmp_path / (f"{name}.pem" if pem else f"{name}.der")
    cert_path.write_bytes(certificate.public_bytes(Encoding.PEM if pem else Encoding.DER))
    key_path = tmp_path / f"{name}-key.pem"
    key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return cert_path, key_path


async def test_secure_endpoint_with_certificates_and_password(tmp_path: Path) -> None:
    server_uri, client_uri = "urn:sentio-iot:tests:server", "urn:sentio-iot:tests:client"
    server_cert, server_key = write_certificate(
        tmp_path, "server", server_uri, ExtendedKeyUsageOID.SERVER_AUTH, pem=False
    )
    client_cert, client_key = write_certificate(
        tmp_path, "client", client_uri, ExtendedKeyUsageOID.CLIENT_AUTH, pem=True
    )
    other_cert, _ = write_certificate(
        tmp_path, "impostor", server_uri, ExtendedKeyUsageOID.SERVER_AUTH, pem=False
    )
    nodes = [{"node_id": "ns=2;s=Pump1.Speed", "metric": "speed", "unit": "rpm"}]
    secure = {
        "certificate_path": str(client_cert),
        "private_key_path": str(client_key),
        "server_certificate_path": str(server_cert),
        "username": USER,
        "password": PASSWORD,
    }
    port = free_port()
    async with plant_server(port, certificate=server_cert, private_key=server_key) as plant:
        for mode, before, after in (("SignAndEncrypt", 1450.0, 1234.0), ("Sign", 1234.0, 987.0)):
            config = settings(plant.url, nodes, security_mode=mode, **secure)
            async with running(config) as got:
                await wait_until(lambda got=got: len(got.readings) == 1)
                await plant.write("speed", after, ua.VariantType.Double, at(1))
                await wait_until(lambda got=got: len(got.readings) == 2)
                assert [m.value for m in got.of("speed")] == [before, after]
                assert got.kinds("plc1") == [EventKind.CONNECTED]
                assert got.events[0].details["security_mode"] == mode

        # a wrong password or an unknown server certificate: DISCONNECTED, run() keeps trying
        wrong_password = settings(
            plant.url, nodes, security_mode="SignAndEncrypt", **(secure | {"password": "nope"})
        )
        impostor = settings(
            plant.url,
            nodes,
            security_mode="SignAndEncrypt",
            **(secure | {"server_certificate_path": str(other_cert), "request_timeout_s": 0.3}),
        )
        # a pinned certificate the server does not present: refused before the channel opens
        for config, reason in (
            (wrong_password, "BadUserAccessDenied"),
            (impostor, "presents a certificate that is not trusted"),
        ):
            async with running(config) as got:
                await wait_until(lambda got=got: len(got.events) >= 1)
                await asyncio.sleep(0.3)  # a few retries
                assert got.kinds("plc1") == [EventKind.DISCONNECTED]
                assert reason in got.events[0].message
                assert got.readings == []


async def test_the_server_certificate_is_verified_against_the_trusted_ca(tmp_path: Path) -> None:
    """Trusted (its CA, or its own self-signed certificate) -> reads; untrusted -> refused
    with one line naming the fields and the fix, retried, no reading."""
    server_uri = "urn:sentio-iot:tests:server"
    ca = certificate_authority(tmp_path / "ca", "Plant CA")
    other_ca = certificate_authority(tmp_path / "other", "Someone else CA")
    server = issue(ca, tmp_path / "server", "plc1-server", uri=server_uri)
    self_signed, self_signed_key = write_certificate(
        tmp_path, "self-signed", server_uri, ExtendedKeyUsageOID.SERVER_AUTH, pem=True
    )
    client_cert, client_key = write_certificate(
        tmp_path, "client", "urn:sentio-iot:tests:client", ExtendedKeyUsageOID.CLIENT_AUTH, pem=True
    )
    nodes = [{"node_id": "ns=2;s=Pump1.Speed", "metric": "speed", "unit": "rpm"}]
    secure = {
        "security_mode": "SignAndEncrypt",
        "certificate_path": str(client_cert),
        "private_key_path": str(client_key),
        "username": USER,
        "password": PASSWORD,
    }
    port = free_port()
    async with plant_server(
        port, certificate=server.cert_path, private_key=server.key_path
    ) as plant:
        trust_list = tmp_path / "trusted"
        trust_list.mkdir()
        (trust_list / "plant-ca.crt").write_bytes(ca.cert_path.read_bytes())
        (trust_list / "other-ca.pem").write_bytes(other_ca.cert_path.read_bytes())
        for trusted in (ca.cert_path, trust_list):  # the CA file, or a folder holding it
            async with running(
                settings(plant.url, nodes, trusted_ca_path=str(trusted), **secure)
            ) as got:
                await wait_until(lambda got=got: len(got.readings) == 1)
                assert [m.value for m in got.of("speed")] == [1450.0]
                assert got.kinds("plc1") == [EventKind.CONNECTED]

        untrusted = settings(plant.url, nodes, trusted_ca_path=str(other_ca.cert_path), **secure)
        async with running(untrusted) as got:
            await wait_until(lambda got=got: len(got.events) >= 1)
            await asyncio.sleep(0.3)  # a few retries
            assert got.readings == []
            assert set(got.kinds("plc1")) == {EventKind.DISCONNECTED}
            message = got.events[0].message
            assert "\n" not in message
            assert (
                f"opcua plc1: the server at {plant.url} presents a certificate that is not "
                "trusted (CN=plc1-server,O=Sentio tests, SHA-256 "
            ) in message
            assert message.endswith(
                "no certificate of trusted_ca_path issued it; fix: set trusted_ca_path to the "
                "CA that issued it, or server_certificate_path to this certificate once its "
                "fingerprint is confirmed with the server's administrator"
            )

    port = free_port()
    async with plant_server(port, certificate=self_signed, private_key=self_signed_key) as plant:
        own = settings(plant.url, nodes, trusted_ca_path=str(self_signed), **secure)
        async with running(own) as got:
            await wait_until(lambda got=got: len(got.readings) == 1)
            assert got.kinds("plc1") == [EventKind.CONNECTED]
        by_ca = settings(plant.url, nodes, trusted_ca_path=str(ca.cert_path), **secure)
        async with running(by_ca) as got:
            await wait_until(lambda got=got: len(got.events) >= 1)
            assert got.readings == []
            assert "presents a certificate that is not trusted" in got.events[0].message
        # the old behaviour, only when asked for in so many words
        anyone = settings(plant.url, nodes, verify_server_certificate=False, **secure)
        async with running(anyone) as got:
            await wait_until(lambda got=got: len(got.readings) == 1)


async def test_resubscribes_after_the_server_restarts() -> None:
    port = free_port()
    nodes = [
        {"node_id": "ns=2;s=Pump1.Speed", "metric": "speed", "unit": "rpm"},
        {"browse_path": "0:Objects/2:Plant/2:Pump1/2:Temperature", "metric": "temperature"},
    ]
    config = settings(f"opc.tcp://127.0.0.1:{port}/sentio/", nodes)
    async with running(config) as got:
        async with plant_server(port) as plant:
            await wait_until(lambda: len(got.readings) == 2)
            await plant.write("speed", 1300.0, ua.VariantType.Double, at(1))
            await wait_until(lambda: len(got.readings) == 3)
        await wait_until(lambda: got.kinds("plc1").count(EventKind.DISCONNECTED) == 2)
        async with plant_server(port) as plant:
            await wait_until(
                lambda: got.kinds("plc1").count(EventKind.CONNECTED) == 2, timeout_s=10
            )
            await plant.write("speed", 1600.0, ua.VariantType.Double, at(2))
            await plant.write("temperature", 70.0, ua.VariantType.Double, at(3))
            await wait_until(lambda: len(got.readings) == 7)
    assert [(m.name, m.value) for r in got.readings for m in r.metrics] == [
        ("speed", 1450.0),
        ("temperature", 61.5),
        ("speed", 1300.0),
        ("speed", 1450.0),  # the restarted server's initial values
        ("temperature", 61.5),
        ("speed", 1600.0),
        ("temperature", 70.0),
    ]
    # not there yet when the connector started, then up, down, up, and down at the end
    assert got.kinds("plc1") == [
        EventKind.DISCONNECTED,
        EventKind.CONNECTED,
        EventKind.DISCONNECTED,
        EventKind.CONNECTED,
        EventKind.DISCONNECTED,
    ]


class Tunnel:
    """A TCP relay to the server that can go silent: the sockets stay open, no byte gets through.

    That is a server or network that hangs without closing anything: only the watchdog's
    unanswered probe can notice it.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.silent = False
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Tunnel:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [writer, up_writer]
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if not self.silent:
                writer.write(data)
                await writer.drain()
        writer.close()


async def test_a_silent_server_is_noticed_by_the_watchdog() -> None:
    port = free_port()
    nodes = [{"node_id": "ns=2;s=Pump1.Speed", "metric": "speed", "unit": "rpm"}]
    async with plant_server(port) as plant, Tunnel(port) as tunnel:
        config = settings(
            f"opc.tcp://127.0.0.1:{tunnel.port}/sentio/", nodes, request_timeout_s=0.5
        )
        async with running(config) as got:
            await wait_until(lambda: len(got.readings) == 1)
            tunnel.silent = True
            await wait_until(
                lambda: got.kinds("plc1") == [EventKind.CONNECTED, EventKind.DISCONNECTED]
            )
            assert "no answer to the watchdog probe within 0.5 s" in got.events[1].message
            tunnel.silent = False
            await wait_until(
                lambda: got.kinds("plc1").count(EventKind.CONNECTED) == 2, timeout_s=10
            )
            await plant.write("speed", 1234.0, ua.VariantType.Double, at(1))
            await wait_until(lambda: got.of("speed")[-1].value == 1234.0)


async def test_unreachable_server_is_an_event_not_an_exception() -> None:
    config = settings(
        f"opc.tcp://127.0.0.1:{free_port()}/", [{"node_id": "ns=2;i=1", "metric": "x"}]
    )
    async with running(config) as got:
        await asyncio.sleep(0.5)  # several reconnect attempts
        assert got.kinds("plc1") == [EventKind.DISCONNECTED]
        assert got.events[0].details["url"] == config.url
