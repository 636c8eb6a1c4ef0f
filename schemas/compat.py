"""BACKWARD compatibility of two Avro schemas, checked in pure Python.

``backward_problems(new, old)`` answers: can a reader using ``new`` read every message written
with ``old``? It follows the Avro specification's schema resolution rules, the ones fastavro
applies when it decodes (``schemaless_reader(buf, old, new)``):

- records, enums and fixed match by unqualified name, or when the new type lists the old
  name among its aliases; fixed sizes must be equal;
- a field of new that old lacks needs a default that fits its type; fields old has and new
  lacks are skipped; a new field matches an old one by name or by one of its aliases;
- promotions: int to long, float or double; long to float or double; float to double;
  string to bytes and bytes to string;
- enums: every symbol old can write must exist in new, unless new has a default symbol;
- unions: every branch old can write must match a branch of new (or new itself when new is
  not a union); arrays and maps compare their items and values;
- logical types must be equal (decimals: precision and scale too). The specification lets
  readers ignore them, but reading timestamp-millis as timestamp-micros is off by 1000x.

Each problem reads ``path: what is wrong``, e.g.
``Reading.metrics[].quality: enum symbol 'STALE' written by old is missing in new and new has
no default``. Paths start at the root record's name; ``[]`` is an array's items, ``{}`` a
map's values; unions are transparent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["backward_problems"]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
PROMOTIONS = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
INT_RANGE = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}

Names = dict[str, tuple[dict[str, Any], str]]  # full name -> (definition, its namespace)


@dataclass(frozen=True)
class _View:
    """A schema node with what is needed to read it: its kind, namespace and name table."""

    kind: str  # a primitive, record, enum, fixed, array, map or union
    schema: Any  # dict for everything but unions (list)
    namespace: str
    names: Names

    def resolve(self, schema: Any) -> _View:
        return _view(schema, self.namespace, self.names)

    @property
    def full_name(self) -> str:
        return _full_name(self.schema["name"], self.namespace)

    @property
    def short_name(self) -> str:
        return str(self.schema["name"]).rsplit(".", 1)[-1]

    def describe(self) -> str:
        if self.kind == "union":
            return "[" + ", ".join(self.resolve(b).describe() for b in self.schema) + "]"
        if self.kind in NAMED:
            return f"{self.kind} {self.short_name}"
        return self.kind


def backward_problems(new: Any, old: Any) -> list[str]:
    """Every reason a reader using ``new`` cannot read data written with ``old``; [] if it can."""
    new_names: Names = {}
    old_names: Names = {}
    _index(new, "", new_names)
    _index(old, "", old_names)
    new_view = _view(new, "", new_names)
    old_view = _view(old, "", old_names)
    root = new_view.short_name if new_view.kind in NAMED else new_view.kind
    problems: list[str] = []
    _check(new_view, old_view, root, problems, set())
    return problems


def _full_name(name: str, namespace: str) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _own_namespace(schema: dict[str, Any], enclosing: str) -> str:
    """The namespace a named type's own name and its nested types live in."""
    name = str(schema["name"])
    if "." in name:
        return name.rsplit(".", 1)[0]
    namespace = schema.get("namespace")
    return enclosing if namespace is None else str(namespace)


def _index(schema: Any, namespace: str, names: Names) -> None:
    """Record every named type defined anywhere in ``schema`` under its full name."""
    if isinstance(schema, list):
        for branch in schema:
            _index(branch, namespace, names)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in NAMED:
        own = _own_namespace(schema, namespace)
        names[_full_name(str(schema["name"]).rsplit(".", 1)[-1], own)] = (schema, own)
        for field in schema.get("fields", ()):
            _index(field["type"], own, names)
    elif kind == "array":
        _index(schema["items"], namespace, names)
    elif kind == "map":
        _index(schema["values"], namespace, names)
    elif isinstance(kind, dict | list):
        _index(kind, namespace, names)


def _view(schema: Any, namespace: str, names: Names) -> _View:
    if isinstance(schema, list):
        return _View("union", schema, namespace, names)
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return _View(schema, {"type": schema}, namespace, names)
        for candidate in (_full_name(schema, namespace), schema):
            if candidate in names:
                definition, own = names[candidate]
                return _View(str(definition["type"]), definition, own, names)
        raise ValueError(f"unknown type name '{schema}'")
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind in PRIMITIVES or kind in ("array", "map"):
            return _View(str(kind), schema, namespace, names)
        if kind in NAMED:
            return _View(str(kind), schema, _own_namespace(schema, namespace), names)
        if isinstance(kind, str | list | dict):
            return _view(kind, namespace, names)
    raise ValueError(f"not an Avro schema: {schema!r:.80}")


def _check(new: _View, old: _View, path: str, out: list[str], active: set[tuple[str, str]]) -> None:
    if old.kind == "union":
        for branch in old.schema:
            _check_branch(new, old.resolve(branch), path, out, active)
        return
    if new.kind == "union":
        chosen = _first_match(new, old)
        if chosen is None:
            out.append(
                f"{path}: '{old.describe()}' written by old matches no branch of new {new.describe()}"
            )
            return
        _check(chosen, old, path, out, active)
        return
    reason = _mismatch(new, old)
    if reason is not None:
        out.append(f"{path}: {reason}")
        return
    if new.kind in ("record", "error"):
        _check_record(new, old, path, out, active)
    elif new.kind == "enum":
        _check_enum(new, old, path, out)
    elif new.kind in ("array", "map"):
        key, suffix = ("items", "[]") if new.kind == "array" else ("values", "{}")
        items_new, items_old = new.resolve(new.schema[key]), old.resolve(old.schema[key])
        _check(items_new, items_old, path + suffix, out, active)
    if new.kind in PRIMITIVES or new.kind == "fixed":
        _check_logical_type(new, old, path, out)


def _check_branch(
    new: _View, old_branch: _View, path: str, out: list[str], active: set[tuple[str, str]]
) -> None:
    if new.kind == "union":
        chosen = _first_match(new, old_branch)
        if chosen is None:
            out.append(
                f"{path}: union branch '{old_branch.describe()}' written by old matches no branch of new {new.describe()}"
            )
            return
        _check(chosen, old_branch, path, out, active)
    elif _mismatch(new, old_branch) is not None:
        out.append(
            f"{path}: union branch '{old_branch.describe()}' written by old cannot be read as '{new.describe()}' in new"
        )
    else:
        _check(new, old_branch, path, out, active)


def _first_match(new_union: _View, old: _View) -> _View | None:
    """The first branch of ``new_union`` that ``old`` resolves to (the specification's rule)."""
    for branch in new_union.schema:
        candidate = new_union.resolve(branch)
        if candidate.kind != "union" and _mismatch(candidate, old) is None:
            return candidate
    return None


def _mismatch(new: _View, old: _View) -> str | None:
    """Why ``old`` cannot resolve to ``new`` at this level, or None when it can."""
    if new.kind in NAMED and old.kind in NAMED and _named_kind(new) == _named_kind(old):
        if not _names_match(new, old):
            return f"{new.kind} name '{new.full_name}' in new does not match '{old.full_name}' written by old (rename with an alias)"
        if new.kind == "fixed" and new.schema["size"] != old.schema["size"]:
            return f"fixed size {new.schema['size']} in new differs from size {old.schema['size']} written by old"
        return None
    if new.kind == old.kind or new.kind in PROMOTIONS.get(old.kind, ()):
        return None
    return f"type '{new.describe()}' in new cannot read '{old.describe()}' written by old"


def _named_kind(view: _View) -> str:
    return "record" if view.kind == "error" else view.kind


def _names_match(new: _View, old: _View) -> bool:
    if new.short_name == old.short_name:
        return True
    aliases = [str(a) for a in new.schema.get("aliases", ())]
    qualified = {_full_name(a, new.namespace) for a in aliases}
    return old.full_name in qualified or old.short_name in aliases


def _check_record(
    new: _View, old: _View, path: str, out: list[str], active: set[tuple[str, str]]
) -> None:
    key = (new.full_name, old.full_name)
    if key in active:
        return  # a recursive type, already being compared further up
    active.add(key)
    old_fields = {str(f["name"]): f for f in old.schema["fields"]}
    for field in new.schema["fields"]:
        field_path = f"{path}.{field['name']}"
        names = [str(field["name"]), *(str(a) for a in field.get("aliases", ()))]
        written = next((old_fields[n] for n in names if n in old_fields), None)
        if written is not None:
            _check(
                new.resolve(field["type"]), old.resolve(written["type"]), field_path, out, active
            )
        elif "default" not in field:
            out.append(f"{field_path}: field added in new without a default")
        elif not _default_fits(field["default"], new.resolve(field["type"])):
            out.append(
                f"{field_path}: default {json.dumps(field['default'])} does not fit type '{new.resolve(field['type']).describe()}'"
            )
    active.discard(key)


def _check_enum(new: _View, old: _View, path: str, out: list[str]) -> None:
    if "default" in new.schema:
        return  # unknown symbols read as the default
    symbols = set(new.schema["symbols"])
    for symbol in old.schema["symbols"]:
        if symbol not in symbols:
            out.append(
                f"{path}: enum symbol '{symbol}' written by old is missing in new and new has no default"
            )


def _check_logical_type(new: _View, old: _View, path: str, out: list[str]) -> None:
    new_type, old_type = new.schema.get("logicalType"), old.schema.get("logicalType")
    if new_type != old_type:
        out.append(
            f"{path}: logical type {json.dumps(new_type)} in new differs from {json.dumps(old_type)} written by old"
        )
    elif new_type == "decimal":
        new_ps = (new.schema.get("precision"), new.schema.get("scale", 0))
        old_ps = (old.schema.get("precision"), old.schema.get("scale", 0))
        if new_ps != old_ps:
            out.append(
                f"{path}: decimal (precision, scale) {new_ps} in new differs from {old_ps} written by old"
            )


def _default_fits(value: Any, view: _View) -> bool:
    """Whether ``value`` is a valid JSON default for ``view`` (a union's: its first branch)."""
    kind = view.kind
    if kind == "union":
        return bool(view.schema) and _default_fits(value, view.resolve(view.schema[0]))
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in INT_RANGE:
        low, high = INT_RANGE[kind]
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    if kind in ("float", "double"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("string", "bytes"):
        return isinstance(value, str)
    if kind == "fixed":
        return isinstance(value, str) and len(value) == view.schema["size"]
    if kind == "enum":
        return value in view.schema["symbols"]
    if kind == "array":
        items = view.resolve(view.schema["items"])
        return isinstance(value, list) and all(_default_fits(v, items) for v in value)
    if kind == "map":
        values = view.resolve(view.schema["values"])
        return isinstance(value, dict) and all(_default_fits(v, values) for v in value.values())
    if kind in ("record", "error"):
        return isinstance(value, dict) and all(
            _default_fits(value[f["name"]], view.resolve(f["type"]))
            if f["name"] in value
            else "default" in f
            for f in view.schema["fields"]
        )
    return False
