"""docs/api.md is the reference generated from the OpenAPI description, and the description
says what the API really answers (422 as a Problem, every operation with its refusals)."""

from __future__ import annotations

from pathlib import Path

from sentio_iot.api.reference import openapi_document, render_reference

ROOT = Path(__file__).resolve().parents[2]


def test_api_reference_is_current() -> None:
    current = (ROOT / "docs" / "api.md").read_text()
    assert current == render_reference(), "regenerate it: sentio api --reference > docs/api.md"


def test_openapi_declares_bearer_auth_and_refusals_on_every_protected_operation() -> None:
    document = openapi_document()
    assert document["openapi"].startswith("3.")
    assert document["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    protected = 0
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            if op.get("security"):
                protected += 1
                assert {"401", "403"} <= set(op["responses"]), (method, path)
            if "422" in op["responses"]:
                schema = op["responses"]["422"]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (method, path)
    assert protected == 21
    assert "HTTPValidationError" not in document["components"]["schemas"]
