"""Mosquitto: the MQTT broker that Zigbee2MQTT and Home Assistant style devices publish to."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import TYPE_CHECKING

from sentio_iot.errors import StackError
from sentio_iot.stack.mosquitto_secure import SecureMosquittoFiles
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.prerequisites import find_program, missing
from sentio_iot.stack.probes import HOST, Health, mqtt_answers
from sentio_iot.stack.service import Progress, Service

if TYPE_CHECKING:
    from sentio_iot.config import StackSettings


def render_mosquitto_conf(
    port: int, data_dir: Path, log_path: Path, user: str, access: str = "allow_anonymous true\n"
) -> str:
    """A broker for local development: loopback only, anonymous (``access``: the secure
    stack's users and ACLs instead), persistent, logging to a file."""
    return (
        "# Written by `sentio stack up`; edits are overwritten at the next start.\n"
        f"listener {port} {HOST}\n"
        f"{access}"
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

    def __init__(self, settings: StackSettings, paths: StackPaths) -> None:
        super().__init__(settings, paths)
        self.secure = False  # `sentio stack up --secure` (set by Stack)
        self.secure_files = SecureMosquittoFiles(paths)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.settings.mqtt_port}"

    def ports(self) -> list[tuple[int, str]]:
        return [(self.settings.mqtt_port, "stack.mqtt_port")]

    def problems(self) -> list[str]:
        found = [] if find_program("mosquitto") else [missing("mosquitto")]
        return found + (self.secure_files.problems() if self.secure else [])

    def install(self, progress: Progress) -> None:
        """Nothing to fetch: mosquitto comes from the system's packages."""

    @property
    def conf_path(self) -> Path:
        return self.paths.conf / "mosquitto.conf"

    def prepare(self, progress: Progress) -> None:
        self.paths.conf.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        user = pwd.getpwuid(os.getuid()).pw_name
        access = "allow_anonymous true\n"
        if self.secure:
            self.secure_files.ensure()
            access = self.secure_files.conf_lines()
        self.conf_path.write_text(
            render_mosquitto_conf(
                self.settings.mqtt_port, self.data_dir, self.log_path, user, access
            ),
            encoding="utf-8",
        )

    def command(self) -> list[str]:
        mosquitto = find_program("mosquitto")
        assert mosquitto is not None  # problems() said so
        return [str(mosquitto), "-c", str(self.conf_path)]

    def check(self) -> Health:
        return mqtt_answers(self.settings.mqtt_port, anonymous_refused=self._running_secure())

    def after_start(self, progress: Progress) -> None:
        if self.secure and not self._running_secure():
            raise StackError(
                "mosquitto is running without --secure",
                fix="stop it with `sentio stack down`, then run `sentio stack up --secure`",
            )
        if self.secure:
            progress(
                "mosquitto: anonymous refused; users devices and sentio, passwords in "
                f"{self.secure_files.credentials}/mqtt-<user>.password (mode 0600)"
            )

    def _running_secure(self) -> bool:
        """Whether the configuration it was started with refuses anonymous clients."""
        try:
            return "allow_anonymous false" in self.conf_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return False
