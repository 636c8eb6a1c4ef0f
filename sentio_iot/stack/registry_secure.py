"""``sentio stack up --secure`` for the schema registry: Apicurio asks Keycloak who is calling.

Apicurio Registry 3.0 authenticates with OpenID Connect only. With
``apicurio.authn.basic-client-credentials.enabled`` it also takes HTTP basic auth, whose user
and password are an OIDC client's id and secret: Apicurio exchanges them at Keycloak's token
endpoint (client-credentials grant) and authorizes by the realm roles in the token
(``apicurio.auth.role-based-authorization``, roles from the token). Anonymous calls are
refused, reads too (``apicurio.auth.anonymous-read-access.enabled`` stays false).

One confidential client per worker role in the realm ``sentio`` (keycloak.py imports it):

| Role | Client | Realm role | May |
|---|---|---|---|
| admin (``sentio run``, topics, operators) | ``sentio-admin`` | ``sr-admin`` | everything, global rules and the admin API |
| producer, streams, api | ``sentio-<role>`` | ``sr-developer`` | register schemas, set a subject's compatibility, read; also delete |
| sink | ``sentio-sink`` | ``sr-readonly`` | read |

The API registers the ``alert-commands`` schema before it writes an operator's
acknowledgement, so it needs ``sr-developer``. Secrets (and the Keycloak admin's password) are
generated on the first secure start into ``<home>/state/secure/credentials/`` (0600) and kept;
``clients/registry-<role>.env`` (0600) holds ``SENTIO_SCHEMA_REGISTRY__BASIC_AUTH`` for a
worker of that role, which ``sentio run`` hands to its children (pipeline/secure_roles.py).

Docker Compose locks its registry the same way: compose_secrets.py keeps the same secrets
(:class:`RegistrySecrets`) in its volume and writes this realm for its ``keycloak`` service;
docker-compose.yml gives the registry :func:`oidc_properties` as environment variables.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shlex
from pathlib import Path
from typing import Any

from sentio_iot.stack.kafka_secure import write_private
from sentio_iot.stack.paths import StackPaths

REALM = "sentio"
ADMIN_USER = "admin"  # Keycloak's own administrator (master realm)
# The registry role each worker role's client holds (Apicurio's defaults: sr-admin,
# sr-developer, sr-readonly).
ROLE_GRANTS: dict[str, str] = {
    "admin": "sr-admin",
    "producer": "sr-developer",
    "streams": "sr-developer",
    "sink": "sr-readonly",
    "api": "sr-developer",
}
SETTING = "SENTIO_SCHEMA_REGISTRY__BASIC_AUTH"
# Longer than Apicurio's cache of exchanged tokens (apicurio.authn.basic-client-credentials.
# cache-expiration, 5 minutes), so a cached token never outlives itself.
TOKEN_LIFESPAN_S = 600


def client_id(role: str) -> str:
    return f"sentio-{role}"


class RegistrySecrets:
    """The client secrets and the Keycloak admin's password, kept in one private folder:
    the local stack's ``credentials/`` (:class:`SecureRegistryFiles`) or the Compose secrets
    volume's ``passwords/`` (compose_secrets.py); and the realm Keycloak imports."""

    def __init__(self, credentials: Path) -> None:
        self.credentials = credentials
        self.admin_password_path = credentials / "keycloak-admin.password"

    def secret_path(self, role: str) -> Path:
        return self.credentials / f"registry-{role}.secret"

    def secret(self, role: str) -> str:
        return self.secret_path(role).read_text(encoding="utf-8").strip()

    def admin_password(self) -> str:
        return self.admin_password_path.read_text(encoding="utf-8").strip()

    def basic_auth(self, role: str) -> str:
        """``client-id:secret``, the value of ``schema_registry.basic_auth`` for the role."""
        return f"{client_id(role)}:{self.secret(role)}"

    def authorization(self, role: str = "admin") -> str:
        """The ``Authorization`` header value of the role (the stack's probe uses admin)."""
        token = base64.b64encode(self.basic_auth(role).encode()).decode("ascii")
        return f"Basic {token}"

    def ensure(self) -> None:
        """Generate the secrets that are missing (kept on later starts)."""
        self.credentials.mkdir(parents=True, exist_ok=True)
        self.credentials.chmod(0o700)
        for path in (self.admin_password_path, *map(self.secret_path, ROLE_GRANTS)):
            if not path.is_file():
                write_private(path, secrets.token_urlsafe(24))

    def complete(self) -> bool:
        return all(self.secret_path(role).is_file() for role in ROLE_GRANTS)

    def realm(self) -> dict[str, Any]:
        """The realm Keycloak imports: the three registry roles, one client per worker role
        (client-credentials grant only) whose service account holds the role's grant."""
        clients = [
            {
                "clientId": client_id(role),
                "enabled": True,
                "protocol": "openid-connect",
                "publicClient": False,
                "clientAuthenticatorType": "client-secret",
                "secret": self.secret(role),
                "serviceAccountsEnabled": True,
                "standardFlowEnabled": False,
                "implicitFlowEnabled": False,
                "directAccessGrantsEnabled": False,
            }
            for role in ROLE_GRANTS
        ]
        users = [
            {
                "username": f"service-account-{client_id(role)}",
                "enabled": True,
                "serviceAccountClientId": client_id(role),
                "realmRoles": [grant],
            }
            for role, grant in ROLE_GRANTS.items()
        ]
        return {
            "realm": REALM,
            "enabled": True,
            # No TLS from loopback (local stack) and private addresses (Compose's network).
            "sslRequired": "external",
            "accessTokenLifespan": TOKEN_LIFESPAN_S,
            "registrationAllowed": False,
            "roles": {"realm": [{"name": grant} for grant in sorted(set(ROLE_GRANTS.values()))]},
            "clients": clients,
            "users": users,
        }

    def realm_json(self) -> str:
        return json.dumps(self.realm(), indent=1, sort_keys=True) + "\n"


class SecureRegistryFiles(RegistrySecrets):
    """The local stack's secrets, the client settings and the marker of a secure start."""

    def __init__(self, paths: StackPaths) -> None:
        secure = paths.state / "secure"
        super().__init__(secure / "credentials")
        self.clients = secure / "clients"
        # Present while the running registry was started with --secure.
        self.marker = paths.conf / "registry-secure"

    def client_env(self, role: str) -> Path:
        return self.clients / f"registry-{role}.env"

    def ensure(self) -> None:
        """Generate what is missing (kept on later starts); write the client settings."""
        super().ensure()
        self.clients.mkdir(parents=True, exist_ok=True)
        self.clients.chmod(0o700)
        self.credentials.parent.chmod(0o700)
        for role in ROLE_GRANTS:
            line = f"{SETTING}={shlex.quote(self.basic_auth(role))}\n"
            write_private(self.client_env(role), line)


def oidc_properties(realm_url: str) -> dict[str, str]:
    """Apicurio's settings for OIDC through the realm at ``realm_url``: OIDC on, basic auth
    as client credentials, roles from the token, nothing anonymous. No secret among them:
    Apicurio checks tokens with Keycloak's public keys. The local stack passes them as
    ``-D`` flags (registry.py), Compose as environment variables (:func:`property_env`)."""
    return {
        "quarkus.oidc.tenant-enabled": "true",  # what Apicurio 3.0 calls apicurio.authn.enabled
        "quarkus.oidc.auth-server-url": realm_url,
        # Where basic credentials are exchanged for a token (default: Apicurio's own server).
        "quarkus.oidc.token-path": f"{realm_url}/protocol/openid-connect/token",
        "apicurio.authn.basic-client-credentials.enabled": "true",
        "apicurio.auth.role-based-authorization": "true",
        "apicurio.auth.role-source": "token",
        "apicurio.auth.anonymous-read-access.enabled": "false",
        "apicurio.auth.authenticated-read-access.enabled": "false",
    }


def property_env(name: str) -> str:
    """The environment variable Quarkus reads for a property (MicroProfile Config's rule:
    every character but letters and digits becomes ``_``, then upper case)."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def realm_digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def role_settings(paths: StackPaths) -> dict[str, str]:
    """Each role's ``schema_registry.basic_auth`` when the stack's registry last started with
    --secure (its marker exists only then); empty otherwise."""
    files = SecureRegistryFiles(paths)
    if not (files.marker.is_file() and files.complete()):
        return {}
    return {role: files.basic_auth(role) for role in ROLE_GRANTS}
