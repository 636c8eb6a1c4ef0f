"""Render the configuration models as Markdown, so docs/configuration.md cannot drift."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from sentio_iot.config import SentioConfig

HEADER = """# Configuration reference

Generated from the models in the code by `sentio config reference`; a test keeps this file equal
to its output. One YAML file per deployment; every key can be overridden from the environment
with `SENTIO_` + the path in capitals, `__` between levels (`SENTIO_KAFKA__BOOTSTRAP_SERVERS`).
A secret (a password or token setting) can be read from a file instead:
`SENTIO_KAFKA__SASL_PASSWORD__FILE=/run/secrets/sentio/kafka.password` (docs/security.md).
`sentio config validate FILE` reports every problem at once, with its path.
"""


_XDG_DEFAULTS = {
    "sentio-iot": "`$XDG_CACHE_HOME/sentio-iot` (else `~/.cache/sentio-iot`)",
    "buffer": "`$XDG_STATE_HOME/sentio-iot/buffer` (else `~/.local/state/sentio-iot/buffer`)",
    "streams": "`$XDG_STATE_HOME/sentio-iot/streams` (else `~/.local/state/sentio-iot/streams`)",
}


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        value: Any = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "(section)"
    elif info.default is PydanticUndefined:
        return "**required**"
    else:
        value = info.default
    if isinstance(value, Enum):
        value = value.value
    if isinstance(
        value, Path
    ):  # machine-specific: show where it comes from, not this machine's value
        return _XDG_DEFAULTS.get(value.parts[-1], f"`{value}`")
    return (
        f"`{value!r}`"
        if value not in ({}, [], None)
        else f"`{value}`"
        if value is None
        else "empty"
    )


def _type(info: FieldInfo) -> str:
    return _format_type(info.annotation).replace("|", "\\|")


def _format_type(annotation: Any) -> str:
    """A type as a user reads it: enums as their values, models as 'entries'."""
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " / ".join(str(m.value) for m in annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "entries (below)"
    args = getattr(annotation, "__args__", None)
    origin = getattr(annotation, "__origin__", None)
    if origin is Literal:
        return " / ".join(str(a) for a in args or ())
    if args and origin in (list, dict):
        inner = ", ".join(_format_type(a) for a in args)
        return f"{origin.__name__}[{inner}]"
    if args:  # a union
        return " or ".join(_format_type(a) for a in args)
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def model_table(model: type[BaseModel], prefix: str = "") -> list[str]:
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            nested.append((path, annotation))
            rows.append(
                f"| `{path}` | section | | {(annotation.__doc__ or '').strip().splitlines()[0]} |"
            )
            continue
        rows.append(f"| `{path}` | {_type(info)} | {_default(info)} | {info.description or ''} |")
    out = rows
    for path, sub in nested:
        out += ["", f"## `{path}`", "", *model_table(sub, f"{path}.")]
    return out


def render(extra_models: dict[str, type[BaseModel]] | None = None) -> str:
    lines = [HEADER, "## Top level", "", *model_table(SentioConfig)]
    for title, model in (extra_models or {}).items():
        lines += ["", f"## `{title}`", "", (model.__doc__ or "").strip(), "", *model_table(model)]
        for name, info in model.model_fields.items():
            inner = getattr(info.annotation, "__args__", ())
            for arg in inner:
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    lines += [
                        "",
                        f"### `{title}.{name}[]`",
                        "",
                        (arg.__doc__ or "").strip(),
                        "",
                        *model_table(arg),
                    ]
    return "\n".join(lines) + "\n"


def render_all() -> str:
    """Every section, including each installed connector's device model."""
    from sentio_iot.plugins import connector_names, load_connector_plugin

    connectors = {
        f"producers.{name}[]": load_connector_plugin(name).load_config_model()
        for name in connector_names()
    }
    return render(connectors)
