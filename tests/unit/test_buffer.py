"""The store-and-forward disk buffer: order, bound, the three full policies, restarts."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest

from sentio_iot.producers.buffer import (
    BufferedMessage,
    DiskBuffer,
    FullPolicy,
    OutageLog,
    decode_headers,
    encode_headers,
)

# topic (1) + key (1) + value (64) + headers "[]" (2) + row overhead (32) = 100 bytes a row
ROW = 100


def message(number: int, *, id: int | None = None, key: bytes | None = b"k") -> BufferedMessage:
    value = f"{number:064d}".encode()
    return BufferedMessage(id, "t", key, value, [], 1_700_000_000_000 + number)


def numbers(buffer: DiskBuffer) -> list[int]:
    return [int(m.value) for m in buffer.read(limit=1000)]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "buffer" / "modbus.sqlite"


def test_rows_come_back_in_id_order_whatever_the_insert_order(path: Path) -> None:
    buffer = DiskBuffer(path, max_bytes=10_000, policy="drop_oldest")
    for number, id in ((5, 50), (3, 30), (4, 40)):
        assert buffer.append(message(number, id=id)).stored
    assert numbers(buffer) == [3, 4, 5]
    assert [m.id for m in buffer.read(after_id=30, limit=1)] == [40]
    assert (buffer.count, buffer.size_bytes, buffer.last_id()) == (3, 3 * ROW, 50)
    buffer.close()


def test_every_field_survives_including_binary_headers(path: Path) -> None:
    buffer = DiskBuffer(path, max_bytes=10_000, policy="drop_oldest")
    headers = [
        ("traceparent", b"00-" + b"a" * 32 + b"-" + b"b" * 16 + b"-01"),
        ("raw", bytes(range(256))),
        ("none", None),
    ]
    buffer.append(BufferedMessage(7, "sentio.readings", None, b"\x00\x01avro", headers, 123))
    (row,) = buffer.read()
    assert row == BufferedMessage(7, "sentio.readings", None, b"\x00\x01avro", headers, 123)
    assert decode_headers(encode_headers([("text", "é")])) == [("text", "é".encode())]
    buffer.close()


def test_a_repeated_id_is_stored_once(path: Path) -> None:
    buffer = DiskBuffer(path, max_bytes=10_000, policy="drop_oldest")
    assert buffer.append(message(1, id=9)).stored
    assert buffer.append(message(1, id=9)).stored
    assert (buffer.count, buffer.size_bytes, numbers(buffer)) == (1, ROW, [1])
    buffer.close()


def test_a_restart_keeps_the_data_and_never_reuses_ids(path: Path) -> None:
    buffer = DiskBuffer(path, max_bytes=10_000, policy="drop_oldest")
    for number in range(1, 5):
        buffer.append(message(number))
    buffer.delete([1])
    buffer.close()

    reopened = DiskBuffer(path, max_bytes=10_000, policy="drop_oldest")
    assert (reopened.count, reopened.size_bytes, numbers(reopened)) == (3, 3 * ROW, [2, 3, 4])
    assert reopened.delete([2, 3, 4, 99]) == 3
    reopened.close()

    emptied = DiskBuffer(path, max_bytes=10_000, policy="drop_oldest")
    assert (emptied.count, emptied.size_bytes, emptied.last_id()) == (0, 0, 4)
    emptied.append(message(5))
    assert [m.id for m in emptied.read()] == [5]
    emptied.close()


def test_drop_oldest_keeps_the_newest_within_the_bound(path: Path) -> None:
    buffer = DiskBuffer(path, max_bytes=3 * ROW + 50, policy=FullPolicy.DROP_OLDEST)
    for number in range(1, 4):
        assert buffer.append(message(number, key=f"dev-{number}".encode())).dropped == ()
    result = buffer.append(message(4, key=b"dev-4"))
    assert result.stored and result.dropped == (("t", b"dev-1"),)
    assert numbers(buffer) == [2, 3, 4]
    assert buffer.size_bytes == 3 * (ROW + 4)  # the keys "dev-n" are 4 bytes longer than "k"
    buffer.close()


def test_drop_oldest_drops_as_many_as_needed(path: Path) -> None:
    buffer = DiskBuffer(path, max_bytes=3 * ROW, policy="drop_oldest")
    for number in range(1, 4):
        buffer.append(message(number))
    big = BufferedMessage(None, "t", b"k", b"x" * (64 + ROW), [], 0)  # two rows' worth
    result = buffer.append(big)
    assert result.stored and len(result.dropped) == 2
    assert [m.id for m in buffer.read()] == [3, 4]
    assert (buffer.count, buffer.size_bytes) == (2, 3 * ROW)
    buffer.close()


def test_drop_newest_keeps_the_oldest(path: Path) -> None:
    buffer = DiskBuffer(path, max_bytes=3 * ROW, policy="drop_newest")
    for number in range(1, 4):
        assert buffer.append(message(number)).stored
    result = buffer.append(message(4, key=b"dev-4"))
    assert (result.stored, result.full, result.dropped) == (False, False, (("t", b"dev-4"),))
    assert numbers(buffer) == [1, 2, 3]
    buffer.close()


def test_block_refuses_until_there_is_room(path: Path) -> None:
    buffer = DiskBuffer(path, max_bytes=3 * ROW, policy="block")
    for number in range(1, 4):
        buffer.append(message(number))
    result = buffer.append(message(4))
    assert (result.stored, result.full, result.dropped) == (False, True, ())
    assert buffer.wait_for_room(ROW, timeout_s=0) is False

    woke: list[bool] = []
    waiting = threading.Thread(target=lambda: woke.append(buffer.wait_for_room(ROW, timeout_s=30)))
    waiting.start()
    buffer.delete([1])
    waiting.join(timeout=30)
    assert woke == [True]
    assert buffer.append(message(4)).stored
    assert numbers(buffer) == [2, 3, 4]
    buffer.close()


def test_force_stores_beyond_the_bound_and_oversized_messages_are_dropped(path: Path) -> None:
    for policy in FullPolicy:
        buffer = DiskBuffer(path.with_name(f"{policy}.sqlite"), max_bytes=2 * ROW, policy=policy)
        for number in range(1, 4):
            buffer.append(message(number), force=True)
        assert (buffer.count, numbers(buffer)) == (3, [1, 2, 3]), policy
        huge = BufferedMessage(None, "t", b"k", b"x" * 1000, [], 0)
        result = buffer.append(huge)
        assert (result.stored, result.dropped) == (False, (("t", b"k"),)), policy
        buffer.close()


def test_outage_log_is_loud_but_collapses_drops(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    outage = OutageLog(Path("/var/buffer.sqlite"), policy="drop_oldest", clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="sentio_iot.producers.buffer")
    outage.started("all brokers down", already=0)
    outage.buffered = 10
    outage.dropped(2, left=8)
    outage.dropped(3, left=8)  # within 5 s of the last line: counted, not logged
    now[0] += 6
    outage.dropped(1, left=8)
    outage.dropped(4, left=8)
    outage.replayed = 8
    now[0] += 4
    outage.ended(unconfirmed=0)
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "buffering to /var/buffer.sqlite: all brokers down (0 message(s) already there)",
        ),
        (
            "ERROR",
            "buffer full (policy drop_oldest): dropped 2 message(s), 2 in this outage; 8 kept",
        ),
        (
            "ERROR",
            "buffer full (policy drop_oldest): dropped 4 message(s), 6 in this outage; 8 kept",
        ),
        ("ERROR", "buffer full: dropped 4 more message(s)"),
        (
            "WARNING",
            "buffer drained after 10.0 s: 10 buffered, 8 replayed, 10 dropped (0 awaiting confirmation); publishing directly again",
        ),
    ]
