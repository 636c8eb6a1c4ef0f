"""benchmarks/api_bench.py runs and prints its tables (its figures are never asserted on)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


@pytest.mark.timeout(300)
def test_the_api_benchmark_runs_and_prints_its_tables() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.api_bench", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "bare ASGI (same body, ceiling)" in done.stdout
    assert "GET /api/v1/devices?limit=100" in done.stdout
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("build"))
    assert lines[header + 1].split()[:2] == ["sentio", "10"]  # one row per build and count
