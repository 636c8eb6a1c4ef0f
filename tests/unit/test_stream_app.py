"""Stream app infrastructure without Kafka: commit gate, metrics text, agent names."""

from __future__ import annotations

import asyncio

import pytest

from sentio_iot.errors import ConfigError
from sentio_iot.streams.app import check_agent_names
from sentio_iot.streams.commit_gate import CommitGate
from sentio_iot.streams.metrics import StreamMetrics


async def test_commit_waits_until_the_open_batch_is_acked() -> None:
    gate = CommitGate()
    order: list[str] = []

    async def run() -> str:
        order.append("commit")
        return "committed"

    await gate.open_batch()
    commit = asyncio.create_task(gate.commit(run, "skipped"))
    await asyncio.sleep(0)  # the commit task runs until it waits on the gate
    assert order == []
    order.append("acked")
    await gate.close_batch()
    assert await commit == "committed"
    assert order == ["acked", "commit"]


async def test_a_new_batch_waits_for_a_running_commit() -> None:
    gate = CommitGate()
    release = asyncio.Event()
    order: list[str] = []

    async def run() -> str:
        order.append("commit started")
        await release.wait()
        order.append("commit done")
        return "ok"

    commit = asyncio.create_task(gate.commit(run, "skipped"))
    await asyncio.sleep(0)
    batch = asyncio.create_task(gate.open_batch())
    await asyncio.sleep(0)
    assert not batch.done()
    release.set()
    assert await commit == "ok"
    await batch
    order.append("batch opened")
    assert order == ["commit started", "commit done", "batch opened"]


async def test_a_poisoned_gate_never_commits() -> None:
    gate = CommitGate()

    async def run() -> str:
        raise AssertionError("must not commit")

    gate.poison("a batch was interrupted")
    assert await gate.commit(run, "skipped") == "skipped"


async def test_a_batch_that_never_acks_times_the_commit_out() -> None:
    gate = CommitGate(wait_s=0.01)

    async def run() -> str:
        raise AssertionError("must not commit")

    await gate.open_batch()
    assert await gate.commit(run, "skipped") == "skipped"


async def test_a_cancelled_caller_does_not_cut_its_commit_short_and_commits_run_one_at_a_time() -> (
    None
):
    gate = CommitGate()
    release = asyncio.Event()
    order: list[str] = []

    async def first() -> str:
        order.append("first started")
        await release.wait()  # e.g. between committing one partition's transaction and the next
        order.append("first done")
        return "first"

    async def second() -> str:
        order.append("second")
        return "second"

    caller = asyncio.create_task(gate.commit(first, "skipped"))
    await asyncio.sleep(0)
    caller.cancel()  # the fetcher is cancelled at shutdown while it commits
    with pytest.raises(asyncio.CancelledError):
        await caller
    final = asyncio.create_task(gate.commit(second, "skipped"))  # the consumer's last commit
    await asyncio.sleep(0.01)
    assert order == ["first started"]
    release.set()
    assert await final == "second"
    assert order == ["first started", "first done", "second"]
    assert gate.consistent


async def test_a_commit_cancelled_while_waiting_for_a_batch_lets_batches_go_on() -> None:
    gate = CommitGate()

    async def run() -> str:
        raise AssertionError("must not commit")

    await gate.open_batch()
    waiting = asyncio.create_task(gate.commit(run, "skipped"))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await gate.close_batch()
    await asyncio.wait_for(gate.open_batch(), 1)  # not held back by the cancelled commit


def test_metrics_render_in_prometheus_text_format() -> None:
    metrics = StreamMetrics()
    metrics.events.inc("rollups", by=3)
    metrics.emitted.inc("rollups", "rollups")
    metrics.gauge_source(metrics.lag, lambda: [(("sentio.readings", "0"), 7.0)])
    text = metrics.render()
    assert 'sentio_stream_events_total{agent="rollups"} 3\n' in text
    assert 'sentio_stream_emitted_total{agent="rollups",topic="rollups"} 1\n' in text
    assert 'sentio_stream_lag{topic="sentio.readings",partition="0"} 7\n' in text
    assert "# TYPE sentio_stream_deadletter_total counter\n" in text


def test_unknown_agents_fail_naming_the_ones_that_exist() -> None:
    assert check_agent_names(["rollups", "device_state", "rollups"]) == ("rollups", "device_state")
    with pytest.raises(ConfigError) as caught:
        check_agent_names(["rollup"])
    assert caught.value.problems == [
        "streams.agents: 'rollup' is not one of: rollups, device_state, anomaly, rul, alerts"
    ]
