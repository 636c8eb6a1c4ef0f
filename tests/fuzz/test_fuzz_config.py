"""Configuration files: any text or bytes in a file, and any document, load to a validated
configuration or raise one ConfigError whose lines each name a path and what is wrong; nothing
else escapes (no TypeError, RecursionError or YAML traceback), for the whole file and for
every connector's device entries."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from sentio_iot.config import load_config
from sentio_iot.config_yaml import load_yaml
from sentio_iot.errors import ConfigError
from sentio_iot.plugins import connector_names

SECTIONS = ["kafka", "schema_registry", "topics", "stack", "producer", "streams", "sinks"]
keys = st.sampled_from(
    [*SECTIONS, "tenant", "log_level", "producers", "url", "port", "prefix", "agents", "extra"]
) | st.text(max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["127.0.0.1:9092", "http://x", "DEBUG", "rollups", "-1", "1e999"])
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=30,
)
yaml_text = st.one_of(
    st.text(max_size=300),
    documents.map(lambda d: yaml.safe_dump(d, sort_keys=False)),
    st.lists(
        st.sampled_from(
            [
                "a: &x [1, 2]\n",
                "b: *x\n",
                "c: *y\n",
                "? [1, 2]\n: 3\n",
                "1: one\n",
                "kafka: {extra: {sasl.password: s}}\n",
                "kafka: 3\n",
                "- list\n",
                "!!binary AA==\n",
                "t: !!timestamp 2001-12-14\n",
                "x: !!python/object:os.system ls\n",
                "a: 1\na: 2\n",
                "{[\n",
                "'\n",
                "\t- x\n",
                "k: |\n  text\n",
                "%YAML 1.1\n---\n",
                "--- \n...\n",
                "producers: {modbus: [{host: h, registers: []}]}\n",
                "tenant: [1]\n",
                "~: ~\n",
            ]
        ),
        max_size=8,
    ).map("".join),
)


def check(error: ConfigError) -> None:
    lines = str(error).splitlines()
    assert lines and lines[0]
    assert len(lines) == 1 + len(error.problems)
    for problem in error.problems:
        assert ": " in problem and "\n" not in problem, problem


@given(yaml_text)
def test_any_text_loads_or_is_one_config_error(text: str) -> None:
    try:
        document = load_yaml(text, "fuzz.yaml")
    except ConfigError as exc:
        assert str(exc).startswith("fuzz.yaml: ") and "\n" not in str(exc), str(exc)
        return
    if isinstance(document, dict):
        try:
            load_config(data=document)
        except ConfigError as exc:
            check(exc)


@given(st.binary(max_size=400) | yaml_text.map(str.encode))
def test_any_file_loads_or_is_one_config_error(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sentio.yaml"
        path.write_bytes(content)
        try:
            load_config(path)
        except ConfigError as exc:
            check(exc)
            assert str(exc).startswith(str(path))


@given(st.dictionaries(keys, documents, max_size=6))
def test_any_document_validates_or_lists_its_problems(document: dict[str, Any]) -> None:
    try:
        load_config(data=document)
    except ConfigError as exc:
        check(exc)


device_keys = st.sampled_from(
    [
        "device_id",
        "host",
        "port",
        "unit_id",
        "registers",
        "url",
        "nodes",
        "source_id",
        "mappings",
        "topic",
        "zigbee2mqtt",
        "homeassistant",
        "instance_id",
        "access_token",
        "devices",
        "rate",
        "seed",
        "path",
        "format",
        "password",
        "username",
        "security_mode",
    ]
) | st.text(max_size=10)
devices = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(device_keys, inner, max_size=6),
    max_leaves=25,
)


@pytest.mark.parametrize("connector", connector_names())
@given(st.lists(devices, max_size=3))
def test_any_device_entry_validates_or_names_its_problems(connector: str, entries: Any) -> None:
    try:
        load_config(data={"producers": {connector: entries}})
    except ConfigError as exc:
        check(exc)
        assert all(p.startswith(f"producers.{connector}") for p in exc.problems), exc.problems
