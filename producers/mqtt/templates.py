"""The part of Home Assistant's value templates that MQTT device configs use: not a full Jinja.

Supported inside ``{{ ... }}`` (text around it is kept, as Jinja would)::

    value   value_json   value_json.a.b   value_json['a'][0]   value_json.list[-1]
    numbers, 'strings', true/false/none, ( ), + - * / // %, == != < <= > >=, and or not,
    a if condition else b
    filters: float, int, round(n), abs, default(x) (also d), lower, upper, trim, string,
             bool, is_defined, multiply(n)

``{% ... %}`` statements, macros, tests (``is``) and other filters are not supported:
:func:`compile_template` raises TemplateError for them, so a config using them is reported
when it arrives rather than each time a value does.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class TemplateError(ValueError):
    """A template outside the supported subset, or one that fails on a value."""


class MissingValue(TemplateError):
    """The template names a field the payload does not have (Jinja's Undefined)."""


class _Undefined:
    """Jinja's Undefined: a missing field (skipped), or value_json of a non-JSON payload (an error)."""

    def __init__(self, what: str, *, missing: bool = True) -> None:
        self.what = what
        self.missing = missing


@dataclass
class TemplateInput:
    """What a template sees: the payload text and, lazily, its JSON."""

    value: str
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    @property
    def value_json(self) -> Any:
        if not self._parsed:
            try:
                self._json = json.loads(self.value)
            except json.JSONDecodeError:
                self._json = _Undefined("value_json: the payload is not JSON", missing=False)
            self._parsed = True
        return self._json


Node = Callable[[TemplateInput], Any]

_TOKEN = re.compile(
    r"""\s*(?:(?P<number>\d+\.\d*(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)"""
    r"""|(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")"""
    r"""|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|(?P<op>//|==|!=|<=|>=|[-+*/%|.()\[\],<>=]))"""
)


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        found = _TOKEN.match(text, position)
        if not found or found.lastgroup is None:
            raise TemplateError(
                f"unsupported text '{text[position:].strip()[:20]}' in the template"
            )
        tokens.append((found.lastgroup, found.group(found.lastgroup)))
        position = found.end()
    return tokens


class _Parser:
    """Recursive descent over one ``{{ }}`` expression, building closures."""

    def __init__(self, text: str) -> None:
        self.tokens = _tokenize(text)
        self.position = 0

    def peek_op(self, ops: tuple[str, ...]) -> bool:
        return self.position < len(self.tokens) and self.tokens[self.position] in [
            ("op", o) for o in ops
        ]

    def peek(self, value: str | None = None) -> bool:
        if self.position >= len(self.tokens):
            return False
        return value is None or self.tokens[self.position][1] == value

    def take(self, value: str | None = None) -> tuple[str, str]:
        if not self.peek(value):
            found = self.tokens[self.position][1] if self.position < len(self.tokens) else "the end"
            raise TemplateError(f"expected {value or 'a value'}, found {found}")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def parse(self) -> Node:
        node = self.conditional()
        if self.position != len(self.tokens):
            raise TemplateError(f"unsupported '{self.tokens[self.position][1]}' in the template")
        return node

    def conditional(self) -> Node:
        then = self.or_()
        if not self.peek("if"):
            return then
        self.take("if")
        condition = self.or_()
        otherwise: Node = lambda _: None  # noqa: E731 (Jinja gives Undefined without else)
        if self.peek("else"):
            self.take("else")
            otherwise = self.conditional()
        return lambda i: then(i) if _truthy(condition(i)) else otherwise(i)

    def or_(self) -> Node:
        node = self.and_()
        while self.peek("or"):
            self.take()
            left, right = node, self.and_()
            node = _either(left, right)
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.peek("and"):
            self.take()
            left, right = node, self.not_()
            node = _both(left, right)
        return node

    def not_(self) -> Node:
        if self.peek("not"):
            self.take()
            inner = self.not_()
            return lambda i: not _truthy(inner(i))
        return self.comparison()

    def comparison(self) -> Node:
        node = self.arithmetic(("+", "-"), self.term)
        if not self.peek_op(("==", "!=", "<=", ">=", "<", ">")):
            return node
        op = self.take()[1]
        left, right = node, self.arithmetic(("+", "-"), self.term)
        return _operation(op, left, right)

    def term(self) -> Node:
        return self.arithmetic(("*", "/", "//", "%"), self.unary)

    def arithmetic(self, ops: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        node = operand()
        while self.peek_op(ops):
            op = self.take()[1]
            left, right = node, operand()
            node = _operation(op, left, right)
        return node

    def unary(self) -> Node:
        if self.peek_op(("-",)):
            self.take()
            inner = self.unary_operand()
            node: Node = lambda i: -_as_number(_defined(inner(i)))  # noqa: E731
        else:
            node = self.unary_operand()
        return self.filters(node)

    def unary_operand(self) -> Node:
        return self.postfix(self.primary())

    def filters(self, node: Node) -> Node:
        while self.peek("|"):
            self.take()
            name = self.take()[1]
            args: list[Node] = []
            if self.peek("("):
                self.take("(")
                while not self.peek(")"):
                    if self.tokens[self.position + 1 :][:1] == [("op", "=")]:
                        self.position += 2  # name=value: the filters here take arguments in order
                    args.append(self.conditional())
                    if not self.peek(")"):
                        self.take(",")
                self.take(")")
            node = _filter(name, node, args)
        return node

    def postfix(self, node: Node) -> Node:
        while self.peek(".") or self.peek("["):
            if self.take()[1] == ".":
                key = self.take()[1]
                node = _attribute(node, key)
            else:
                index = self.conditional()
                self.take("]")
                node = _subscript(node, index)
        return node

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "number":
            number = float(text) if any(c in text for c in ".eE") else int(text)
            return lambda _: number
        if kind == "string":
            literal = re.sub(r"\\(.)", r"\1", text[1:-1])
            return lambda _: literal
        if text == "(":
            node = self.conditional()
            self.take(")")
            return node
        constants = {
            "true": True,
            "True": True,
            "false": False,
            "False": False,
            "none": None,
            "None": None,
        }
        if text in constants:
            constant = constants[text]
            return lambda _: constant
        if text == "value":
            return lambda i: i.value
        if text == "value_json":
            return lambda i: i.value_json
        raise TemplateError(f"unsupported name '{text}': only value and value_json are known")


def _either(left: Node, right: Node) -> Node:
    return lambda i: _truthy(left(i)) or _truthy(right(i))


def _both(left: Node, right: Node) -> Node:
    return lambda i: _truthy(left(i)) and _truthy(right(i))


def _operation(op: str, left: Node, right: Node) -> Node:
    return lambda i: _binary(op, _defined(left(i)), _defined(right(i)))


def _attribute(node: Node, key: str) -> Node:
    return lambda i: _item(node(i), key)


def _subscript(node: Node, index: Node) -> Node:
    return lambda i: _item(node(i), _defined(index(i)))


def _truthy(value: Any) -> bool:
    return not isinstance(value, _Undefined) and bool(value)


def _defined(value: Any) -> Any:
    if isinstance(value, _Undefined):
        if not value.missing:
            raise TemplateError(value.what)
        raise MissingValue(f"{value.what} is not in the payload")
    return value


def _item(container: Any, key: Any) -> Any:
    if isinstance(container, _Undefined):
        return container
    try:
        if isinstance(container, dict):
            return container[key]
        if isinstance(container, list) and isinstance(key, int):
            return container[key]
    except (KeyError, IndexError):
        pass
    return _Undefined(f"'{key}'")


def _as_number(value: Any) -> float | int:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TemplateError(f"{value!r} is not a number") from None


_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _binary(op: str, left: Any, right: Any) -> Any:
    if op in ("==", "!="):
        return (left == right) == (op == "==")
    if op == "+" and isinstance(left, str) and isinstance(right, str):
        return left + right
    try:
        return _OPERATORS[op](_as_number(left), _as_number(right))
    except ZeroDivisionError:
        raise TemplateError("division by zero") from None


def _to_float(value: Any, default: Any) -> Any:
    try:
        if isinstance(value, _Undefined):
            raise ValueError
        result = float(value)
        if not math.isfinite(result):
            raise ValueError
        return result
    except (TypeError, ValueError):
        if default is not _NO_DEFAULT:
            return default
        raise TemplateError(f"{_shown(value)} cannot be converted to a number") from None


def _to_int(value: Any, default: Any) -> Any:
    result = _to_float(value, default)
    return int(result) if isinstance(result, float) else result


def _shown(value: Any) -> str:
    return value.what if isinstance(value, _Undefined) else repr(value)


_NO_DEFAULT = object()


def _filter(name: str, node: Node, args: list[Node]) -> Node:
    def arg(i: TemplateInput, index: int, default: Any) -> Any:
        return _defined(args[index](i)) if len(args) > index else default

    filters: dict[str, Node] = {
        "float": lambda i: _to_float(node(i), arg(i, 0, _NO_DEFAULT)),
        "int": lambda i: _to_int(node(i), arg(i, 0, _NO_DEFAULT)),
        "round": lambda i: _round(_defined(node(i)), arg(i, 0, 0)),
        "abs": lambda i: abs(_as_number(_defined(node(i)))),
        "multiply": lambda i: _as_number(_defined(node(i))) * _as_number(arg(i, 0, 1)),
        "default": lambda i: _default(node(i), arg(i, 0, "")),
        "lower": lambda i: str(_defined(node(i))).lower(),
        "upper": lambda i: str(_defined(node(i))).upper(),
        "trim": lambda i: str(_defined(node(i))).strip(),
        "string": lambda i: as_text(_defined(node(i))),
        "bool": lambda i: _truthy(node(i)),
        "is_defined": lambda i: _defined(node(i)),
    }
    filters["d"] = filters["default"]
    if name not in filters:
        known = ", ".join(sorted(filters))
        raise TemplateError(f"unsupported filter '{name}'; supported: {known}")
    return filters[name]


def _round(value: Any, precision: Any) -> float:
    return float(round(float(_as_number(value)), int(precision)))


def _default(value: Any, fallback: Any) -> Any:
    return fallback if isinstance(value, _Undefined) else value


def as_text(value: Any) -> str:
    """A template result as Jinja prints it (``True``, ``None``, ``21.5``)."""
    if value is None:
        return "None"
    return str(value)


@dataclass(frozen=True)
class ValueTemplate:
    """A compiled template; ``render(payload)`` gives the value (or the text, with text around)."""

    text: str
    parts: tuple[str | Node, ...]

    def render(self, payload: str) -> Any:
        """The template's result; MissingValue or TemplateError when it cannot be computed."""
        given = TemplateInput(payload)
        values = [part if isinstance(part, str) else _defined(part(given)) for part in self.parts]
        expressions = [v for v, p in zip(values, self.parts, strict=True) if not isinstance(p, str)]
        around = "".join(p for p in self.parts if isinstance(p, str))
        if len(expressions) == 1 and not around.strip():
            return expressions[0]  # the value itself (a number stays a number), as HA does
        return "".join(as_text(v) for v in values)


def compile_template(text: str) -> ValueTemplate:
    """Compile ``text``; TemplateError naming what is outside the supported subset."""
    if "{%" in text or "{#" in text:
        raise TemplateError("statements ({% %}) and comments ({# #}) are not supported")
    parts: list[str | Node] = []
    position = 0
    for found in re.finditer(r"\{\{(.*?)\}\}", text, flags=re.DOTALL):
        if found.start() > position:
            parts.append(text[position : found.start()])
        parts.append(_Parser(found.group(1)).parse())
        position = found.end()
    if position < len(text):
        parts.append(text[position:])
    if any(isinstance(p, str) and ("{{" in p or "}}" in p) for p in parts):
        raise TemplateError("unbalanced '{{' or '}}'")
    return ValueTemplate(text, tuple(parts))
