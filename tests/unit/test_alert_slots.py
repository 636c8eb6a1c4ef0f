"""The alerts agent's slots: their state is what ``dataclasses.asdict`` gives, and a tick of
partition p visits exactly p's stored slots, parsing no other partition's twice."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from test_stream_steps import DictTable, Event, Message, build

from sentio_iot.streams.agents import alerts as agent
from sentio_iot.streams.alerting.lifecycle import Hit, OpenAlert, Slot

HIT = Hit(5, "warning", "vibration high", {"score": "0.93"}, {"line": "a"})
OPEN = OpenAlert("p/anomaly/7", "critical", "FIRING", 7, 3, "m", {"k": "v"}, {"l": "x"}, 9, 8)


@pytest.mark.parametrize(
    "slot",
    [
        Slot("p", "anomaly"),
        Slot("p", "rul_low", 3, [1, 2, 3], 1, True, HIT, None, 10, 20),
        Slot("p", "device_offline", 5, [], None, False, None, OPEN, 30, 40),
        Slot("p", "anomaly", 1, [4], 4, False, HIT, OpenAlert(**{**asdict(OPEN), "ack_ts": 11})),
    ],
)
def test_a_slots_state_is_what_asdict_gives_and_reads_back(slot: Slot) -> None:
    state = slot.to_state()
    assert state == asdict(slot)
    assert list(state) == list(asdict(slot))  # the same order: the same JSON bytes
    assert Slot.from_state(json.loads(json.dumps(state))) == slot
    state["hits"].append(99)  # a copy: the slot is not changed through its state
    assert 99 not in slot.hits


class Table(DictTable):
    """The alerts table as the agent uses it (it also deletes idle slots)."""

    def __delitem__(self, key: bytes) -> None:
        del self.data[key]


def test_a_tick_visits_its_partitions_slots_and_parses_the_others_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = build(tmp_path, ["alerts"])
    table = Table("alerts")
    for n in range(12):  # 12 pumps with a held RUL condition, in partitions 0, 1 and 2
        slot = Slot(f"pump-{n}", "rul_low", n % 3, [n], n, True, HIT, None, 100, 100)
        table.data[slot.key.encode()] = agent.dump(slot)
    parsed: list[str] = []
    real_loads = json.loads

    def loads(value: Any) -> Any:
        found = real_loads(value)
        parsed.append(found["device_id"])
        return found

    monkeypatch.setattr(agent.json, "loads", loads)
    partitions = agent.Partitions()
    tick = Event(Message("app-alerts-ticks", 1, 0))

    def visit() -> list[str]:
        batch = agent.Batch(app, table, partitions)  # type: ignore[arg-type]
        found = sorted(s.device_id for s in batch.slots_of_partition(1, tick))  # type: ignore[arg-type]
        batch.store()
        return found

    assert visit() == ["pump-1", "pump-10", "pump-4", "pump-7"]
    assert len(parsed) == 12  # the first tick learns every key's partition
    parsed.clear()
    assert visit() == ["pump-1", "pump-10", "pump-4", "pump-7"]
    assert sorted(parsed) == ["pump-1", "pump-10", "pump-4", "pump-7"]  # only partition 1's
    # A slot that appears later (recovered, or written by another worker) is learned once.
    late = Slot("pump-12", "rul_low", 0, [12], 12, True, HIT, None, 100, 100)
    table.data[late.key.encode()] = agent.dump(late)
    parsed.clear()
    assert visit() == ["pump-1", "pump-10", "pump-4", "pump-7"]
    assert sorted(parsed) == ["pump-1", "pump-10", "pump-12", "pump-4", "pump-7"]
