"""Turn pydantic's validation errors into ``path: what is wrong, and what would be valid`` lines."""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError


def format_location(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """``('registers', 3, 'data_type')`` -> ``registers[3].data_type``."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part.startswith(("function-", "tagged-union")) or part in {"literal", "enum"}:
            continue  # pydantic's internal validator names, not user-visible keys
        else:
            shown = part if part.isprintable() else repr(part)  # a key holding a line break
            path += f".{shown}" if path else shown
    return path or "(top level)"


def _choices(ctx: dict[str, Any]) -> str:
    expected = str(ctx.get("expected", ""))
    names = re.findall(r"'([^']*)'", expected)
    return ", ".join(names) if names else expected


def describe_error(error: Any) -> str:
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind in {"enum", "literal_error"}:
        return f"{value!r} is not one of {_choices(ctx)}"
    if kind == "missing":
        return "required field is missing; add it"
    if kind == "extra_forbidden":
        if isinstance(value, str | dict | list):  # a misspelt secret's name must not show it
            return "unknown field; remove it or check its spelling"
        return f"unknown field (value {value!r}); remove it or check its spelling"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return f"{value!r}: {error['msg'].lower()}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{value!r}: {error['msg'].lower()}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    return f"{value!r}: {error['msg']}" if value is not None else str(error["msg"])


def format_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per problem, each starting with its full dotted path; secrets never shown."""
    return [
        f"{format_location(tuple(e['loc']), prefix)}: {describe_error(_hide_secret(e))}"
        for e in exc.errors()
    ]


def _hide_secret(error: Any) -> Any:
    """The error with its input masked when it is (or holds) a secret."""
    from sentio_iot.secret_values import MASK, is_secret_key, mask

    if "input" not in error:
        return error
    hidden = MASK if any(is_secret_key(part) for part in error["loc"]) else mask(error["input"])
    return {**error, "input": hidden}
