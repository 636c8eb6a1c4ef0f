"""Fault tests: kill and restart real services while Sentio runs.

Fault tests start their own copies of the services they kill (ports and folders of their own)
so that nothing else is disturbed. What they only use, such as the schema registry, is the
shared stack's: used when healthy, otherwise started here and stopped at the end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sentio_iot.config import SentioConfig
from sentio_iot.stack import Stack


@pytest.fixture(scope="session", autouse=True)
def shared_stack(sentio_config: SentioConfig) -> Iterator[Stack]:
    """The shared stack: for the registry, and for the Kafka jars it caches."""
    with Stack(sentio_config.stack).used_or_started(progress=_say) as stack:
        yield stack


def _say(line: str) -> None:
    print(f"[stack] {line}", flush=True)
