"""``sentio stack up --secure`` for VictoriaMetrics and VictoriaLogs: HTTP basic auth.

Both binaries ask for basic auth on every path (writes, queries, ``/metrics``, ``/flags``,
``/internal/force_flush``) once ``-httpAuth.username`` is set. One user, ``sentio``, per
service, with a password generated on the first secure start into
``<home>/state/secure/credentials/<service>-sentio.password`` (0600).

The password reaches the binary through its environment, never its command line (which any
local user reads in ``ps``): ``-envflag.enable -envflag.prefix=<PREFIX>`` makes it read
``<PREFIX>httpAuth_password``. Debian's victoria-metrics 1.79.5, which the stack uses when no
newer one is built, has no ``file://`` flag values, but every version has the environment.
``/proc/<pid>/environ`` is readable by the owner only.

``clients/<service>.env`` (0600) holds the settings of everything that talks to it: the sink
(``SENTIO_SINKS__VICTORIAMETRICS__AUTH__BASIC_AUTH`` / ``SENTIO_SINKS__LOKI__AUTH__BASIC_AUTH``)
and the API's history reads (``SENTIO_API__HISTORY__AUTH__BASIC_AUTH`` /
``SENTIO_API__HISTORY__LOGS_AUTH__BASIC_AUTH``); ``sentio run`` hands them to its children.
"""

from __future__ import annotations

import base64
import secrets
import shlex
from pathlib import Path
from typing import ClassVar

from sentio_iot.errors import StackError
from sentio_iot.stack.kafka_secure import write_private
from sentio_iot.stack.paths import StackPaths
from sentio_iot.stack.probes import Health, http_ok
from sentio_iot.stack.service import Progress

USER = "sentio"
# The environment variable prefix the binaries read flags from (``-envflag.prefix``).
ENV_PREFIX = "SENTIO_STACK_HTTPAUTH_"
PASSWORD_ENV = f"{ENV_PREFIX}httpAuth_password"
# The settings, per service, that carry its credentials to its clients.
CLIENT_SETTINGS: dict[str, tuple[str, ...]] = {
    "victoriametrics": (
        "SENTIO_SINKS__VICTORIAMETRICS__AUTH__BASIC_AUTH",
        "SENTIO_API__HISTORY__AUTH__BASIC_AUTH",
    ),
    "victorialogs": (
        "SENTIO_SINKS__LOKI__AUTH__BASIC_AUTH",
        "SENTIO_API__HISTORY__LOGS_AUTH__BASIC_AUTH",
    ),
}


class SecureVictoriaFiles:
    """The password, marker and client settings of one secured Victoria service."""

    def __init__(self, paths: StackPaths, service: str) -> None:
        secure = paths.state / "secure"
        self.service = service
        self.password_path = secure / "credentials" / f"{service}-{USER}.password"
        self.client_env = secure / "clients" / f"{service}.env"
        # Present while the running process was started with --secure.
        self.marker = paths.conf / f"{service}-secure"

    def password(self) -> str:
        return self.password_path.read_text(encoding="utf-8").strip()

    def ensure(self) -> None:
        """Generate the password if missing; write the client settings and the marker."""
        for folder in (self.password_path.parent, self.client_env.parent):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
        self.password_path.parent.parent.chmod(0o700)
        if not self.password_path.is_file():
            write_private(self.password_path, secrets.token_urlsafe(24))
        value = shlex.quote(f"{USER}:{self.password()}")
        lines = [f"{name}={value}\n" for name in CLIENT_SETTINGS[self.service]]
        write_private(self.client_env, "".join(lines))
        self.marker.parent.mkdir(parents=True, exist_ok=True)
        self.marker.touch()

    def flags(self) -> list[str]:
        """The command-line flags: the user name and where to read the password from."""
        return ["-envflag.enable", f"-envflag.prefix={ENV_PREFIX}", f"-httpAuth.username={USER}"]

    def environment(self) -> dict[str, str]:
        return {PASSWORD_ENV: self.password()}

    def authorization(self) -> str:
        """The ``Authorization`` header value of the stack's own probe."""
        token = base64.b64encode(f"{USER}:{self.password()}".encode()).decode("ascii")
        return f"Basic {token}"


def client_settings(paths: StackPaths) -> tuple[tuple[str, str], ...]:
    """The ``SENTIO_*`` pairs of the client files of the Victoria services that last started
    with --secure (none for the others)."""
    pairs: list[tuple[str, str]] = []
    for service in CLIENT_SETTINGS:
        files = SecureVictoriaFiles(paths, service)
        if files.marker.is_file() and files.client_env.is_file():
            pairs += env_pairs(files.client_env)
    return tuple(pairs)


def env_pairs(path: Path) -> list[tuple[str, str]]:
    """The ``SENTIO_*`` variables of a client env file the secure stack wrote (shell-quoted)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith("SENTIO_"):
            pairs.append((name, shlex.split(value)[0]))
    return pairs


class BasicAuthSecured:
    """The secure half of a Victoria service: environment, health probe, start check.

    Mixed into a :class:`~sentio_iot.stack.service.Service` that sets ``secure`` and
    ``secure_files`` and names its HTTP port and a path that needs the password.
    """

    name: ClassVar[str]
    secure: bool
    secure_files: SecureVictoriaFiles
    # /health answers anyone on some versions: the probe asks for a path that needs the password.
    auth_probe_path: ClassVar[str]

    def http_port(self) -> int:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return self.secure_files.environment() if self.secure else {}

    def check(self) -> Health:
        if not self._running_secure():
            return http_ok(self.http_port(), "/health")
        headers = {"Authorization": self.secure_files.authorization()}
        health = http_ok(self.http_port(), self.auth_probe_path, headers=headers)
        return Health(health.healthy, f"basic auth; {health.detail}")

    def after_start(self, progress: Progress) -> None:
        if self.secure and not self._running_secure():
            raise StackError(
                f"{self.name} is running without --secure",
                fix="stop it with `sentio stack down`, then run `sentio stack up --secure`",
            )
        if self.secure:
            progress(
                f"{self.name}: basic auth, user sentio; its clients' settings in "
                f"{self.secure_files.client_env} (mode 0600)"
            )

    def _running_secure(self) -> bool:
        """The marker exists only while the last start was a secure one."""
        return self.secure_files.marker.is_file()
