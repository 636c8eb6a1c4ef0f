"""The Avro contract: every schema parses, is documented, and stays BACKWARD compatible.

The compatibility test reads every committed version of each .avsc from git and checks each
version against the one before it, and the working tree against the last commit, so a change
that would break integrators fails here before it is committed or merged.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest

from sentio_iot.schemas import (
    NAMESPACE,
    SCHEMA_NAMES,
    load_schema,
    parsed_schema,
    schema_path,
)
from sentio_iot.schemas.catalog import CATALOG
from sentio_iot.schemas.compat import backward_problems

SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
TIMESTAMP_FIELDS = re.compile(r"^(ts|.+_ts|window_start|window_end)$")


def git(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)


def committed_versions(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every committed version of ``path``, oldest first, as (short commit, schema)."""
    folder = path.parent
    if git("rev-parse", "--verify", "--quiet", "HEAD", cwd=folder).returncode != 0:
        return []  # not a repository, or no commit yet: nothing to be compatible with
    top = Path(git("rev-parse", "--show-toplevel", cwd=folder).stdout.strip())
    relative = path.resolve().relative_to(top.resolve()).as_posix()
    log = git("log", "--format=%H", "--", relative, cwd=top)
    assert log.returncode == 0, log.stderr
    versions = []
    for commit in reversed(log.stdout.split()):
        shown = git("show", f"{commit}:{relative}", cwd=top)
        if shown.returncode == 0:  # absent in a commit that deleted it
            versions.append((commit[:10], json.loads(shown.stdout)))
    return versions


def walk_records(schema: Any) -> Iterator[dict[str, Any]]:
    """Every record defined in ``schema``, the root first."""
    if isinstance(schema, list):
        for branch in schema:
            yield from walk_records(branch)
    elif isinstance(schema, dict):
        if schema.get("type") == "record":
            yield schema
            for field in schema["fields"]:
                yield from walk_records(field["type"])
        elif schema.get("type") == "array":
            yield from walk_records(schema["items"])
        elif schema.get("type") == "map":
            yield from walk_records(schema["values"])
        elif isinstance(schema.get("type"), dict | list):
            yield from walk_records(schema["type"])


def walk_enums(schema: Any) -> Iterator[dict[str, Any]]:
    for rec in walk_records(schema):
        for field in rec["fields"]:
            branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
            for branch in branches:
                if isinstance(branch, dict) and branch.get("type") == "enum":
                    yield branch


def test_schema_names_match_the_files() -> None:
    folder = schema_path("Reading").parent
    assert sorted(p.stem for p in folder.glob("*.avsc")) == sorted(SCHEMA_NAMES)


def test_every_catalog_value_schema_exists() -> None:
    used = {entry.value_schema for entry in CATALOG if entry.value_schema}
    assert used <= set(SCHEMA_NAMES), used - set(SCHEMA_NAMES)


def test_unknown_schema_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="no schema 'Readings' in the contract; known: Reading, "):
        load_schema("Readings")


def test_load_schema_returns_a_fresh_copy_and_parsed_schema_is_cached() -> None:
    first = load_schema("Reading")
    first["fields"].clear()
    assert len(load_schema("Reading")["fields"]) == 6
    assert parsed_schema("Reading") is parsed_schema("Reading")
    assert parsed_schema("Reading")["name"] == "io.sentio.iot.Reading"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_parses_and_is_named_after_its_file(name: str) -> None:
    schema = load_schema(name)
    parsed = fastavro.parse_schema(schema)  # also validates every default against its type
    assert (schema["type"], schema["name"], schema["namespace"]) == ("record", name, NAMESPACE)
    assert parsed["name"] == f"{NAMESPACE}.{name}"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_record_and_field_is_documented_in_snake_case(name: str) -> None:
    undocumented = []
    for rec in walk_records(load_schema(name)):
        if not str(rec.get("doc", "")).strip():
            undocumented.append(rec["name"])
        for field in rec["fields"]:
            assert SNAKE_CASE.match(field["name"]), f"{rec['name']}.{field['name']}"
            if not str(field.get("doc", "")).strip():
                undocumented.append(f"{rec['name']}.{field['name']}")
    assert undocumented == []


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_enums_are_documented_and_have_a_default_symbol(name: str) -> None:
    """A default symbol lets readers survive symbols added later."""
    for enum in walk_enums(load_schema(name)):
        assert str(enum.get("doc", "")).strip(), enum["name"]
        assert enum.get("default") in enum["symbols"], enum["name"]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_timestamps_are_long_microseconds(name: str) -> None:
    timestamp_fields = []
    for rec in walk_records(load_schema(name)):
        for field in rec["fields"]:
            if TIMESTAMP_FIELDS.match(field["name"]):
                timestamp_fields.append(field["name"])
                branches = field["type"] if isinstance(field["type"], list) else [field["type"]]
                timestamps = [b for b in branches if b != "null"]
                assert timestamps == [{"type": "long", "logicalType": "timestamp-micros"}], field
    assert timestamp_fields, "every record carries at least one timestamp"


def test_contract_shapes() -> None:
    """The field lists integrators rely on, in order."""
    shapes = {name: [f["name"] for f in load_schema(name)["fields"]] for name in SCHEMA_NAMES}
    assert shapes == {
        "Reading": ["device_id", "ts", "metrics", "labels", "source", "seq"],
        "Rollup": [
            "device_id",
            "metric",
            "unit",
            "window_start",
            "window_end",
            "window_s",
            "count",
            "min",
            "max",
            "mean",
            "sum",
            "last",
            "stddev",
            "labels",
        ],
        "Anomaly": [
            "device_id",
            "metric",
            "ts",
            "value",
            "score",
            "threshold",
            "expected",
            "lower",
            "upper",
            "detector",
            "detector_version",
            "labels",
        ],
        "RulPrediction": [
            "device_id",
            "ts",
            "rul",
            "rul_unit",
            "lower",
            "upper",
            "model_name",
            "model_version",
            "window_size",
            "labels",
        ],
        "DeviceEvent": ["device_id", "ts", "kind", "message", "source", "details", "labels"],
        "Alert": [
            "alert_id",
            "device_id",
            "type",
            "severity",
            "status",
            "start_ts",
            "end_ts",
            "ack_ts",
            "count",
            "message",
            "details",
            "labels",
        ],
        "DeadLetter": [
            "topic",
            "partition",
            "offset",
            "key",
            "value",
            "error",
            "error_type",
            "stage",
            "ts",
            "headers",
            "value_truncated",
            "value_size",
            "value_sha256",
        ],
        "AlertCommand": [
            "command_id",
            "device_id",
            "type",
            "action",
            "alert_id",
            "ts",
            "user",
            "comment",
        ],
    }
    metric = load_schema("Reading")["fields"][2]["type"]["items"]
    assert [f["name"] for f in metric["fields"]] == ["name", "value", "text", "unit", "quality"]


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_backward_compatible_with_every_committed_version(name: str) -> None:
    path = schema_path(name)
    versions = committed_versions(path)
    current = ("working tree", load_schema(name))
    # With no committed version yet the file is checked against itself, so the check still runs.
    chain = [*versions, current] if versions else [current, current]
    failures = []
    for (old_label, old), (new_label, new) in itertools.pairwise(chain):
        for problem in backward_problems(new, old):
            failures.append(f"{new_label} vs {old_label}: {problem}")
    assert failures == [], "\n".join(failures)


def test_committed_versions_reads_history_oldest_first(tmp_path: Path) -> None:
    """The history reader itself, on a scratch repository: no commits, then two versions."""
    path = tmp_path / "X.avsc"
    assert git("init", "--quiet", cwd=tmp_path).returncode == 0
    path.write_text(json.dumps({"type": "record", "name": "X", "fields": []}))
    assert committed_versions(path) == []  # a repository without commits
    for fields in ([], [{"name": "a", "type": "long", "default": 0}]):
        path.write_text(json.dumps({"type": "record", "name": "X", "fields": fields}))
        git("add", "X.avsc", cwd=tmp_path)
        commit = git(
            "-c", "user.name=t", "-c", "user.email=t@example.invalid",
            "commit", "--quiet", "-m", "v", cwd=tmp_path,
        )  # fmt: skip
        assert commit.returncode == 0, commit.stderr
    versions = committed_versions(path)
    assert [len(schema["fields"]) for _, schema in versions] == [0, 1]
    assert backward_problems(versions[1][1], versions[0][1]) == []
