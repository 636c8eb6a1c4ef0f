"""docs/api.md, generated from the OpenAPI description so the reference cannot drift
(`sentio api --reference > docs/api.md`; tests/unit/test_api_docs.py keeps them equal)."""

from __future__ import annotations

import tempfile
from typing import Any

from sentio_iot.api import live

PREAMBLE = """# API reference

Generated from the OpenAPI description by `sentio api --reference`; a test keeps this file
equal to its output. The running API serves the same description at `/api/openapi.json`
and an interactive page at `/api/docs`. Security (roles, tenants, tokens, key rotation,
what is logged): [security.md](security.md).

## Conventions

- Base URL: `http://127.0.0.1:8000` (`api.host`, `api.port`); every path below is under it.
- Authentication: `Authorization: Bearer <token>`, where the token is an access token from
  `POST /api/v1/auth/login` (an EdDSA JWT, 15 min by default) or an API key (`sk_...`).
  Refresh with `POST /api/v1/auth/refresh`: each refresh token works once and the answer
  carries the next one.
- Refusals: `401` (no or bad credentials) or `403` (role or tenant), `429` (login rate
  limit, with `Retry-After`), `404`, `422` (bad parameter) — all as `{"error": "<reason>"}`
  and nothing else.
- Records keep the field names of the Avro contract (`schemas/avro/*.avsc`); times in
  records are integer microseconds since the Unix epoch, UTC. The `from`/`to` query
  parameters take ISO 8601 date-times or Unix seconds.
- Lists are pages: `{"items": [...], "total", "limit", "offset"}`; `total` counts what
  matches the filters in the caller's tenants.
- Everything is filtered to the caller's tenants (the `tenant` label of each device, else
  the deployment's `tenant`).

## WebSocket `/api/v1/live`

"""


def openapi_document() -> dict[str, Any]:
    """The OpenAPI description of an app on default settings (its state in a temp folder)."""
    from sentio_iot.api.app import create_app
    from sentio_iot.config import load_config

    with tempfile.TemporaryDirectory() as folder:
        app = create_app(load_config(data={"api": {"state_dir": folder}}), start_feed=False)
        return app.openapi()


def _type(schema: dict[str, Any] | bool) -> str:
    if isinstance(schema, bool):
        return "any"
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " / ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map of {_type(schema['additionalProperties'])}"
    return str(kind) + (f" ({schema['format']})" if "format" in schema else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", op.get("description", op.get("summary", ""))]
    lines += [
        "",
        "Authentication: " + ("Bearer token or API key" if op.get("security") else "none"),
    ]
    params = op.get("parameters", [])
    if params:
        lines += ["", "| Parameter | In | Type | Required | Description |", "|---|---|---|---|---|"]
        for p in params:
            desc = p.get("description", p["schema"].get("description", ""))
            lines.append(
                f"| `{p['name']}` | {p['in']} | {_cell(_type(p['schema']))} | "
                f"{'yes' if p.get('required') else 'no'} | {_cell(desc)} |"
            )
    body = op.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        lines += ["", f"Body: {_type(body['schema'])}"]
    lines += ["", "| Status | Body | Meaning |", "|---|---|---|"]
    for status, response in op.get("responses", {}).items():
        content = response.get("content", {}).get("application/json", {}).get("schema")
        shown = _type(content) if content else "none"
        lines.append(f"| {status} | {_cell(shown)} | {_cell(response.get('description', ''))} |")
    return [*lines, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    required = set(schema.get("required", []))
    lines += ["| Field | Type | Required | Description |", "|---|---|---|---|"]
    for field, spec in schema.get("properties", {}).items():
        lines.append(
            f"| `{field}` | {_cell(_type(spec))} | {'yes' if field in required else 'no'} | "
            f"{_cell(spec.get('description', ''))} |"
        )
    return [*lines, ""]


def render_reference(document: dict[str, Any] | None = None) -> str:
    document = document or openapi_document()
    protocol = (live.__doc__ or "").strip().split("\n", 1)[1].strip()
    lines = [PREAMBLE + "```text\n" + protocol + "\n```", "", "## Endpoints", ""]
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            lines += _operation(path, method, op)
    lines += ["## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        lines += _schema(name, schema)
    return "\n".join(lines).rstrip("\n") + "\n"
