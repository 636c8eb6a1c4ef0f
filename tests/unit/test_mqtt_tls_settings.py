"""The MQTT TLS settings of the connector and the Home Assistant sink: checked, and the key
password a secret (masked by ``config show``, never in an error)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from secret_settings import write

from sentio_iot.cli.main import cli
from sentio_iot.secret_values import MASK

KEY_PASSWORD = "Zq-mqtt-key-password"
SINK_KEY_PASSWORD = "Zq-ha-sink-key-password"


def configuration(**mqtt: Any) -> dict[str, Any]:
    tls = {"tls": True, "ca_file": "/etc/sentio/mqtt-ca.pem"}
    return {
        "producers": {
            "mqtt": [
                {
                    "source_id": "plant",
                    **tls,
                    "cert_file": "/etc/sentio/mqtt.pem",
                    "key_file": "/etc/sentio/mqtt-key.pem",
                    "key_password": KEY_PASSWORD,
                    "mappings": [{"topic": "plant/{device}/flow", "metric": "flow"}],
                    **mqtt,
                }
            ]
        },
        "sinks": {
            "homeassistant": {
                **tls,
                "cert_file": "/etc/sentio/ha.pem",
                "key_file": "/etc/sentio/ha-key.pem",
                "key_password": SINK_KEY_PASSWORD,
            }
        },
    }


def test_config_show_masks_the_key_passwords(tmp_path: Path) -> None:
    path = write(tmp_path / "sentio.yaml", configuration())
    result = CliRunner().invoke(cli, ["config", "show", str(path)])
    assert result.exit_code == 0, result.output
    assert KEY_PASSWORD not in result.output and SINK_KEY_PASSWORD not in result.output
    shown = yaml.safe_load(result.output)
    assert shown["producers"]["mqtt"][0]["key_password"] == MASK
    assert shown["sinks"]["homeassistant"]["key_password"] == MASK
    assert shown["sinks"]["homeassistant"]["protocol"] == "5"


def test_tls_files_are_checked_with_their_path_and_no_secret(tmp_path: Path) -> None:
    data = configuration(tls=False, key_file=None)
    data["sinks"]["homeassistant"]["key_file"] = None
    path = write(tmp_path / "bad.yaml", data)
    result = CliRunner().invoke(cli, ["config", "validate", str(path)])
    assert result.exit_code != 0
    assert KEY_PASSWORD not in result.output and SINK_KEY_PASSWORD not in result.output
    lines = [line.strip() for line in result.output.splitlines()[1:]]
    assert sorted(lines) == [
        "producers.mqtt[0]: ca_file is set but tls is false; set tls: true",
        "sinks.homeassistant: a client certificate needs both cert_file and key_file",
    ]
