"""``sentio stack up --secure`` for Alertmanager: HTTP basic auth on every page and API.

One user, ``sentio`` (the Alertmanager sink, a browser), with a password generated on the first
secure start into ``<home>/state/secure/credentials/alertmanager-sentio.password`` (0600). Its
bcrypt hash goes into ``<home>/state/conf/alertmanager-web.yml`` (Prometheus' web configuration,
``--web.config.file``), written at each secure start; ``clients/alertmanager.env`` holds
``SENTIO_SINKS__ALERTMANAGER__AUTH__BASIC_AUTH`` for the sink.
"""

from __future__ import annotations

import base64
import secrets
import shlex

import bcrypt
import yaml

from sentio_iot.stack.kafka_secure import write_private
from sentio_iot.stack.paths import StackPaths

USER = "sentio"


class SecureAlertmanagerFiles:
    def __init__(self, paths: StackPaths) -> None:
        secure = paths.state / "secure"
        self.password_path = secure / "credentials" / f"alertmanager-{USER}.password"
        self.client_env = secure / "clients" / "alertmanager.env"
        self.web_config = paths.conf / "alertmanager-web.yml"

    def password(self) -> str:
        return self.password_path.read_text(encoding="utf-8").strip()

    def ensure(self) -> None:
        """Generate the password if missing; write the web configuration and the client env."""
        for folder in (self.password_path.parent, self.client_env.parent):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
        self.password_path.parent.parent.chmod(0o700)
        if not self.password_path.is_file():
            write_private(self.password_path, secrets.token_urlsafe(24))
        hashed = bcrypt.hashpw(self.password().encode(), bcrypt.gensalt()).decode("ascii")
        text = "# Written by `sentio stack up --secure`.\n" + yaml.safe_dump(
            {"basic_auth_users": {USER: hashed}}
        )
        write_private(self.web_config, text)
        line = shlex.quote(f"{USER}:{self.password()}")
        write_private(self.client_env, f"SENTIO_SINKS__ALERTMANAGER__AUTH__BASIC_AUTH={line}\n")

    def authorization(self) -> str:
        """The ``Authorization`` header value of the stack's own probe."""
        token = base64.b64encode(f"{USER}:{self.password()}".encode()).decode("ascii")
        return f"Basic {token}"
