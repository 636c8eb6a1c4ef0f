"""Integration tests run against the real local stack.

If the stack is already healthy (``sentio stack up``), it is used as it is. Otherwise it is
started here and stopped again at the end. Nothing is skipped for a missing service: a
stack that cannot start fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sentio_iot.config import SentioConfig
from sentio_iot.stack import Stack


@pytest.fixture(scope="session", autouse=True)
def running_stack(sentio_config: SentioConfig) -> Iterator[Stack]:
    with Stack(sentio_config.stack).used_or_started(progress=_say) as stack:
        yield stack


def _say(line: str) -> None:
    print(f"[stack] {line}", flush=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)
