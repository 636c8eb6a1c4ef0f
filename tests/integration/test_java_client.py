"""A JVM client reads Sentio's topics: kafka-clients + Apicurio's Avro deserializer.

tests/interop/java is a small Maven project (ReadTopics.java) that consumes topics with
``isolation.level=read_committed`` and Apicurio's ``AvroKafkaDeserializer`` pointed at the
registry's native API, and prints every record as one JSON line. Here a stream worker fills
``readings`` -> ``rollups`` and ``device-events`` -> ``alerts`` (transactional writes), the
Java client reads all three, and every field it decoded must equal what Sentio's own
decoder reads from the same offsets.

The build is cached: ``mvn dependency:copy-dependencies`` (jars from Maven Central, kept in
~/.m2 too) and ``javac`` run once per content of the pom and the source, into
``<stack home>/java-interop-<hash>``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from stream_worker import Received, StreamTestbed, stream_testbed_fixture  # noqa: F401

from sentio_iot.config import SentioConfig
from sentio_iot.records import Metric, Reading, now_us
from sentio_iot.stack.install import fill_once, run_tool
from sentio_iot.stack.prerequisites import find_java, find_program

PROJECT = Path(__file__).parents[1] / "interop" / "java"
SOURCE = PROJECT / "src" / "main" / "java" / "io" / "sentio" / "interop" / "ReadTopics.java"
S = 1_000_000

pytestmark = pytest.mark.timeout(600)  # the first run downloads the jars


def registry_native_url(config: SentioConfig) -> str:
    """Apicurio's native API next to the ccompat URL we configure: .../apis/registry/v3."""
    base = config.schema_registry.url.split("/apis/", 1)[0]
    return f"{base}/apis/registry/v3"


@pytest.fixture(scope="session")
def read_topics(sentio_config: SentioConfig) -> list[str]:
    """The command line that runs ReadTopics, built once per content of pom and source."""
    java, javac, mvn = find_java(), find_program("javac"), find_program("mvn")
    assert java and javac and mvn, "scripts/bootstrap installs Java 17 (with javac) and Maven"
    digest = hashlib.sha256((PROJECT / "pom.xml").read_bytes() + SOURCE.read_bytes())
    build = sentio_config.stack.home / f"java-interop-{digest.hexdigest()[:12]}"
    started = time.monotonic()

    def compile_it(folder: Path) -> None:
        pom = str(PROJECT / "pom.xml")
        copy = ["dependency:copy-dependencies", f"-DoutputDirectory={folder / 'lib'}"]
        run_tool([str(mvn), "-q", "-B", "-f", pom, *copy], what="mvn dependency:copy-dependencies")
        classpath = f"{folder / 'lib'}/*"
        classes = str(folder / "classes")
        run_tool(
            [str(javac), "--release", "17", "-cp", classpath, "-d", classes, str(SOURCE)],
            what="javac ReadTopics.java",
        )

    built = fill_once(build, compile_it)
    took = time.monotonic() - started
    print(f"[java] ReadTopics {'built' if built else 'cached'} in {took:.1f} s", flush=True)
    classpath = f"{build / 'classes'}:{build / 'lib'}/*"
    return [str(java), "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", classpath]


def run_java(
    command: list[str], config: SentioConfig, group: str, count: int, topics: list[str]
) -> list[dict[str, Any]]:
    argv = [
        *command,
        "io.sentio.interop.ReadTopics",
        config.kafka.bootstrap_servers,
        registry_native_url(config),
        group,
        str(count),
        "60",
        *topics,
    ]
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    print(f"[java] ReadTopics read {count} records in {time.monotonic() - started:.1f} s")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def reading(device: str, ts_us: int, flow: float, state: str) -> Reading:
    metrics = [Metric("flow", flow, "m3/h"), Metric("mode", None, None, text=state)]
    return Reading(device, ts_us, metrics, "test", {"kind": "pump", "site": "plant-1"}, seq=0)


def python_view(records: list[Received], topic: str) -> dict[tuple[str, int, int], Any]:
    return {
        (topic, r.partition, r.offset): {"key": r.key.decode() if r.key else None, "value": r.value}
        for r in records
    }


def java_view(lines: list[dict[str, Any]]) -> dict[tuple[str, int, int], Any]:
    return {
        (line["topic"], line["partition"], line["offset"]): {
            "key": line["key"],
            "value": line["value"],
        }
        for line in lines
    }


def test_a_java_client_decodes_readings_rollups_and_alerts_like_sentio(
    stream_testbed: StreamTestbed, read_topics: list[str]
) -> None:
    bed = stream_testbed.configure(
        partitions=2, streams={"rollups": {"windows_s": [60]}, "alerts": {"check_interval_s": 1}}
    )
    worker = bed.start_worker(agents="rollups,alerts")
    t0 = (now_us() // (60 * S) - 3) * 60 * S  # whole minutes, closed by the last readings
    readings = [
        reading(device, t0 + second * S, 100.0 + i + second / 8, "auto")
        for i, device in enumerate(["pump-1", "pump-2"])
        for second in range(0, 150, 15)
    ]
    bed.produce("readings", [(r.device_id, r.to_record()) for r in readings])
    event = {
        "device_id": "pump-3",
        "ts": t0,
        "kind": "OFFLINE",
        "message": "no reading for 30 s",
        "source": "streams",
        "details": {"last_seen": "2026-12-07T10:00:00Z"},
        "labels": {"kind": "pump"},
    }
    bed.produce("device-events", [("pump-3", event)])
    bed.read("rollups", count=4)  # the windows are closed, and
    bed.read("alerts", count=1)  # the alert fired: stop, then take everything there is
    assert worker.stop() == 0
    rollups = bed.read("rollups", count=4)
    alerts = bed.read("alerts", count=1)
    sent = bed.read("readings", count=len(readings))
    assert len(sent) == len(readings) and len(rollups) >= 4 and len(alerts) == 1

    expected = {
        **python_view(sent, bed.topic("readings")),
        **python_view(rollups, bed.topic("rollups")),
        **python_view(alerts, bed.topic("alerts")),
    }
    topics = [bed.topic(name) for name in ("readings", "rollups", "alerts")]
    lines = run_java(read_topics, bed.config, f"{bed.name}-java", len(expected), topics)
    assert java_view(lines) == expected
    # what a JVM user sees, spelled out once
    first = next(line for line in lines if line["topic"] == bed.topic("readings"))
    assert first["value"]["metrics"][1] == {
        "name": "mode",
        "value": None,
        "text": "auto",
        "unit": None,
        "quality": "GOOD",
    }
    [alert] = [line["value"] for line in lines if line["topic"] == bed.topic("alerts")]
    assert (alert["device_id"], alert["status"], alert["severity"]) == (
        "pump-3",
        "FIRING",
        "MAJOR",
    )
