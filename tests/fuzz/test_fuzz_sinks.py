"""Every record the contract allows, drawn from the Avro schemas themselves, survives the wire
exactly (encode, decode) and becomes, in each sink, finite VictoriaMetrics samples, a Loki line
or a stated rejection (``Rejected`` / a limits reason), never a KeyError, TypeError or
ValueError: those would mean a sink does not follow the contract and the record would be
dead-lettered as "does not fit the contract"."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sentio_iot.schemas import load_schema
from sentio_iot.serde import AvroSerde
from sentio_iot.sinks import loki_limits, loki_streams
from sentio_iot.sinks.vm_series import SAMPLERS, Defaults, Rejected

TEXT = st.text(max_size=12) | st.sampled_from(["", "pump-1", "tenant", "a b", "ü", "__x"])
PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1) | st.integers(0, 2**53),
    "float": st.floats(width=32),
    "double": st.floats(),
    "string": TEXT,
    "bytes": st.binary(max_size=16),
}


def from_avro(schema: Any, named: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values of an Avro schema (records as dicts, enums as their symbols)."""
    if isinstance(schema, str):
        return PRIMITIVES[schema] if schema in PRIMITIVES else from_avro(named[schema], named)
    if isinstance(schema, list):
        return st.one_of([from_avro(branch, named) for branch in schema])
    kind = schema["type"]
    if kind == "record":
        named[schema["name"]] = schema
        named[f"{schema.get('namespace', 'io.sentio.iot')}.{schema['name']}"] = schema
        return st.fixed_dictionaries(
            {field["name"]: from_avro(field["type"], named) for field in schema["fields"]}
        )
    if kind == "enum":
        named[schema["name"]] = schema
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(from_avro(schema["items"], named), max_size=4)
    if kind == "map":
        return st.dictionaries(TEXT, from_avro(schema["values"], named), max_size=4)
    return from_avro(kind, named)


CONTRACTS = {"readings": "Reading", "rollups": "Rollup", "anomalies": "Anomaly", "rul": "RulPrediction",
             "alerts": "Alert", "device-events": "DeviceEvent"}  # fmt: skip


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("name", sorted(CONTRACTS))
@given(data=st.data())
def test_every_allowed_record_round_trips_and_each_sink_takes_or_states_why(
    name: str, data: Any
) -> None:
    schema = load_schema(CONTRACTS[name])
    record = data.draw(from_avro(schema, {}))
    serde = AvroSerde(None, f"fuzz.{name}", CONTRACTS[name], schema_id=3)
    decoded = serde.decode(serde.encode(record))
    assert same(decoded, record)

    sampler = SAMPLERS.get(name)
    if sampler is not None:
        try:
            samples = list(sampler(decoded, Defaults(retention_ms=31 * 86_400_000)))
        except Rejected as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            assert all(math.isfinite(value) and ts > 0 for _labels, value, ts in samples)

    logger = {"device-events": loki_streams.device_event, "anomalies": loki_streams.anomaly}
    if name == "alerts":
        line = loki_streams.alert(decoded, loki_streams.Defaults(), None, 0)
    elif name in logger:
        line = logger[name](decoded, loki_streams.Defaults(), None)
    else:
        return
    reason = loki_limits.problem(line, loki_limits.TimeBounds(max_age_ns=7 * loki_limits.DAY_NS))
    assert reason is None or (reason and "\n" not in reason)
    assert "\n" not in line[1].line
