"""Fan-out of view updates to live clients, each filtered by its subscriptions and tenants.

``publish`` runs on the event loop and only puts into each client's bounded coalescing
queue, so a slow client never slows the feed or the other clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sentio_iot.api.client_queue import CoalescingQueue
from sentio_iot.api.principal import Principal
from sentio_iot.api.views import KINDS, Update


class SubscriptionError(ValueError):
    """A subscribe message that cannot be honoured; the text says which field and why."""


@dataclass(frozen=True)
class Subscription:
    """Empty sets match everything; the sets of one subscription must all match."""

    id: str
    kinds: frozenset[str] = frozenset()
    devices: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    metrics: frozenset[str] = frozenset()

    def matches(self, update: Update) -> bool:
        return (
            (not self.kinds or update.kind in self.kinds)
            and (not self.devices or update.device_id in self.devices)
            and (not self.sites or update.site in self.sites)
            and (not self.metrics or not update.metrics or bool(self.metrics & update.metrics))
        )

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> Subscription:
        sub_id = message.get("id")
        if not isinstance(sub_id, str) or not 0 < len(sub_id) <= 64:
            raise SubscriptionError("id: give the subscription a string id of 1-64 characters")
        sets: dict[str, frozenset[str]] = {}
        for name in ("kinds", "devices", "sites", "metrics"):
            value = message.get(name) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SubscriptionError(f"{name}: must be a list of strings")
            if len(value) > 1000:
                raise SubscriptionError(f"{name}: at most 1000 entries")
            sets[name] = frozenset(value)
        unknown = sets["kinds"] - set(KINDS)
        if unknown:
            raise SubscriptionError(
                f"kinds: unknown {', '.join(sorted(unknown))}; kinds are {', '.join(KINDS)}"
            )
        return cls(sub_id, **sets)


@dataclass(eq=False)
class LiveClient:
    principal: Principal
    queue: CoalescingQueue
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    offered: int = 0  # updates put into the queue
    sent: int = 0  # updates sent to the client

    def wants(self, update: Update) -> bool:
        return self.principal.sees(update.tenant) and any(
            sub.matches(update) for sub in self.subscriptions.values()
        )

    def device_scope(self) -> frozenset[str] | None:
        """The devices some subscription names, or None when one takes every device."""
        devices: set[str] = set()
        for sub in self.subscriptions.values():
            if not sub.devices:
                return None
            devices |= sub.devices
        return frozenset(devices)

    def offer(self, update: Update) -> None:
        if self.wants(update):
            self.offered += 1
            self.queue.put(update)


class LiveHub:
    def __init__(self) -> None:
        self.clients: set[LiveClient] = set()
        self.published = 0
        self.sent_before = 0  # sent to clients that have gone (their counts end with them)
        self.coalesced_before = 0

    def leave(self, client: LiveClient) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.sent_before += client.sent
            self.coalesced_before += client.queue.coalesced

    def publish(self, updates: Iterable[Update]) -> None:
        """Offer each update to the clients that may want it. Clients whose subscriptions all
        name devices are looked up by the update's device, so an update costs what its
        interested clients cost, not what all clients cost (the index is rebuilt per batch:
        subscriptions change between batches)."""
        broad: list[LiveClient] = []
        by_device: dict[str, list[LiveClient]] = {}
        for client in self.clients:
            if not client.subscriptions:
                continue
            devices = client.device_scope()
            if devices is None:
                broad.append(client)
            else:
                for device in devices:
                    by_device.setdefault(device, []).append(client)
        for update in updates:
            self.published += 1
            for client in broad:
                client.offer(update)
            for client in by_device.get(update.device_id, ()):
                client.offer(update)
