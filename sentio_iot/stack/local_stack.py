"""``Stack``: bring the local services up together, report on them, and take them down."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sentio_iot.config import StackSettings
from sentio_iot.errors import PrerequisiteError, SentioError, StackError
from sentio_iot.stack.alertmanager import AlertmanagerService
from sentio_iot.stack.kafka import KafkaService
from sentio_iot.stack.kafka_secure import KafkaAccess
from sentio_iot.stack.lock import stack_lock
from sentio_iot.stack.mosquitto import MosquittoService
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.probes import Health, port_in_use
from sentio_iot.stack.process import (
    ProcessRecord,
    is_running,
    log_tail,
    read_record,
    remove_record,
    rotate_log,
    spawn,
    stop,
    write_record,
)
from sentio_iot.stack.registry import RegistryService
from sentio_iot.stack.service import Progress, Service
from sentio_iot.stack.services import build_services
from sentio_iot.stack.victorialogs import VictoriaLogsService
from sentio_iot.stack.victoriametrics import VictoriaMetricsService

log = logging.getLogger(__name__)

POLL_S = 0.25
STOP_GRACE_S = 15.0


@dataclass(frozen=True)
class ServiceStatus:
    """One service as ``status()`` sees it. ``running`` means a process we started is alive."""

    name: str
    running: bool
    healthy: bool
    pid: int | None
    address: str
    detail: str

    @property
    def state(self) -> str:
        if self.healthy:
            return "healthy"
        return "unhealthy" if self.running else "stopped"


class Stack:
    """The local services described by ``settings``; every method is safe to call again."""

    def __init__(
        self,
        settings: StackSettings,
        *,
        secure: bool = False,
        access: KafkaAccess | None = None,
        only: Collection[str] | None = None,
    ) -> None:
        """``secure``: Kafka with SASL/SCRAM over TLS and ACLs per role for ``access``
        (kafka_secure.py), Mosquitto with users and ACLs (mosquitto_secure.py), Alertmanager
        with basic auth (alertmanager_secure.py), VictoriaMetrics and VictoriaLogs with basic
        auth (victoria_secure.py), the registry with OIDC through Keycloak, started too
        (registry_secure.py, keycloak.py); ``only``: the names of the services to drive
        (default: all)."""
        self.settings = settings
        self.paths = StackPaths(settings.home)
        self.services: list[Service] = [
            service
            for service in build_services(settings, self.paths, secure=secure)
            if only is None or service.name in only
        ]
        for service in self.services:
            if isinstance(service, KafkaService):
                service.secure = secure
                service.access = access or KafkaAccess()
            elif isinstance(
                service,
                MosquittoService
                | AlertmanagerService
                | VictoriaMetricsService
                | VictoriaLogsService
                | RegistryService,
            ):
                service.secure = secure

    def up(self, progress: Progress | None = None) -> list[ServiceStatus]:
        """Install what is missing, start what is not running, return once all answer."""
        say = _one_at_a_time(progress)
        started = time.monotonic()
        with stack_lock(self.paths.lock, on_wait=say):
            statuses = self._up(say)
        say(f"stack: {len(statuses)} services healthy in {time.monotonic() - started:.1f} s")
        return statuses

    def _up(self, say: Progress) -> list[ServiceStatus]:
        records = {service.name: self._live_record(service) for service in self.services}
        self._check_can_start([s for s in self.services if records[s.name] is None])
        with ThreadPoolExecutor(len(self.services), thread_name_prefix="stack-up") as pool:
            futures = [
                pool.submit(self._bring_up, service, records[service.name], say)
                for service in self.services
            ]
        failures: list[SentioError] = []
        statuses: list[ServiceStatus] = []
        for future in futures:
            error = future.exception()
            if error is None:
                statuses.append(future.result())
            elif isinstance(error, SentioError):
                failures.append(error)
            else:
                raise error
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise StackError("; ".join(str(failure) for failure in failures))
        return statuses

    def down(self, progress: Progress | None = None) -> list[str]:
        """Stop the processes this stack recorded (never any other); return their names."""
        say = _one_at_a_time(progress)
        with (
            stack_lock(self.paths.lock, on_wait=say),
            ThreadPoolExecutor(len(self.services), thread_name_prefix="stack-down") as pool,
        ):
            stopped = list(pool.map(lambda service: self._take_down(service, say), self.services))
        return [service.name for service, done in zip(self.services, stopped, strict=True) if done]

    def status(self) -> list[ServiceStatus]:
        with ThreadPoolExecutor(len(self.services), thread_name_prefix="stack-status") as pool:
            return list(pool.map(self._status, self.services))

    def healthy(self) -> bool:
        return all(status.healthy for status in self.status())

    @contextmanager
    def used_or_started(self, progress: Progress | None = None) -> Iterator[Stack]:
        """The stack for a block: used as it is if healthy, else started now and stopped after.

        Each block holds a lease (a file named by its pid) while it runs: the block that
        started the stack stops it only if no other live block still uses it, so two test
        sessions side by side (or pytest-xdist workers) never take it from each other.
        """
        lease = self.paths.state / "leases" / str(os.getpid())
        lease.parent.mkdir(parents=True, exist_ok=True)
        lease.touch()
        started = False
        try:
            if not self.healthy():
                self.up(progress=progress)
                started = True
            yield self
        finally:
            lease.unlink(missing_ok=True)
            others = _live_leases(lease.parent)
            if started and not others:
                self.down()
            elif started:
                log.info("stack left running: %d other session(s) use it", len(others))

    def _live_record(self, service: Service) -> ProcessRecord | None:
        """The record of our running process; a stale pid file is removed."""
        pid_file = self.paths.pid(service.name)
        record = read_record(pid_file)
        if record is None or is_running(record):
            return record
        log.info("removing stale pid file service=%s pid=%s", service.name, record.pid)
        remove_record(pid_file)
        return None

    def _check_can_start(self, services: list[Service]) -> None:
        """Fail before touching anything: port clashes, missing programs, busy ports."""
        owners = [(port, setting) for s in self.services for port, setting in s.ports()]
        users = Counter(port for port, _ in owners)
        clashing = [f"{setting}={port}" for port, setting in owners if users[port] > 1]
        if clashing:
            raise StackError(f"two services share a port: {', '.join(clashing)}")
        problems = list(dict.fromkeys(p for service in services for p in service.problems()))
        if problems:
            raise PrerequisiteError("; ".join(problems))
        busy = [
            f"port {port} is already in use by a process sentio did not start (change {setting} or stop that process)"
            for service in services
            for port, setting in service.ports()
            if port_in_use(port)
        ]
        if busy:
            raise StackError("; ".join(busy))

    def _bring_up(
        self, service: Service, record: ProcessRecord | None, say: Progress
    ) -> ServiceStatus:
        if record is not None:
            health = service.check()
            if health.healthy:
                say(f"{service.name}: already running (pid {record.pid})")
            else:
                since = time.monotonic()
                say(f"{service.name}: running (pid {record.pid}), waiting for it to answer")
                health = self._wait_healthy(service, record, since)
                say(f"{service.name}: healthy after {time.monotonic() - since:.1f} s")
            service.after_start(say)
            return self._running_status(service, record, health)
        service.install(say)
        service.prepare(say)
        rotate_log(service.log_path)
        extra = service.environment()
        record = spawn(
            service.command(),
            log_path=service.log_path,
            cwd=service.data_dir,
            env={**os.environ, **extra} if extra else None,
        )
        write_record(self.paths.pid(service.name), record)
        since = time.monotonic()
        try:
            health = self._wait_healthy(service, record, since)
        except StackError:
            stop(record, grace_s=5.0)  # never leave a half-started service behind
            remove_record(self.paths.pid(service.name))
            raise
        elapsed = time.monotonic() - since
        say(f"{service.name}: started pid {record.pid}, healthy in {elapsed:.1f} s")
        service.after_start(say)
        return self._running_status(service, record, health)

    def _wait_healthy(self, service: Service, record: ProcessRecord, since: float) -> Health:
        timeout_s = self.settings.start_timeout_s
        deadline = since + timeout_s
        log_path = service.log_path
        while True:
            if not is_running(record):
                raise StackError(
                    f"{service.name} exited during start-up; see {log_path}: {log_tail(log_path)}"
                )
            health = service.check()
            if health.healthy:
                return health
            if time.monotonic() >= deadline:
                raise StackError(
                    f"{service.name} did not answer within {timeout_s:g} s ({health.detail}); see {log_path}: {log_tail(log_path)}"
                )
            time.sleep(POLL_S)

    def _take_down(self, service: Service, say: Progress) -> bool:
        pid_file = self.paths.pid(service.name)
        record = read_record(pid_file)
        if record is None:
            return False
        since = time.monotonic()
        stopped = stop(record, grace_s=STOP_GRACE_S)
        remove_record(pid_file)
        if stopped:
            say(f"{service.name}: stopped pid {record.pid} in {time.monotonic() - since:.1f} s")
        else:
            log.info("pid file was stale service=%s pid=%s", service.name, record.pid)
        return stopped

    def _status(self, service: Service) -> ServiceStatus:
        record = read_record(self.paths.pid(service.name))
        if record is not None and is_running(record):
            return self._running_status(service, record, service.check())
        detail = "stopped (stale pid file)" if record else "stopped"
        busy = [port for port, _ in service.ports() if port_in_use(port)]
        if busy:
            detail += f"; port {busy[0]} is in use by a process sentio did not start"
        return ServiceStatus(service.name, False, False, None, service.address, detail)

    @staticmethod
    def _running_status(service: Service, record: ProcessRecord, health: Health) -> ServiceStatus:
        detail = health.detail if health.healthy else f"not answering: {health.detail}"
        return ServiceStatus(
            service.name, True, health.healthy, record.pid, service.address, detail
        )


def _one_at_a_time(progress: Progress | None) -> Progress:
    """Progress lines come from several threads: never let two interleave."""
    lock = threading.Lock()

    def say(line: str) -> None:
        log.debug("%s", line)
        if progress is not None:
            with lock:
                progress(line)

    return say


def _live_leases(folder: Path) -> list[Path]:
    """The leases of processes still alive (a killed session's lease is removed)."""
    alive = []
    for lease in folder.iterdir():
        try:
            os.kill(int(lease.name), 0)
        except (ValueError, ProcessLookupError):
            lease.unlink(missing_ok=True)
            continue
        except PermissionError:
            pass  # another user's live process
        alive.append(lease)
    return alive
