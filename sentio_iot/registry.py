"""A small client for a Confluent-compatible schema registry (Apicurio's ccompat v7 API).

    registry = SchemaRegistry(config.schema_registry)
    schema_id = registry.register("sentio.readings-value", load_schema("Reading"))
    registry.schema_by_id(schema_id)            # the writer schema, cached per id
    registry.is_compatible(subject, evolved)    # against the latest version
    registry.set_compatibility(subject, "BACKWARD")

A registry that cannot be reached, or answers 5xx, raises ConnectError (retry later). A 4xx
answer raises RegistryError with the registry's status and Confluent error code, e.g. 409
for an incompatible schema, 422 for an invalid one, 404 with 40403 for an unknown schema id.

A registry that asks for credentials (``sentio stack up --secure``: Apicurio with OIDC) takes
``schema_registry.basic_auth`` ('client-id:secret', a SecretStr) as HTTP basic auth; a 401 or
403 is a RegistryError that names the client id and the setting, never the secret.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Literal
from urllib.parse import quote

import httpx

from sentio_iot.config import SchemaRegistrySettings
from sentio_iot.errors import ConnectError, RegistryError

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SCHEMA_NOT_FOUND = 40403
SUBJECT_NOT_FOUND = 40401

Compatibility = Literal[
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
]


class SchemaRegistry:
    """Register and look up Avro schemas; schemas fetched by id are cached for the process."""

    def __init__(self, settings: SchemaRegistrySettings) -> None:
        self.url = settings.url.rstrip("/")
        auth = None
        self._user: str | None = None
        if settings.basic_auth:
            user, _, password = settings.basic_auth.get_secret_value().partition(":")
            auth = httpx.BasicAuth(user, password)
            self._user = user
        self._http = httpx.Client(
            base_url=self.url,
            auth=auth,
            timeout=settings.timeout_s,
            headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE},
        )
        self._by_id: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def register(self, subject: str, schema: dict[str, Any]) -> int:
        """Register ``schema`` under ``subject`` (idempotent) and return its id."""
        body = _schema_body(schema)
        answer = self._call("POST", f"/subjects/{_quote(subject)}/versions", body)
        schema_id = int(answer["id"])
        with self._lock:
            # cache a copy: the caller may change its dict later
            self._by_id.setdefault(schema_id, json.loads(body["schema"]))
        log.info("schema registered subject=%s id=%d", subject, schema_id)
        return schema_id

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """The schema with this id, as JSON; asked once per id, then served from the cache."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        answer = self._call("GET", f"/schemas/ids/{schema_id}")
        schema_type = answer.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise RegistryError(
                f"schema id {schema_id} at {self.url} is {schema_type}, not AVRO", status_code=200
            )
        schema: dict[str, Any] = json.loads(answer["schema"])
        with self._lock:
            return self._by_id.setdefault(schema_id, schema)

    def is_compatible(self, subject: str, schema: dict[str, Any]) -> bool:
        """Whether ``schema`` may be registered next under ``subject`` by its compatibility rule."""
        try:
            answer = self._call(
                "POST",
                f"/compatibility/subjects/{_quote(subject)}/versions/latest",
                _schema_body(schema),
            )
        except RegistryError as exc:
            if exc.error_code == SUBJECT_NOT_FOUND:
                return True  # nothing registered yet: anything is compatible
            raise
        return bool(answer["is_compatible"])

    def set_compatibility(self, subject: str, level: Compatibility = "BACKWARD") -> None:
        """Set the compatibility rule the registry enforces when a new version is registered."""
        self._call("PUT", f"/config/{_quote(subject)}", {"compatibility": level})

    def subjects(self) -> list[str]:
        """The subjects the registry knows (Apicurio 3 lists at most 1000, without paging)."""
        answer = self._call("GET", "/subjects")
        return [str(subject) for subject in answer]

    def versions(self, subject: str) -> list[int]:
        """The version numbers registered under ``subject``; RegistryError 404 when none."""
        answer = self._call("GET", f"/subjects/{quote(subject, safe='')}/versions")
        return [int(version) for version in answer]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SchemaRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ConnectError(
                f"schema registry at {self.url} cannot be reached ({type(exc).__name__}: {exc})",
                fix="is the registry running? sentio stack up",
            ) from exc
        if response.status_code >= 500:
            raise ConnectError(
                f"schema registry at {self.url} failed: {method} {path} answered {response.status_code} {_message(response)}",
                fix="is the registry running? sentio stack up",
            )
        if response.status_code in (401, 403):
            raise RegistryError(
                self._refusal(method, path, response.status_code),
                status_code=response.status_code,
            )
        if response.status_code >= 400:
            raise RegistryError(
                f"schema registry at {self.url}: {method} {path} answered {response.status_code}: {_message(response)}",
                status_code=response.status_code,
                error_code=_error_code(response),
            )
        try:
            return response.json()
        except ValueError as exc:
            raise ConnectError(
                f"schema registry at {self.url}: {method} {path} answered with invalid JSON",
                fix="is the registry URL right? Apicurio: http://HOST:PORT/apis/ccompat/v7",
            ) from exc

    def _refusal(self, method: str, path: str, status: int) -> str:
        """One line for a 401 or 403: who was refused and what to set (never the secret)."""
        where = f"schema registry at {self.url}: {method} {path} answered {status}"
        if status == 401 and self._user is None:
            why, fix = "it asks for credentials and none are set", "set"
        elif status == 401:
            why, fix = f"it refused the credentials of {self._user!r}", "check"
        else:
            why = f"{self._user!r} may not do this (its role is read-only or lacks the right)"
            fix = "give this worker its own role's"
        return (
            f"{where}: {why} (fix: {fix} schema_registry.basic_auth, 'client-id:secret'; on the "
            "secure stack: <stack.home>/state/secure/clients/registry-<role>.env)"
        )


def _schema_body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"schemaType": "AVRO", "schema": json.dumps(schema, separators=(",", ":"))}


def _quote(subject: str) -> str:
    return quote(subject, safe="")


def _error_code(response: httpx.Response) -> int | None:
    try:
        code = response.json().get("error_code")
    except (ValueError, AttributeError):
        return None
    return int(code) if isinstance(code, int) else None


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", response.text))[:300]
    except (ValueError, AttributeError):
        return response.text[:200]
