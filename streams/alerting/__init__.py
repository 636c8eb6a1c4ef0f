"""Alerting: rules, the alarm life cycle and deduplication, free of Kafka."""
