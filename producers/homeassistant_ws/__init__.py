"""Home Assistant WebSocket API connector: state_changed events as readings and events."""

from sentio_iot.plugins import ConnectorPlugin

PLUGIN = ConnectorPlugin(
    name="homeassistant_ws",
    summary="Home Assistant WebSocket API: state_changed events with a long-lived token",
    config_model="sentio_iot.producers.homeassistant_ws.config:HomeAssistantWsConfig",
    connector="sentio_iot.producers.homeassistant_ws.connector:HomeAssistantWsConnector",
)
