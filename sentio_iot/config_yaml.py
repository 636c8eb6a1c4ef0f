"""Reading a configuration file safely: one-line errors, bounded work, no silent surprises.

- at most ``MAX_BYTES`` of UTF-8 text (anything else is one ConfigError line);
- aliases expand to at most ``MAX_NODES`` nodes and ``MAX_DEPTH`` levels (a "billion laughs"
  file is refused in milliseconds instead of eating gigabytes), checked on the composed
  node graph before anything is built;
- a key given twice in one mapping is an error naming both lines (YAML would keep the last
  one silently); ``<<`` merge keys still override as YAML means them to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

from sentio_iot.errors import ConfigError

MAX_BYTES = 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _value in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:
                continue  # an unhashable key: the base class says so
            if first is None:
                seen[key] = key_node.start_mark.line + 1
            else:
                raise ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice (first on line {first}); keep one",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep)


def read_yaml_text(path: Path) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(
                f"{path}: {size:,} bytes; a configuration file may have at most {MAX_BYTES:,}"
            )
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
            "save it as UTF-8"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc


def load_yaml(text: str, where: str) -> Any:
    """The document in ``text`` with the limits above; ConfigError (one line) otherwise."""
    try:
        loader = StrictLoader(text)  # the reader refuses control characters right here
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {_one_line(exc)}") from exc
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_size(node, where)
        return loader.construct_document(node)
    except RecursionError:
        raise ConfigError(
            f"{where}: nested too deeply (a configuration has at most {MAX_DEPTH} levels)"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        at = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(f"{where}: invalid YAML at {at}: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: invalid YAML: {_one_line(exc)}") from exc
    finally:
        loader.dispose()


def _one_line(exc: yaml.YAMLError) -> str:
    return " ".join(str(exc).split())


def check_size(root: Node, where: str) -> None:
    """Walk the node graph as its aliases expand; stop at the limits."""
    count = 0
    stack: list[tuple[Node, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ConfigError(
                f"{where}: expands to more than {MAX_NODES:,} values (aliases that repeat "
                "aliases?); a configuration may not"
            )
        if depth > MAX_DEPTH:
            raise ConfigError(
                f"{where}: nested more than {MAX_DEPTH} levels deep; a configuration may not"
            )
        if isinstance(node, MappingNode):
            stack.extend((part, depth + 1) for pair in node.value for part in pair)
        elif isinstance(node, SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
