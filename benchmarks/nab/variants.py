"""The detector configurations the benchmark compares (registry name + params).

Every variant is reported, not only the best; the defaults of each detector are the
variants named after it.
"""

from __future__ import annotations

from benchmarks.nab.runner import Variant

# the surprise detector's defaults before the typical-size scaling (version 1, NAB 60.2)
SURPRISE_V1 = {
    "scale_power": 0.0,
    "threshold": 6.0,
    "rarity_power": 100.0,
    "daily_half_life": 50.0,
    "fire": 0.2,
    "quiet": 150,
}

VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("robust_zscore", "robust_zscore", {}),
        Variant("surprise", "surprise", {}),
        Variant("surprise-no-onset-gate", "surprise", {"quiet": 0}),
        Variant("surprise-no-scale", "surprise", {"scale_power": 0.0, "threshold": 6.0}),
        Variant("surprise-scale-p2", "surprise", {"scale_power": 2.0}),
        Variant("surprise-with-rarity", "surprise", {"rarity_power": 20.0}),
        Variant("surprise-log", "surprise", {"log_values": True}),
        Variant("surprise-level-step", "surprise", {"features": ["level", "step"]}),
        Variant(
            "surprise-with-step", "surprise", {"features": ["level", "drift", "daily", "step"]}
        ),
        Variant(
            "surprise-all-features",
            "surprise",
            {"features": ["level", "step", "drift", "daily", "context"]},
        ),
        Variant("surprise-v1", "surprise", SURPRISE_V1),
        Variant(
            "surprise-calibrated",
            "surprise",
            {"calibrate": True, "half_life": 100.0, "features": ["level", "step", "drift"]},
        ),
        Variant("novelty", "novelty", {}),
        Variant("novelty-v1", "novelty", {"surprise_while_learning": False}, 0.25),
        Variant("novelty-no-learn-day", "novelty", {"learn_s": 0.0}),
        Variant("novelty-alone", "novelty", {"surprise_weight": 0.0}),
        Variant("novelty-one-vigilance", "novelty", {"vigilance": [0.06], "surprise_weight": 0.0}),
        Variant("novelty-log", "novelty", {"log_values": True, "surprise_weight": 0.0}),
        Variant(
            "novelty-window-2",
            "novelty",
            {"scales": [[1, 2]], "vigilance": [0.09], "surprise_weight": 0.0},
        ),
        Variant("calibrated", "calibrated", {}),
        Variant("calibrated-odds", "calibrated", {"transform": "odds"}),
        Variant("calibrated-floor", "calibrated", {"floor": 0.2, "half_life": 3000.0}),
        Variant(
            "calibrated-likelihood", "calibrated", {"method": "likelihood", "transform": "score"}
        ),
        Variant("calibrated-rank", "calibrated", {"method": "rank"}),
        Variant("calibrated-surprise", "calibrated", {"base": "surprise", "quiet": 125}),
        Variant("forecast", "forecast", {}),
        Variant("forecast-no-onset-gate", "forecast", {"quiet": 0}),
        Variant("forecast-rarity", "forecast", {"rarity_power": 100.0}),
        Variant("ensemble-max", "ensemble", {}),
        Variant("ensemble-mean", "ensemble", {"combine": "mean"}),
    )
}
