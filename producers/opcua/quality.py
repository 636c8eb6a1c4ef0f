"""OPC-UA status codes as reading quality, and their names for events and logs.

The top two bits of a StatusCode are its severity (OPC 10000-4, 7.39): 00 Good,
01 Uncertain, 10 Bad, and 11 (reserved) is treated as Bad as the spec asks.
The low 16 bits carry info bits (limits, overflow) that do not change the name.
"""

from __future__ import annotations

from asyncua.ua import status_codes

from sentio_iot.records import Quality

SEVERITY_SHIFT = 30
CODE_MASK = 0xFFFF0000


def quality_of(code: int) -> Quality:
    """Good -> GOOD, Uncertain* -> UNCERTAIN, Bad* (and the reserved severity) -> BAD."""
    severity = (code >> SEVERITY_SHIFT) & 0b11
    if severity == 0:
        return Quality.GOOD
    if severity == 1:
        return Quality.UNCERTAIN
    return Quality.BAD


def status_name(code: int) -> str:
    """The symbolic name, e.g. ``BadSensorFailure``; an unknown code names its severity."""
    name, _ = status_codes.get_name_and_doc(code & CODE_MASK)
    return name


def status_hex(code: int) -> str:
    return f"0x{code:08X}"
