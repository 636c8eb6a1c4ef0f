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
        "Updates replaced in a full client queue by a newer one of the same key.",
        "counter",
        (),
    )
    coalesced.inc(by=svc.hub.coalesced_before + sum(c.queue.coalesced for c in svc.hub.clients))
    devices = Family("sentio_api_view_devices", "Devices in the views.", "gauge", ())
    devices.inc(by=len(svc.views.devices))
    return render_families([records, clients, sent, coalesced, devices])
