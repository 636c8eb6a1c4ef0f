"""The live API under load, beside a bare ASGI endpoint as the ceiling, in one run.

    .venv/bin/python -m benchmarks.api_bench [--duration 10] [--clients 100,1000] [--rate 1000]
    .venv/bin/python -m benchmarks.api_bench --smoke      # that it runs, in ~30 s
    ... --no-rest --versus "before=PYTHONPATH=/tmp/old .venv/bin/python -P -c 'import sys;
        from sentio_iot.cli.main import main; sys.exit(main())'"
                  # the fan-out of another build too, in the same run (-P: not this checkout)

Needs the local stack (`sentio stack up`). Starts `sentio api` in its own process on its own
topic prefix (so its CPU is its own), then:

1. REST: ``--concurrency`` clients for ``--duration`` s each against a bare ASGI app under the
   same uvicorn (one fixed JSON body: the ceiling), ``GET /api/v1/devices?limit=100`` and a
   series query (VictoriaMetrics ``query_range``): requests/s, p50/p99 latency, server CPU.
2. WebSocket fan-out: for each ``--clients`` count, that many connections subscribed to every
   reading while a plant of ``--devices`` devices produces ``--rate`` readings/s to Kafka:
   messages delivered/s (all clients, each asking for batches of up to 100 updates a frame),
   p99 latency (reading timestamp to arrival), updates
   coalesced by slow clients, server CPU.

The WebSocket clients run in ``--client-procs`` processes (2), and on a small machine the
load generator may still be the limit: the table says how many messages were offered and
how many arrived, and the server's CPU per delivered message. To keep the clients cheap, one
in ten parses its messages (for the latency); the others count the updates in each frame's
text; none asks for compression.

``--versus LABEL=COMMAND`` also runs the fan-out against the API started by COMMAND (its
``api -c FILE`` appended; e.g. an older checkout of Sentio), on the same topics, one after
the other, so builds are compared side by side in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import secrets
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import websockets
import yaml
from pydantic import SecretStr

from sentio_iot.api.roles import Role
from sentio_iot.api.server import free_port
from sentio_iot.api.store import AuthStore
from sentio_iot.api.users import UserStore
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.records import now_us

SENTIO = str(Path(sys.executable).with_name("sentio"))
TICK = os.sysconf("SC_CLK_TCK")
BATCH = 100  # each client asks for up to 100 waiting updates a frame (the protocol's batch)
BARE_APP = """
import sys, uvicorn
BODY = open(sys.argv[2], "rb").read()
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"}); return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": BODY})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def reading(device: str, value: float, seq: int) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": now_us(),
        "metrics": [
            {
                "name": "temperature",
                "value": value,
                "text": None,
                "unit": "degC",
                "quality": "GOOD",
            },
            {
                "name": "vibration",
                "value": value / 10,
                "text": None,
                "unit": "mm/s",
                "quality": "GOOD",
            },
        ],
        "labels": {"tenant": "bench", "site": "plant-1", "kind": "pump"},
        "source": "simulate",
        "seq": seq,
    }


class Plant:
    """Produces readings to the run's topic at a steady rate on a thread of its own."""

    def __init__(self, config: SentioConfig, devices: int) -> None:
        from confluent_kafka import Producer

        from sentio_iot.kafka import producer_config
        from sentio_iot.registry import SchemaRegistry
        from sentio_iot.schemas.catalog import spec
        from sentio_iot.serde import AvroSerde
        from sentio_iot.topic_admin import apply_topics

        apply_topics(config, (spec("readings"),))
        self.topic = spec("readings").topic(config.topics)
        self.registry = SchemaRegistry(config.schema_registry)
        self.serde = AvroSerde(self.registry, self.topic, "Reading")
        self.serde.register()
        self.producer = Producer(producer_config(config.kafka, **{"linger.ms": 1}))
        self.devices = [f"pump-{i:04d}" for i in range(devices)]
        self.sent = 0

    def send(self, count: int) -> None:
        for _ in range(count):
            device = self.devices[self.sent % len(self.devices)]
            value = reading(device, float(self.sent % 100), self.sent)
            self.producer.produce(self.topic, key=device.encode(), value=self.serde.encode(value))
            self.sent += 1
        self.producer.poll(0)

    def run(self, rate: float, duration_s: float, stop: threading.Event) -> None:
        start = time.monotonic()
        while not stop.is_set() and time.monotonic() - start < duration_s:
            due = int((time.monotonic() - start) * rate) - (self.sent - self.base)
            if due > 0:
                self.send(due)
            time.sleep(0.002)
        self.producer.flush(30)

    base = 0


@contextmanager
def process(
    argv: list[str], health: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 90
        while True:
            if child.poll() is not None:
                raise SystemExit(f"{argv[:3]} exited: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(health, timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"{argv[:3]} not healthy in 90 s: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield child
    finally:
        child.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(30)


async def rest_load(
    url: str, headers: dict[str, str], concurrency: int, duration_s: float, pid: int
) -> tuple[float, float, float, float, int]:
    """(requests/s, p50 ms, p99 ms, server CPU %, errors)."""
    latencies: list[float] = []
    errors = 0
    end = time.monotonic() + duration_s

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.monotonic() < end:
            began = time.perf_counter()
            response = await client.get(url, headers=headers)
            if response.status_code != 200:
                errors += 1
            latencies.append((time.perf_counter() - began) * 1000)

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        cpu0, t0 = cpu_s(pid), time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed, cpu = time.monotonic() - t0, cpu_s(pid) - cpu0
    return (
        len(latencies) / elapsed,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
        100 * cpu / elapsed,
        errors,
    )


async def _clients(
    ws_url: str, token: str, first: int, count: int, ready: Any, stop: Any
) -> tuple[int, list[float]]:
    """``count`` connections (numbered from ``first``) subscribed to every reading until
    ``stop`` is set: (updates received, latencies of a sample in ms)."""
    received = 0
    latencies: list[float] = []
    stopping = asyncio.Event()

    async def client(index: int) -> None:
        nonlocal received
        connection = websockets.connect(
            ws_url, max_queue=None, open_timeout=60, compression=None, ping_interval=None
        )
        async with connection as ws:
            await ws.send(json.dumps({"type": "auth", "token": token, "batch": BATCH}))
            await ws.recv()
            await ws.send(json.dumps({"type": "subscribe", "id": "all", "kinds": ["readings"]}))
            await ws.recv()
            with ready.get_lock():
                ready.value += 1
            while not stopping.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                if index % 10:  # most clients count the updates in the frame's text
                    received += str(text).count('"type":"update",')
                    continue
                message = json.loads(text)  # a sample of the clients times their messages
                items = message["items"] if message.get("type") == "updates" else [message]
                for item in items:
                    if item.get("type") == "update":
                        received += 1
                        latencies.append((now_us() - item["data"]["ts"]) / 1000)

    tasks = [asyncio.create_task(client(first + i)) for i in range(count)]
    while not stop.is_set():
        await asyncio.sleep(0.1)
        for task in tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    stopping.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return received, latencies


def client_process(
    ws_url: str, token: str, first: int, count: int, ready: Any, stop: Any, results: Any
) -> None:
    """One load-generator process (the clients are spread over several: one Python process
    cannot read a thousand sockets' worth of frames)."""
    try:
        results.put(asyncio.run(_clients(ws_url, token, first, count, ready, stop)))
    except BaseException as exc:
        results.put(f"{type(exc).__name__}: {exc}")


def fan_out(
    ws_url: str,
    token: str,
    clients: int,
    procs: int,
    plant: Plant,
    rate: float,
    duration_s: float,
    pid: int,
    metrics_url: str,
) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    ready, stop, results = context.Value("i", 0), context.Event(), context.Queue()
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    starts = [sum(shares[:i]) for i in range(procs)]
    children = [
        context.Process(
            target=client_process,
            args=(ws_url, token, first, share, ready, stop, results),
            daemon=True,
        )
        for first, share in zip(starts, shares, strict=True)
        if share
    ]
    for child in children:
        child.start()
    try:
        deadline = time.monotonic() + 120
        while ready.value < clients:
            if time.monotonic() > deadline or not all(c.is_alive() for c in children):
                problem = results.get(timeout=5) if not results.empty() else "not ready"
                raise SystemExit(f"the clients did not connect: {problem}")
            time.sleep(0.1)
        coalesced0 = coalesced(metrics_url)
        plant.base = plant.sent
        producer = threading.Thread(target=plant.run, args=(rate, duration_s, threading.Event()))
        cpu0, t0 = cpu_s(pid), time.monotonic()
        producer.start()
        producer.join()
        time.sleep(1.0)  # the last messages in flight
        elapsed, cpu = time.monotonic() - t0, cpu_s(pid) - cpu0
        stop.set()
        received, latencies = 0, []
        for _ in children:
            answer = results.get(timeout=120)
            if isinstance(answer, str):
                raise SystemExit(f"a load-generator process failed: {answer}")
            received += answer[0]
            latencies += answer[1]
    finally:
        stop.set()
        for child in children:
            child.join(30)
    offered = (plant.sent - plant.base) * clients
    return {
        "clients": clients,
        "offered_per_s": offered / elapsed,
        "delivered_per_s": received / elapsed,
        "delivered_share": received / offered if offered else 0.0,
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "coalesced": coalesced(metrics_url) - coalesced0,
        "cpu_pct": 100 * cpu / elapsed,
    }


def coalesced(metrics_url: str) -> float:
    for line in httpx.get(metrics_url, timeout=120).text.splitlines():
        if line.startswith("sentio_api_live_coalesced_total "):
            return float(line.split()[1])
    return 0.0


def delete_topics(config: SentioConfig) -> None:
    from sentio_iot.kafka import admin_client

    admin = admin_client(config.kafka)
    ours = [t for t in admin.list_topics(timeout=15).topics if t.startswith(config.topics.prefix)]
    for future in admin.delete_topics(ours).values() if ours else ():
        with contextlib.suppress(Exception):
            future.result(15)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per measurement.")
    parser.add_argument("--clients", default="100,1000", help="WebSocket client counts.")
    parser.add_argument("--rate", type=float, default=1000.0, help="Readings/s of the plant.")
    parser.add_argument("--devices", type=int, default=200, help="Devices of the plant.")
    parser.add_argument("--concurrency", type=int, default=32, help="REST clients at once.")
    parser.add_argument("--smoke", action="store_true", help="Tiny and quick: that it runs.")
    parser.add_argument("--no-rest", action="store_true", help="Only the WebSocket fan-out.")
    parser.add_argument(
        "--client-procs", type=int, default=2, help="Processes the WebSocket clients run in."
    )
    parser.add_argument(
        "--versus",
        action="append",
        default=[],
        metavar="LABEL=COMMAND",
        help="Also run the fan-out against the API started by COMMAND (+ 'api -c FILE').",
    )
    args = parser.parse_args()
    if args.smoke:
        args.duration, args.clients, args.rate, args.devices, args.concurrency = 2, "10", 100, 20, 4
    counts = [int(c) for c in args.clients.split(",")]

    with tempfile.TemporaryDirectory(prefix="api-bench-") as folder:
        work = Path(folder)
        port = free_port()
        # only what differs from the defaults: another build (--versus) reads it too
        data: dict[str, Any] = {
            "topics": {"prefix": f"bench-api-{uuid.uuid4().hex[:8]}."},
            "api": {
                "port": port,
                "state_dir": str(work / "api"),
                "live": {"max_messages_per_s": 1_000_000},
            },
            "producers": {},
        }
        config_file = work / "sentio.yaml"
        config_file.write_text(yaml.safe_dump(data))
        config = load_config(config_file)
        password = SecretStr(secrets.token_urlsafe(18))
        UserStore(AuthStore(work / "api")).add("bench", password, Role.ADMIN, ("*",))
        plant = Plant(config, args.devices)
        plant.send(args.devices)  # every device once: the device list has them all
        plant.producer.flush(30)
        url = f"http://127.0.0.1:{port}"
        try:
            with process(
                [SENTIO, "api", "-c", str(config_file)], f"{url}/health", work / "api.log"
            ) as api:
                login = {"username": "bench", "password": password.get_secret_value()}
                token = httpx.post(f"{url}/api/v1/auth/login", json=login).json()["access_token"]
                headers = {"Authorization": f"Bearer {token}"}
                devices_url = f"{url}/api/v1/devices?limit=100"
                while httpx.get(devices_url, headers=headers).json()["total"] < args.devices:
                    time.sleep(0.2)
                body = httpx.get(devices_url, headers=headers).content
                (work / "body.json").write_bytes(body)
                bare_port = free_port()
                bare_argv = [
                    sys.executable,
                    "-c",
                    BARE_APP,
                    str(bare_port),
                    str(work / "body.json"),
                ]
                with process(
                    bare_argv, f"http://127.0.0.1:{bare_port}/", work / "bare.log"
                ) as bare:
                    rows = [
                        (
                            "bare ASGI (same body, ceiling)",
                            f"http://127.0.0.1:{bare_port}/",
                            bare.pid,
                        ),
                        ("GET /api/v1/devices?limit=100", devices_url, api.pid),
                        (
                            "GET .../series (1 h, raw)",
                            f"{url}/api/v1/devices/pump-0000/series?metric=temperature&step=15",
                            api.pid,
                        ),
                    ]
                    print(
                        f"REST: {args.concurrency} concurrent clients, {args.duration:g} s each "
                        f"({len(body)} B device page)"
                    )
                    print(
                        f"{'endpoint':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU %':>8}{'errors':>8}"
                    )
                    for label, target, pid in rows if not args.no_rest else ():
                        rps, p50, p99, cpu, errors = asyncio.run(
                            rest_load(target, headers, args.concurrency, args.duration, pid)
                        )
                        print(f"{label:<34}{rps:>9.0f}{p50:>9.1f}{p99:>9.1f}{cpu:>8.0f}{errors:>8}")
            print()
            print(
                f"WebSocket fan-out: {args.rate:g} readings/s from {args.devices} devices, "
                f"{args.duration:g} s, every client subscribed to every reading"
            )
            print(
                f"{'build':<10}{'clients':>8}{'offered/s':>11}{'delivered/s':>13}{'share':>7}"
                f"{'p50 ms':>9}{'p99 ms':>9}{'coalesced':>11}{'CPU %':>7}{'CPU us/msg':>12}"
            )
            builds = [("sentio", [SENTIO])]
            builds += [(v.partition("=")[0], shlex.split(v.partition("=")[2])) for v in args.versus]
            for label, argv in builds:
                # env assignments at the front (PYTHONPATH=...) go to the environment
                env = dict(os.environ)
                while argv and "=" in argv[0] and not argv[0].startswith(("/", ".")):
                    name, _, value = argv.pop(0).partition("=")
                    env[name] = value
                with process(
                    [*argv, "api", "-c", str(config_file)],
                    f"{url}/health",
                    work / f"api-{label}.log",
                    env,
                ) as api:
                    login = {"username": "bench", "password": password.get_secret_value()}
                    reply = httpx.post(f"{url}/api/v1/auth/login", json=login)
                    token = reply.json()["access_token"]
                    ws_url = url.replace("http", "ws") + "/api/v1/live"
                    for count in counts:
                        r = fan_out(
                            ws_url,
                            token,
                            count,
                            args.client_procs,
                            plant,
                            args.rate,
                            args.duration,
                            api.pid,
                            f"{url}/metrics",
                        )
                        per_msg = 1e4 * r["cpu_pct"] / max(r["delivered_per_s"], 1.0)
                        print(
                            f"{label:<10}{count:>8}{r['offered_per_s']:>11.0f}"
                            f"{r['delivered_per_s']:>13.0f}{r['delivered_share']:>7.2f}"
                            f"{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['coalesced']:>11.0f}"
                            f"{r['cpu_pct']:>7.0f}{per_msg:>12.1f}",
                            flush=True,
                        )
        finally:
            plant.registry.close()
            delete_topics(config)


if __name__ == "__main__":
    main()
