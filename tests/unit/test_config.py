"""Configuration: every problem reported at once, with its path and the fix."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from sentio_iot.cli.main import cli
from sentio_iot.config import load_config
from sentio_iot.errors import ConfigError

BAD = """
kafka:
  bootstrap_servers: 127.0.0.1:9092
  bogus: 1
topics:
  partitions: 0
producers:
  modbus:
    - device_id: pump-1
      host: 127.0.0.1
      registers:
        - {name: a, address: 0}
        - {name: b, address: 1, data_type: INT32}
        - {name: c, address: 3, kind: coil, data_type: BOOL}
        - {name: d, address: 4, data_type: FLOAT23}
        - {name: e, address: 10, data_type: STRING}
  bacnet: []
"""

GOOD = """
tenant: acme
site: plant-7
kafka: {bootstrap_servers: "10.0.0.5:9092"}
topics: {prefix: "acme.", partition_overrides: {readings: 12}}
producers:
  modbus:
    - device_id: press-3
      host: 10.1.2.3
      unit_id: 7
      poll_interval_s: 0.5
      registers:
        - {name: pressure, address: 0, data_type: FLOAT32, byte_order: CDAB, unit: bar}
        - {name: serial, address: 10, data_type: STRING, length: 8}
        - {name: running, kind: coil, address: 0, data_type: BOOL}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sentio.yaml"
    path.write_text(text)
    return path


def test_every_problem_is_reported_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, BAD))
    assert caught.value.problems == [
        "kafka.bogus: unknown field (value 1); remove it or check its spelling",
        "topics.partitions: 0: input should be greater than or equal to 1",
        "producers.modbus[0].registers[3].data_type: 'FLOAT23' is not one of INT16, UINT16, INT32, "
        "UINT32, INT64, UINT64, FLOAT32, FLOAT64, BOOL, STRING",
        "producers.modbus[0].registers[4]: a STRING needs length: the number of registers it spans",
        "producers.bacnet: unknown connector 'bacnet'; installed connectors: homeassistant_ws, modbus, mqtt, opcua, replay, simulate",
    ]


def test_valid_file_loads_typed_values(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert config.tenant == "acme"
    assert config.kafka.bootstrap_servers == "10.0.0.5:9092"
    assert config.topics.partition_overrides == {"readings": 12}
    assert config.producers["modbus"][0]["unit_id"] == 7


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTIO_KAFKA__BOOTSTRAP_SERVERS", "broker:19092")
    monkeypatch.setenv("SENTIO_SITE", "plant-9")
    config = load_config(write(tmp_path, GOOD))
    assert config.kafka.bootstrap_servers == "broker:19092"
    assert config.site == "plant-9"
    assert config.tenant == "acme"  # untouched keys keep the file's value


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"invalid YAML at line 3, column 2"):
        load_config(write(tmp_path, "kafka:\n  a: 1\n b: 2\n"))


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "nope.yaml")


def test_modbus_register_rules(tmp_path: Path) -> None:
    text = """
producers:
  modbus:
    - device_id: d
      host: h
      registers:
        - {name: x, kind: coil, address: 0, data_type: FLOAT32}
        - {name: x, address: 65535, data_type: INT32}
"""
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    assert caught.value.problems == [
        "producers.modbus[0].registers[0]: data_type FLOAT32 cannot be read from coils; "
        "coils and discrete inputs hold single bits: use data_type BOOL",
        "producers.modbus[0].registers[1]: address 65535 + 2 registers runs past 65535",
    ]


def test_cli_validate_prints_all_and_exits_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "validate", str(write(tmp_path, BAD))])
    assert result.exit_code == 2
    assert "5 problems" in result.output
    assert "producers.modbus[0].registers[3].data_type: 'FLOAT23' is not one of" in result.output
    assert "Traceback" not in result.output


def test_cli_validate_ok(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["config", "validate", str(write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output
    assert "valid (1 device(s) in 1 connector section(s))" in result.output


# -- hostile files: bounded work, one-line errors ---------------------------------------------


def test_a_billion_laughs_is_refused_at_once(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    path = write(tmp_path, "\n".join(lines) + "\n")
    started = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than 200,000 values"):
        load_config(path)
    assert time.monotonic() - started < 1.0


def test_deep_nesting_and_non_utf8_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nested") as deep:
        load_config(write(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert "\n" not in str(deep.value)
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xff at offset 7\)"):
        path = tmp_path / "latin1.yaml"
        path.write_bytes(b"tenant:\xff\n")
        load_config(path)


def test_a_key_given_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "tenant: a\nsite: s\ntenant: b\n")
    with pytest.raises(
        ConfigError, match=r"line 3.*key 'tenant' is given twice \(first on line 1\)"
    ):
        load_config(path)
    merged = write(tmp_path, "base: &b {tenant: a}\n<<: *b\nsite: s\n")
    with pytest.raises(ConfigError, match="base"):  # merges are fine; 'base' itself is unknown
        load_config(merged)


def test_unknown_stream_agents_are_refused_naming_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, "streams:\n  agents: [rollups, foo]\n")
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert any(
        p.startswith("streams.agents") and "unknown agent(s) foo" in p and "rollups" in p
        for p in refused.value.problems
    ), refused.value.problems
