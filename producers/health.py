"""``/health`` and ``/metrics`` for a running producer: the shared :mod:`sentio_iot.health`."""

from __future__ import annotations

from sentio_iot.health import NOT_READY, PROMETHEUS_TEXT, START_TIMEOUT_S, HealthServer

__all__ = ["NOT_READY", "PROMETHEUS_TEXT", "START_TIMEOUT_S", "HealthServer"]
