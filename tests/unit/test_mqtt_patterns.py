"""Topic patterns with named captures, and their validation in the configuration."""

from __future__ import annotations

import pytest

from sentio_iot.config import load_config
from sentio_iot.errors import ConfigError
from sentio_iot.producers.mqtt.patterns import (
    TopicPattern,
    fill_template,
    filter_covers,
    template_fields,
)


@pytest.mark.parametrize(
    ("pattern", "subscription", "captures"),
    [
        ("plant/{site}/{device}/{metric}", "plant/+/+/+", ("site", "device", "metric")),
        ("sensors/{device}/#", "sensors/+/#", ("device",)),
        ("sensors/+/{rest#}", "sensors/+/#", ("rest",)),
        ("a/b", "a/b", ()),
        ("#", "#", ()),
    ],
)
def test_subscription_and_capture_names(
    pattern: str, subscription: str, captures: tuple[str, ...]
) -> None:
    parsed = TopicPattern.parse(pattern)
    assert parsed.subscription == subscription
    assert parsed.captures == captures


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        (
            "plant/{site}/{device}/{metric}",
            "plant/north/press-1/temp",
            {"site": "north", "device": "press-1", "metric": "temp"},
        ),
        ("plant/{site}/{device}/{metric}", "plant/north/press-1", None),
        ("plant/{site}/{device}/{metric}", "plant/north/press-1/temp/x", None),
        ("plant/{site}/{device}/{metric}", "other/north/press-1/temp", None),
        ("sensors/{device}/#", "sensors/s1", {"device": "s1"}),
        ("sensors/{device}/#", "sensors/s1/a/b", {"device": "s1"}),
        ("sensors/{device}/{path#}", "sensors/s1/a/b", {"device": "s1", "path": "a/b"}),
        ("sensors/{device}/{path#}", "sensors/s1", None),
        ("+/{device}", "a/b", {"device": "b"}),
        ("+/{device}", "$SYS/b", None),
        ("#", "$SYS/broker/uptime", None),
        ("$SYS/{what#}", "$SYS/broker/uptime", {"what": "broker/uptime"}),
        ("a/{x}/c", "a//c", {"x": ""}),
    ],
)
def test_match(pattern: str, topic: str, expected: dict[str, str] | None) -> None:
    assert TopicPattern.parse(pattern).match(topic) == expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "a topic pattern cannot be empty"),
        ("a/#/b", "level 2 ('#'): '#' must be the last level"),
        ("a/{rest#}/b", "level 2 ('{rest#}'): {rest#} must be the last level"),
        ("a/sensor-{id}", "level 2 ('sensor-{id}'): a capture fills a whole level"),
        ("a/{1x}", "level 2 ('{1x}'): a capture fills a whole level"),
        ("a/b+", "level 2 ('b+'): '+' and '#' must fill a whole level"),
        ("{x}/{x}", "capture {x} is used twice in '{x}/{x}'"),
    ],
)
def test_invalid_patterns_say_which_level(pattern: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        TopicPattern.parse(pattern)
    assert str(error.value).startswith(message)


def test_templates() -> None:
    assert template_fields("{site}-{device}") == ["site", "device"]
    assert fill_template("{site}-{device}", {"site": "n", "device": "p1"}) == "n-p1"
    assert template_fields("plain") == []
    with pytest.raises(ValueError, match="'\\{a b\\}' in 'x-\\{a b\\}' is not a capture name"):
        template_fields("x-{a b}")
    with pytest.raises(ValueError, match="unbalanced"):
        template_fields("x-{a")


@pytest.mark.parametrize(
    ("general", "specific", "covers"),
    [
        ("zigbee2mqtt/#", "zigbee2mqtt/kitchen/light", True),
        ("zigbee2mqtt/#", "zigbee2mqtt", True),
        ("a/+", "a/b", True),
        ("a/+", "a/#", False),
        ("a/#", "a/+", True),
        ("a/+/c", "a/+/c", True),
        ("a/b", "a/+", False),
        ("#", "$SYS/x", False),
        ("a/+", "a/b/c", False),
    ],
)
def test_filter_covers(general: str, specific: str, covers: bool) -> None:
    assert filter_covers(general, specific) is covers


def test_configuration_errors_carry_their_path() -> None:
    entries = [
        {"mappings": [{"topic": "plant/#/x"}]},
        {"mappings": [{"topic": "plant/{line}/{metric}"}]},
        {"mappings": [{"topic": "s/{device}", "value_path": "$.a..b"}]},
        {"mappings": [{"topic": "s/{device}", "fields": [{"path": "a"}], "unit": "V"}]},
        {"zigbee2mqtt": {"base_topic": "z2m/#"}},
    ]
    with pytest.raises(ConfigError) as error:
        load_config(data={"producers": {"mqtt": entries}})
    assert error.value.problems == [
        "producers.mqtt[0].mappings[0].topic: level 2 ('#'): '#' must be the last level",
        "producers.mqtt[1].mappings[0]: device_id uses {device} but topic 'plant/{line}/{metric}' "
        "captures line, metric; capture it in the topic or change device_id",
        "producers.mqtt[2].mappings[0].value_path: field path '$.a..b': expected a name at character 5",
        "producers.mqtt[3].mappings[0]: use either fields or metric/value_path/unit, not both",
        "producers.mqtt[4].zigbee2mqtt.base_topic: 'z2m/#' must be a topic without wildcards or outer '/'",
    ]


def test_a_valid_source_loads() -> None:
    entry = {
        "host": "broker.local",
        "mappings": [{"topic": "plant/{line}/{device}/{metric}", "labels": {"line": "{line}"}}],
        "zigbee2mqtt": {},
        "homeassistant": {},
    }
    config = load_config(data={"producers": {"mqtt": [entry]}})
    assert config.producers["mqtt"][0]["host"] == "broker.local"
