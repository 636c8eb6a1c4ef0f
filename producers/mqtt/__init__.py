"""MQTT connector (paho-mqtt): topic patterns to readings, Zigbee2MQTT and Home Assistant presets."""

from sentio_iot.plugins import ConnectorPlugin

PLUGIN = ConnectorPlugin(
    name="mqtt",
    summary="MQTT brokers: topic patterns, JSON field paths, Zigbee2MQTT and Home Assistant discovery presets",
    config_model="sentio_iot.producers.mqtt.config:MqttSourceConfig",
    connector="sentio_iot.producers.mqtt.connector:MqttConnector",
)
