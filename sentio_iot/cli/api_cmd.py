"""``sentio api``: the REST and WebSocket API (127.0.0.1:8000 by default)."""

from __future__ import annotations

from pathlib import Path

import click

from sentio_iot.cli.options import config_option, load


@click.command("api")
@config_option
@click.option("--reference", is_flag=True, help="Print the API reference (docs/api.md) and exit.")
def api(config_path: Path | None, reference: bool) -> None:
    """Serve the live API: REST under /api/v1, WebSocket /api/v1/live, /api/openapi.json."""
    from sentio_iot.api.server import serve

    if reference:
        from sentio_iot.api.reference import render_reference

        click.echo(render_reference(), nl=False)
        return

    serve(load(config_path))
