"""Docs generated from the code stay equal to it."""

from __future__ import annotations

from pathlib import Path

from sentio_iot.config import TopicSettings
from sentio_iot.config_reference import render_all
from sentio_iot.schemas.catalog import CATALOG, markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_current() -> None:
    current = (ROOT / "docs" / "configuration.md").read_text()
    assert current == render_all(), "regenerate it: sentio config reference > docs/configuration.md"


def test_readme_topic_table_matches_catalog() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown_table(TopicSettings()) in readme


def test_catalog_names_and_schemas_are_unique() -> None:
    names = [spec.name for spec in CATALOG]
    assert len(names) == len(set(names))
    schemas = [spec.value_schema for spec in CATALOG if spec.value_schema]
    assert len(schemas) == len(set(schemas))
    assert {
        "Reading",
        "Rollup",
        "Anomaly",
        "RulPrediction",
        "DeviceEvent",
        "Alert",
        "DeadLetter",
        "AlertCommand",
    } == set(schemas)
