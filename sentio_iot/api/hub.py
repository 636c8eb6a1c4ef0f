"""Fan-out of view updates to live clients, each filtered by its subscriptions and tenants.

Clients with the same filter (tenants and subscriptions) and the same batch size form a
:class:`FanoutGroup`. ``publish`` runs on the event loop, selects each group's updates
once, encodes them once into frames and puts the same frames into every member's bounded
:class:`Outbox`: a batch costs O(updates x groups + frames x clients), never a
serialisation per client, and a slow client never slows the feed or the other clients.
``offer`` paces ``publish`` so that a fast feed of small batches does not become as many
small frames per client: rounds of frames are at least (subscribed clients /
``max_frames_per_s``) apart, at most ``frame_interval_s``; one client is sent each batch at
once, a thousand wait up to 50 ms for the next round (the defaults).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sentio_iot.api.client_queue import Frame, Outbox, encode
from sentio_iot.api.principal import Principal
from sentio_iot.api.roles import ALL_TENANTS
from sentio_iot.api.views import EVERY_TENANT, KINDS, Update, Views


def visible(principal: Principal, update: Update) -> bool:
    """Whether the caller's tenants cover the update (pipeline health: every caller)."""
    return update.tenant == EVERY_TENANT or principal.sees(update.tenant)


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

    @property
    def filter(self) -> tuple[frozenset[str], ...]:
        """What it matches, without its id: equal filters match the same updates."""
        return (self.kinds, self.devices, self.sites, self.metrics)

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


GroupKey = tuple[frozenset[str], frozenset[tuple[frozenset[str], ...]], int]


@dataclass(eq=False)
class LiveClient:
    principal: Principal
    outbox: Outbox
    batch: int = 1  # most updates in one frame
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    offered: int = 0  # updates put into the outbox
    sent: int = 0  # updates sent to the client

    def wants(self, update: Update) -> bool:
        return visible(self.principal, update) and any(
            sub.matches(update) for sub in self.subscriptions.values()
        )

    def device_scope(self) -> frozenset[str] | None:
        """The devices some subscription names, or None when one takes every device."""
        return _device_scope(self.subscriptions.values())

    def group_key(self) -> GroupKey | None:
        """Clients with equal keys are sent the same frames; None: nothing subscribed."""
        if not self.subscriptions:
            return None
        filters = frozenset(sub.filter for sub in self.subscriptions.values())
        return frozenset(self.principal.tenants), filters, self.batch

    def push(self, frames: Sequence[Frame]) -> None:
        for frame in frames:
            self.offered += frame.count
            self.outbox.push(frame)

    def refilter(self) -> None:
        """After a subscription or tenant change: keep only wanted updates already queued."""
        kept: list[Frame] = []
        for frame in self.outbox.frames:
            wanted = [u for u in frame.updates if self.wants(u)]
            if len(wanted) == frame.count:
                kept.append(frame)
            elif wanted:
                kept.extend(encode(wanted, self.batch))
        self.outbox.replace(kept)


def _device_scope(subscriptions: Iterable[Subscription]) -> frozenset[str] | None:
    devices: set[str] = set()
    for sub in subscriptions:
        if not sub.devices:
            return None
        devices |= sub.devices
    return frozenset(devices)


class FanoutGroup:
    """Clients that want the same updates in the same frames."""

    def __init__(self, key: GroupKey, client: LiveClient) -> None:
        self.key = key
        self.tenants = key[0]
        self.batch = key[2]
        self.subscriptions = tuple(client.subscriptions.values())
        self.devices = _device_scope(self.subscriptions)
        self.clients: set[LiveClient] = set()
        self.see_all = ALL_TENANTS in self.tenants

    def wants(self, update: Update) -> bool:
        see = self.see_all or update.tenant in self.tenants or update.tenant == EVERY_TENANT
        return see and any(sub.matches(update) for sub in self.subscriptions)


class LiveHub:
    def __init__(self, frame_interval_s: float = 0.0, max_frames_per_s: float = 20_000) -> None:
        self.frame_interval_s = frame_interval_s
        self.max_frames_per_s = max_frames_per_s
        self.clients: set[LiveClient] = set()
        self.groups: dict[GroupKey, FanoutGroup] = {}
        self._member: dict[LiveClient, GroupKey] = {}
        self._broad: list[FanoutGroup] = []
        self._by_device: dict[str, list[FanoutGroup]] = {}
        self._index_stale = False
        self.published = 0
        self.frames_encoded = 0
        self.sent_before = 0  # sent to clients that have gone (their counts end with them)
        self.coalesced_before = 0
        self.overflows_before = 0
        self.slow_disconnects = 0  # clients closed because a frame could not be sent in time
        self._pending: list[Update] = []
        self._snapshots: dict[GroupKey, tuple[int, list[int], list[Update]]] = {}
        self.snapshots_built = 0
        self._flush: asyncio.TimerHandle | None = None
        self._last_flush = float("-inf")

    def join(self, client: LiveClient) -> None:
        self.clients.add(client)
        self.regroup(client)

    def leave(self, client: LiveClient) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self._ungroup(client)
            self.sent_before += client.sent
            self.coalesced_before += client.outbox.coalesced
            self.overflows_before += client.outbox.overflows

    def regroup(self, client: LiveClient) -> None:
        """Call after the client's subscriptions or principal changed."""
        self._ungroup(client)
        key = client.group_key()
        if key is None or client not in self.clients:
            return
        group = self.groups.get(key)
        if group is None:
            group = self.groups[key] = FanoutGroup(key, client)
            self._index_stale = True
        group.clients.add(client)
        self._member[client] = key

    def _ungroup(self, client: LiveClient) -> None:
        key = self._member.pop(client, None)
        if key is None:
            return
        group = self.groups[key]
        group.clients.discard(client)
        if not group.clients:
            del self.groups[key]
            self._snapshots.pop(key, None)
            self._index_stale = True

    def _index(self) -> None:
        """Groups whose subscriptions all name devices are looked up by the update's device:
        an update costs what its interested groups cost, not what all groups cost."""
        self._broad, self._by_device = [], {}
        for group in self.groups.values():
            if group.devices is None:
                self._broad.append(group)
            else:
                for device in group.devices:
                    self._by_device.setdefault(device, []).append(group)
        self._index_stale = False

    def publish(self, updates: Sequence[Update]) -> None:
        """Encode each group's updates once and put the frames into every member's outbox."""
        self.published += len(updates)
        if not updates or not self.groups:
            return
        if self._index_stale:
            self._index()
        chosen: dict[FanoutGroup, list[Update]] = {}
        for group in self._broad:
            wanted = [u for u in updates if group.wants(u)]
            if wanted:
                chosen[group] = wanted
        if self._by_device:
            for update in updates:
                for group in self._by_device.get(update.device_id, ()):
                    if group.wants(update):
                        chosen.setdefault(group, []).append(update)
        for group, wanted in chosen.items():
            frames = encode(wanted, group.batch)
            self.frames_encoded += len(frames)
            for client in group.clients:
                client.push(frames)

    def catch_up(self, client: LiveClient, views: Views, since: int) -> list[Update]:
        """What ``client`` wants of the views newer than ``since``, oldest first. Filtered once
        per group and views state: when many clients fall behind at once (a burst), each
        costs a bisect, not a pass over the views."""
        key = self._member.get(client)
        if key is None:
            return [u for u in views.since(since) if client.wants(u)]
        snapshot = self._snapshots.get(key)
        if snapshot is None or snapshot[0] != views.seq:
            group = self.groups[key]
            wanted = [u for u in views.since(0) if group.wants(u)]
            snapshot = (views.seq, [u.seq for u in wanted], wanted)
            self._snapshots[key] = snapshot
            self.snapshots_built += 1
        _, seqs, wanted = snapshot
        return wanted[bisect_right(seqs, since) :]

    def offer(self, updates: Sequence[Update]) -> None:
        """``publish``, paced: the first batch after a quiet spell goes at once, later ones
        within the interval wait for it and go together."""
        interval = min(self.frame_interval_s, len(self._member) / self.max_frames_per_s)
        if interval <= 0 or (self._flush is None and not self._pending and interval < 1e-3):
            self.publish(updates)  # no pacing, or too few clients for it to matter
            return
        self._pending.extend(updates)
        if self._flush is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._last_flush + interval - loop.time()
        if wait <= 0:
            self.flush()
        else:
            self._flush = loop.call_later(wait, self.flush)

    def flush(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._last_flush = asyncio.get_running_loop().time()
        updates, self._pending = self._pending, []
        self.publish(updates)
