"""The few protobuf wire-format pieces our hand-written messages need (no protoc, no codegen)."""

from __future__ import annotations

import struct

DOUBLE = struct.Struct("<d")


def varint(value: int) -> bytes:
    """Base-128 varint; a negative int64 as ten bytes of two's complement."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings, bytes, embedded messages."""
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def field_varint(number: int, value: int) -> bytes:
    """A varint field (wire type 0): int32, int64, bool, enums."""
    return varint(number << 3) + varint(value)
