"""`sentio api-keys create|list|revoke`: the secret is shown once and stored only as a
digest; a created key is accepted by the API over HTTP, a revoked one refused with reason."""

from __future__ import annotations

import hashlib
import re
import sqlite3
from pathlib import Path

import httpx
import yaml
from click.testing import CliRunner

from sentio_iot.api.app import create_app
from sentio_iot.api.server import serving
from sentio_iot.cli.main import cli
from sentio_iot.config import load_config

KEY = re.compile(r"key \(shown once, send it as 'Authorization: Bearer'\): (sk_(\w{16})_(\S+))$")


def test_a_key_is_created_shown_once_listed_and_revoked(tmp_path: Path) -> None:
    config_file = tmp_path / "sentio.yaml"
    config_file.write_text(yaml.safe_dump({"api": {"state_dir": str(tmp_path / "api")}}))
    runner = CliRunner()

    def sentio(*args: str) -> tuple[int, str]:
        done = runner.invoke(cli, [*args, "-c", str(config_file)])
        return done.exit_code, done.output

    code, out = sentio(
        "api-keys", "create", "line-3 gateway", "--role", "operator", "--tenants", "acme,globex"
    )
    assert code == 0, out
    lines = out.splitlines()
    match = KEY.search(lines[1])
    assert match is not None, out
    token, key_id, secret = match.groups()
    assert lines[0] == (
        f"API key {key_id} (line-3 gateway) created: role operator, tenants acme,globex"
    )
    assert len(secret) >= 43  # 256 random bits, URL-safe base64

    db = sqlite3.connect(tmp_path / "api" / "auth.sqlite")
    stored = db.execute("SELECT * FROM api_keys").fetchall()
    db.close()
    assert len(stored) == 1
    assert hashlib.sha256(secret.encode()).hexdigest() in stored[0]  # only the digest
    assert not any(secret in str(column) for column in stored[0])

    code, out = sentio("api-keys", "list")
    assert code == 0 and secret not in out
    header, row, total = out.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "ROLE", "TENANTS"]
    assert row.startswith(f"{key_id}  line-3 gateway  operator  acme,globex  ")
    assert "cli:" in row and total == "1 key(s)"

    app = create_app(load_config(config_file), start_feed=False)
    with serving(app) as url:
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/api/v1/devices", headers=auth).status_code == 200
        code, out = sentio("api-keys", "revoke", key_id)
        assert (code, out) == (0, f"API key {key_id} revoked\n")
        refused = httpx.get(f"{url}/api/v1/devices", headers=auth)
        assert refused.status_code == 401
        assert "the API key was revoked" in refused.text

    code, out = sentio("api-keys", "list")
    assert out.splitlines()[-1] == "0 key(s)"
    code, out = sentio("api-keys", "list", "--all")
    assert out.splitlines()[-1] == "1 key(s)" and key_id in out
    code, out = sentio("api-keys", "revoke", key_id)
    assert (code, out.strip()) == (1, f"error: no active API key '{key_id}'")


def test_bad_tenants_and_names_are_refused_naming_the_option(tmp_path: Path) -> None:
    config_file = tmp_path / "sentio.yaml"
    config_file.write_text(yaml.safe_dump({"api": {"state_dir": str(tmp_path / "api")}}))
    runner = CliRunner()
    done = runner.invoke(
        cli, ["api-keys", "create", "k", "--tenants", " , ", "-c", str(config_file)]
    )
    assert done.exit_code == 2
    assert "--tenants" in done.output and "at least one tenant" in done.output
    done = runner.invoke(cli, ["api-keys", "create", " ", "-c", str(config_file)])
    assert done.exit_code == 2 and "NAME" in done.output
