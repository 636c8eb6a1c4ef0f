"""Acknowledgements that come from Alertmanager: an AlertCommand ACK on ``alert-commands``.

When someone silences a firing Sentio alert in Alertmanager, the sink acknowledges it in
Sentio exactly as ``sentio alerts ack`` does (same record, topic, key and code path), naming
the silence's author; the alerts agent then emits the ACKNOWLEDGED state like for any ack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sentio_iot.cli.alerts_cmd import command_record, send_command
from sentio_iot.config import SentioConfig
from sentio_iot.errors import SentioError
from sentio_iot.sinks.writer import BackendUnavailable


class AckSender:
    """Writes ACK commands for alerts silenced in Alertmanager."""

    def __init__(self, config: SentioConfig) -> None:
        self.config = config

    async def ack(self, alert: Mapping[str, Any], user: str, comment: str) -> None:
        """ACK ``alert`` (an Alert record) as ``user``; BackendUnavailable when Kafka is away."""
        command = command_record(
            str(alert["device_id"]),
            str(alert["type"]),
            "ACK",
            alert_id=str(alert["alert_id"]),
            comment=comment,
            user=user,
        )
        try:
            await asyncio.to_thread(send_command, self.config, command)
        except SentioError as exc:
            raise BackendUnavailable(f"ACK not written to alert-commands: {exc}") from exc
