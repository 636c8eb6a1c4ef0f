"""Values for every kind of secret in a deployment configuration, shared by
tests/unit/test_secrets_config.py and tests/integration/test_secrets_run.py."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

# path in the configuration -> a value found nowhere else
SECRETS = {
    name: f"Zq{uuid.uuid4().hex[:12]}{index}"
    for index, name in enumerate(
        (
            "kafka.sasl_password",
            "kafka.extra.sasl.password",
            "kafka.extra.ssl.key.password",
            "schema_registry.basic_auth",
            "sinks.victoriametrics.auth.bearer_token",
            "sinks.loki.auth.basic_auth",
            "sinks.tempo.auth.bearer_token",
            "sinks.homeassistant.password",
            "producers.mqtt.password",
            "producers.homeassistant_ws.access_token",
            "producers.opcua.password",
            "producers.opcua.private_key_password",
        )
    )
}


def configuration(tmp_path: Path) -> dict[str, Any]:
    s = SECRETS
    return {
        "kafka": {
            "sasl_username": "sentio",
            "sasl_password": s["kafka.sasl_password"],
            "extra": {
                "sasl.password": s["kafka.extra.sasl.password"],
                "ssl.key.password": s["kafka.extra.ssl.key.password"],
                "socket.timeout.ms": 20000,
            },
        },
        "schema_registry": {"basic_auth": f"sentio:{s['schema_registry.basic_auth']}"},
        "sinks": {
            "victoriametrics": {
                "auth": {"bearer_token": s["sinks.victoriametrics.auth.bearer_token"]}
            },
            "loki": {"auth": {"basic_auth": f"sentio:{s['sinks.loki.auth.basic_auth']}"}},
            "tempo": {"auth": {"bearer_token": s["sinks.tempo.auth.bearer_token"]}},
            "homeassistant": {
                "username": "sentio",
                "password": s["sinks.homeassistant.password"],
            },
        },
        "producers": {
            "mqtt": [
                {
                    "source_id": "plant-broker",
                    "host": "127.0.0.1",
                    "username": "sentio",
                    "password": s["producers.mqtt.password"],
                    "mappings": [{"topic": "plant/{device}/{metric}"}],
                }
            ],
            "homeassistant_ws": [
                {
                    "instance_id": "home",
                    "url": "ws://127.0.0.1:1/api/websocket",
                    "access_token": s["producers.homeassistant_ws.access_token"],
                }
            ],
            "opcua": [
                {
                    "device_id": "plc-2",
                    "url": "opc.tcp://127.0.0.1:1",
                    "security_mode": "SignAndEncrypt",
                    "security_policy": "Basic256Sha256",
                    "certificate_path": str(tmp_path / "client-cert.der"),
                    "private_key_path": str(tmp_path / "client-key.pem"),
                    "trusted_ca_path": str(tmp_path / "plant-ca.pem"),
                    "private_key_password": s["producers.opcua.private_key_password"],
                    "username": "sentio",
                    "password": s["producers.opcua.password"],
                    "nodes": [{"node_id": "ns=2;i=1001", "metric": "flow"}],
                }
            ],
        },
    }


def leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path
