"""The API's /metrics (Prometheus text), read by `sentio run`'s live view and by Prometheus."""

from __future__ import annotations

from sentio_iot.api.services import Services
from sentio_iot.prometheus import Family, render_families

RECORDS = "sentio_api_view_records_total"


def render_metrics(svc: Services) -> str:
    records = Family(RECORDS, "Records read from the derived topics into the views.", "counter", ())
    records.inc(by=svc.feed_records)
    clients = Family("sentio_api_live_clients", "Open WebSocket connections.", "gauge", ())
    clients.inc(by=len(svc.hub.clients))
    sent = Family("sentio_api_live_messages_total", "Updates sent to live clients.", "counter", ())
    sent.inc(by=svc.hub.sent_before + sum(c.sent for c in svc.hub.clients))
    coalesced = Family(
        "sentio_api_live_coalesced_total",
        "Updates dropped from a slow client's full queue; it was sent the latest per key instead.",
        "counter",
        (),
    )
    hub = svc.hub
    coalesced.inc(by=hub.coalesced_before + sum(c.outbox.coalesced for c in hub.clients))
    overflows = Family(
        "sentio_api_live_overflows_total",
        "Times a live client's queue overflowed and it was caught up from the views.",
        "counter",
        (),
    )
    overflows.inc(by=hub.overflows_before + sum(c.outbox.overflows for c in hub.clients))
    slow = Family(
        "sentio_api_live_slow_disconnects_total",
        "Live clients closed (4429) because a frame could not be sent in api.live.stall_timeout_s.",
        "counter",
        (),
    )
    slow.inc(by=hub.slow_disconnects)
    frames = Family(
        "sentio_api_live_frames_encoded_total",
        "Frames encoded for live clients (once per group of clients with the same filter).",
        "counter",
        (),
    )
    frames.inc(by=hub.frames_encoded)
    groups = Family(
        "sentio_api_live_groups", "Groups of clients sent the same frames.", "gauge", ()
    )
    groups.inc(by=len(hub.groups))
    devices = Family("sentio_api_view_devices", "Devices in the views.", "gauge", ())
    devices.inc(by=len(svc.views.devices))
    acks = Family(
        "sentio_api_alertmanager_acks_total",
        "Alerts acknowledged because someone silenced them in Alertmanager (the API relays them).",
        "counter",
        (),
    )
    acks.inc(by=svc.silence_relay.acks if svc.silence_relay is not None else 0)
    return render_families(
        [records, clients, sent, coalesced, overflows, slow, frames, groups, devices, acks]
    )
