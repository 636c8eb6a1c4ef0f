"""Live state: what an agent remembers per key, in memory, written to its table once per commit.

A Faust table write costs a serialisation, a RocksDB put and a changelog record. Writing each
touched key after every batch cost more than the work itself (the anomaly agent spent most of
its time turning detector state into JSON and back). :class:`LiveStates` keeps the live
objects in memory instead:

- :meth:`LiveStates.get` answers from memory, else from the table (once per key, after a
  start or a rebalance), decoding the stored bytes;
- :meth:`LiveStates.put` keeps the object and marks the key dirty with the event it came from;
- :meth:`LiveStates.flush` writes every dirty key to the table, each once, in the partition of
  its event. The app calls it inside the commit (see ``StreamApp``): no batch is open then,
  so the changelog records join the same transaction as the offsets of every event they
  reflect, and exactly once holds as when each batch wrote its keys;
- :meth:`LiveStates.forget` drops the objects of partitions this worker no longer owns (after
  the revoke's commit flushed them).

Memory: one live object per key the worker owns (see docs/benchmarks.md for bytes per key).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

import msgpack
import orjson
from faust.types import TableT

from sentio_iot.streams.faust_ext import Event, in_partition_of

log = logging.getLogger(__name__)

S = TypeVar("S")


class LiveStates(Generic[S]):
    """The live states of one table: ``key -> (state, partition)``, dirty keys flushed at commit."""

    def __init__(
        self,
        table: TableT[bytes, bytes],
        load: Callable[[bytes], S | None],
        dump: Callable[[S], bytes],
    ) -> None:
        self.table = table
        self._load = load
        self._dump = dump
        self._live: dict[str, tuple[S, int]] = {}
        self._dirty: dict[str, Event] = {}
        self.scanned: set[int] = set()
        """Partitions whose stored states were all brought to life (by the owner's scan)."""
        self.replayed = False
        """Written only at snapshots, not at every commit (``snapshots.py``)."""

    @property
    def name(self) -> str:
        return str(self.table.name)

    def __contains__(self, key: str) -> bool:
        return key in self._live

    @property
    def dirty(self) -> int:
        return len(self._dirty)

    def dirty_in(self, partition: int) -> int:
        """How many keys of ``partition`` changed since they were last written."""
        return sum(1 for event in self._dirty.values() if event.message.partition == partition)

    def get(self, key: str, event: Event) -> S | None:
        """The state of ``key``: from memory, else from the table in ``event``'s partition."""
        found = self._live.get(key)
        if found is not None:
            return found[0]
        with in_partition_of(event):
            stored = self.table.get(key.encode())
        if stored is None:
            return None
        try:
            state = self._load(stored)
        except (ValueError, TypeError, KeyError) as exc:  # unreadable: start that key again
            log.warning("table %s: state of %s dropped (%s)", self.name, key, exc)
            return None
        if state is not None:
            self._live[key] = (state, event.message.partition)
        return state

    def put(self, key: str, state: S, event: Event) -> None:
        """Keep ``state`` for ``key`` (it came from ``event``); written at the next commit."""
        self._live[key] = (state, event.message.partition)
        self._dirty[key] = event

    def adopt(self, key: str, state: S, partition: int) -> None:
        """Keep a state read from the table by the owner (unchanged: nothing to write)."""
        self._live[key] = (state, partition)

    def of_partition(self, partition: int) -> Iterator[tuple[str, S]]:
        """The live states of a partition (a subset of the table's keys)."""
        for key, (state, part) in list(self._live.items()):
            if part == partition:
                yield key, state

    def flush(self) -> int:
        """Write each dirty key once to the table (its changelog); how many were written."""
        dirty, self._dirty = self._dirty, {}
        by_partition: dict[int, tuple[Event, list[str]]] = {}
        for key, event in dirty.items():
            found = by_partition.get(event.message.partition)
            if found is None:
                by_partition[event.message.partition] = (event, [key])
            else:
                found[1].append(key)
        return sum(self._write(keys, event) for event, keys in by_partition.values())

    def flush_partition(self, partition: int, event: Event) -> int:
        """Write the dirty keys of ``partition`` (a snapshot, ``snapshots.py``) in the
        partition of ``event``; how many were written."""
        keys = [k for k, e in self._dirty.items() if e.message.partition == partition]
        for key in keys:
            del self._dirty[key]
        return self._write(keys, event)

    def _write(self, keys: list[str], event: Event) -> int:
        """Write ``keys`` (all of ``event``'s partition): one current event for all of them."""
        written = 0
        table, dump, live = self.table, self._dump, self._live
        with in_partition_of(event):
            for key in keys:
                found = live.get(key)
                if found is not None:
                    table[key.encode()] = dump(found[0])
                    written += 1
        return written

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the live states (and unflushed changes) of partitions no longer owned."""
        gone = set(partitions)
        if not gone:
            return
        self.scanned -= gone
        self._live = {k: v for k, v in self._live.items() if v[1] not in gone}
        self._dirty = {k: e for k, e in self._dirty.items() if e.message.partition not in gone}


def dump_state(state: Any) -> bytes:
    """A state as MessagePack: floats in 9 bytes instead of JSON's ~18 characters.

    A commit writes every changed state to its changelog; at 1 reading/s per device every
    device changes between two commits, so these bytes are most of what a commit sends and
    what the broker must store. MessagePack halves the anomaly record (the largest: the
    detector's windows are floats) and keeps ints and floats apart, so a state comes back
    exactly as it went (see docs/benchmarks.md).
    """
    packed: bytes = msgpack.packb(state, use_bin_type=True)
    return packed


def load_state(raw: bytes) -> Any:
    """A state from :func:`dump_state`, or JSON written by older workers.

    A JSON state starts with ``{`` or ``[``; MessagePack encodes those bytes as a bare
    integer, which no state is, so the first byte tells the two apart.
    """
    if raw[:1] in (b"{", b"["):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:  # NaN/Infinity written by json.dumps
            return json.loads(raw)
    return msgpack.unpackb(raw, raw=False, strict_map_key=False)
