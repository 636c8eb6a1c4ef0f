"""docker-compose.yml rendered as Docker Compose renders it, for tests (no Docker engine here).

The YAML is parsed (anchors and ``<<`` merges resolved by the YAML loader, as Compose does),
then every string value is interpolated from an environment the way Compose interpolates it:
``$$`` is a dollar sign, ``${VAR}`` / ``$VAR`` the value (empty when unset, which Compose only
warns about: :func:`render` records those), ``${VAR:-default}`` the default when VAR is unset
or empty, ``${VAR-default}`` only when unset, ``${VAR:?message}`` / ``${VAR?message}`` an error
naming VAR and the message, ``${VAR:+other}`` / ``${VAR+other}`` the other text when set.
Defaults may themselves hold variables (``${A:-${B:-x}}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# The argument of ${VAR<op>arg} may hold one level of nested ${...}.
_VARIABLE = re.compile(
    rf"\$(?:(?P<dollar>\$)|\{{(?P<braced>{_NAME})(?:(?P<op>:?[-?+])(?P<arg>(?:[^{{}}]|\{{[^{{}}]*\}})*))?\}}|(?P<bare>{_NAME}))"
)


class MissingVariableError(Exception):
    """A ``${VAR:?message}`` whose VAR is not set: Compose refuses to start with this message."""


@dataclass
class Rendering:
    env: Mapping[str, str]
    unset: set[str] = field(default_factory=set)  # variables used without value or default

    def text(self, text: str) -> str:
        return _VARIABLE.sub(self._one, text)

    def _one(self, match: re.Match[str]) -> str:
        if match.group("dollar"):
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = self.env.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in (":-", "-"):
            return self.text(arg) if missing else str(value)
        if op in (":?", "?"):
            if missing:
                raise MissingVariableError(f"required variable {name} is missing a value: {arg}")
            return str(value)
        if op in (":+", "+"):
            return "" if missing else self.text(arg)
        if value is None:
            self.unset.add(name)
        return value or ""

    def value(self, node: Any) -> Any:
        if isinstance(node, str):
            return self.text(node)
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if isinstance(node, dict):
            return {key: self.value(item) for key, item in node.items()}
        return node


def render(
    env: Mapping[str, str] | None = None, path: Path | None = None
) -> tuple[dict[str, Any], set[str]]:
    """The compose file with ``env`` (none: every default), and the variables left unset."""
    rendering = Rendering(env or {})
    document = yaml.safe_load((path or ROOT / "docker-compose.yml").read_text())
    return rendering.value(document), rendering.unset


def volume_targets(service: Mapping[str, Any]) -> dict[str, str]:
    """source (named volume or ./path) -> target of a service's volumes, short syntax
    (``source:target[:ro]``) or long (a mapping: ``source``, ``target``)."""
    return {mount.source: mount.target for mount in mounts(service)}


@dataclass(frozen=True)
class Mount:
    """One entry of a service's ``volumes``, either syntax."""

    source: str
    target: str
    read_only: bool
    subpath: str | None = None  # long syntax: ``volume: {subpath: ...}``


def mounts(service: Mapping[str, Any]) -> list[Mount]:
    found: list[Mount] = []
    for volume in service.get("volumes", []):
        if isinstance(volume, Mapping):
            found.append(
                Mount(
                    str(volume["source"]),
                    str(volume["target"]),
                    bool(volume.get("read_only", False)),
                    (volume.get("volume") or {}).get("subpath"),
                )
            )
            continue
        source, target, *options = str(volume).split(":")
        found.append(Mount(source, target, "ro" in options))
    return found


def published(service: Mapping[str, Any]) -> dict[int, int]:
    """host port -> container port of a service's short-syntax ``ports``."""
    found: dict[int, int] = {}
    for port in service.get("ports", []):
        *_, host, container = str(port).split(":")
        found[int(host)] = int(container)
    return found
