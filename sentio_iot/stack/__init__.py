"""The local stack behind ``sentio stack``: Kafka, Apicurio Registry, VictoriaMetrics,
VictoriaLogs and Mosquitto as plain processes on 127.0.0.1.

    stack = Stack(settings)          # settings: sentio_iot.config.StackSettings
    stack.up(progress=print)         # install what is missing, start, wait until each answers
    stack.status()                   # list[ServiceStatus]
    stack.down()                     # stop only what it started

Downloads and builds are cached in ``settings.home``; the running stack keeps its pid files,
logs and data under ``<home>/state/``.
"""

from sentio_iot.stack.local_stack import ServiceStatus, Stack

__all__ = ["ServiceStatus", "Stack"]
