"""The user docs stay true to the code: docs/connectors.md is the output of
`sentio config reference --connectors` with valid examples, architecture.md shows the topic
catalog as it is, and every relative link of the docs points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sentio_iot.cli.main import cli
from sentio_iot.config import TopicSettings, load_config
from sentio_iot.connector_reference import EXAMPLES, render_connectors
from sentio_iot.plugins import connector_names
from sentio_iot.schemas.catalog import markdown_table

ROOT = Path(__file__).resolve().parents[2]
USER_DOCS = (
    "quickstart.md",
    "architecture.md",
    "connectors.md",
    "integration.md",
    "operations.md",
    "troubleshooting.md",
)


def test_connectors_reference_is_current() -> None:
    current = (ROOT / "docs" / "connectors.md").read_text()
    assert current == render_connectors(), (
        "regenerate it: sentio config reference --connectors > docs/connectors.md"
    )


def test_the_cli_prints_the_connectors_reference() -> None:
    result = CliRunner().invoke(cli, ["config", "reference", "--connectors"])
    assert result.exit_code == 0, result.output
    assert result.output == render_connectors()


def test_every_connector_has_an_example() -> None:
    assert sorted(EXAMPLES) == connector_names()


@pytest.mark.parametrize(
    ("name", "title"),
    [(name, title) for name, examples in EXAMPLES.items() for title, _ in examples],
)
def test_every_example_is_a_valid_configuration(name: str, title: str) -> None:
    [example] = [text for t, text in EXAMPLES[name] if t == title]
    devices = yaml.safe_load(example)
    config = load_config(data={"producers": {name: devices}})
    assert config.producers[name] == devices
    assert f"    {example.splitlines()[0]}" in render_connectors()


def test_architecture_topic_table_matches_catalog() -> None:
    assert markdown_table(TopicSettings()) in (ROOT / "docs" / "architecture.md").read_text()


@pytest.mark.parametrize("name", USER_DOCS)
def test_relative_links_point_at_files_that_exist(name: str) -> None:
    text = (ROOT / "docs" / name).read_text()
    links = [t for t in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text) if "://" not in t]
    for target in links:
        assert (ROOT / "docs" / target).exists(), f"{name}: {target}"
    assert text.startswith("# ")
