"""Topic patterns: MQTT filters whose levels may be named captures.

A pattern is an MQTT topic filter, one level per ``/``-separated part. Each level is one of

- a literal, e.g. ``plant``: matches exactly that level;
- ``+``: any one level, not kept;
- ``{name}``: any one level, kept as ``name`` (an identifier: letters, digits, ``_``);
- ``#``: the rest of the topic (last level only), not kept; like MQTT it also matches nothing;
- ``{name#}``: one or more remaining levels (last level only), kept as ``name``, joined by ``/``.

``plant/{site}/{device}/{metric}`` subscribes to ``plant/+/+/+``;
``sensors/{device}/#`` subscribes to ``sensors/+/#``. A capture fills a whole level
(``sensor-{id}`` is an error), as MQTT wildcards do. Templates such as ``{site}-{device}``
name the captures to build device ids, metric names and labels from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CAPTURE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)(#?)\}$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Level:
    """One level of a pattern: a literal, or a wildcard that may keep what it matched."""

    literal: str | None = None  # set for a literal level
    capture: str | None = None  # name the matched text is kept under
    rest: bool = False  # matches the remaining levels ('#' or '{name#}')


@dataclass(frozen=True, slots=True)
class TopicPattern:
    """A parsed pattern: the MQTT filter to subscribe to and how to match and capture."""

    text: str
    levels: tuple[Level, ...]

    @classmethod
    def parse(cls, text: str) -> TopicPattern:
        """Parse ``text``; raise ValueError saying which level is wrong and why."""
        if not text:
            raise ValueError("a topic pattern cannot be empty")
        if "\x00" in text:
            raise ValueError("a topic pattern cannot contain a NUL character")
        parts = text.split("/")
        levels: list[Level] = []
        names: set[str] = set()
        for index, part in enumerate(parts):
            level = _parse_level(part, index, last=index == len(parts) - 1)
            if level.capture is not None:
                if level.capture in names:
                    raise ValueError(f"capture {{{level.capture}}} is used twice in '{text}'")
                names.add(level.capture)
            levels.append(level)
        return cls(text, tuple(levels))

    @property
    def subscription(self) -> str:
        """The MQTT topic filter that receives every topic this pattern can match."""
        out = []
        for level in self.levels:
            if level.literal is not None:
                out.append(level.literal)
            else:
                out.append("#" if level.rest else "+")
        return "/".join(out)

    @property
    def captures(self) -> tuple[str, ...]:
        return tuple(level.capture for level in self.levels if level.capture is not None)

    def match(self, topic: str) -> dict[str, str] | None:
        """The captures if ``topic`` matches, else None. Follows MQTT: wildcards skip ``$`` topics."""
        parts = topic.split("/")
        if topic.startswith("$") and self.levels[0].literal is None:
            return None
        captured: dict[str, str] = {}
        for index, level in enumerate(self.levels):
            if level.rest:
                remaining = parts[index:]
                if level.capture is not None:
                    if not remaining:
                        return None
                    captured[level.capture] = "/".join(remaining)
                return captured
            if index >= len(parts):
                return None
            if level.literal is not None and parts[index] != level.literal:
                return None
            if level.capture is not None:
                captured[level.capture] = parts[index]
        return captured if len(parts) == len(self.levels) else None


def _parse_level(part: str, index: int, *, last: bool) -> Level:
    where = f"level {index + 1} ('{part}')"
    if part == "+":
        return Level()
    if part == "#":
        if not last:
            raise ValueError(f"{where}: '#' must be the last level")
        return Level(rest=True)
    found = _CAPTURE.match(part)
    if found:
        name, rest = found.group(1), found.group(2) == "#"
        if rest and not last:
            raise ValueError(f"{where}: {{{name}#}} must be the last level")
        return Level(capture=name, rest=rest)
    if "{" in part or "}" in part:
        raise ValueError(
            f"{where}: a capture fills a whole level and is written {{name}} or {{name#}}, "
            "with a name of letters, digits and '_'"
        )
    if "+" in part or "#" in part:
        raise ValueError(f"{where}: '+' and '#' must fill a whole level")
    return Level(literal=part)


def template_fields(template: str) -> list[str]:
    """The capture names a template such as ``{site}-{device}`` uses; ValueError if malformed."""
    names = _PLACEHOLDER.findall(template)
    for name in names:
        if not _IDENTIFIER.match(name):
            raise ValueError(f"'{{{name}}}' in '{template}' is not a capture name")
    stripped = _PLACEHOLDER.sub("", template)
    if "{" in stripped or "}" in stripped:
        raise ValueError(f"unbalanced '{{' or '}}' in '{template}'")
    return names


def fill_template(template: str, captures: dict[str, str]) -> str:
    """Replace each ``{name}`` with its capture (names were checked at start-up)."""
    return _PLACEHOLDER.sub(lambda m: captures[m.group(1)], template)


def filter_covers(general: str, specific: str) -> bool:
    """True when every topic ``specific`` (a filter or a topic) matches also matches ``general``."""
    wide, narrow = general.split("/"), specific.split("/")
    for index, level in enumerate(wide):
        if level == "#":
            return not (index == 0 and specific.startswith("$"))
        if index >= len(narrow) or narrow[index] == "#":
            return False
        if level == "+":
            if index == 0 and narrow[0].startswith("$"):
                return False
            continue
        if narrow[index] != level:
            return False
    return len(narrow) == len(wide)
