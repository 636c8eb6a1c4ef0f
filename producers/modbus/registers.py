"""Register maps as pure functions: which requests to send, and how to decode the answers.

``plan_reads`` groups a device's values into as few requests as the Modbus limits allow;
``decode_block`` turns one answered request back into metrics. Nothing here does I/O, so
both are tested from known register words alone.

Byte orders use Telegraf's names for how the bytes of a value arrive, A being the most
significant: ABCD big-endian, DCBA little-endian, BADC big-endian words with their two
bytes swapped, CDAB little-endian word order (words swapped). For 64-bit values the word
order covers all four words (CDAB arrives as GH EF CD AB); for 16-bit values only the byte
swap applies (BADC and DCBA arrive as BA). A STRING holds two ASCII characters per
register; BADC and DCBA swap the two characters of each register, word order is ignored.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from sentio_iot.errors import DataError
from sentio_iot.producers.modbus.config import (
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    ByteOrder,
    DataType,
    RegisterConfig,
    RegisterKind,
)
from sentio_iot.records import Metric, Quality

BIT_TABLES = (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT)

STRUCT_FORMAT = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.UINT64: ">Q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read of ``count`` registers (or bits) from ``address`` in one table."""

    kind: RegisterKind
    address: int
    count: int
    registers: tuple[RegisterConfig, ...]

    @property
    def last(self) -> int:
        """The last address read."""
        return self.address + self.count - 1

    def describe(self) -> str:
        return f"{self.kind.value} {self.address}..{self.last}"


def read_limit(kind: RegisterKind) -> int:
    """Most registers (or bits) one request may ask for in this table."""
    return MAX_BITS_PER_READ if kind in BIT_TABLES else MAX_REGISTERS_PER_READ


def plan_reads(registers: Sequence[RegisterConfig], max_gap: int) -> list[ReadRequest]:
    """Group values into requests: one per run of values at most ``max_gap`` unused addresses apart.

    A value is never split between requests, and no request exceeds the table's limit (125
    registers, 2000 bits). Values may overlap (two bits of one register, a word inside a
    wider value): they share the request. Requests come table by table, in address order.
    """
    requests: list[ReadRequest] = []
    for kind in RegisterKind:
        in_table = sorted(
            (r for r in registers if r.kind is kind), key=lambda r: (r.address, r.width)
        )
        limit = read_limit(kind)
        group: list[RegisterConfig] = []
        start = end = 0  # first and last address of the group
        for register in in_table:
            register_end = register.address + register.width - 1
            if group:
                gap = register.address - end - 1
                new_end = max(end, register_end)
                if gap <= max_gap and new_end - start + 1 <= limit:
                    group.append(register)
                    end = new_end
                    continue
                requests.append(ReadRequest(kind, start, end - start + 1, tuple(group)))
            group, start, end = [register], register.address, register_end
        if group:
            requests.append(ReadRequest(kind, start, end - start + 1, tuple(group)))
    return requests


def big_endian_bytes(words: Sequence[int], byte_order: ByteOrder) -> bytes:
    """Reorder the bytes of register words as received into one big-endian (ABCD) byte string."""
    if byte_order in (ByteOrder.CDAB, ByteOrder.DCBA):
        words = words[::-1]
    swap = byte_order in (ByteOrder.BADC, ByteOrder.DCBA)
    return b"".join(_word_bytes(word, swap) for word in words)


def decode_registers(register: RegisterConfig, words: Sequence[int]) -> Metric:
    """The metric held in ``words`` (exactly ``register.width`` register values as received).

    Numbers become ``raw * scale + offset`` (64-bit integers lose precision past 2**53, as
    every float does). BOOL is 1.0 or 0.0, unscaled: the given ``bit`` of the register, or
    whether the register is non-zero. STRING goes to ``text`` with ``value`` None. A float
    that is NaN or infinite has no value: quality BAD, the raw value in ``text``.
    """
    if len(words) != register.width:
        raise ValueError(f"{register.name} spans {register.width} registers, got {len(words)}")
    unit = register.unit
    if register.data_type is DataType.STRING:
        return Metric(register.name, None, unit, Quality.GOOD, decode_string(words, register))
    if register.data_type is DataType.BOOL:
        word = _unsigned16(words[0], register.byte_order)
        is_set = (word >> register.bit) & 1 if register.bit is not None else word != 0
        return Metric(register.name, 1.0 if is_set else 0.0, unit)
    raw = struct.unpack(
        STRUCT_FORMAT[register.data_type], big_endian_bytes(words, register.byte_order)
    )[0]
    if isinstance(raw, float) and not math.isfinite(raw):
        return Metric(register.name, None, unit, Quality.BAD, str(raw))
    value = raw * register.scale + register.offset
    if not math.isfinite(value):  # a huge scale overflows: no value, the raw one kept
        return Metric(register.name, None, unit, Quality.BAD, str(raw))
    return Metric(register.name, value, unit)


def decode_string(words: Sequence[int], register: RegisterConfig) -> str:
    """Two ASCII characters per register; trailing NULs and spaces dropped."""
    swap = register.byte_order in (ByteOrder.BADC, ByteOrder.DCBA)
    raw = b"".join(_word_bytes(word, swap) for word in words)
    return raw.decode("ascii", errors="replace").rstrip("\x00 ")


def decode_bit(register: RegisterConfig, is_set: bool) -> Metric:
    """A coil or discrete input: 1.0 or 0.0."""
    return Metric(register.name, 1.0 if is_set else 0.0, register.unit)


class ShortAnswer(DataError, ValueError):
    """The device answered with fewer values than were asked for."""


def decode_block(request: ReadRequest, values: Sequence[int] | Sequence[bool]) -> list[Metric]:
    """Metrics of every value in ``request`` from its answer (words, or bits for bit tables).

    Bit answers come padded to whole bytes; only the first ``request.count`` are used.
    ShortAnswer (a DataError) when the answer holds fewer.
    """
    if len(values) < request.count:
        raise ShortAnswer(
            f"{request.describe()}: answer holds {len(values)} values, not {request.count}"
        )
    metrics = []
    for register in request.registers:
        at = register.address - request.address
        if request.kind in BIT_TABLES:
            metrics.append(decode_bit(register, bool(values[at])))
        else:
            words = [int(v) for v in values[at : at + register.width]]
            metrics.append(decode_registers(register, words))
    return metrics


def failed_block(request: ReadRequest) -> list[Metric]:
    """Metrics of a request that got no data: no value, quality BAD."""
    return [Metric(r.name, None, r.unit, Quality.BAD) for r in request.registers]


def _word_bytes(word: int, swap: bool) -> bytes:
    high, low = divmod(word, 256)
    return bytes((low, high)) if swap else bytes((high, low))


def _unsigned16(word: int, byte_order: ByteOrder) -> int:
    return int.from_bytes(big_endian_bytes([word], byte_order), "big")
