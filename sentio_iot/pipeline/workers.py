"""Which workers ``sentio run`` starts, with their command lines and ports.

The stream worker and the sinks are separate ``sentio`` commands; one that this install
does not have yet is reported as unavailable instead of failing the run.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import click

from sentio_iot.config import SentioConfig
from sentio_iot.pipeline.processes import ChildSpec
from sentio_iot.pipeline.secure_roles import SecureRoles, role_of

SINKS = ("victoriametrics", "loki", "tempo", "alertmanager")
# Ports fixed by the worker contract, used when the configuration has no field for them.
STREAM_WEB_PORT = 6066
SINK_PORTS = {
    "victoriametrics": 9471,
    "loki": 9472,
    "tempo": 9473,
    "homeassistant": 9474,
    "alertmanager": 9475,
    "webhook": 9476,
}
# Backends a run may lack: their sink is left out, with why, when nothing answers.
OPTIONAL_BACKENDS = {
    "tempo": "the local stack has none; spans stay in the otlp-spans topic; "
    "set sinks.tempo.url to a Tempo or Collector",
    "alertmanager": "alerts stay in the alerts topic; start it with `sentio stack up` "
    "or set sinks.alertmanager.url",
}


def sentio_argv() -> tuple[str, ...]:
    """How to run this install's ``sentio``: the script beside the interpreter if there is one."""
    script = Path(sys.executable).parent / "sentio"
    if script.is_file():
        return (str(script),)
    found = shutil.which("sentio")
    if found:
        return (found,)
    return (sys.executable, "-c", "from sentio_iot.cli.main import main; main()")


def missing_command(words: tuple[str, ...]) -> str | None:
    """None if ``sentio <words...>`` exists in this install, else why not (one line)."""
    from sentio_iot.cli.main import cli

    command: click.Command = cli
    for depth, word in enumerate(words):
        if not isinstance(command, click.Group):
            # A command that takes the rest as an argument (`sentio sink BACKEND`): the
            # backend exists when its plugin module does.
            module = f"sentio_iot.sinks.{word}"
            if words[0] == "sink" and importlib.util.find_spec(module) is None:
                return f"`sentio {' '.join(words)}` not available (no {module})"
            return None
        sub = command.commands.get(word)
        if sub is None:
            return f"`sentio {' '.join(words[: depth + 1])}` not available in this install"
        command = sub
    return None


def unreachable_backend(config: SentioConfig, backend: str) -> str | None:
    """Why a sink's backend cannot be reached now, or None. Only Tempo (the local stack has
    none) and Alertmanager are asked: their sink is left out with a line instead of failing
    the run."""
    if backend not in OPTIONAL_BACKENDS:
        return None
    url = getattr(getattr(config.sinks, backend, None), "url", None)
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=1.0):
            return None
    except OSError:
        name = "Tempo" if backend == "tempo" else "Alertmanager"
        return f"no {name} answers at {url} ({OPTIONAL_BACKENDS[backend]})"


def busy_port(host: str, port: int) -> str | None:
    """Why a worker cannot listen on ``host:port`` now (something else does), or None."""
    probe = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    try:
        with socket.create_connection((probe, port), timeout=0.5):
            return f"port {port} is in use (another `sentio api`?); set api.port"
    except OSError:
        return None


def stream_port(config: SentioConfig, index: int) -> int:
    base = getattr(config.streams, "web_port", STREAM_WEB_PORT)
    return int(base) + index


def _web_port_env(config: SentioConfig, port: int) -> tuple[tuple[str, str], ...]:
    # The environment wins over the file: each worker gets its own web port.
    if "web_port" not in type(config.streams).model_fields:
        return ()
    return (("SENTIO_STREAMS__WEB_PORT", str(port)),)


def sink_port(config: SentioConfig, backend: str) -> int:
    section = getattr(config.sinks, backend, None)
    return int(getattr(section, "health_port", SINK_PORTS[backend]))


def pipeline_children(
    config: SentioConfig,
    config_file: Path,
    *,
    stream_workers: int = 1,
    roles: SecureRoles | None = None,
) -> list[ChildSpec]:
    """The producer (first: it is stopped first), the stream workers, the sinks, the API;
    with ``roles`` (the secure stack), each with its role's Kafka settings in its environment."""
    sentio = sentio_argv()
    with_config = ("-c", str(config_file))
    specs = [
        ChildSpec(
            "producer",
            (*sentio, "produce", "simulate", *with_config, "--progress-every", "10"),
            port=config.producer.health_port or None,
        )
    ]
    for index in range(stream_workers):
        words = ("stream", "worker")
        port = stream_port(config, index)
        specs.append(
            ChildSpec(
                f"streams-{index + 1}",
                (*sentio, *words, *with_config),
                port=port,
                unavailable=missing_command(words),
                env=_web_port_env(config, port),
            )
        )
    for backend in SINKS:
        words = ("sink", backend)
        specs.append(
            ChildSpec(
                f"sink-{backend}",
                (*sentio, *words, *with_config),
                port=sink_port(config, backend),
                unavailable=missing_command(words) or unreachable_backend(config, backend),
            )
        )
    specs.append(
        ChildSpec(
            "api",
            (*sentio, "api", *with_config),
            port=config.api.port,
            unavailable=missing_command(("api",)) or busy_port(config.api.host, config.api.port),
            tls_cert=str(config.api.tls.cert_file) if config.api.tls.cert_file else None,
        )
    )
    if roles is None:
        return specs
    return [
        replace(spec, env=(*spec.env, *roles.env(role_of(spec.name), config.kafka)))
        for spec in specs
    ]
