"""Modbus answers: any register configuration the model accepts decodes any words a device
can send into a metric whose value is finite or absent (quality BAD, the raw value kept); a
batched answer shorter than asked is a ShortAnswer (a DataError), never an IndexError."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from sentio_iot.producers.modbus.config import ByteOrder, DataType, RegisterConfig, RegisterKind
from sentio_iot.producers.modbus.registers import (
    ShortAnswer,
    decode_block,
    decode_registers,
    plan_reads,
)
from sentio_iot.records import Quality

register_fields = st.fixed_dictionaries(
    {
        "name": st.text(min_size=1, max_size=12),
        "address": st.integers(0, 65535),
        "data_type": st.sampled_from(list(DataType)),
        "byte_order": st.sampled_from(list(ByteOrder)),
        "kind": st.sampled_from(list(RegisterKind)),
    },
    optional={
        "length": st.integers(1, 8),
        "bit": st.integers(0, 15),
        "scale": st.floats() | st.sampled_from([1e308, -1e308, 0.1]),
        "offset": st.floats(),
        "unit": st.text(max_size=4),
    },
)


def register(fields: dict[str, Any]) -> RegisterConfig:
    try:
        return RegisterConfig.model_validate(fields)
    except ValidationError:
        assume(False)  # a combination the model refuses (test_fuzz_config checks those)
        raise


words = st.integers(0, 65535)


@given(register_fields, st.data())
def test_any_words_decode_to_a_finite_value_or_none(fields: dict[str, Any], data: Any) -> None:
    config = register(fields)
    assume(config.kind not in (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT))
    received = data.draw(st.lists(words, min_size=config.width, max_size=config.width))
    metric = decode_registers(config, received)
    assert metric.name == config.name
    if metric.value is None:
        assert metric.text is not None
        assert config.data_type is DataType.STRING or metric.quality is Quality.BAD
    else:
        assert math.isfinite(metric.value)


@given(st.lists(register_fields, min_size=1, max_size=5), st.data())
def test_a_short_or_long_answer_is_decoded_or_refused(
    many: list[dict[str, Any]], data: Any
) -> None:
    configs = []
    for fields in many:
        try:
            configs.append(RegisterConfig.model_validate({**fields, "name": f"m{len(configs)}"}))
        except ValidationError:
            continue
    assume(configs)
    for request in plan_reads(configs, max_gap=4):
        bits = request.kind in (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT)
        item = st.booleans() if bits else words
        answer = data.draw(st.lists(item, max_size=request.count + 3))
        try:
            metrics = decode_block(request, answer)
        except ShortAnswer as exc:
            assert len(answer) < request.count and "\n" not in str(exc)
            continue
        assert [m.name for m in metrics] == [r.name for r in request.registers]
        assert all(m.value is None or math.isfinite(m.value) for m in metrics)
