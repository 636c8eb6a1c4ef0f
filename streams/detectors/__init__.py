"""Online anomaly detectors: plain Python, no Kafka, so benchmarks drive them directly."""
