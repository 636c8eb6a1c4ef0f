"""One OPC-UA DataValue as one metric: the value, its quality and its timestamp."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import ua

from sentio_iot.errors import DataError
from sentio_iot.producers.opcua.quality import quality_of
from sentio_iot.records import Metric, Quality, now_us

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)
NULL_YEAR = 1601  # OPC-UA's DateTime zero (1601-01-01) means "no timestamp"


@dataclass(frozen=True, slots=True)
class SampledValue:
    """What a data change carried, decoded: numeric ``value`` or ``text``, status and time."""

    value: float | None
    text: str | None
    status_code: int
    ts_us: int

    @property
    def quality(self) -> Quality:
        return quality_of(self.status_code)

    def metric(self, name: str, unit: str | None) -> Metric:
        return Metric(name, self.value, unit, self.quality, self.text)


def decode(data_value: ua.DataValue) -> SampledValue:
    """Decode a DataValue; DataError for values no metric can hold (arrays, structures, bytes)."""
    variant = data_value.Value
    raw = variant.Value if variant is not None else None
    if variant is not None and variant.is_array:
        raise DataError("array values are not supported; subscribe to single elements")
    try:
        value, text = scalar(raw)
    except DataError:
        kind = variant.VariantType.name if variant is not None else type(raw).__name__
        raise DataError(f"a {kind} value cannot be a metric") from None
    status = data_value.StatusCode
    code = int(status.value) if status is not None else 0
    return SampledValue(value, text, code, timestamp_us(data_value))


def scalar(raw: Any) -> tuple[float | None, str | None]:
    """A scalar as (value, text): numbers and booleans are values, names and strings text."""
    if raw is None:
        return None, None
    if isinstance(raw, bool):
        return (1.0 if raw else 0.0), None
    if isinstance(raw, int | float):  # IntEnum values (enumerations) included
        return float(raw), None
    if isinstance(raw, str):
        return None, raw
    if isinstance(raw, ua.LocalizedText):
        return None, raw.Text or ""
    if isinstance(raw, ua.QualifiedName):
        return None, raw.to_string()
    if isinstance(raw, datetime):
        return None, _aware(raw).isoformat()
    if isinstance(raw, uuid.UUID):
        return None, str(raw)
    if isinstance(raw, ua.StatusCode):
        return None, raw.name
    raise DataError(f"a {type(raw).__name__} value cannot be a metric")


def timestamp_us(data_value: ua.DataValue) -> int:
    """The source timestamp, else the server timestamp, else now (microseconds, UTC)."""
    for moment in (data_value.SourceTimestamp, data_value.ServerTimestamp):
        if isinstance(moment, datetime) and moment.year > NULL_YEAR:
            return (_aware(moment) - EPOCH) // ONE_US
    return now_us()


def _aware(moment: datetime) -> datetime:
    """asyncua gives UTC datetimes; a naive one is UTC too."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
