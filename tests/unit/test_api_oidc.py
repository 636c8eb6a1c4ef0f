"""Tokens of an external OpenID Connect issuer, verified by the keys its JWKS URL serves (a
real HTTP server on a thread stands in for the issuer: Keycloak and the like cannot run here;
the JWKS document is the RFC 7517 wire format PyJWT's client reads)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sentio_iot.api.app import create_app
from sentio_iot.api.server import serving
from sentio_iot.config import load_config

ISSUER = "https://login.example.test/realms/plant"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_url() -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "issuer-key-1", "use": "sig", "alg": "RS256"}]})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def api(tmp_path: Path, jwks_url: str) -> Iterator[httpx.Client]:
    oidc = {"issuer": ISSUER, "jwks_url": jwks_url, "audience": "sentio"}
    config = load_config(data={"api": {"state_dir": str(tmp_path / "api"), "oidc": oidc}})
    with serving(create_app(config, start_feed=False)) as url, httpx.Client(base_url=url) as client:
        yield client


def issued(key: Any = KEY, kid: str = "issuer-key-1", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": "sentio",
        "sub": "f3a1",
        "preferred_username": "olga",
        "iat": now,
        "exp": now + 300,
        "sentio_role": "operator",
        "sentio_tenants": ["acme"],
    }
    body.update(claims)
    return jwt.encode(body, key, algorithm="RS256", headers={"kid": kid})


def me(api: httpx.Client, token: str) -> httpx.Response:
    return api.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})


def test_a_token_of_the_issuer_is_accepted_with_its_role_and_tenants(api: httpx.Client) -> None:
    response = me(api, issued())
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "olga",
        "role": "operator",
        "tenants": ["acme"],
        "kind": "user",
    }
    comma = me(api, issued(sentio_tenants="acme, globex", sentio_role="viewer")).json()
    assert (comma["role"], comma["tenants"]) == ("viewer", ["acme", "globex"])


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: issued(key=OTHER), "signature does not verify"),
        (lambda: issued(kid="rotated-away"), "kid names no key of its issuer"),
        (lambda: issued(aud="someone-else"), "for another audience"),
        (lambda: issued(exp=int(time.time()) - 60), "expired"),
        (lambda: issued(sentio_role="root"), "sentio_role claim is missing or not a role"),
        (lambda: issued(sentio_tenants=[]), "names no tenant"),
        (lambda: issued(iss="https://elsewhere.test"), "only EdDSA"),  # not our issuer
    ],
)
def test_refusals(api: httpx.Client, token: Any, reason: str) -> None:
    response = me(api, token())
    assert response.status_code == 401, response.text
    assert reason in response.json()["error"]
