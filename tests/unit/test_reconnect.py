"""Backoff doubling to its cap, and failure streaks logged quietly."""

from __future__ import annotations

import logging

import pytest

from sentio_iot.producers import reconnect
from sentio_iot.producers.reconnect import Backoff, FailureStreak, worth_logging


def test_only_the_1st_10th_100th_failures_are_worth_logging() -> None:
    assert [n for n in range(1, 2001) if worth_logging(n)] == [1, 10, 100, 1000]


async def test_backoff_doubles_to_its_cap_and_resets(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(reconnect.asyncio, "sleep", sleep)
    backoff = Backoff(1.0, 5.0)
    for _ in range(5):
        await backoff.wait()
    backoff.held(4.9)  # flapping: no reset
    await backoff.wait()
    backoff.held(5.0)  # held for max_s: start over
    await backoff.wait()
    backoff.reset()
    await backoff.wait()
    assert slept == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 1.0, 1.0]


def test_a_streak_logs_its_1st_and_10th_failure_then_a_summary(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.reconnect")
    streak = FailureStreak(logging.getLogger("test.reconnect"), "modbus press-7")
    streak.ended()  # no streak: nothing to say
    for _ in range(12):
        streak.failed("connection refused")
    streak.ended("answering again")
    assert streak.count == 0
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "modbus press-7: connection refused (failure 1 in a row; retrying with backoff)",
        ),
        (
            "WARNING",
            "modbus press-7: connection refused (failure 10 in a row; retrying with backoff)",
        ),
        ("INFO", "modbus press-7: answering again after 12 failed attempts"),
    ]


def test_a_reason_that_names_its_connection_is_not_prefixed_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.reconnect")
    streak = FailureStreak(logging.getLogger("test.reconnect"), "opcua plc1")
    streak.failed(ConnectionError("opcua plc1: the server at opc.tcp://h:4840 is not trusted"))
    assert [r.getMessage() for r in caplog.records] == [
        "opcua plc1: the server at opc.tcp://h:4840 is not trusted "
        "(failure 1 in a row; retrying with backoff)"
    ]
