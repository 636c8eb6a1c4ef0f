"""``sentio stack up --secure`` for Mosquitto: no anonymous clients, two users, their ACLs.

As docker-compose.yml runs it (deploy/mosquitto/): the user ``devices`` (field devices and
gateways) may publish to any topic and reads nothing; ``sentio`` (the ``mqtt`` connector and
the Home Assistant sink) reads every topic and writes only under ``homeassistant/``. Their
passwords are generated on the first secure start into
``<home>/state/secure/credentials/mqtt-<user>.password`` (0600) and hashed into the broker's
password file by ``mosquitto_passwd -U`` (from a file: never on a command line).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from sentio_iot.stack.install import run_tool
from sentio_iot.stack.kafka_secure import write_private
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.prerequisites import find_program, missing

USERS = ("devices", "sentio")
ACL = """\
# Written by `sentio stack up --secure` (as deploy/mosquitto/acl).
user devices
topic write #

user sentio
topic read #
topic readwrite homeassistant/#
"""


class SecureMosquittoFiles:
    """The MQTT users' passwords, the hashed password file and the ACL file."""

    def __init__(self, paths: StackPaths) -> None:
        self.credentials = paths.state / "secure" / "credentials"
        self.password_file = paths.conf / "mosquitto-passwd"
        self.acl_file = paths.conf / "mosquitto-acl"

    def problems(self) -> list[str]:
        found = find_program("mosquitto_passwd")
        return [] if found else [missing("mosquitto_passwd", "to hash the MQTT passwords")]

    def password_path(self, user: str) -> Path:
        return self.credentials / f"mqtt-{user}.password"

    def password(self, user: str) -> str:
        return self.password_path(user).read_text(encoding="utf-8").strip()

    def ensure(self) -> None:
        """Generate missing passwords, then write the password file (hashed) and the ACLs."""
        self.credentials.mkdir(parents=True, exist_ok=True)
        self.credentials.parent.chmod(0o700)
        self.credentials.chmod(0o700)
        for user in USERS:
            if not self.password_path(user).is_file():
                write_private(self.password_path(user), secrets.token_urlsafe(24))
        write_private(
            self.password_file, "".join(f"{user}:{self.password(user)}\n" for user in USERS)
        )
        tool = find_program("mosquitto_passwd")
        assert tool is not None  # problems() said so
        try:
            run_tool([str(tool), "-U", str(self.password_file)], what="mosquitto_passwd -U")
        except BaseException:
            self.password_file.unlink(missing_ok=True)  # never leave the clear passwords
            raise
        write_private(self.acl_file, ACL)

    def conf_lines(self) -> str:
        return (
            f"allow_anonymous false\npassword_file {self.password_file}\nacl_file {self.acl_file}\n"
        )
