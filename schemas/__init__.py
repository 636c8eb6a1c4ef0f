"""The Avro contract: one ``avro/<Name>.avsc`` per record type, and the topic catalog.

The schemas are a public API for integrators. Every change must stay BACKWARD compatible
with the previous committed version (``tests/unit/test_schemas.py`` proves it with
:func:`sentio_iot.schemas.compat.backward_problems`): add fields only with a default, never
remove an enum symbol, rename only with an alias.

    load_schema("Reading")     the schema as JSON (a fresh dict each call)
    parsed_schema("Reading")   the same, parsed by fastavro once and cached (do not mutate)
    schema_path("Reading")     where the .avsc file is
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_NAMES: tuple[str, ...] = (
    "Reading",
    "Rollup",
    "Anomaly",
    "RulPrediction",
    "DeviceEvent",
    "Alert",
    "DeadLetter",
    "AlertCommand",
)
"""Every record type of the contract; ``avro/<name>.avsc`` holds each one."""

NAMESPACE = "io.sentio.iot"

_AVRO_DIR = Path(__file__).resolve().parent / "avro"


def schema_path(name: str) -> Path:
    """The .avsc file of ``name``; a KeyError lists the names that exist."""
    if name not in SCHEMA_NAMES:
        raise KeyError(f"no schema '{name}' in the contract; known: {', '.join(SCHEMA_NAMES)}")
    return _AVRO_DIR / f"{name}.avsc"


@cache
def _schema_text(name: str) -> str:
    return schema_path(name).read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` as its JSON document; a new dict each call, safe to change."""
    schema: dict[str, Any] = json.loads(_schema_text(name))
    return schema


@cache
def parsed_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` parsed by ``fastavro.parse_schema``; cached and shared, do not mutate."""
    parsed = fastavro.parse_schema(load_schema(name))
    assert isinstance(parsed, dict)  # a record schema parses to a dict
    return parsed
