"""SchemaRegistry and AvroSerde against the real Apicurio Registry (ccompat v7 API)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from sentio_iot.config import SchemaRegistrySettings, SentioConfig
from sentio_iot.errors import ConnectError, DeserializationError, SentioError
from sentio_iot.registry import SchemaRegistry
from sentio_iot.schemas import SCHEMA_NAMES, load_schema
from sentio_iot.serde import AvroSerde
from sentio_iot.smoke import sample_readings

pytestmark = pytest.mark.integration


@pytest.fixture
def registry(sentio_config: SentioConfig) -> Iterator[SchemaRegistry]:
    with SchemaRegistry(sentio_config.schema_registry) as client:
        yield client


@pytest.fixture
def fresh_registry(sentio_config: SentioConfig) -> Iterator[SchemaRegistry]:
    """A second client with an empty cache: what another process would see."""
    with SchemaRegistry(sentio_config.schema_registry) as client:
        yield client


def with_field(schema: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    evolved = copy.deepcopy(schema)
    evolved["fields"].append(field)
    return evolved


FIRMWARE = {"name": "firmware", "type": ["null", "string"], "default": None, "doc": "Firmware."}
SITE_NO_DEFAULT = {"name": "site", "type": "string", "doc": "Site, without a default."}


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_schema_registers_and_comes_back(
    registry: SchemaRegistry, fresh_registry: SchemaRegistry, unique_name: str, name: str
) -> None:
    subject = f"{unique_name}-value"
    schema_id = registry.register(subject, load_schema(name))
    assert schema_id > 0
    assert registry.register(subject, load_schema(name)) == schema_id  # idempotent
    assert fresh_registry.schema_by_id(schema_id) == load_schema(name)
    assert fresh_registry.versions(subject) == [1]


def test_round_trip_through_the_registry_is_identical(
    registry: SchemaRegistry, fresh_registry: SchemaRegistry, unique_name: str
) -> None:
    writer = AvroSerde(registry, unique_name, "Reading")
    schema_id = writer.register()
    readings = sample_readings(50)
    encoded = [writer.encode(r) for r in readings]
    assert {data[:5] for data in encoded} == {b"\x00" + schema_id.to_bytes(4, "big")}
    reader = AvroSerde(fresh_registry, unique_name, "Reading")  # looks the id up
    assert [reader.decode(data) for data in encoded] == readings


def test_evolved_reader_reads_old_data_and_old_reader_reads_new(
    registry: SchemaRegistry, fresh_registry: SchemaRegistry, unique_name: str
) -> None:
    old = AvroSerde(registry, unique_name, "Reading")
    old_id = old.register()
    new = AvroSerde(fresh_registry, unique_name, with_field(load_schema("Reading"), FIRMWARE))
    new_id = new.register()
    assert new_id != old_id
    reading = sample_readings(1)[0]
    assert new.decode(old.encode(reading)) == {**reading, "firmware": None}
    assert old.decode(new.encode({**reading, "firmware": "4.2"})) == reading


def test_registry_enforces_backward_compatibility(
    registry: SchemaRegistry, unique_name: str
) -> None:
    serde = AvroSerde(registry, unique_name, "Reading")
    serde.register()
    subject = serde.subject
    reading = load_schema("Reading")
    assert registry.is_compatible(subject, with_field(reading, FIRMWARE)) is True
    assert registry.is_compatible(subject, with_field(reading, SITE_NO_DEFAULT)) is False
    with pytest.raises(SentioError) as caught:
        AvroSerde(registry, unique_name, with_field(reading, SITE_NO_DEFAULT)).register()
    assert str(caught.value).startswith(
        f"schema Reading is not BACKWARD compatible with the latest version of {subject}: "
    )


def test_is_compatible_for_a_new_subject(registry: SchemaRegistry, unique_name: str) -> None:
    assert registry.is_compatible(f"{unique_name}-value", load_schema("Alert")) is True


def test_corrupt_payload_and_unknown_id_raise_with_the_bytes(
    registry: SchemaRegistry, unique_name: str
) -> None:
    serde = AvroSerde(registry, unique_name, "Reading")
    schema_id = serde.register()
    garbage = b"\x00" + schema_id.to_bytes(4, "big") + b"\xff\xfe not avro"
    with pytest.raises(DeserializationError) as caught:
        serde.decode(garbage)
    assert caught.value.raw == garbage
    assert caught.value.topic == unique_name

    unknown = b"\x00\x7f\xff\xff\xf0" + serde.encode(sample_readings(1)[0])[5:]
    with pytest.raises(DeserializationError) as caught:
        serde.decode(unknown)
    assert caught.value.raw == unknown
    assert str(caught.value) == (
        f"cannot decode a message from {unique_name}: unknown schema id {0x7FFFFFF0} "
        f"(not in the registry at {registry.url})"
    )


def test_unreachable_registry_raises_connect_error_with_the_fix() -> None:
    url = "http://127.0.0.1:9/apis/ccompat/v7"  # the discard port: nothing listens
    settings = SchemaRegistrySettings.model_validate({"url": url, "timeout_s": 2})
    with SchemaRegistry(settings) as client, pytest.raises(ConnectError) as caught:
        client.subjects()
    message = str(caught.value)
    assert message.startswith(f"schema registry at {url} cannot be reached (ConnectError: ")
    assert message.endswith("(fix: is the registry running? sentio stack up)")
    assert "\n" not in message
    assert caught.value.retryable is True
