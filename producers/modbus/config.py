"""Modbus device configuration: a device, its register map and how values are decoded."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_REGISTERS_PER_READ = 125  # Modbus spec limit for function codes 3 and 4
MAX_BITS_PER_READ = 2000  # Modbus spec limit for function codes 1 and 2


class RegisterKind(StrEnum):
    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"


class DataType(StrEnum):
    INT16 = "INT16"
    UINT16 = "UINT16"
    INT32 = "INT32"
    UINT32 = "UINT32"
    INT64 = "INT64"
    UINT64 = "UINT64"
    FLOAT32 = "FLOAT32"
    FLOAT64 = "FLOAT64"
    BOOL = "BOOL"
    STRING = "STRING"


class ByteOrder(StrEnum):
    """Telegraf's names: ABCD big-endian, DCBA little-endian, BADC bytes swapped, CDAB words swapped."""

    ABCD = "ABCD"
    DCBA = "DCBA"
    BADC = "BADC"
    CDAB = "CDAB"


REGISTER_WIDTH = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.FLOAT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT64: 4,
    DataType.BOOL: 1,
}


class RegisterConfig(BaseModel):
    """One value on the device: where it lives and how to turn its registers into a number."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1, description="Metric name, e.g. 'motor_current'.")
    kind: RegisterKind = Field(RegisterKind.HOLDING, description="Register table to read.")
    address: int = Field(..., ge=0, le=65535, description="Zero-based register or bit address.")
    data_type: DataType = Field(DataType.UINT16, description="How the registers are decoded.")
    byte_order: ByteOrder = Field(ByteOrder.ABCD, description="Byte and word order of the value.")
    length: int | None = Field(
        None,
        ge=1,
        le=MAX_REGISTERS_PER_READ,
        description="Registers holding a STRING (2 chars each).",
    )
    bit: int | None = Field(None, ge=0, le=15, description="For BOOL in a register: the bit, 0-15.")
    scale: float = Field(1.0, allow_inf_nan=False, description="value = raw * scale + offset.")
    offset: float = Field(0.0, allow_inf_nan=False, description="value = raw * scale + offset.")
    unit: str | None = Field(None, description="Unit of the scaled value, e.g. 'A' or 'degC'.")

    @model_validator(mode="after")
    def _check_shape(self) -> Self:
        bit_table = self.kind in (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT)
        if bit_table and self.data_type is not DataType.BOOL:
            raise ValueError(
                f"data_type {self.data_type.value} cannot be read from {self.kind.value}s; "
                "coils and discrete inputs hold single bits: use data_type BOOL"
            )
        if self.data_type is DataType.STRING and self.length is None:
            raise ValueError("a STRING needs length: the number of registers it spans")
        if self.data_type is not DataType.STRING and self.length is not None:
            raise ValueError(
                f"length applies to STRING only, not {self.data_type.value}; remove it"
            )
        if self.bit is not None and (bit_table or self.data_type is not DataType.BOOL):
            raise ValueError("bit applies to BOOL values in holding or input registers only")
        if self.address + self.width - 1 > 65535:
            raise ValueError(f"address {self.address} + {self.width} registers runs past 65535")
        return self

    @property
    def width(self) -> int:
        """Registers (or bits) this value occupies."""
        if self.data_type is DataType.STRING:
            return self.length or 1
        if self.kind in (RegisterKind.COIL, RegisterKind.DISCRETE_INPUT):
            return 1
        return REGISTER_WIDTH[self.data_type]


class ModbusDeviceConfig(BaseModel):
    """One Modbus TCP device (or one unit behind a gateway)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: str = Field(
        ..., min_length=1, description="Device id: the Kafka key of its readings."
    )
    host: str = Field(..., min_length=1, description="Host name or IP of the Modbus TCP server.")
    port: int = Field(502, ge=1, le=65535, description="TCP port.")
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id.")
    poll_interval_s: float = Field(1.0, gt=0, description="Seconds between polls.")
    timeout_s: float = Field(3.0, gt=0, description="Seconds to wait for each answer.")
    max_gap: int = Field(
        8,
        ge=0,
        le=MAX_REGISTERS_PER_READ,
        description="Unused registers (or bits) one batched read may span.",
    )
    reconnect_initial_s: float = Field(
        1.0, gt=0, description="First wait before reconnecting; doubles after each failure."
    )
    reconnect_max_s: float = Field(60.0, gt=0, description="Longest wait between reconnects.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every reading."
    )
    registers: list[RegisterConfig] = Field(..., min_length=1, description="The register map.")

    @model_validator(mode="after")
    def _check_device(self) -> Self:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be at least reconnect_initial_s")
        seen: set[str] = set()
        for register in self.registers:
            if register.name in seen:
                raise ValueError(
                    f"register name '{register.name}' is used twice; names must be unique"
                )
            seen.add(register.name)
        return self
