"""Payloads: field paths, plain values, switch words, and the value-template subset."""

from __future__ import annotations

import pytest

from sentio_iot.producers.mqtt.config import TopicMapping, ValueKind
from sentio_iot.producers.mqtt.mappings import CompiledMapping
from sentio_iot.producers.mqtt.payloads import FieldPath, PayloadError, decode, to_number
from sentio_iot.producers.mqtt.templates import MissingValue, TemplateError, compile_template
from sentio_iot.records import Metric

DOCUMENT = {"env": {"temp": 21.5, "list": [1, 2, 3]}, "odd key": {"v": "x"}, "on": True}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("env.temp", 21.5),
        ("$.env.temp", 21.5),
        ("$.env.list[0]", 1),
        ("env.list[-1]", 3),
        ("$['odd key'].v", "x"),
        ('$["odd key"]["v"]', "x"),
        ("on", True),
    ],
)
def test_field_paths(path: str, value: object) -> None:
    assert FieldPath.parse(path).extract(DOCUMENT) == value


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("$", "field path '$' selects nothing; name a field, e.g. $.temperature"),
        ("a..b", "field path 'a..b': expected a name at character 3"),
        (
            "a[x]",
            "field path 'a[x]': unexpected '[' at character 2; use .name, [index] or ['name']",
        ),
        ("a b", "field path 'a b': unexpected ' ' at character 2; use .name, [index] or ['name']"),
    ],
)
def test_invalid_field_paths(path: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        FieldPath.parse(path)
    assert str(error.value) == message


def test_missing_fields_say_where() -> None:
    with pytest.raises(PayloadError) as error:
        FieldPath.parse("$.env.humidity").extract(DOCUMENT)
    assert str(error.value) == "no $.env.humidity in the payload (at $.env: an object)"
    with pytest.raises(PayloadError) as error:
        FieldPath.parse("$.env.list[5]").extract(DOCUMENT)
    assert str(error.value) == "no $.env.list[5] in the payload (at $.env.list: an array of 3)"


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        (b"21.5", 21.5),
        (b" -3 \n", -3.0),
        (b"ON", "ON"),
        (b"online", "online"),
        (b'{"a": 1}', {"a": 1}),
        (b"[1, 2]", [1, 2]),
        (b"true", True),
        (b'"text"', "text"),
        (b"nan", "nan"),
    ],
)
def test_decode(raw: bytes, decoded: object) -> None:
    assert decode(raw) == decoded


def test_decode_rejects_broken_json_and_binary() -> None:
    with pytest.raises(PayloadError, match="invalid JSON: Expecting value at character 7"):
        decode(b'{"a": }')
    with pytest.raises(
        PayloadError, match="payload is not UTF-8 text: invalid start byte at byte 0"
    ):
        decode(b"\xff\xfe")


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (21.5, 21.5),
        (3, 3.0),
        (True, 1.0),
        (False, 0.0),
        ("ON", 1.0),
        ("off", 0.0),
        ("true", 1.0),
        ("closed", 0.0),
        (" 7.25 ", 7.25),
    ],
)
def test_to_number(value: object, number: float) -> None:
    assert to_number(value) == number


def test_to_number_with_a_devices_own_words_and_failures() -> None:
    assert to_number("LOCK", on="LOCK", off="UNLOCK") == 1.0
    assert to_number("UNLOCK", on="LOCK", off="UNLOCK") == 0.0
    with pytest.raises(PayloadError, match="'garbage' is not a number"):
        to_number("garbage")
    with pytest.raises(PayloadError, match="an object is not a number"):
        to_number({"a": 1})


def test_mapping_with_fields_reads_one_reading_and_text() -> None:
    mapping = CompiledMapping.compile(
        TopicMapping.model_validate(
            {
                "topic": "s/{device}/state",
                "fields": [
                    {"path": "$.env.temp", "unit": "degC"},
                    {"path": "on", "metric": "{device}_on"},
                    {"path": "$['odd key'].v", "metric": "mode", "kind": "text"},
                    {"path": "missing", "optional": True},
                ],
            }
        )
    )
    assert mapping.metrics(DOCUMENT, {"device": "s1"}) == [
        Metric("temp", 21.5, "degC"),
        Metric("s1_on", 1.0),
        Metric("mode", None, text="x"),
    ]


def test_single_value_mapping_defaults() -> None:
    mapping = CompiledMapping.compile(
        TopicMapping.model_validate({"topic": "p/{device}/{metric}", "unit": "V"})
    )
    assert mapping.metrics(230.5, {"device": "d", "metric": "voltage"}) == [
        Metric("voltage", 230.5, "V")
    ]
    text = CompiledMapping.compile(
        TopicMapping.model_validate({"topic": "p/{device}/fw", "kind": ValueKind.TEXT})
    )
    assert text.metrics(2.1, {"device": "d"}) == [Metric("value", None, text="2.1")]


@pytest.mark.parametrize(
    ("template", "payload", "result"),
    [
        ("{{ value }}", "21.5", "21.5"),
        ("{{value}}", "ON", "ON"),
        ("{{ value_json.temperature }}", '{"temperature": 21.5}', 21.5),
        ("{{ value_json['temperature'] }}", '{"temperature": 21.5}', 21.5),
        ('{{ value_json["a"]["b"][1] }}', '{"a": {"b": [5, 6]}}', 6),
        ("{{ value_json.a.b[-1] }}", '{"a": {"b": [5, 6]}}', 6),
        ("{{ value | float }}", "21.5", 21.5),
        ("{{ value | int }}", "21.7", 21),
        ("{{ value | float | round(1) }}", "21.46", 21.5),
        ("{{ value | round }}", "21.6", 22.0),
        ("{{ (value | float / 1000) | round(2) }}", "12345", 12.35),
        ("{{ value_json.power | float * 2 }}", '{"power": "3.5"}', 7.0),
        ("{{ value | float(0) }}", "n/a", 0),
        ("{{ value_json.x | float(default=1.5) }}", "{}", 1.5),
        ("{{ value_json.x | default('none') }}", "{}", "none"),
        ("{{ value_json.state | lower }}", '{"state": "ON"}', "on"),
        ("{{ 'ON' if value_json.contact == false else 'OFF' }}", '{"contact": false}', "ON"),
        ("{{ value_json.occupancy }}", '{"occupancy": true}', True),
        ("{{ value | multiply(0.1) | round(2) }}", "215", 21.5),
        ("{{ -value_json.a }}", '{"a": 2}', -2),
        ("T: {{ value }} C", "3", "T: 3 C"),
        ("{{ value_json.a > 1 and value_json.b < 1 }}", '{"a": 2, "b": 0}', True),
    ],
)
def test_value_templates(template: str, payload: str, result: object) -> None:
    assert compile_template(template).render(payload) == result


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{% if value %}1{% endif %}", "statements ({% %}) and comments ({# #}) are not supported"),
        ("{{ value | regex_findall('x') }}", "unsupported filter 'regex_findall'"),
        ("{{ states('sensor.x') }}", "unsupported name 'states'"),
        ("{{ value_json.a", "unbalanced '{{' or '}}'"),
        ("{{ value is defined }}", "unsupported 'is' in the template"),
    ],
)
def test_templates_outside_the_subset_are_rejected_at_compile_time(
    template: str, message: str
) -> None:
    with pytest.raises(TemplateError) as error:
        compile_template(template)
    assert str(error.value).startswith(message)


def test_template_failures_on_values() -> None:
    with pytest.raises(MissingValue, match="'humidity' is not in the payload"):
        compile_template("{{ value_json.humidity }}").render('{"temperature": 1}')
    with pytest.raises(TemplateError, match="value_json: the payload is not JSON"):
        compile_template("{{ value_json.temperature }}").render("online")
    with pytest.raises(MissingValue, match="'temperature' is not in the payload"):
        compile_template("{{ value_json.temperature }}").render("21.5")
    with pytest.raises(TemplateError, match="'abc' cannot be converted to a number"):
        compile_template("{{ value | float }}").render("abc")
    with pytest.raises(TemplateError, match="division by zero"):
        compile_template("{{ value | float / 0 }}").render("1")
