"""schemathesis over the API's OpenAPI description, against a running API on the real
stack (views fed from Kafka): with an admin's token and with none, no answer is a 5xx and
every answer matches its documented status, content type and schema."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from pydantic import SecretStr

from sentio_iot.api.app import create_app
from sentio_iot.api.reference import openapi_document
from sentio_iot.api.roles import Role
from sentio_iot.api.server import serving
from sentio_iot.config import SentioConfig, load_config
from sentio_iot.kafka import admin_client

PASSWORD = "schemathesis password"
EXAMPLES = 20
# FastAPI ignores query parameters it does not know (as most HTTP APIs do); schemathesis
# counts accepting them as accepting invalid data. Everything else is checked.
LENIENT = [schemathesis.checks.negative_data_rejection]


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, sentio_config: SentioConfig
) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("api")
    prefix = f"schemathesis-{uuid.uuid4().hex[:8]}."
    data = {
        "kafka": {"bootstrap_servers": sentio_config.kafka.bootstrap_servers},
        "schema_registry": {"url": sentio_config.schema_registry.url},
        "topics": {"prefix": prefix},
        # promote/rollback cases write the user's model store: a temporary one
        "streams": {"rul": {"store_dir": str(state / "models")}},
        # generous login limit: the generated cases log in hundreds of times
        "api": {"state_dir": str(state), "login_limit": {"attempts": 1000, "per_s": 0.01}},
    }
    app = create_app(load_config(data=data))
    app.state.services.users.add("ada", SecretStr(PASSWORD), Role.ADMIN, ("*",))
    try:
        with serving(app) as url:
            login = httpx.post(
                f"{url}/api/v1/auth/login", json={"username": "ada", "password": PASSWORD}
            )
            yield {"url": url, "token": login.json()["access_token"]}
    finally:
        admin = admin_client(sentio_config.kafka)
        ours = [t for t in admin.list_topics(timeout=15).topics if t.startswith(prefix)]
        for future in admin.delete_topics(ours).values() if ours else ():
            with contextlib.suppress(Exception):  # a busy broker: not a result
                future.result(15)


# The description the running API serves (the same app, built on default settings).
schema = schemathesis.openapi.from_dict(openapi_document())


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_authenticated(case: Any, api: dict[str, Any]) -> None:
    case.call_and_validate(
        base_url=api["url"],
        headers={"Authorization": f"Bearer {api['token']}"},
        excluded_checks=LENIENT,
    )


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_unauthenticated(case: Any, api: dict[str, Any]) -> None:
    response = case.call_and_validate(base_url=api["url"], excluded_checks=LENIENT)
    same_method = case.method.upper() == case.operation.method.upper()  # not a 405 probe
    if same_method and case.operation.definition.raw.get("security"):
        assert response.status_code == 401, response.text
        assert set(response.json()) == {"error"}
