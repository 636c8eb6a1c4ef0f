"""OPC-UA connector (asyncua): subscriptions to data changes, security, re-subscribe."""

from sentio_iot.plugins import ConnectorPlugin

PLUGIN = ConnectorPlugin(
    name="opcua",
    summary="OPC-UA servers: data-change subscriptions by node id or browse path, Basic256Sha256",
    config_model="sentio_iot.producers.opcua.config:OpcUaServerConfig",
    connector="sentio_iot.producers.opcua.connector:OpcUaConnector",
)
