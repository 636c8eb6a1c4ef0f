"""The services of the local stack, in the order they are listed and reported."""

from __future__ import annotations

from sentio_iot.config import StackSettings
from sentio_iot.stack.alertmanager import AlertmanagerService
from sentio_iot.stack.kafka import KafkaService
from sentio_iot.stack.keycloak import KeycloakService
from sentio_iot.stack.mosquitto import MosquittoService
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.process import is_running, read_record
from sentio_iot.stack.registry import RegistryService
from sentio_iot.stack.service import Service
from sentio_iot.stack.victorialogs import VictoriaLogsService
from sentio_iot.stack.victoriametrics import VictoriaMetricsService

SERVICE_TYPES: tuple[type[Service], ...] = (
    KafkaService,
    RegistryService,
    VictoriaMetricsService,
    VictoriaLogsService,
    MosquittoService,
    AlertmanagerService,
    KeycloakService,
)


def build_services(
    settings: StackSettings, paths: StackPaths, *, secure: bool = False
) -> list[Service]:
    """Keycloak (the registry's OIDC server) only with ``secure``, or while the process it
    started runs (so that ``status`` and ``down`` see it)."""
    return [
        service_type(settings, paths)
        for service_type in SERVICE_TYPES
        if secure or service_type is not KeycloakService or _running(paths, KeycloakService.name)
    ]


def _running(paths: StackPaths, name: str) -> bool:
    record = read_record(paths.pid(name))
    return record is not None and is_running(record)
