"""The alert benchmarks' machinery on tiny runs: noise and the simulated plant (figures unchecked)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import noise_alerts, plant_alerts  # noqa: E402


def table_rows(out: str) -> list[list[str]]:
    lines = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[1:]]


def test_noise_alerts_counts_per_threshold(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--series", "2", "--readings", "2500", "--thresholds", "0.0,1.01"]
    assert noise_alerts.main(args) == 0
    rows = table_rows(capsys.readouterr().out)
    # every score is at least 0 (warm-up's too) and below 1.01: 10,000 and 0 per 10,000 readings
    assert rows == [["0.00", "10000.0", "10000.00"], ["1.01", "0.0", "0.00"]]


def test_plant_alerts_scores_against_the_ground_truth(capsys: pytest.CaptureFixture[str]) -> None:
    assert plant_alerts.main(["--devices", "4", "--hours", "2", "--variants", "surprise@0.8"]) == 0
    out = capsys.readouterr().out
    assert "2 plant hours" in out
    [row] = table_rows(out)
    name, alerts, found, wear, other = row[:5]
    assert name == "surprise@0.8"
    injected = int(found.split("/")[1])
    assert injected > 0  # the plant injects anomalies at 1 per device per plant hour
    assert int(alerts) >= int(found.split("/")[0]) and int(alerts) >= int(wear) + int(other)
    assert row[5:] == ["0", "0/0", "0", "0"]  # no second day in two hours


def test_unknown_plant_variant_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as info:
        plant_alerts.main(["--variants", "nope"])
    assert info.value.code == 2
