"""What the orchestrator asks the workers: ``/health`` and ``/metrics``, every second on a
thread of its own (:class:`Poller`), so a slow worker never holds up the view."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx

from sentio_iot.pipeline.metrics_text import Sample, parse_metrics
from sentio_iot.pipeline.processes import ChildSpec

log = logging.getLogger(__name__)

HTTP_TIMEOUT_S = 1.0
JOIN_S = 10.0

T = TypeVar("T")


@dataclass(frozen=True)
class WorkerProbe:
    """One look at one worker: does ``/health`` say 200, and its ``/metrics`` samples."""

    name: str
    healthy: bool
    samples: tuple[Sample, ...]


def probe_workers(specs: Sequence[ChildSpec]) -> dict[str, WorkerProbe]:
    """Every worker with a port, all asked at once."""
    asked = [spec for spec in specs if spec.port and not spec.unavailable]
    if not asked:
        return {}
    with (
        httpx.Client(timeout=HTTP_TIMEOUT_S) as client,
        ThreadPoolExecutor(len(asked), thread_name_prefix="probe") as pool,
    ):
        probes = list(pool.map(lambda spec: _probe(client, spec), asked))
    return {probe.name: probe for probe in probes}


def pinned(cert_file: str) -> ssl.SSLContext:
    """Trusts exactly the worker's own certificate (whatever host it names): the probe asks
    127.0.0.1, which a certificate for the machine's public name need not name."""
    context = ssl.create_default_context(cafile=cert_file)
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False
    return context


def _probe(client: httpx.Client, spec: ChildSpec) -> WorkerProbe:
    assert spec.health_url and spec.metrics_url
    if spec.tls_cert:
        try:
            with httpx.Client(timeout=HTTP_TIMEOUT_S, verify=pinned(spec.tls_cert)) as own:
                return _ask(own, spec)
        except (OSError, ssl.SSLError):
            return WorkerProbe(spec.name, False, ())
    return _ask(client, spec)


def _ask(client: httpx.Client, spec: ChildSpec) -> WorkerProbe:
    assert spec.health_url and spec.metrics_url
    try:
        healthy = client.get(spec.health_url).status_code == 200
        response = client.get(spec.metrics_url)
        samples = tuple(parse_metrics(response.text)) if response.status_code == 200 else ()
    except httpx.HTTPError:
        return WorkerProbe(spec.name, False, ())
    return WorkerProbe(spec.name, healthy, samples)


class Poller(Generic[T]):
    """Calls ``measure`` every ``every_s`` on its own thread; ``latest`` is the last answer."""

    def __init__(self, name: str, measure: Callable[[], T], every_s: float) -> None:
        self.name = name
        self.measure = measure
        self.every_s = every_s
        self.latest: T | None = None
        self.measured_at = 0.0  # time.monotonic() of ``latest``
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"poll-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_S)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.latest, self.error = self.measure(), None
                self.measured_at = time.monotonic()
            except Exception as exc:  # a probe that fails says so in the view; the run goes on
                self.error = f"{type(exc).__name__}: {exc}"
                log.debug("%s probe failed", self.name, exc_info=True)
            self._stop.wait(self.every_s)
