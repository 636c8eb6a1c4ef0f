"""Runs the API with uvicorn: ``serve`` until SIGINT/SIGTERM (uvicorn drains connections),
``serving`` on a thread of this process (tests, benchmarks)."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI

from sentio_iot.api.app import create_app
from sentio_iot.api.first_admin import ensure_first_admin
from sentio_iot.api.tls import server_context
from sentio_iot.config import SentioConfig
from sentio_iot.errors import SentioError

log = logging.getLogger(__name__)
START_TIMEOUT_S = 30.0
GRACEFUL_S = 5.0


def _uvicorn_config(
    app: FastAPI, host: str, port: int, context: ssl.SSLContext | None = None
) -> uvicorn.Config:
    options: dict[str, Any] = {
        "log_config": None,  # our logging, not uvicorn's
        "access_log": False,  # keep logs small; refusals are logged with their reason
        "ws": "websockets-sansio",
        "ws_max_size": 64 * 1024,
        # permessage-deflate compresses every frame again for every client (a zlib stream per
        # connection): the frames encoded once per group would each cost a deflate per client
        "ws_per_message_deflate": app.state.services.config.api.live.compression,
        "lifespan": "on",
        "server_header": False,
        # a client that stopped reading must not hold a shutdown up
        "timeout_graceful_shutdown": GRACEFUL_S,
    }
    if context is not None:  # our context: checked (ConfigError per field) before uvicorn runs
        options["ssl_context_factory"] = lambda _config, _default: context
    return uvicorn.Config(app, host=host, port=port, **options)


def serve(config: SentioConfig) -> None:
    settings = config.api
    context = server_context(settings.tls) if settings.tls.enabled else None
    admin = ensure_first_admin(settings.resolved_state_dir())
    if admin is not None and admin.password is not None:  # the password itself is never logged
        log.warning(
            "first admin created user=%s password_file=%s (read it once, then `sentio users "
            "passwd %s`)",
            admin.name,
            admin.password_file,
            admin.name,
        )
    app = create_app(config)
    url = settings.base_url()
    log.info("api listening url=%s/api/docs dashboard=%s/ tls=%s", url, url, context is not None)
    uvicorn.Server(_uvicorn_config(app, settings.host, settings.port, context)).run()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The base URL while ``app`` serves on a free port (``https://`` when its configuration
    has ``api.tls``); stopped (lifespan ended) on exit."""
    tls = app.state.services.config.api.tls
    context = server_context(tls) if tls.enabled else None
    port = free_port()
    server = uvicorn.Server(_uvicorn_config(app, "127.0.0.1", port, context))
    thread = threading.Thread(target=server.run, name="api-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise SentioError("the API did not start")
        time.sleep(0.02)
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT_S)
