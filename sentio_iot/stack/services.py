"""The services of the local stack, in the order they are listed and reported."""

from __future__ import annotations

from sentio_iot.config import StackSettings
from sentio_iot.stack.alertmanager import AlertmanagerService
from sentio_iot.stack.kafka import KafkaService
from sentio_iot.stack.mosquitto import MosquittoService
from sentio_iot.stack.paths import StackPaths
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
)


def build_services(settings: StackSettings, paths: StackPaths) -> list[Service]:
    return [service_type(settings, paths) for service_type in SERVICE_TYPES]
