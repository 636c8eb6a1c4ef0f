"""Fixtures shared by every test: configuration and unique names."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from sentio_iot.config import SentioConfig, load_config

# Every unique_name handed out in this session: their topics are deleted when it ends.
_NAMES: set[str] = set()


@pytest.fixture(scope="session")
def sentio_config() -> SentioConfig:
    """The configuration tests run with: SENTIO_CONFIG if set, else defaults + SENTIO_* env."""
    path = os.environ.get("SENTIO_CONFIG")
    return load_config(Path(path) if path else None)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses: for topics, subjects, consumer groups."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    name = f"t-{stem}-{uuid.uuid4().hex[:8]}"
    _NAMES.add(name)
    return name


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Delete the Kafka topics named after this session's unique names.

    Each test's topics (and its Faust app's changelogs) carry its unique name; left behind,
    a few thousand sessions' partitions exhaust the broker's open files. Topics of other
    sessions running beside this one are left alone. SENTIO_TEST_KEEP_TOPICS=1 keeps them.
    """
    if not _NAMES or os.environ.get("SENTIO_TEST_KEEP_TOPICS") == "1":
        return
    from sentio_iot.kafka import admin_client

    try:
        config = load_config(
            Path(os.environ["SENTIO_CONFIG"]) if "SENTIO_CONFIG" in os.environ else None
        )
        admin = admin_client(config.kafka)
        topics = admin.list_topics(timeout=5).topics
        ours = [t for t in topics if any(name in t for name in _NAMES)]
        if ours:
            for future in admin.delete_topics(ours, operation_timeout=30).values():
                future.result(timeout=60)
    except Exception:  # best effort: the broker may be gone already
        return
