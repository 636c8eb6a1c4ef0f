"""Modbus register decoding and the read plan, from known register words."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest

from sentio_iot.producers.modbus.config import ByteOrder, DataType, RegisterConfig, RegisterKind
from sentio_iot.producers.modbus.registers import (
    ReadRequest,
    big_endian_bytes,
    decode_block,
    decode_registers,
    failed_block,
    plan_reads,
)
from sentio_iot.records import Metric, Quality

FORMATS = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}

SAMPLES: dict[DataType, list[Any]] = {
    DataType.INT16: [-12345, 0x1234, -1],
    DataType.UINT16: [0xBEEF, 1, 65535],
    DataType.INT32: [-123456789, 0x12345678, -2],
    DataType.UINT32: [0xDEADBEEF, 0x01020304],
    DataType.INT64: [-1234567890123, 0x0102030405060708, -(2**53)],
    DataType.UINT64: [0xFEDCBA9876543210, 2**53 + 2],
    DataType.FLOAT32: [123.456, -0.15625, 3.0e38],
    DataType.FLOAT64: [-98765.4321, math.pi, 1e-300],
}


def words_of(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def as_sent(data_type: DataType, value: Any, byte_order: ByteOrder) -> list[int]:
    """The register words a device sends for ``value``, built straight from struct."""
    fmt = FORMATS[data_type]
    big = struct.pack(">" + fmt, value)
    if byte_order is ByteOrder.ABCD:
        return words_of(big)
    if byte_order is ByteOrder.DCBA:
        return words_of(struct.pack("<" + fmt, value))
    if byte_order is ByteOrder.BADC:
        return words_of(bytes(big[i ^ 1] for i in range(len(big))))
    return words_of(big)[::-1]  # CDAB: little-endian word order


def register(
    data_type: DataType, byte_order: ByteOrder = ByteOrder.ABCD, **fields: Any
) -> RegisterConfig:
    fields.setdefault("address", 0)
    return RegisterConfig(name="x", data_type=data_type, byte_order=byte_order, **fields)


@pytest.mark.parametrize("byte_order", list(ByteOrder))
@pytest.mark.parametrize("data_type", list(FORMATS))
def test_every_type_in_every_byte_order(data_type: DataType, byte_order: ByteOrder) -> None:
    for value in SAMPLES[data_type]:
        words = as_sent(data_type, value, byte_order)
        expected = struct.unpack(
            ">" + FORMATS[data_type], struct.pack(">" + FORMATS[data_type], value)
        )[0]
        metric = decode_registers(register(data_type, byte_order), words)
        assert metric == Metric("x", float(expected), None, Quality.GOOD), (value, words)


def test_float32_known_words() -> None:
    # 123.456 is 0x42F6E979 big-endian
    sent = {
        ByteOrder.ABCD: [0x42F6, 0xE979],
        ByteOrder.CDAB: [0xE979, 0x42F6],
        ByteOrder.BADC: [0xF642, 0x79E9],
        ByteOrder.DCBA: [0x79E9, 0xF642],
    }
    expected = struct.unpack(">f", bytes.fromhex("42F6E979"))[0]
    for byte_order, words in sent.items():
        assert big_endian_bytes(words, byte_order) == bytes.fromhex("42F6E979")
        assert decode_registers(register(DataType.FLOAT32, byte_order), words).value == expected


def test_sixty_four_bit_word_order_covers_all_words() -> None:
    words = [0x0102, 0x0304, 0x0506, 0x0708]
    assert big_endian_bytes(words, ByteOrder.ABCD).hex() == "0102030405060708"
    assert big_endian_bytes(words, ByteOrder.CDAB).hex() == "0708050603040102"
    assert big_endian_bytes(words, ByteOrder.BADC).hex() == "0201040306050807"
    assert big_endian_bytes(words, ByteOrder.DCBA).hex() == "0807060504030201"


def test_scale_offset_and_unit() -> None:
    reg = register(DataType.INT16, scale=0.1, offset=-40.0, unit="degC")
    metric = decode_registers(reg, [struct.unpack(">H", struct.pack(">h", -215))[0]])
    assert metric == Metric("x", -215 * 0.1 - 40.0, "degC", Quality.GOOD)
    reg32 = register(DataType.UINT32, ByteOrder.CDAB, scale=0.001, unit="kWh")
    assert decode_registers(reg32, [0x5678, 0x1234]).value == 0x12345678 * 0.001


def test_non_finite_float_has_no_value() -> None:
    metric = decode_registers(
        register(DataType.FLOAT32), as_sent(DataType.FLOAT32, math.nan, ByteOrder.ABCD)
    )
    assert (metric.value, metric.quality, metric.text) == (None, Quality.BAD, "nan")
    inf = decode_registers(
        register(DataType.FLOAT64), as_sent(DataType.FLOAT64, -math.inf, ByteOrder.ABCD)
    )
    assert (inf.value, inf.quality, inf.text) == (None, Quality.BAD, "-inf")


@pytest.mark.parametrize(
    ("byte_order", "words"),
    [
        (ByteOrder.ABCD, [0x5345, 0x4E54, 0x494F, 0x2D37, 0x0000, 0x0000]),
        (ByteOrder.CDAB, [0x5345, 0x4E54, 0x494F, 0x2D37, 0x2020, 0x2000]),
        (ByteOrder.BADC, [0x4553, 0x544E, 0x4F49, 0x372D, 0x0020, 0x0000]),
        (ByteOrder.DCBA, [0x4553, 0x544E, 0x4F49, 0x372D, 0x2020, 0x2020]),
    ],
)
def test_string_two_chars_per_register(byte_order: ByteOrder, words: list[int]) -> None:
    metric = decode_registers(register(DataType.STRING, byte_order, length=6, unit=None), words)
    assert metric == Metric("x", None, None, Quality.GOOD, "SENTIO-7")


def test_string_keeps_inner_spaces_and_odd_length() -> None:
    metric = decode_registers(register(DataType.STRING, length=3), [0x4120, 0x4220, 0x4300])
    assert metric.text == "A B C"


@pytest.mark.parametrize("bit", range(16))
def test_bool_bit_of_a_register(bit: int) -> None:
    word = 1 << bit
    assert decode_registers(register(DataType.BOOL, bit=bit), [word]).value == 1.0
    assert decode_registers(register(DataType.BOOL, bit=bit), [0xFFFF ^ word]).value == 0.0
    # byte-swapped orders: the bit counts in the value after swapping the register's bytes
    swapped = struct.unpack("<H", struct.pack(">H", word))[0]
    assert (
        decode_registers(register(DataType.BOOL, ByteOrder.BADC, bit=bit), [swapped]).value == 1.0
    )


def test_bool_register_without_bit_is_non_zero() -> None:
    assert decode_registers(register(DataType.BOOL, scale=10.0), [0x0100]).value == 1.0
    assert decode_registers(register(DataType.BOOL), [0]).value == 0.0


def test_wrong_word_count_is_refused() -> None:
    with pytest.raises(ValueError, match="spans 2 registers, got 1"):
        decode_registers(register(DataType.INT32), [1])


def reg(
    name: str, address: int, data_type: DataType = DataType.UINT16, **fields: Any
) -> RegisterConfig:
    return RegisterConfig(name=name, address=address, data_type=data_type, **fields)


def spans(requests: list[ReadRequest]) -> list[tuple[str, int, int, list[str]]]:
    return [(r.kind.value, r.address, r.count, [x.name for x in r.registers]) for r in requests]


def test_contiguous_values_are_one_request() -> None:
    registers = [
        reg("a", 0),
        reg("b", 1, DataType.FLOAT32),
        reg("c", 3, DataType.FLOAT64),
        reg("d", 7, DataType.STRING, length=4),
    ]
    assert spans(plan_reads(registers, max_gap=0)) == [("holding", 0, 11, ["a", "b", "c", "d"])]


def test_gaps_up_to_max_gap_are_read_through() -> None:
    registers = [reg("a", 10), reg("b", 14), reg("c", 25, DataType.INT32), reg("d", 100)]
    assert spans(plan_reads(registers, max_gap=3)) == [
        ("holding", 10, 5, ["a", "b"]),
        ("holding", 25, 2, ["c"]),
        ("holding", 100, 1, ["d"]),
    ]
    assert spans(plan_reads(registers, max_gap=2)) == [
        ("holding", 10, 1, ["a"]),
        ("holding", 14, 1, ["b"]),
        ("holding", 25, 2, ["c"]),
        ("holding", 100, 1, ["d"]),
    ]
    assert spans(plan_reads(registers, max_gap=75)) == [("holding", 10, 91, ["a", "b", "c", "d"])]


def test_one_request_per_table_in_address_order() -> None:
    registers = [
        reg("h2", 5),
        reg("i1", 0, kind=RegisterKind.INPUT),
        reg("c1", 3, DataType.BOOL, kind=RegisterKind.COIL),
        reg("h1", 0),
        reg("d1", 0, DataType.BOOL, kind=RegisterKind.DISCRETE_INPUT),
        reg("c2", 4, DataType.BOOL, kind=RegisterKind.COIL),
    ]
    assert spans(plan_reads(registers, max_gap=8)) == [
        ("holding", 0, 6, ["h1", "h2"]),
        ("input", 0, 1, ["i1"]),
        ("coil", 3, 2, ["c1", "c2"]),
        ("discrete_input", 0, 1, ["d1"]),
    ]


def test_125_register_limit_never_splits_a_value() -> None:
    registers = [reg(f"r{i}", i * 4, DataType.FLOAT64) for i in range(40)]  # 160 registers
    requests = plan_reads(registers, max_gap=0)
    # 31 values = 124 registers fit; the 32nd FLOAT64 would need 128, so it starts request 2
    assert spans(requests) == [
        ("holding", 0, 124, [f"r{i}" for i in range(31)]),
        ("holding", 124, 36, [f"r{i}" for i in range(31, 40)]),
    ]
    exact = [reg(f"s{i}", i, DataType.UINT16) for i in range(126)]
    assert [(r.address, r.count) for r in plan_reads(exact, max_gap=0)] == [(0, 125), (125, 1)]


def test_value_crossing_the_limit_moves_whole_to_the_next_request() -> None:
    registers = [reg("a", 0), reg("b", 123, DataType.INT32), reg("c", 124, DataType.INT32)]
    # b ends at 124 (125 registers in all); c at 124..125 would make 126: it starts anew
    assert spans(plan_reads(registers, max_gap=125)) == [
        ("holding", 0, 125, ["a", "b"]),
        ("holding", 124, 2, ["c"]),
    ]


def test_2000_bit_limit_for_coils_and_discrete_inputs() -> None:
    coils = [reg(f"c{i}", i * 10, DataType.BOOL, kind=RegisterKind.COIL) for i in range(301)]
    requests = plan_reads(coils, max_gap=9)
    assert [(r.address, r.count, len(r.registers)) for r in requests] == [
        (0, 1991, 200),
        (2000, 1001, 101),
    ]


def test_overlapping_values_share_a_request() -> None:
    registers = [
        reg("status_bit3", 40, DataType.BOOL, bit=3),
        reg("status", 40),
        reg("energy", 39, DataType.UINT32),
        reg("status_bit0", 40, DataType.BOOL, bit=0),
    ]
    assert spans(plan_reads(registers, max_gap=0)) == [
        ("holding", 39, 2, ["energy", "status_bit3", "status", "status_bit0"])
    ]


def test_decode_block_from_words_and_bits() -> None:
    registers = [
        reg("a", 10, DataType.INT16),
        reg("b", 13, DataType.FLOAT32, byte_order=ByteOrder.CDAB, unit="bar"),
        reg("flag", 10, DataType.BOOL, bit=15),
    ]
    [request] = plan_reads(registers, max_gap=2)
    words = [0xFFFE, 0x9999, 0x9999, *as_sent(DataType.FLOAT32, 2.5, ByteOrder.CDAB)]
    assert decode_block(request, words) == [
        Metric("a", -2.0),
        Metric("flag", 1.0),
        Metric("b", 2.5, "bar"),
    ]
    coils = [
        reg("c0", 0, DataType.BOOL, kind=RegisterKind.COIL),
        reg("c2", 2, DataType.BOOL, kind=RegisterKind.COIL),
    ]
    [bits] = plan_reads(coils, max_gap=1)
    padded = [True, True, False, False, False, False, False, False]
    assert decode_block(bits, padded) == [Metric("c0", 1.0), Metric("c2", 0.0)]
    with pytest.raises(ValueError, match="answer holds 2 values, not 3"):
        decode_block(bits, [True, False])
    assert failed_block(bits) == [
        Metric("c0", None, None, Quality.BAD),
        Metric("c2", None, None, Quality.BAD),
    ]
