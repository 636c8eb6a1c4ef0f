"""The first admin's password file never shows a password that no longer works:
`sentio users passwd admin` and removing the admin delete it, a later start does not
mention it, and another user's new password leaves it alone."""

from __future__ import annotations

import stat
from pathlib import Path

import yaml
from click.testing import CliRunner
from pydantic import SecretStr

from sentio_iot.api.first_admin import ensure_first_admin, notice
from sentio_iot.api.roles import Role
from sentio_iot.api.store import AuthStore
from sentio_iot.api.users import UserStore
from sentio_iot.cli.main import cli

NEW = "a brand new admin password"


def test_passwd_admin_deletes_the_stale_first_password_file(tmp_path: Path) -> None:
    state = tmp_path / "api"
    config_file = tmp_path / "sentio.yaml"
    config_file.write_text(yaml.safe_dump({"api": {"state_dir": str(state)}}))
    admin = ensure_first_admin(state)
    assert admin is not None and admin.password is not None
    first = admin.password.get_secret_value()
    assert admin.password_file.read_text() == first + "\n"
    assert stat.S_IMODE(admin.password_file.stat().st_mode) == 0o600
    users = UserStore(AuthStore(state))
    assert users.verify("admin", SecretStr(first)) is not None
    users.add("otto", SecretStr("otto's long password"), Role.OPERATOR, ("acme",))

    runner = CliRunner()
    other = runner.invoke(
        cli, ["users", "passwd", "otto", "--password-stdin", "-c", str(config_file)], input=NEW
    )
    assert other.exit_code == 0, other.output
    assert admin.password_file.read_text() == first + "\n"  # still the admin's password
    again = ensure_first_admin(state)
    assert again is not None and again.password is None
    assert notice("http://127.0.0.1:8000", again)[-1] == (
        f"API first admin: user admin, password in {admin.password_file}"
    )

    done = runner.invoke(
        cli, ["users", "passwd", "admin", "--password-stdin", "-c", str(config_file)], input=NEW
    )
    assert done.exit_code == 0, done.output
    assert done.output.splitlines() == [
        "password of admin changed; their refresh tokens are revoked",
        f"{admin.password_file} deleted: it held the first password, which no longer works",
    ]
    assert not admin.password_file.exists()
    assert users.verify("admin", SecretStr(first)) is None
    assert users.verify("admin", SecretStr(NEW)) is not None
    # the next `sentio run` neither shows nor points to a password
    assert ensure_first_admin(state) is None
    lines = notice("http://127.0.0.1:8000", None)
    assert not any("first admin" in line for line in lines)
    assert not any(first in line or NEW in line for line in lines)


def test_removing_the_admin_deletes_the_file_too(tmp_path: Path) -> None:
    state = tmp_path / "api"
    admin = ensure_first_admin(state)
    assert admin is not None
    users = UserStore(AuthStore(state))
    users.add("ada", SecretStr("ada's long password"), Role.ADMIN, ("*",))
    users.add("bob", SecretStr("bob's long password"), Role.VIEWER, ("acme",))
    assert users.remove("bob") is None
    assert admin.password_file.exists()
    assert users.remove("admin") == admin.password_file
    assert not admin.password_file.exists()
    assert ensure_first_admin(state) is None  # users remain: no new admin, no file
