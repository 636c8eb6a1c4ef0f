"""The stream worker's fetch wait (``streams.fetch_max_wait_s``, ``streams.fetch_min_bytes``)
reaches the aiokafka consumer Faust creates (``faust_ext.py``, item 8)."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import aiokafka
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from sentio_iot.config import KafkaSettings, SentioConfig
from sentio_iot.streams import faust_ext
from sentio_iot.streams.app import StreamApp
from sentio_iot.streams.kafka_auth import faust_kafka_settings


def test_faust_fixes_the_fetch_wait_and_aiokafka_builds_its_fetcher_from_the_attributes() -> None:
    # What item 8 replaces, and where the attributes it sets are read.
    assert "fetch_max_wait_ms=1500," in inspect.getsource(
        faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
    )
    start = inspect.getsource(aiokafka.AIOKafkaConsumer.start)
    assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in start
    assert "fetch_min_bytes=self._fetch_min_bytes" in start


async def test_the_worker_consumer_takes_the_streams_fetch_settings(tmp_path: Path) -> None:
    config = SentioConfig.model_validate(
        {
            "streams": {
                "state_dir": str(tmp_path / "state"),
                "fetch_max_wait_s": 0.25,
                "fetch_min_bytes": 4096,
            }
        }
    )
    app = StreamApp(config, agents=["rollups"])
    transport = app.faust.transport
    assert isinstance(transport, faust_ext.SentioTransport)
    thread = app.faust.consumer._thread
    assert isinstance(thread, faust_ext.SentioConsumerThread)
    try:
        consumer = thread._create_worker_consumer(transport)
        assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (250, 4096)
        await consumer.stop()  # never started: closes what the constructor made
    finally:
        thread.thread_loop.close()  # made with the thread, never started here


def test_the_defaults_bound_the_wait_at_a_tenth_of_a_second() -> None:
    settings = SentioConfig.model_validate({}).streams
    assert (settings.fetch_max_wait_s, settings.fetch_min_bytes) == (0.1, 65536)


def test_librdkafka_fetch_properties_in_extra_name_the_streams_settings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    extra = {"fetch.wait.max.ms": 50, "fetch.min.bytes": 1}
    with caplog.at_level(logging.WARNING, logger="sentio_iot.streams.kafka_auth"):
        assert faust_kafka_settings(KafkaSettings.model_validate({"extra": extra})) == {}
    assert "fetch.wait.max.ms (streams: streams.fetch_max_wait_s)" in caplog.text
    assert "fetch.min.bytes (streams: streams.fetch_min_bytes)" in caplog.text
