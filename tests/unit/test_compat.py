"""The BACKWARD checker on hand-made schema pairs: the exact problems it reports, or none."""

from __future__ import annotations

import copy
import io
from typing import Any

import fastavro
import pytest
from fastavro.read import SchemaResolutionError

from sentio_iot.schemas import load_schema
from sentio_iot.schemas.compat import backward_problems


def record(
    *fields: dict[str, Any], name: str = "R", namespace: str = "ns", **extra: Any
) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": namespace, "fields": list(fields), **extra}


def field(name: str, type_: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": type_, **extra}


def enum(*symbols: str, name: str = "Color", **extra: Any) -> dict[str, Any]:
    return {"type": "enum", "name": name, "symbols": list(symbols), **extra}


def test_identical_schemas_are_compatible() -> None:
    schema = record(field("a", "long"), field("b", ["null", "string"], default=None))
    assert backward_problems(schema, copy.deepcopy(schema)) == []


def test_field_added_without_default_is_reported() -> None:
    old = record(field("a", "long"))
    new = record(field("a", "long"), field("b", "string"))
    assert backward_problems(new, old) == ["R.b: field added in new without a default"]


def test_field_added_with_default_is_compatible() -> None:
    old = record(field("a", "long"))
    new = record(
        field("a", "long"),
        field("b", "string", default=""),
        field("c", ["null", "double"], default=None),
        field("d", {"type": "map", "values": "string"}, default={}),
    )
    assert backward_problems(new, old) == []


def test_field_removed_is_compatible() -> None:
    old = record(field("a", "long"), field("b", "string"))
    assert backward_problems(record(field("a", "long")), old) == []


def test_added_field_default_must_fit_its_type() -> None:
    old = record(field("a", "long"))
    new = record(
        field("a", "long"),
        field("b", ["null", "string"], default="x"),  # a union's default fits its first branch
        field("c", "int", default=2**40),
        field("d", enum("RED", "BLUE"), default="GREEN"),
    )
    assert backward_problems(new, old) == [
        "R.b: default \"x\" does not fit type '[null, string]'",
        "R.c: default 1099511627776 does not fit type 'int'",
        "R.d: default \"GREEN\" does not fit type 'enum Color'",
    ]


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
    ],
)
def test_promotions_are_compatible(written: str, read: str) -> None:
    assert backward_problems(record(field("a", read)), record(field("a", written))) == []


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("long", "int"),
        ("double", "float"),
        ("double", "long"),
        ("string", "int"),
        ("int", "string"),
    ],
)
def test_narrowing_and_unrelated_types_are_reported(written: str, read: str) -> None:
    assert backward_problems(record(field("a", read)), record(field("a", written))) == [
        f"R.a: type '{read}' in new cannot read '{written}' written by old"
    ]


def test_enum_symbol_removed_without_default_is_reported() -> None:
    old = record(field("c", enum("RED", "GREEN", "BLUE")))
    new = record(field("c", enum("RED", "BLUE")))
    assert backward_problems(new, old) == [
        "R.c: enum symbol 'GREEN' written by old is missing in new and new has no default"
    ]


def test_enum_symbol_removed_with_default_is_compatible() -> None:
    old = record(field("c", enum("RED", "GREEN", "BLUE")))
    new = record(field("c", enum("RED", "BLUE", default="RED")))
    assert backward_problems(new, old) == []


def test_enum_symbol_added_is_compatible() -> None:
    old = record(field("c", enum("RED", "BLUE")))
    new = record(field("c", enum("RED", "BLUE", "GREEN")))
    assert backward_problems(new, old) == []


def test_contract_example_stale_quality_symbol() -> None:
    """A Reading whose Quality lost its default cannot read a symbol only old knew."""
    old = load_schema("Reading")
    old_quality = old["fields"][2]["type"]["items"]["fields"][4]["type"]
    old_quality["symbols"].append("STALE")
    new = load_schema("Reading")
    del new["fields"][2]["type"]["items"]["fields"][4]["type"]["default"]
    assert backward_problems(new, old) == [
        "Reading.metrics[].quality: enum symbol 'STALE' written by old is missing in new and new has no default"
    ]
    assert backward_problems(load_schema("Reading"), old) == []  # the default symbol saves it


def test_union_may_gain_branches_but_not_lose_them() -> None:
    narrow = record(field("a", ["null", "string"]))
    wide = record(field("a", ["null", "string", "long"]))
    assert backward_problems(wide, narrow) == []
    assert backward_problems(narrow, wide) == [
        "R.a: union branch 'long' written by old matches no branch of new [null, string]"
    ]


def test_plain_type_read_as_union_and_back() -> None:
    plain = record(field("a", "string"))
    nullable = record(field("a", ["null", "string"]))
    assert backward_problems(nullable, plain) == []
    assert backward_problems(nullable, record(field("a", "int"))) == [
        "R.a: 'int' written by old matches no branch of new [null, string]"
    ]
    assert backward_problems(plain, nullable) == [
        "R.a: union branch 'null' written by old cannot be read as 'string' in new"
    ]


def test_promotion_into_a_union_branch() -> None:
    old = record(field("a", ["null", "long"]))
    assert backward_problems(record(field("a", ["null", "double"])), old) == []


def test_arrays_and_maps_compare_items_and_values() -> None:
    old = record(
        field("xs", {"type": "array", "items": "long"}),
        field("m", {"type": "map", "values": "double"}),
    )
    new = record(
        field("xs", {"type": "array", "items": "int"}),
        field("m", {"type": "map", "values": "float"}),
    )
    assert backward_problems(new, old) == [
        "R.xs[]: type 'int' in new cannot read 'long' written by old",
        "R.m{}: type 'float' in new cannot read 'double' written by old",
    ]
    assert backward_problems(record(field("xs", "string")), old) == [
        "R.xs: type 'string' in new cannot read 'array' written by old"
    ]


def test_nested_record_in_array_checks_its_fields() -> None:
    item_v1 = record(field("x", "long"), name="Item")
    item_v2 = record(field("x", "long"), field("y", "string"), name="Item")
    old = record(field("items", {"type": "array", "items": item_v1}))
    new = record(field("items", {"type": "array", "items": item_v2}))
    assert backward_problems(new, old) == ["R.items[].y: field added in new without a default"]


def test_record_renamed_needs_an_alias() -> None:
    old = record(field("inner", record(field("x", "long"), name="Inner")))
    renamed = record(field("inner", record(field("x", "long"), name="Inner2")))
    assert backward_problems(renamed, old) == [
        "R.inner: record name 'ns.Inner2' in new does not match 'ns.Inner' written by old (rename with an alias)"
    ]
    aliased = record(field("inner", record(field("x", "long"), name="Inner2", aliases=["Inner"])))
    assert backward_problems(aliased, old) == []
    qualified_alias = record(
        field("inner", record(field("x", "long"), name="Inner2", aliases=["ns.Inner"]))
    )
    assert backward_problems(qualified_alias, old) == []


def test_root_rename_is_reported_with_the_new_name() -> None:
    old = record(field("a", "long"))
    assert backward_problems(record(field("a", "long"), name="S"), old) == [
        "S: record name 'ns.S' in new does not match 'ns.R' written by old (rename with an alias)"
    ]


def test_namespace_change_alone_matches_like_fastavro_and_java() -> None:
    """The specification and fastavro match named types by their unqualified name."""
    old = record(field("a", "long"), namespace="io.old")
    assert backward_problems(record(field("a", "long"), namespace="io.new"), old) == []


def test_field_renamed_with_alias_is_compatible() -> None:
    old = record(field("temp", "double"))
    assert backward_problems(record(field("temperature", "double", aliases=["temp"])), old) == []
    assert backward_problems(record(field("temperature", "double")), old) == [
        "R.temperature: field added in new without a default"
    ]


def test_fixed_size_must_match() -> None:
    old = record(field("h", {"type": "fixed", "name": "Hash", "size": 8}))
    new = record(field("h", {"type": "fixed", "name": "Hash", "size": 16}))
    assert backward_problems(new, old) == [
        "R.h: fixed size 16 in new differs from size 8 written by old"
    ]


def test_named_kinds_do_not_mix() -> None:
    old = record(field("c", enum("A")))
    new = record(field("c", {"type": "fixed", "name": "Color", "size": 1}))
    assert backward_problems(new, old) == [
        "R.c: type 'fixed Color' in new cannot read 'enum Color' written by old"
    ]


def test_logical_type_change_is_reported() -> None:
    old = record(field("ts", {"type": "long", "logicalType": "timestamp-millis"}))
    new = record(field("ts", {"type": "long", "logicalType": "timestamp-micros"}))
    assert backward_problems(new, old) == [
        'R.ts: logical type "timestamp-micros" in new differs from "timestamp-millis" written by old'
    ]


def test_decimal_scale_change_is_reported() -> None:
    def money(scale: int) -> dict[str, Any]:
        return {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": scale}

    assert backward_problems(record(field("m", money(3))), record(field("m", money(2)))) == [
        "R.m: decimal (precision, scale) (10, 3) in new differs from (10, 2) written by old"
    ]


def test_named_type_references_are_followed_at_every_use() -> None:
    def schema(*symbols: str) -> dict[str, Any]:
        return record(field("first", enum(*symbols)), field("second", "Color"))

    assert backward_problems(schema("A", "B"), schema("A", "B", "C")) == [
        "R.first: enum symbol 'C' written by old is missing in new and new has no default",
        "R.second: enum symbol 'C' written by old is missing in new and new has no default",
    ]


def test_recursive_types_terminate() -> None:
    def linked_list(*extra: dict[str, Any]) -> dict[str, Any]:
        return record(field("value", "long"), field("next", ["null", "R"]), *extra)

    assert backward_problems(linked_list(), linked_list()) == []
    assert backward_problems(linked_list(field("label", "string")), linked_list()) == [
        "R.label: field added in new without a default"
    ]


def test_every_problem_is_reported_at_once() -> None:
    old = record(field("a", "long"), field("b", "string"), field("c", enum("X", "Y")))
    new = record(field("a", "int"), field("b", "string"), field("c", enum("X")), field("d", "long"))
    assert backward_problems(new, old) == [
        "R.a: type 'int' in new cannot read 'long' written by old",
        "R.c: enum symbol 'Y' written by old is missing in new and new has no default",
        "R.d: field added in new without a default",
    ]


def test_unknown_type_name_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown type name 'Missing'"):
        backward_problems(record(field("a", "Missing")), record(field("a", "long")))


AGREEMENT_CASES = [
    # (old, new, a value written with old, what new reads, problems the checker reports)
    (
        record(field("a", "int")),
        record(field("a", "double"), field("b", "string", default="x")),
        {"a": 3},
        {"a": 3.0, "b": "x"},
        [],
    ),
    (
        record(field("a", ["null", "long"]), namespace="io.old"),
        record(field("a", ["null", "string", "double"]), namespace="io.new"),
        {"a": 5},
        {"a": 5.0},
        [],
    ),
    (
        record(field("c", enum("RED", "GREEN"))),
        record(field("c", enum("RED", "BLUE", default="BLUE"))),
        {"c": "GREEN"},
        {"c": "BLUE"},
        [],
    ),
    (
        record(field("inner", record(field("temp", "float"), name="Inner"))),
        record(
            field(
                "inner",
                record(
                    field("temperature", "double", aliases=["temp"]),
                    name="Inner2",
                    aliases=["Inner"],
                ),
            )
        ),
        {"inner": {"temp": 1.5}},
        {"inner": {"temperature": 1.5}},
        [],
    ),
    (
        record(field("c", enum("RED", "GREEN"))),
        record(field("c", enum("RED"))),
        {"c": "GREEN"},
        None,
        ["R.c: enum symbol 'GREEN' written by old is missing in new and new has no default"],
    ),
    (
        record(field("a", "long")),
        record(field("a", "long"), field("b", "string")),
        {"a": 1},
        None,
        ["R.b: field added in new without a default"],
    ),
]


@pytest.mark.parametrize(("old", "new", "written", "read", "problems"), AGREEMENT_CASES)
def test_checker_agrees_with_fastavro(
    old: dict[str, Any],
    new: dict[str, Any],
    written: dict[str, Any],
    read: dict[str, Any] | None,
    problems: list[str],
) -> None:
    """What the checker accepts, fastavro reads; what it rejects, fastavro refuses."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), written)
    buf.seek(0)
    assert backward_problems(new, old) == problems
    if read is None:
        with pytest.raises(SchemaResolutionError):
            fastavro.schemaless_reader(buf, fastavro.parse_schema(old), fastavro.parse_schema(new))
    else:
        decoded = fastavro.schemaless_reader(
            buf, fastavro.parse_schema(old), fastavro.parse_schema(new)
        )
        assert decoded == read
