"""``sentio users``: the API's users (add, list, remove, passwd) and its signing keys.

Passwords are read from a hidden prompt or ``--password-stdin``, or generated and shown
once; they never appear in a command line, a log or the store (only argon2id hashes).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from pydantic import SecretStr

from sentio_iot.cli.options import access_options, config_option, load, when

if TYPE_CHECKING:
    from sentio_iot.api.users import UserStore


def _users(config_path: Path | None) -> UserStore:
    from sentio_iot.api.store import AuthStore
    from sentio_iot.api.users import UserStore

    return UserStore(AuthStore(load(config_path).api.resolved_state_dir()))


def _password(from_stdin: bool, generate: bool) -> tuple[SecretStr, bool]:
    """(password, generated)."""
    from sentio_iot.api.users import new_password

    if from_stdin:
        return SecretStr(sys.stdin.readline().rstrip("\r\n")), False
    if generate or not sys.stdin.isatty():
        return new_password(), True
    return SecretStr(click.prompt("Password", hide_input=True, confirmation_prompt=True)), False


password_options = [
    click.option("--password-stdin", is_flag=True, help="Read the password from stdin (one line)."),
    click.option("--generate", is_flag=True, help="Generate a random password and show it once."),
]


@click.group("users")
def users_group() -> None:
    """Users of the API: add, list, remove, passwd; rotate the token signing key."""


@users_group.command("add")
@config_option
@click.argument("name")
@access_options("user")
@password_options[0]
@password_options[1]
def add(
    config_path: Path | None,
    name: str,
    role: str,
    tenants: str | None,
    password_stdin: bool,
    generate: bool,
) -> None:
    """Add user NAME."""
    from sentio_iot.api.roles import Role, parse_tenants

    config = load(config_path)
    try:
        scope = parse_tenants(tenants if tenants is not None else config.tenant)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tenants") from None
    users = _users(config_path)
    password, generated = _password(password_stdin, generate)
    user = users.add(name, password, Role(role), scope)
    click.echo(f"user {user.name} added: role {user.role.value}, tenants {','.join(user.tenants)}")
    if generated:
        click.echo(f"password (shown once): {password.get_secret_value()}")


@users_group.command("list")
@config_option
def list_users(config_path: Path | None) -> None:
    """Every user: name, role, tenants, when added."""
    users = _users(config_path)
    rows = [("NAME", "ROLE", "TENANTS", "CREATED")]
    for user in users.list():
        created = when(user.created_ts)
        rows.append((user.name, user.role.value, ",".join(user.tenants), created))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    click.echo(f"{len(rows) - 1} user(s)")


@users_group.command("remove")
@config_option
@click.argument("name")
def remove(config_path: Path | None, name: str) -> None:
    """Remove user NAME and revoke their refresh tokens."""
    users = _users(config_path)
    stale = users.remove(name)
    click.echo(f"user {name} removed")
    if stale is not None:
        click.echo(f"{stale} deleted (it held their first password)")


@users_group.command("passwd")
@config_option
@click.argument("name")
@password_options[0]
@password_options[1]
def passwd(config_path: Path | None, name: str, password_stdin: bool, generate: bool) -> None:
    """Set a new password for NAME (their sessions must log in again)."""
    users = _users(config_path)
    password, generated = _password(password_stdin, generate)
    stale = users.set_password(name, password)
    click.echo(f"password of {name} changed; their refresh tokens are revoked")
    if stale is not None:
        click.echo(f"{stale} deleted: it held the first password, which no longer works")
    if generated:
        click.echo(f"password (shown once): {password.get_secret_value()}")


@users_group.command("rotate-key")
@config_option
def rotate_key(config_path: Path | None) -> None:
    """Add a new token signing key; it signs from now on, the old ones still verify."""
    from sentio_iot.api.keys import KeyRing

    ring = KeyRing(load(config_path).api.resolved_state_dir())
    key = ring.add()
    others = sorted(k for k in ring.keys if k != key.kid)
    click.echo(f"signing key {key.kid} added; still verifying: {', '.join(others) or 'none'}")
    click.echo(f"remove an old key's file from {ring.folder} once its tokens have expired")
