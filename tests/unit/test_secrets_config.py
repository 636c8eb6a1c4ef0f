"""Secrets stay secret: a value is configured for every kind of secret, then the output of
`sentio config show` and of `sentio config validate` on an invalid file is searched for each
(tests/integration/test_secrets_run.py does the same for a short `sentio run` and its logs)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import yaml
from click.testing import CliRunner
from secret_settings import SECRETS, configuration, leaks, write

from sentio_iot.cli.main import cli
from sentio_iot.config import load_config
from sentio_iot.kafka import producer_config
from sentio_iot.producers.publisher import Publisher
from sentio_iot.registry import SchemaRegistry
from sentio_iot.secret_values import MASK
from sentio_iot.settings.sinks import HttpAuth
from sentio_iot.sinks.http_endpoint import auth_headers


def test_config_show_masks_every_secret(tmp_path: Path) -> None:
    path = write(tmp_path / "sentio.yaml", configuration(tmp_path))
    result = CliRunner().invoke(cli, ["config", "show", str(path)])
    assert result.exit_code == 0, result.output
    assert leaks(result.output) == []
    shown = yaml.safe_load(result.output)
    assert shown["kafka"]["sasl_password"] == MASK
    assert shown["kafka"]["extra"] == {
        "sasl.password": MASK,
        "ssl.key.password": MASK,
        "socket.timeout.ms": 20000,
    }
    assert shown["schema_registry"]["basic_auth"] == MASK
    assert shown["sinks"]["victoriametrics"]["auth"]["bearer_token"] == MASK
    assert shown["sinks"]["loki"]["auth"]["basic_auth"] == MASK
    assert shown["sinks"]["homeassistant"]["password"] == MASK
    assert shown["producers"]["mqtt"][0]["password"] == MASK
    assert shown["producers"]["mqtt"][0]["username"] == "sentio"
    assert shown["producers"]["homeassistant_ws"][0]["access_token"] == MASK
    assert shown["producers"]["opcua"][0]["password"] == MASK
    assert shown["producers"]["opcua"][0]["private_key_password"] == MASK


def test_validation_errors_never_echo_a_secret(tmp_path: Path) -> None:
    data = configuration(tmp_path)
    s = SECRETS
    data["kafka"]["sasl_password"] = [s["kafka.sasl_password"]]  # wrong type: echoed input
    data["kafka"]["sasl_pasword"] = s["kafka.sasl_password"]  # misspelt: an unknown field
    data["sinks"]["victoriametrics"]["auth"]["bearer_token"] = {
        "token": s["sinks.victoriametrics.auth.bearer_token"]
    }
    data["sinks"]["homeassistant"]["port"] = 0
    data["producers"]["mqtt"][0]["port"] = "no port"
    data["producers"]["mqtt"][0]["password"] = 12345678901
    data["producers"]["homeassistant_ws"][0]["access_token_env"] = "HA_TOKEN"  # both: model error
    data["producers"]["opcua"][0] = [data["producers"]["opcua"][0]]  # a list, not a mapping
    path = write(tmp_path / "invalid.yaml", data)
    result = CliRunner().invoke(cli, ["config", "validate", str(path)])
    assert result.exit_code == 2, result.output
    assert leaks(result.output) == []
    assert "12345678901" not in result.output
    lines = result.output.splitlines()
    assert lines[0].endswith("invalid.yaml: 9 problems"), result.output
    assert f"  kafka.sasl_password: {MASK!r}: input should be a valid string" in lines
    assert "  kafka.sasl_pasword: unknown field; remove it or check its spelling" in lines
    assert any(line.startswith("  producers.mqtt[0].port: 'no port'") for line in lines)
    assert any(line.startswith("  producers.opcua[0]: ") for line in lines), result.output


def test_the_clients_get_the_clear_values(tmp_path: Path) -> None:
    config = load_config(data={**configuration(tmp_path), "producers": {}})
    kafka = config.kafka.model_copy(update={"sasl_mechanism": "PLAIN", "extra": {}})
    assert producer_config(kafka)["sasl.password"] == SECRETS["kafka.sasl_password"]
    extra = SECRETS["kafka.extra.sasl.password"]
    assert producer_config(config.kafka)["sasl.password"] == extra  # kafka.extra wins
    key_password = SECRETS["kafka.extra.ssl.key.password"]
    assert producer_config(config.kafka)["ssl.key.password"] == key_password
    assert Publisher(config, "mqtt")._producer_config()["sasl.password"] == extra
    token = SECRETS["sinks.victoriametrics.auth.bearer_token"]
    assert auth_headers(config.sinks.victoriametrics.auth) == {"Authorization": f"Bearer {token}"}
    assert auth_headers(HttpAuth(basic_auth="a:b")) == {"Authorization": "Basic YTpi"}
    with SchemaRegistry(config.schema_registry) as registry:
        request = httpx.Request("GET", "http://127.0.0.1:1")
        signed = next(registry._http.auth.auth_flow(request))  # type: ignore[union-attr]
    basic = base64.b64decode(signed.headers["Authorization"].removeprefix("Basic "))
    assert basic.decode() == f"sentio:{SECRETS['schema_registry.basic_auth']}"


def test_a_password_in_a_url_is_masked_too(tmp_path: Path) -> None:
    data = {"sinks": {"tempo": {"url": "http://sentio:Zq-url-secret@tempo:4318/v1/traces"}}}
    path = write(tmp_path / "url.yaml", data)
    result = CliRunner().invoke(cli, ["config", "show", str(path)])
    assert result.exit_code == 0, result.output
    assert "Zq-url-secret" not in result.output
    shown = yaml.safe_load(result.output)["sinks"]["tempo"]["url"]
    assert shown == f"http://sentio:{MASK}@tempo:4318/v1/traces"
