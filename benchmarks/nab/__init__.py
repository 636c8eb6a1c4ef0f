"""The Numenta Anomaly Benchmark: run Sentio's stream detectors over NAB and score them."""
