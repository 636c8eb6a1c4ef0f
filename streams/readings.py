"""The readings agent: one Faust agent runs every per-reading step over each batch.

Rollups, device state, anomaly scoring and RUL all read ``readings``. As four Faust agents
each message went through Faust's per-event path four times and was decoded four times (and
a poison message was dead-lettered four times). Here one agent takes each batch
(``app.batches``: exactly once, see ``commit_gate.py``), decodes each message once, and hands
the decoded batch to each step in turn; then it sends what the steps emitted, in the
transaction of the event each output follows from.

A step is anything with a ``name`` (its agent name: metrics and logs use it), ``topics``
(extra internal topics it needs beside readings, e.g. device_state's ticks) and
``async process(batch)``. Steps keep their state in ``LiveStates`` (``state.py``): in memory,
written to the changelog once per key per commit, or only at snapshots for the steps that
``snapshots.py`` replays after a restart (before a partition's first batch here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import faust

from sentio_iot.streams.faust_ext import Event
from sentio_iot.streams.tracing import batch_span, context_headers

if TYPE_CHECKING:
    from sentio_iot.streams.app import StreamApp

AGENT = "readings"
Record = dict[str, Any]


@dataclass(slots=True)
class Output:
    """One record a step emits, sent in the transaction of ``source``."""

    agent: str
    catalog_name: str
    key: str
    record: Mapping[str, Any]
    source: Event


@dataclass
class ReadingBatch:
    """A batch as the steps see it: events in order, each reading decoded once.

    ``items`` holds ``(event, reading)``; ``reading`` is None for an event of another topic
    (a step's internal ticks); poison messages were dead-lettered and are not here.
    """

    items: list[tuple[Event, Record | None]] = field(default_factory=list)
    out: list[Output] = field(default_factory=list)
    readings: list[tuple[Event, Record]] = field(default_factory=list)
    """The items that are readings, in order (what most steps iterate)."""
    replayed: bool = False
    """Readings read again after a restart to rebuild a step's state (snapshots.py): their
    outputs were sent before and are dropped, and a step counts nothing for them."""

    def add(self, event: Event, reading: Record | None) -> None:
        self.items.append((event, reading))
        if reading is not None:
            self.readings.append((event, reading))

    def emit(
        self, agent: str, catalog_name: str, key: str, record: Mapping[str, Any], source: Event
    ) -> None:
        self.out.append(Output(agent, catalog_name, key, record, source))


class ReadingStep(Protocol):
    """One per-reading agent, as the readings agent runs it."""

    name: str
    topics: Sequence[str]  # extra topics (beside readings) whose events it wants

    async def process(self, batch: ReadingBatch) -> None: ...


def attach_readings_agent(app: StreamApp, steps: Sequence[ReadingStep]) -> None:
    """Declare the one agent that reads ``readings`` (and the steps' extra topics)."""
    readings_topic = app.topic_name("readings")
    extra = [topic for step in steps for topic in step.topics]
    source = app.faust.topic(
        readings_topic, *extra, key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    within_s = app.config.streams.batch_within_s
    if any(step.name == "rul" for step in steps):
        within_s = min(within_s, app.config.streams.rul.max_wait_s)
    app.serde("readings")
    app.serde("deadletter")

    async def readings(stream: faust.StreamT[bytes]) -> None:
        async for events in app.batches(stream, within_s=within_s):
            await process_batch(app, steps, events, readings_topic)

    app.faust.agent(source, name=f"sentio.{AGENT}")(readings)


async def process_batch(
    app: StreamApp, steps: Sequence[ReadingStep], events: Sequence[Event], readings_topic: str
) -> None:
    """Decode once, run each step, send what they emitted."""
    batch = ReadingBatch()
    from_readings = 0

    await app.snapshots.catch_up(events)  # partitions new to this worker: replay first
    with batch_span(AGENT, (e.message.headers for e in events)) as span:
        span.set_attribute("sentio.steps", ",".join(step.name for step in steps))
        for event in events:
            if event.message.topic != readings_topic:
                batch.add(event, None)
                continue
            from_readings += 1
            reading = await app.decode(AGENT, event, "readings")
            if reading is not None:
                batch.add(event, reading)
        for step in steps:
            await step.process(batch)
        app.snapshots.processed(events)
        headers = context_headers(span)
        span.set_attribute("sentio.outputs", len(batch.out))
        for out in batch.out:
            await app.send(
                out.agent, out.catalog_name, out.key, out.record, source=out.source, headers=headers
            )
    app.metrics.events.inc(AGENT, by=len(events))
    for step in steps:  # after the batch: benchmarks count done work
        taken = from_readings + (len(events) - from_readings if step.topics else 0)
        app.metrics.events.inc(step.name, by=taken)
