"""The fuzz suite: hypothesis over every decoder of outside input, bounded so that CI stays fast.

Each test draws at most ``SENTIO_FUZZ_EXAMPLES`` inputs (default 100; raise it for a longer
hunt: ``SENTIO_FUZZ_EXAMPLES=5000 pytest tests/fuzz``) and each input must be handled within
the deadline (a hang fails it). Runs are derandomized so CI sees the same inputs every time;
``SENTIO_FUZZ_SEED=random`` draws fresh ones. No example database is written.
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

settings.register_profile(
    "sentio",
    max_examples=int(os.environ.get("SENTIO_FUZZ_EXAMPLES", "100")),
    deadline=timedelta(milliseconds=1000),
    derandomize=os.environ.get("SENTIO_FUZZ_SEED") != "random",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile("sentio")
