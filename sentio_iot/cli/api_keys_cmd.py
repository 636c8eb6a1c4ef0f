"""``sentio api-keys``: API keys for machines (create, list, revoke).

A key's secret is shown once, when it is created; the store keeps only its SHA-256 digest
(``sentio_iot/api/api_keys.py``), so a lost key is revoked and a new one created.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sentio_iot.cli.options import access_options, config_option, load, when

if TYPE_CHECKING:
    from sentio_iot.api.api_keys import ApiKeys


def _keys(config_path: Path | None) -> ApiKeys:
    from sentio_iot.api.api_keys import ApiKeys
    from sentio_iot.api.store import AuthStore

    return ApiKeys(AuthStore(load(config_path).api.resolved_state_dir()))


@click.group("api-keys")
def api_keys_group() -> None:
    """API keys for machines: create (the secret is shown once), list, revoke."""


@api_keys_group.command("create")
@config_option
@click.argument("name")
@access_options("key")
def create(config_path: Path | None, name: str, role: str, tenants: str | None) -> None:
    """Create an API key called NAME and show its secret once."""
    from sentio_iot.api.roles import Role, parse_tenants

    config = load(config_path)
    if not name.strip() or len(name) > 100:
        raise click.BadParameter("give the key a name of 1-100 characters", param_hint="NAME")
    try:
        scope = parse_tenants(tenants if tenants is not None else config.tenant)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tenants") from None
    key, secret = _keys(config_path).create(name, Role(role), scope, f"cli:{getpass.getuser()}")
    click.echo(
        f"API key {key.key_id} ({key.name}) created: role {key.role.value}, "
        f"tenants {','.join(key.tenants)}"
    )
    click.echo(f"key (shown once, send it as 'Authorization: Bearer'): {secret.get_secret_value()}")


@api_keys_group.command("list")
@config_option
@click.option("--all", "show_all", is_flag=True, help="Revoked keys too.")
def list_keys(config_path: Path | None, show_all: bool) -> None:
    """API keys (never their secrets): id, name, role, tenants, who created them and when."""
    keys = [k for k in _keys(config_path).list() if show_all or k.revoked_ts is None]
    rows = [("ID", "NAME", "ROLE", "TENANTS", "CREATED", "CREATED BY", "REVOKED")]
    for k in keys:
        rows.append(
            (
                k.key_id,
                k.name,
                k.role.value,
                ",".join(k.tenants),
                when(k.created_ts),
                k.created_by,
                when(k.revoked_ts),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{len(keys)} key(s)")


@api_keys_group.command("revoke")
@config_option
@click.argument("key_id")
def revoke(config_path: Path | None, key_id: str) -> None:
    """Revoke API key KEY_ID (from `sentio api-keys list`): it is refused from now on."""
    _keys(config_path).revoke(key_id)
    click.echo(f"API key {key_id} revoked")
