"""What ``sentio run`` inherits from an earlier run: its backlog, and ``--fresh`` to drop it.

The main job reuses its topics, consumer groups and stream state, so a run after a large one
starts behind: the stream workers read the old backlog first and the view shows no new
results for a while. :func:`backlog` measures that before the pipeline starts (lag of every
group on this topic prefix, active or not); :func:`start_fresh` deletes this prefix's topics,
the stream app's internal topics (changelogs, ticks), the consumer groups that committed on
them, the stream workers' local state and the plant's clock, so the run starts clean.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable

from sentio_iot.config import SentioConfig
from sentio_iot.errors import StackError
from sentio_iot.kafka import admin_client
from sentio_iot.pipeline.lag import ConsumerLag
from sentio_iot.pipeline.main_job import run_dir

DELETE_TIMEOUT_S = 30.0


def backlog(config: SentioConfig) -> dict[str, int]:
    """Messages behind per consumer group on this prefix (groups with no lag left out)."""
    return {g: n for g, n in ConsumerLag(config).measure(idle=True).items() if n > 0}


def start_fresh(config: SentioConfig, say: Callable[[str], None]) -> None:
    """Delete this prefix's topics, the stream app's topics, their groups and local state."""
    prefix, app_id = config.topics.prefix, config.streams.app_id
    if not prefix:
        raise StackError("--fresh deletes the topics under topics.prefix, and it is empty: set one")
    admin = admin_client(config.kafka)
    topics = [
        t
        for t in admin.list_topics(timeout=15).topics
        if t.startswith(prefix) or t.startswith(f"{app_id}-")
    ]
    groups = sorted(ConsumerLag(config).committed(None))  # in any state: a live one says so
    for group, future in (
        admin.delete_consumer_groups(groups, request_timeout=15) if groups else {}
    ).items():
        try:
            future.result(15)
        except Exception as exc:
            raise StackError(
                f"consumer group {group} of an earlier run is still in use ({exc}); "
                "stop its workers first"
            ) from exc
    for future in (admin.delete_topics(topics, operation_timeout=15) if topics else {}).values():
        future.result(30)
    deadline = time.monotonic() + DELETE_TIMEOUT_S
    while set(topics) & set(admin.list_topics(timeout=15).topics):
        if time.monotonic() > deadline:
            raise StackError("Kafka did not finish deleting the earlier run's topics in 30 s")
        time.sleep(0.5)
    state = config.streams.state_dir / app_id
    shutil.rmtree(state, ignore_errors=True)
    (run_dir(config) / "plant-clock.txt").unlink(missing_ok=True)  # the plant starts at now
    say(
        f"== fresh start: deleted {len(topics)} topic(s), {len(groups)} consumer group(s) "
        f"and the stream state in {state}"
    )
