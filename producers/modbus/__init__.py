"""Modbus TCP connector (pymodbus): register maps polled in batched reads."""

from sentio_iot.plugins import ConnectorPlugin

PLUGIN = ConnectorPlugin(
    name="modbus",
    summary="Modbus TCP devices: holding/input registers, coils, discrete inputs, batched reads",
    config_model="sentio_iot.producers.modbus.config:ModbusDeviceConfig",
    connector="sentio_iot.producers.modbus.connector:ModbusConnector",
)
