"""Mosquitto: the MQTT broker that Zigbee2MQTT and Home Assistant style devices publish to."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from sentio_iot.stack.prerequisites import find_program, missing
from sentio_iot.stack.probes import HOST, Health, mqtt_answers
from sentio_iot.stack.service import Progress, Service


def render_mosquitto_conf(port: int, data_dir: Path, log_path: Path, user: str) -> str:
    """A broker for local development: loopback only, anonymous, persistent, logging to a file."""
    return (
        "# Written by `sentio stack up`; edits are overwritten at the next start.\n"
        f"listener {port} {HOST}\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {data_dir}/\n"
        # Not stdout: mosquitto buffers it when it is a file, and flushes its own log file.
        f"log_dest file {log_path}\n"
        "log_timestamp_format %Y-%m-%dT%H:%M:%S\n"
        # Started as root, mosquitto would switch to the 'mosquitto' user and lose the data dir.
        f"user {user}\n"
    )


class MosquittoService(Service):
    name = "mosquitto"

    @property
    def address(self) -> str:
        return f"{HOST}:{self.settings.mqtt_port}"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.mqtt_port, "stack.mqtt_port")]

    def problems(self) -> list[str]:
        return [] if find_program("mosquitto") else [missing("mosquitto")]

    def install(self, progress: Progress) -> None:
        """Nothing to fetch: mosquitto comes from the system's packages."""

    @property
    def conf_path(self) -> Path:
        return self.paths.conf / "mosquitto.conf"

    def prepare(self, progress: Progress) -> None:
        self.paths.conf.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = pwd.getpwuid(os.getuid()).pw_name
        self.conf_path.write_text(
            render_mosquitto_conf(self.settings.mqtt_port, self.data_dir, self.log_path, user),
            encoding="utf-8",
        )

    def command(self) -> list[str]:
        mosquitto = find_program("mosquitto")
        assert mosquitto is not None  # problems() said so
        return [str(mosquitto), "-c", str(self.conf_path)]

    def check(self) -> Health:
        return mqtt_answers(self.settings.mqtt_port)
