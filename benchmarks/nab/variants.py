"""The detector configurations the benchmark compares (registry name + params).

Every variant is reported, not only the best; the defaults of each detector are the
variants named after it.
"""

from __future__ import annotations

from benchmarks.nab.runner import Variant

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("robust_zscore", "robust_zscore", {}),
        Variant("surprise", "surprise", {}),
        Variant("surprise-no-onset-gate", "surprise", {"quiet": 0}),
        Variant("surprise-no-rarity", "surprise", {"rarity_power": 0.0}),
        Variant("surprise-log", "surprise", {"log_values": True}),
        Variant("surprise-small-state", "surprise", {"history": 1000}),
        Variant("surprise-stream", "surprise", {"history": 200}),
        Variant("surprise-level-step", "surprise", {"features": ["level", "step"]}),
        Variant(
            "surprise-all-features",
            "surprise",
            {"features": ["level", "step", "drift", "daily", "context"]},
        ),
        Variant(
            "surprise-calibrated",
            "surprise",
            {"calibrate": True, "half_life": 100.0, "features": ["level", "step", "drift"]},
        ),
        Variant("forecast", "forecast", {}),
        Variant("forecast-no-onset-gate", "forecast", {"quiet": 0}),
        Variant("forecast-rarity", "forecast", {"rarity_power": 100.0}),
        Variant("ensemble-max", "ensemble", {}),
        Variant("ensemble-mean", "ensemble", {"combine": "mean"}),
    )
}
