"""The live API's parts on exact values: the coalescing queue, the views' cursor and
resume, subscriptions and tenants, and which VictoriaMetrics series a range and step read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sentio_iot.api.client_queue import Outbox, encode
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


async def test_outbox_keeps_every_frame_while_there_is_room() -> None:
    views, outbox = Views("default", "local", 10), Outbox(max_updates=4)
    for value in (1.0, 2.0, 3.0):
        for frame in encode([views.apply("readings", reading("p1", value))], 1):
            outbox.push(frame)
    got = [await outbox.get(0.01) for _ in range(3)]
    assert [f.updates[0].data["metrics"][0]["value"] for f in got if f] == [1.0, 2.0, 3.0]
    assert await outbox.get(0.01) is None  # empty: the heartbeat's turn
    assert outbox.take_behind() is None


async def test_a_full_outbox_drops_what_waits_and_marks_the_client_behind() -> None:
    views, outbox = Views("default", "local", 10), Outbox(max_updates=3)
    updates = [views.apply("readings", reading(f"p{i}", 1.0)) for i in range(4)]
    outbox.push(encode(updates[:2], 2)[0])  # 2 of 3
    outbox.push(encode(updates[2:], 2)[0])  # 4 > 3: both frames dropped, behind
    assert (len(outbox), outbox.behind, outbox.coalesced, outbox.overflows) == (0, True, 4, 1)
    outbox.push(encode([views.apply("readings", reading("p0", 2.0))], 1)[0])  # still behind
    assert await outbox.get(0.01) is None  # no waiting: the sender catches up from the views
    assert (outbox.take_behind(), outbox.behind, outbox.coalesced) == (5, False, 5)
    assert outbox.take_behind() is None


def test_frames_join_the_cached_texts_of_at_most_batch_updates() -> None:
    views = Views("default", "local", 10)
    updates = [views.apply("readings", reading(f"p{i}", float(i))) for i in range(5)]
    frames = encode(updates, 2)
    assert [f.count for f in frames] == [2, 2, 1]
    assert json.loads(frames[0].text) == {
        "type": "updates",
        "items": [json.loads(updates[0].message), json.loads(updates[1].message)],
    }
    assert frames[2].text is updates[4].message  # one update alone is its own message
    assert [f.last_seq for f in frames] == [2, 4, 5]


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
    acme = LiveClient(Principal("vic", Role.VIEWER, ("acme",)), Outbox(100))
    acme.subscriptions["s"] = Subscription.parse(
        {"id": "s", "kinds": ["readings"], "devices": ["p1", "p9"]}
    )
    everyone = LiveClient(Principal("ada", Role.ADMIN, ("*",)), Outbox(100))
    everyone.subscriptions["s"] = Subscription.parse({"id": "s", "metrics": ["temp"]})
    hub.join(acme)
    hub.join(everyone)
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


def test_clients_that_name_devices_are_offered_only_those_devices() -> None:
    views, hub = Views("default", "local", 10), LiveHub()
    watchers = []
    for i in range(100):
        client = LiveClient(Principal(f"u{i}", Role.VIEWER, ("acme",)), Outbox(100))
        client.subscriptions["s"] = Subscription.parse({"id": "s", "devices": [f"p{i}"]})
        watchers.append(client)
    both = LiveClient(Principal("two", Role.VIEWER, ("acme",)), Outbox(100))
    both.subscriptions["a"] = Subscription.parse({"id": "a", "devices": ["p1"]})
    both.subscriptions["b"] = Subscription.parse(
        {"id": "b", "kinds": ["readings"], "devices": ["p2"]}
    )
    broad = LiveClient(Principal("all", Role.VIEWER, ("acme",)), Outbox(100))
    broad.subscriptions["s"] = Subscription.parse({"id": "s", "kinds": ["readings"]})
    for client in (*watchers, both, broad):
        hub.join(client)
    hub.publish([views.apply("readings", reading(f"p{i}", 1.0)) for i in range(5)])
    assert [c.offered for c in watchers[:6]] == [1, 1, 1, 1, 1, 0]
    assert (both.device_scope(), both.offered, broad.device_scope(), broad.offered) == (
        frozenset({"p1", "p2"}),
        2,
        None,
        5,
    )


def test_clients_with_the_same_filter_share_each_frame_encoded_once() -> None:
    views, hub = Views("default", "local", 10), LiveHub()
    clients = []
    for i in range(50):
        client = LiveClient(Principal(f"u{i}", Role.VIEWER, ("acme",)), Outbox(100), batch=10)
        client.subscriptions[f"s{i}"] = Subscription.parse({"id": f"s{i}", "kinds": ["readings"]})
        hub.join(client)
        clients.append(client)
    other = LiveClient(Principal("g", Role.VIEWER, ("globex",)), Outbox(100), batch=10)
    other.subscriptions["s"] = Subscription.parse({"id": "s", "kinds": ["readings"]})
    hub.join(other)
    assert len(hub.groups) == 2  # same filter and batch, whatever the subscription ids
    hub.publish([views.apply("readings", reading(f"p{i}", 1.0)) for i in range(15)])
    first = clients[0].outbox.frames
    assert [f.count for f in first] == [10, 5] and hub.frames_encoded == 2
    assert all(c.outbox.frames[0] is first[0] for c in clients)  # the same object, not a copy
    assert len(other.outbox) == 0  # another tenant's readings
    clients[0].subscriptions["s0"] = Subscription.parse({"id": "s0", "devices": ["p3"]})
    hub.regroup(clients[0])
    clients[0].refilter()
    assert len(hub.groups) == 3
    assert [u.device_id for f in clients[0].outbox.frames for u in f.updates] == ["p3"]
    for client in clients:
        hub.leave(client)
    hub.leave(other)
    assert (hub.groups, hub.clients) == ({}, set())


async def test_offer_sends_a_quiet_batch_at_once_and_paces_the_rest() -> None:
    import asyncio

    views = Views("default", "local", 10)
    hub = LiveHub(frame_interval_s=0.05, max_frames_per_s=10)  # one client: 0.1 s, capped 0.05
    client = LiveClient(Principal("u", Role.VIEWER, ("acme",)), Outbox(100), batch=100)
    client.subscriptions["s"] = Subscription.parse({"id": "s"})
    hub.join(client)
    hub.offer([views.apply("readings", reading("p0", 0.0))])
    assert len(client.outbox.frames) == 1  # the first after a quiet spell: at once
    for i in range(1, 6):
        hub.offer([views.apply("readings", reading(f"p{i}", 0.0))])
    assert len(client.outbox.frames) == 1  # the next ones wait for the interval
    await asyncio.sleep(0.1)
    assert [f.count for f in client.outbox.frames] == [1, 5]  # and go in one frame


def test_few_clients_are_sent_each_batch_at_once() -> None:
    views, hub = Views("default", "local", 10), LiveHub(frame_interval_s=0.05)  # 20,000/s
    client = LiveClient(Principal("u", Role.VIEWER, ("acme",)), Outbox(100), batch=100)
    client.subscriptions["s"] = Subscription.parse({"id": "s"})
    hub.join(client)
    for i in range(3):  # no event loop needed: nothing waits
        hub.offer([views.apply("readings", reading(f"p{i}", 0.0))])
    assert [f.count for f in client.outbox.frames] == [1, 1, 1]


def test_clients_of_a_group_that_fall_behind_together_share_one_filtered_snapshot() -> None:
    views, hub = Views("default", "local", 10), LiveHub()
    clients = []
    for i in range(3):
        client = LiveClient(Principal(f"u{i}", Role.VIEWER, ("acme",)), Outbox(100))
        client.subscriptions["s"] = Subscription.parse({"id": "s", "kinds": ["readings"]})
        hub.join(client)
        clients.append(client)
    for i in range(6):
        views.apply("readings", reading(f"p{i % 3}", float(i)))  # p0..p2 twice: seq 1..6
    views.apply("readings", reading("g1", 1.0, tenant="globex"))  # seq 7: not theirs
    event = {"device_id": "p1", "ts": 1, "kind": "OFFLINE", "message": "", "source": "streams"}
    views.apply("device_events", {**event, "details": {}, "labels": {"tenant": "acme"}})  # seq 8
    got = [
        [u.seq for u in hub.catch_up(c, views, since)]
        for c, since in zip(clients, (0, 4, 6), strict=True)
    ]
    assert got == [[4, 5, 6], [5, 6], []]  # the latest per device newer than each cursor
    assert hub.snapshots_built == 1  # filtered once for the three
    assert [u.seq for u in views.since(4)] == [5, 6, 7, 8]
    views.apply("readings", reading("p0", 9.0))  # the views moved: a new snapshot
    assert [u.seq for u in hub.catch_up(clients[0], views, 5)] == [6, 9]
    assert hub.snapshots_built == 2
