"""One reading's journey in traces: producer -> stream agent -> sink write, as Tempo sees it.

Every stage runs as its real entry point on topics of this test: ``sentio produce simulate``,
``sentio stream worker --agents rollups`` (1 s windows) and ``sentio sink victoriametrics``;
each configures tracing at start-up and exports its spans to the test's ``otlp-spans``
topic. The Tempo sink (in this process) forwards them to an OTLP/HTTP receiver, where the
spans must show: the producer's ``publish simulate`` span as the root; the rollups agent's
batch span its child (service ``sentio-streams``); the VictoriaMetrics sink's write of that
rollup continuing the agent span (service ``sentio-sink-victoriametrics``); and the sink's
write of the readings themselves continuing the publish span. "Continuing" is a child, or
a link: a batch span is the child of its first record's context and links every other
record's, so which one a write is the child of depends on how records fell into batches
(under load the rollup often shares a batch behind readings).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from otlp_receiver import OtlpReceiver, ReceivedSpan
from stream_worker import WorkerProcess, free_port

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.sinks.runtime import SinkRuntime
from sentio_iot.sinks.tempo import TempoWriter
from sentio_iot.topic_admin import apply_topics

SENTIO = str(Path(sys.executable).with_name("sentio"))
PUBLISH, ROLLUPS, WRITE = "publish simulate", "process readings batch", "write victoriametrics"


def journey_config(sentio_config: SentioConfig, name: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": sentio_config.kafka.bootstrap_servers},
        "schema_registry": {"url": sentio_config.schema_registry.url},
        "topics": {"prefix": f"{name}.", "partitions": 1},
        "producer": {"buffer_dir": str(tmp_path / "buffer"), "health_port": 0},
        "producers": {"simulate": [{"devices": 1, "rate": 20, "seed": 7, "anomaly_rate": 0}]},
        "streams": {
            "app_id": name,
            "state_dir": str(tmp_path / "state"),
            "batch_within_s": 0.2,
            "rollups": {"windows_s": [1], "grace_s": 0},
        },
        "sinks": {"batch_timeout_s": 0.2, "victoriametrics": {"health_port": 0}},
        "tracing": {"export_interval_s": 0.2},
    }


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def continues(span: ReceivedSpan, earlier: ReceivedSpan) -> bool:
    """``span`` is ``earlier``'s child, or links to it (a batch span is the child of its first
    record's context and links every other record's, so which one is the parent depends on
    how the records fell into batches)."""
    return span.parent_span_id == earlier.span_id or (earlier.trace_id, earlier.span_id) in set(
        span.links
    )


def journeys(spans: list[ReceivedSpan]) -> list[tuple[ReceivedSpan, ...]]:
    """(publish, rollups, rollup write, readings write) chains found in the received spans."""
    by_id = {span.span_id: span for span in spans}
    writes = [span for span in spans if span.name == WRITE]
    found = []
    for agent in spans:
        publish = by_id.get(agent.parent_span_id)
        if agent.name != ROLLUPS or publish is None or publish.name != PUBLISH:
            continue
        rollup_writes = [w for w in writes if continues(w, agent)]
        reading_writes = [w for w in writes if continues(w, publish)]
        if rollup_writes and reading_writes:
            found.append((publish, agent, rollup_writes[0], reading_writes[0]))
    return found


async def test_one_reading_is_one_trace_from_device_to_dashboard(
    sentio_config: SentioConfig,
    unique_name: str,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    data = journey_config(sentio_config, unique_name, tmp_path)
    path = tmp_path / "sentio.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    apply_topics(config)
    logs = {name: tmp_path / f"{name}.log" for name in ("sink", "produce")}

    async with OtlpReceiver() as receiver:
        tempo_config = load_config(
            data={**data, "sinks": {**data["sinks"], "tempo": {"url": receiver.url}}}
        )
        tempo = SinkRuntime(
            tempo_config,
            "tempo",
            writer=TempoWriter(tempo_config),
            group_id=f"{unique_name}-tempo",
            health_port=0,
        )
        tempo_task = asyncio.create_task(tempo.run())
        worker = WorkerProcess(path, free_port(), "rollups", tmp_path / "worker.log")
        try:
            await asyncio.to_thread(worker.start)
            with logs["sink"].open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [
                            SENTIO,
                            "sink",
                            "victoriametrics",
                            "-c",
                            str(path),
                            "--group-id",
                            f"{unique_name}-vm",
                        ],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            with logs["produce"].open("wb") as out:
                processes.append(
                    subprocess.Popen(
                        [SENTIO, "produce", "simulate", "-c", str(path), "--duration", "5"],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
            deadline = time.monotonic() + 60
            while not journeys(receiver.spans):
                assert not tempo_task.done(), tempo_task.exception()
                if time.monotonic() > deadline:
                    services = sorted({(s.service, s.name) for s in receiver.spans})
                    hint = (
                        ""
                        if any(s.service == "sentio-streams" for s in receiver.spans)
                        else "no span from the stream worker: `sentio stream worker` must call "
                        "configure_tracing(config, 'sentio-streams') at start-up\n"
                    )
                    pytest.fail(
                        f"{hint}no complete journey in {len(receiver.spans)} span(s) {services}\n"
                        f"worker: {worker.log()}\nsink: {logs['sink'].read_text()[-2000:]}\n"
                        f"produce: {logs['produce'].read_text()[-2000:]}"
                    )
                await asyncio.sleep(0.2)
        finally:
            worker.stop()
            tempo.stop()
            await asyncio.wait_for(tempo_task, 30)

    publish, agent, rollup_write, readings_write = journeys(receiver.spans)[0]
    assert publish.parent_span_id == ""  # the root: simulate has no poll span of its own
    assert publish.trace_id == agent.trace_id
    assert [publish.service, agent.service, rollup_write.service, readings_write.service] == [
        "sentio-producer",
        "sentio-streams",
        "sentio-sink-victoriametrics",
        "sentio-sink-victoriametrics",
    ]
    assert agent.parent_span_id == publish.span_id
    assert continues(rollup_write, agent)
    assert continues(readings_write, publish)
    assert publish.attributes["sentio.protocol"] == "simulate"
    assert agent.attributes["sentio.agent"] == "readings"  # the one agent of the per-reading steps
    assert agent.attributes["sentio.steps"] == "rollups"
    assert rollup_write.attributes["sentio.sink"] == "victoriametrics"
    # Nothing the tempo sink forwards is about the tempo sink itself (no feedback loop).
    assert not [s for s in receiver.spans if s.service == "sentio-sink-tempo"]
