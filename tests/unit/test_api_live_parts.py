"""The live API's parts on exact values: the coalescing queue, the views' cursor and
resume, subscriptions and tenants, and which VictoriaMetrics series a range and step read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sentio_iot.api.client_queue import CoalescingQueue
from sentio_iot.api.history import SeriesRequestError, plan
from sentio_iot.api.hub import LiveClient, LiveHub, Subscription, SubscriptionError
from sentio_iot.api.principal import Principal
from sentio_iot.api.roles import Role
from sentio_iot.api.views import Views
from sentio_iot.settings.api import HistorySettings


def reading(device: str, value: float, ts: int = 1, tenant: str = "acme") -> dict[str, Any]:
    return {
        "device_id": device,
        "ts": ts,
        "metrics": [
            {"name": "temp", "value": value, "text": None, "unit": "degC", "quality": "GOOD"}
        ],
        "labels": {"tenant": tenant, "site": "north", "kind": "pump"},
        "source": "simulate",
        "seq": 0,
    }


async def test_queue_keeps_every_update_while_there_is_room() -> None:
    views, queue = Views("default", "local", 10), CoalescingQueue(max_items=4)
    for value in (1.0, 2.0, 3.0):
        queue.put(views.apply("readings", reading("p1", value)))
    got = [await queue.get(0.01) for _ in range(3)]
    assert [u.data["metrics"][0]["value"] for u in got if u] == [1.0, 2.0, 3.0]
    assert await queue.get(0.01) is None  # empty: the heartbeat's turn


async def test_a_full_queue_coalesces_per_key_and_drops_the_oldest_new_key() -> None:
    views, queue = Views("default", "local", 10), CoalescingQueue(max_items=2)
    queue.put(views.apply("readings", reading("p1", 1.0)))
    queue.put(views.apply("readings", reading("p2", 1.0)))
    queue.put(views.apply("readings", reading("p1", 2.0)))  # full: replaces p1's 1.0
    queue.put(views.apply("readings", reading("p1", 3.0)))  # and again
    assert (len(queue), queue.coalesced, queue.dropped) == (2, 2, 0)
    queue.put(views.apply("readings", reading("p3", 1.0)))  # new key, full: drops p2
    assert (len(queue), queue.take_dropped(), queue.dropped) == (2, 1, 0)
    got = [await queue.get(0.01) for _ in range(2)]
    assert [(u.device_id, u.data["metrics"][0]["value"]) for u in got if u] == [
        ("p1", 3.0),
        ("p3", 1.0),
    ]


def test_views_resume_from_a_cursor_with_the_latest_per_key() -> None:
    views = Views("default", "local", anomalies_kept=2)
    views.apply("readings", reading("p1", 1.0, ts=10))
    cursor = views.cursor
    views.apply("readings", reading("p1", 2.0, ts=20))
    views.apply("readings", reading("p2", 5.0, ts=20))
    views.apply("readings", reading("p1", 3.0, ts=30))
    missed = views.since(views.parse_cursor(cursor))
    assert [(u.device_id, u.data["metrics"][0]["value"]) for u in missed] == [
        ("p2", 5.0),
        ("p1", 3.0),
    ]
    assert views.parse_cursor("another-run.3") == 0  # a cursor of an earlier start: everything
    assert len(views.since(0)) == 2
    assert views.devices["p1"].last_values["temp"]["value"] == 3.0
    views.apply("readings", reading("p1", 9.0, ts=5))  # late, older: does not replace
    assert views.devices["p1"].last_values["temp"] == {
        "value": 3.0,
        "text": None,
        "unit": "degC",
        "quality": "GOOD",
        "ts": 30,
    }
    assert (views.devices["p1"].status, views.devices["p1"].type) == ("ONLINE", "pump")


def test_device_events_set_the_status() -> None:
    views = Views("default", "local", 2)
    event = {
        "device_id": "p1",
        "ts": 1,
        "kind": "OFFLINE",
        "message": "",
        "source": "streams",
        "details": {},
        "labels": {},
    }
    views.apply("device_events", event)
    assert (views.devices["p1"].status, views.devices["p1"].tenant) == ("OFFLINE", "default")


def test_hub_sends_only_what_a_client_subscribed_to_in_its_tenants() -> None:
    views, hub = Views("default", "local", 10), LiveHub()
    acme = LiveClient(Principal("vic", Role.VIEWER, ("acme",)), CoalescingQueue(100))
    acme.subscriptions["s"] = Subscription.parse(
        {"id": "s", "kinds": ["readings"], "devices": ["p1", "p9"]}
    )
    everyone = LiveClient(Principal("ada", Role.ADMIN, ("*",)), CoalescingQueue(100))
    everyone.subscriptions["s"] = Subscription.parse({"id": "s", "metrics": ["temp"]})
    hub.clients |= {acme, everyone}
    hub.publish(
        [
            views.apply("readings", reading("p1", 1.0)),
            views.apply("readings", reading("p2", 1.0)),
            views.apply("readings", reading("p9", 1.0, tenant="globex")),
        ]
    )
    assert (acme.offered, everyone.offered) == (1, 3)


def test_bad_subscriptions_name_the_field() -> None:
    with pytest.raises(SubscriptionError, match="kinds: unknown bogus"):
        Subscription.parse({"id": "s", "kinds": ["bogus"]})
    with pytest.raises(SubscriptionError, match=r"^id:"):
        Subscription.parse({"kinds": ["readings"]})
    with pytest.raises(SubscriptionError, match="devices: must be a list"):
        Subscription.parse({"id": "s", "devices": "p1"})


def test_history_reads_raw_then_minute_then_hour_rollups() -> None:
    settings = HistorySettings.model_validate({})
    raw = plan(settings, "p1", "acme", "temp", 0, 3600, 15)
    assert (raw.source, raw.query) == ("raw", 'sentio_temp{device="p1",tenant="acme"}')
    minute = plan(settings, "p1", "acme", "temp", 0, 86_400, 300)
    assert (minute.source, minute.query) == (
        "rollup_1m",
        'sentio_temp_mean{device="p1",tenant="acme",window="1m"}',
    )
    hour = plan(settings, "p1", "acme", "Temp.C", 0, 30 * 86_400, 3600)
    assert (hour.source, hour.query) == (
        "rollup_1h",
        'sentio_temp_c_mean{device="p1",tenant="acme",window="1h"}',
    )
    assert plan(settings, "p1", "acme", "temp", 0, 7 * 3600, 30).source == "rollup_1m"  # long
    assert plan(settings, "p1", "acme", "temp", 0, 1000, None).step_s == 2.0  # 500 points
    assert (
        plan(settings, 'p"1', "acme", "temp", 0, 60, 1).query
        == 'sentio_temp{device="p\\"1",tenant="acme"}'
    )
    with pytest.raises(SeriesRequestError, match="points asked"):
        plan(settings, "p1", "acme", "temp", 0, 86_400, 1)
    with pytest.raises(SeriesRequestError, match="from must be before to"):
        plan(settings, "p1", "acme", "temp", 10, 10, 1)


def test_an_update_is_serialised_once_for_every_client() -> None:
    views = Views("default", "local", 10)
    update = views.apply("readings", reading("p1", 1.5))
    assert update.message is update.message  # cached: one json.dumps however many clients
    assert json.loads(update.message) == {
        "type": "update",
        "kind": "readings",
        "cursor": f"{views.epoch}.1",
        "data": reading("p1", 1.5),
    }


async def test_take_now_empties_the_queue_oldest_first_without_waiting() -> None:
    views, queue = Views("default", "local", 10), CoalescingQueue(max_items=10)
    for value in range(5):
        queue.put(views.apply("readings", reading(f"p{value}", float(value))))
    assert [u.device_id for u in queue.take_now(3)] == ["p0", "p1", "p2"]
    assert [u.device_id for u in queue.take_now(10)] == ["p3", "p4"]
    assert queue.take_now(10) == [] and len(queue) == 0
    queue.put(views.apply("readings", reading("p0", 9.0)))  # the key index was forgotten too
    assert (await queue.get(0.01)) is not None


def test_clients_that_name_devices_are_offered_only_those_devices() -> None:
    views, hub = Views("default", "local", 10), LiveHub()
    watchers = []
    for i in range(100):
        client = LiveClient(Principal(f"u{i}", Role.VIEWER, ("acme",)), CoalescingQueue(100))
        client.subscriptions["s"] = Subscription.parse({"id": "s", "devices": [f"p{i}"]})
        watchers.append(client)
    both = LiveClient(Principal("two", Role.VIEWER, ("acme",)), CoalescingQueue(100))
    both.subscriptions["a"] = Subscription.parse({"id": "a", "devices": ["p1"]})
    both.subscriptions["b"] = Subscription.parse(
        {"id": "b", "kinds": ["readings"], "devices": ["p2"]}
    )
    broad = LiveClient(Principal("all", Role.VIEWER, ("acme",)), CoalescingQueue(100))
    broad.subscriptions["s"] = Subscription.parse({"id": "s", "kinds": ["readings"]})
    hub.clients |= {*watchers, both, broad}
    hub.publish([views.apply("readings", reading(f"p{i}", 1.0)) for i in range(5)])
    assert [c.offered for c in watchers[:6]] == [1, 1, 1, 1, 1, 0]
    assert (both.device_scope(), both.offered, broad.device_scope(), broad.offered) == (
        frozenset({"p1", "p2"}),
        2,
        None,
        5,
    )
