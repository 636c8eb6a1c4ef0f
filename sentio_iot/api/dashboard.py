"""Serves the web dashboard's built files (``web/dist``, made by ``scripts/bootstrap``) at
``/``: ``index.html`` at ``/`` and the hashed bundles under ``/assets``. The dashboard
routes by URL fragment (``/#/fleet``), so no other path is needed and every ``/api`` path
keeps the API's JSON answers. Without a build, ``/`` answers 503 with how to build it."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

log = logging.getLogger(__name__)
ENV_DIR = "SENTIO_DASHBOARD_DIR"
MISSING = (
    "dashboard not built: run scripts/bootstrap (or `npm ci && npm run build` in web/), "
    "or set SENTIO_DASHBOARD_DIR to a built web/dist"
)


def dashboard_dir() -> Path:
    """``$SENTIO_DASHBOARD_DIR``, else ``web/dist`` of the source tree this package is in."""
    configured = os.environ.get(ENV_DIR)
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "web" / "dist"


def mount_dashboard(app: FastAPI, directory: Path | None = None) -> bool:
    """Add the dashboard's routes to ``app``; False (and ``/`` answers 503) without a build."""
    root = directory or dashboard_dir()
    index = root / "index.html"
    if not index.is_file():
        log.warning("%s (looked in %s)", MISSING, root)

        @app.get("/", include_in_schema=False)
        async def not_built() -> Response:
            return PlainTextResponse(MISSING + "\n", status_code=503)

        return False

    @app.get("/", include_in_schema=False)
    async def dashboard() -> Response:
        # index.html names the hashed bundles: never cache it, so a rebuild shows at once
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    if (root / "assets").is_dir():
        app.mount("/assets", StaticFiles(directory=root / "assets"), name="dashboard-assets")
    log.info("dashboard served from %s", root)
    return True
