"""Replay: a CSV series (NAB timestamp,value; C-MAPSS cycles) as device readings."""

from sentio_iot.plugins import ConnectorPlugin

PLUGIN = ConnectorPlugin(
    name="replay",
    summary="Replay CSV series (NAB, C-MAPSS) as readings at original or N-times speed",
    config_model="sentio_iot.producers.replay.config:ReplayConfig",
    connector="sentio_iot.producers.replay.connector:ReplayConnector",
)
