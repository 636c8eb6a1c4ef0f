"""Sentio IoT: the code the three stages (producers, streams, sinks) share.

Only this package is shared: configuration, errors, serialization, Kafka clients,
telemetry, the local stack and the CLI. The stages never import each other.
"""

__version__ = "0.1.0"
