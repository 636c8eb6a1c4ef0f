"""Simulated plant: a deterministic fleet of virtual devices with injected anomalies and degradation."""

from sentio_iot.plugins import ConnectorPlugin

PLUGIN = ConnectorPlugin(
    name="simulate",
    summary="Simulated plant: N virtual devices with seasonality, noise, anomalies and degradation",
    config_model="sentio_iot.producers.simulate.config:SimulateConfig",
    connector="sentio_iot.producers.simulate.connector:SimulatedPlantConnector",
)
