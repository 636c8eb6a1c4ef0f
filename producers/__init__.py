"""Producers: poll or subscribe to devices and publish Avro readings to Kafka."""
