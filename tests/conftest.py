"""Fixtures shared by every test: configuration and unique names."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from sentio_iot.config import SentioConfig, load_config


@pytest.fixture(scope="session")
def sentio_config() -> SentioConfig:
    """The configuration tests run with: SENTIO_CONFIG if set, else defaults + SENTIO_* env."""
    path = os.environ.get("SENTIO_CONFIG")
    return load_config(Path(path) if path else None)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses: for topics, subjects, consumer groups."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return f"t-{stem}-{uuid.uuid4().hex[:8]}"
