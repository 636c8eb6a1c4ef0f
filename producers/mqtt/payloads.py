"""Payloads: JSON field paths, plain numbers, and switch states as numbers.

Field paths pick one value out of a JSON document. Both spellings work::

    temperature            $.temperature
    sensors.inside.temp    $.sensors.inside.temp
    values[0]              $.values[0]
    $['odd key'].value     $["odd key"].value

A leading ``$`` is optional; ``.name`` steps into an object, ``[n]`` into an array
(negative counts from the end), ``['name']`` into an object by a key of any characters.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

PathStep = str | int

_NAME = re.compile(r"[A-Za-z0-9_\-@:]+")
_INDEX = re.compile(r"\[(-?\d+)\]")
_QUOTED = re.compile(r"""\[(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\]""")

TRUE_WORDS = frozenset({"on", "true", "open", "yes", "online", "active"})
FALSE_WORDS = frozenset({"off", "false", "closed", "close", "no", "offline", "inactive"})


class PayloadError(ValueError):
    """A payload (or a value in it) that cannot be turned into what a mapping asks for."""


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A parsed field path; ``str()`` gives the text it was parsed from."""

    text: str
    steps: tuple[PathStep, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        """Parse ``text``; raise ValueError naming the character where it goes wrong."""
        steps: list[PathStep] = []
        position = 1 if text.startswith("$") else 0
        expect_name = position == 0  # a path may start with a bare name
        while position < len(text):
            if expect_name or text[position] == ".":
                position += 0 if expect_name else 1
                expect_name = False
                name = _NAME.match(text, position)
                if not name:
                    raise ValueError(
                        f"field path '{text}': expected a name at character {position + 1}"
                    )
                steps.append(name.group(0))
                position = name.end()
                continue
            index = _INDEX.match(text, position)
            if index:
                steps.append(int(index.group(1)))
                position = index.end()
                continue
            quoted = _QUOTED.match(text, position)
            if quoted:
                raw = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
                steps.append(re.sub(r"\\(.)", r"\1", raw))
                position = quoted.end()
                continue
            raise ValueError(
                f"field path '{text}': unexpected '{text[position]}' at character {position + 1}; "
                "use .name, [index] or ['name']"
            )
        if not steps:
            raise ValueError(
                f"field path '{text}' selects nothing; name a field, e.g. $.temperature"
            )
        return cls(text, tuple(steps))

    def extract(self, document: Any) -> Any:
        """The value at this path; PayloadError saying where it is missing."""
        value = document
        for depth, step in enumerate(self.steps):
            try:
                if isinstance(step, int):
                    if not isinstance(value, list):
                        raise TypeError
                    value = value[step]
                else:
                    if not isinstance(value, dict):
                        raise TypeError
                    value = value[step]
            except (IndexError, KeyError, TypeError):
                found = _describe(self.steps[:depth])
                raise PayloadError(
                    f"no {_describe(self.steps[: depth + 1])} in the payload (at {found}: {_kind(value)})"
                ) from None
        return value

    def __str__(self) -> str:
        return self.text


def _describe(steps: tuple[PathStep, ...]) -> str:
    out = "$"
    for step in steps:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return f"an array of {len(value)}"
    return f"the value {json.dumps(value)[:40]}"


def decode(raw: bytes) -> Any:
    """JSON if the payload is JSON, else its text (stripped); PayloadError if not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    stripped = text.strip()
    if stripped[:1] in ("{", "[", '"') or stripped in ("true", "false", "null"):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise PayloadError(f"invalid JSON: {exc.msg} at character {exc.pos + 1}") from exc
    try:
        return _number(stripped)
    except PayloadError:
        return stripped


def decode_json(raw: bytes) -> Any:
    """The payload as JSON; PayloadError with the reason when it is not."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise PayloadError(f"payload is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    except json.JSONDecodeError as exc:
        raise PayloadError(f"invalid JSON: {exc.msg} at character {exc.pos + 1}") from exc


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PayloadError(f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise PayloadError(f"{text[:40]!r} is not a finite number")
    return value


def to_number(value: Any, *, on: Any = None, off: Any = None) -> float:
    """A number from a JSON value or text: numbers as they are, booleans and ON/OFF as 1/0.

    ``on``/``off`` are a device's own words for its two states (e.g. Zigbee2MQTT's
    ``value_on``), checked before the common ones (ON/OFF, true/false, open/closed...).
    """
    if on is not None and value == on:
        return 1.0
    if off is not None and value == off:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise PayloadError(f"{value} is not a finite number")
        return float(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return 1.0
        if word in FALSE_WORDS:
            return 0.0
        return _number(value.strip())
    raise PayloadError(f"{_kind(value)} is not a number")
