"""The API's authentication and authorisation, through the real app (no Kafka needed:
the views are fed by hand). Every refusal the issue lists, with its status and reason."""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from sentio_iot.api.app import create_app
from sentio_iot.api.keys import KeyRing
from sentio_iot.api.roles import Role
from sentio_iot.api.server import serving
from sentio_iot.api.services import Services
from sentio_iot.api.store import AuthStore
from sentio_iot.api.users import UserStore
from sentio_iot.config import load_config

PASSWORD = "correct horse battery"


class Client(httpx.Client):
    svc: Services


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state folder with the users and a signing key, made once: argon2 is slow on purpose,
    so each test copies it instead of hashing the same passwords again."""
    state = tmp_path_factory.mktemp("template") / "api"
    users = UserStore(AuthStore(state))
    users.add("ada", SecretStr(PASSWORD), Role.ADMIN, ("*",))
    users.add("vic", SecretStr(PASSWORD), Role.VIEWER, ("acme",))
    users.add("otto", SecretStr(PASSWORD), Role.OPERATOR, ("acme",))
    KeyRing(state).ensure()
    return state


@pytest.fixture
def api(tmp_path: Path, template: Path) -> Iterator[Client]:
    shutil.copytree(template, tmp_path / "api")
    config = load_config(data={"api": {"state_dir": str(tmp_path / "api")}})
    app = create_app(config, start_feed=False)
    svc: Services = app.state.services
    svc.views.apply("readings", reading("press-1", "acme"))
    svc.views.apply("readings", reading("press-9", "globex"))
    with serving(app) as url, Client(base_url=url, timeout=10) as client:
        client.svc = svc
        yield client


def reading(device: str, tenant: str) -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": 1_700_000_000_000_000,
        "metrics": [
            {"name": "pressure", "value": 2.5, "text": None, "unit": "bar", "quality": "GOOD"}
        ],
        "labels": {"tenant": tenant, "site": "s1", "kind": "press"},
        "source": "simulate",
        "seq": 1,
    }


def login(api: Client, user: str) -> dict[str, Any]:
    response = api.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def svc_of(api: Client) -> Services:
    return api.svc


def forged(api: Client, key: Any, *, kid: str | None = None, **claims: Any) -> str:
    """A token signed with ``key``, with valid claims unless overridden."""
    svc = svc_of(api)
    now = int(time.time())
    body = {
        "iss": "sentio-iot",
        "aud": "sentio-api",
        "sub": "ada",
        "role": "admin",
        "tenants": ["*"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "typ": "access",
    }
    body.update(claims)
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kid or svc.keys.signing.kid})


def refusal(response: Any, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert words in response.json()["error"]
    assert set(response.json()) == {"error"}  # a reason and no data


def test_login_gives_a_token_that_reads_devices(api: Client) -> None:
    tokens = login(api, "ada")
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900
    header = jwt.get_unverified_header(tokens["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"] == svc_of(api).keys.signing.kid
    me = api.get("/api/v1/auth/me", headers=bearer(tokens["access_token"])).json()
    assert me == {"name": "ada", "role": "admin", "tenants": ["*"], "kind": "user"}
    devices = api.get("/api/v1/devices", headers=bearer(tokens["access_token"])).json()
    assert [d["device_id"] for d in devices["items"]] == ["press-1", "press-9"]
    assert devices["items"][0]["last_values"]["pressure"]["value"] == 2.5


def test_jwks_publishes_the_signing_key(api: Client) -> None:
    keys = api.get("/api/v1/auth/jwks.json").json()["keys"]
    signing = svc_of(api).keys.signing
    assert [k["kid"] for k in keys] == [signing.kid]
    assert keys[0]["kty"] == "OKP" and keys[0]["crv"] == "Ed25519" and keys[0]["alg"] == "EdDSA"
    assert "d" not in keys[0]  # never the private part
    key_file = svc_of(api).keys.folder / f"{signing.kid}.pem"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_no_token(api: Client) -> None:
    refusal(api.get("/api/v1/devices"), 401, "no credentials")


def test_expired_token(api: Client) -> None:
    key = svc_of(api).keys.signing.private
    old = int(time.time()) - 3600
    token = forged(api, key, iat=old, nbf=old, exp=old + 60)
    refusal(api.get("/api/v1/devices", headers=bearer(token)), 401, "expired")


def test_not_yet_valid_token(api: Client) -> None:
    key = svc_of(api).keys.signing.private
    later = int(time.time()) + 3600
    token = forged(api, key, nbf=later, exp=later + 600)
    refusal(api.get("/api/v1/devices", headers=bearer(token)), 401, "not valid yet")


def test_wrong_signature(api: Client) -> None:
    token = forged(api, Ed25519PrivateKey.generate())  # right kid, another key
    refusal(api.get("/api/v1/devices", headers=bearer(token)), 401, "signature")


def test_alg_none(api: Client) -> None:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "iss": "sentio-iot",
        "aud": "sentio-api",
        "sub": "ada",
        "role": "admin",
        "tenants": ["*"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "typ": "access",
    }
    token = f"{part({'alg': 'none', 'typ': 'JWT', 'kid': svc_of(api).keys.signing.kid})}.{part(claims)}."
    refusal(api.get("/api/v1/devices", headers=bearer(token)), 401, "'none' refused")


def test_unknown_kid(api: Client) -> None:
    token = forged(api, svc_of(api).keys.signing.private, kid="not-a-key-of-ours")
    refusal(api.get("/api/v1/devices", headers=bearer(token)), 401, "kid")


def test_another_tenants_device(api: Client) -> None:
    token = login(api, "vic")["access_token"]
    refusal(api.get("/api/v1/devices/press-9", headers=bearer(token)), 403, "tenant")
    assert api.get("/api/v1/devices/press-1", headers=bearer(token)).json()["tenant"] == "acme"
    listed = api.get("/api/v1/devices", headers=bearer(token)).json()
    assert [d["device_id"] for d in listed["items"]] == ["press-1"] and listed["total"] == 1


def test_viewer_acknowledging(api: Client) -> None:
    token = login(api, "vic")["access_token"]
    response = api.post("/api/v1/alerts/press-1/anomaly/acknowledge", headers=bearer(token))
    refusal(response, 403, "needs role operator")


def test_viewer_managing_users(api: Client) -> None:
    token = login(api, "otto")["access_token"]
    refusal(api.get("/api/v1/users", headers=bearer(token)), 403, "needs role admin")


def test_refresh_rotates_and_a_revoked_token_is_refused(api: Client) -> None:
    first = login(api, "ada")["refresh_token"]
    second = api.post("/api/v1/auth/refresh", json={"refresh_token": first})
    assert second.status_code == 200
    new = second.json()["refresh_token"]
    assert new != first
    # the spent token replayed: refused, and the whole family is revoked with it
    refusal(api.post("/api/v1/auth/refresh", json={"refresh_token": first}), 401, "already used")
    refusal(api.post("/api/v1/auth/refresh", json={"refresh_token": new}), 401, "revoked")


def test_logout_revokes_the_refresh_token(api: Client) -> None:
    token = login(api, "ada")["refresh_token"]
    assert api.post("/api/v1/auth/logout", json={"refresh_token": token}).status_code == 204
    refusal(api.post("/api/v1/auth/refresh", json={"refresh_token": token}), 401, "revoked")


def test_deleted_api_key(api: Client) -> None:
    admin = bearer(login(api, "ada")["access_token"])
    made = api.post(
        "/api/v1/api-keys",
        headers=admin,
        json={"name": "scada", "role": "viewer", "tenants": ["acme"]},
    ).json()
    secret = made["secret"]
    me = api.get("/api/v1/auth/me", headers=bearer(secret)).json()
    assert me["kind"] == "api_key" and me["tenants"] == ["acme"]
    listed = api.get("/api/v1/api-keys", headers=admin).json()
    assert secret not in json.dumps(listed)  # only the digest is kept
    assert api.delete(f"/api/v1/api-keys/{made['key']['key_id']}", headers=admin).status_code == 204
    refusal(api.get("/api/v1/devices", headers=bearer(secret)), 401, "revoked")


def test_wrong_password_and_rate_limit(api: Client) -> None:
    for _ in range(5):
        response = api.post("/api/v1/auth/login", json={"username": "ada", "password": "nope"})
        refusal(response, 401, "wrong user name or password")
    response = api.post("/api/v1/auth/login", json={"username": "ada", "password": PASSWORD})
    refusal(response, 429, "too many login attempts")
    assert int(response.headers["Retry-After"]) >= 1


def test_removed_user_cannot_refresh(api: Client) -> None:
    tokens = login(api, "otto")
    svc_of(api).users.remove("otto")
    refusal(api.post("/api/v1/auth/refresh", json=tokens), 401, "revoked")


def test_store_files_are_private(api: Client) -> None:
    store = svc_of(api).store
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.state_dir.stat().st_mode & 0o777 == 0o700
    assert PASSWORD.encode() not in store.path.read_bytes()


def test_admins_add_and_remove_users_and_a_generated_password_is_shown_once(api: Client) -> None:
    admin = bearer(login(api, "ada")["access_token"])
    made = api.post(
        "/api/v1/users",
        headers=admin,
        json={"name": "nia", "role": "operator", "tenants": ["acme"]},
    )
    assert made.status_code == 201, made.text
    password = made.json()["password"]
    assert len(password) == 24 and made.json()["user"]["role"] == "operator"
    listed = api.get("/api/v1/users", headers=admin).json()
    assert [u["name"] for u in listed] == ["ada", "nia", "otto", "vic"]
    assert password not in json.dumps(listed) and "hash" not in json.dumps(listed)
    tokens = api.post("/api/v1/auth/login", json={"username": "nia", "password": password})
    assert tokens.status_code == 200
    taken = api.post("/api/v1/users", headers=admin, json={"name": "nia", "tenants": ["acme"]})
    assert taken.status_code == 409 and "exists" in taken.json()["error"]
    assert api.delete("/api/v1/users/nia", headers=admin).status_code == 204
    refresh = {"refresh_token": tokens.json()["refresh_token"]}
    refusal(api.post("/api/v1/auth/refresh", json=refresh), 401, "revoked")
    assert api.delete("/api/v1/users/nia", headers=admin).status_code == 404


def test_secrets_never_reach_the_logs(api: Client, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    tokens = login(api, "ada")
    api.post("/api/v1/auth/login", json={"username": "ada", "password": "a wrong one"})
    rotated = api.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    api.get("/api/v1/devices", headers=bearer(tokens["access_token"] + "x"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "login user=ada" in logged and "refused status=401" in logged
    for secret in (
        PASSWORD,
        "a wrong one",
        tokens["access_token"],
        tokens["refresh_token"],
        rotated.json()["refresh_token"],
    ):
        assert secret not in logged
