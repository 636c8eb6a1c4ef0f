"""The NAB benchmark end to end on a tiny synthetic corpus in NAB's layout (no shared data)."""

from __future__ import annotations

import csv
import json
import random
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.nab.__main__ import main  # noqa: E402
from benchmarks.nab.corpus import load_corpus  # noqa: E402

START = datetime(2015, 1, 1)
ROWS, SPIKE = 400, 300


def write_series(root: Path, name: str, seed: int, spike: bool) -> list[list[str]]:
    rng = random.Random(seed)
    stamps = [(START + timedelta(minutes=5 * i)).strftime("%Y-%m-%d %H:%M:%S") for i in range(ROWS)]
    values = [20.0 + rng.gauss(0.0, 1.0) for _ in range(ROWS)]
    if spike:
        values[SPIKE] += 15.0
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "value"])
        writer.writerows(zip(stamps, values, strict=True))
    return [[f"{stamps[SPIKE]}.000000", f"{stamps[SPIKE + 9]}.000000"]] if spike else []


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "nab"
    windows = {
        "artificialWithAnomaly/a.csv": write_series(root, "artificialWithAnomaly/a.csv", 1, True),
        "realTraffic/b.csv": write_series(root, "realTraffic/b.csv", 2, True),
        "artificialNoAnomaly/c.csv": write_series(root, "artificialNoAnomaly/c.csv", 3, False),
    }
    (root / "combined_windows.json").write_text(json.dumps(windows))
    return root


def test_corpus_maps_windows_to_rows(corpus: Path) -> None:
    series = load_corpus(corpus)
    assert [s.name for s in series] == [
        "artificialNoAnomaly/c.csv",
        "artificialWithAnomaly/a.csv",
        "realTraffic/b.csv",
    ]
    assert [s.windows for s in series] == [(), ((300, 309),), ((300, 309),)]
    assert series[1].ts_us[1] - series[1].ts_us[0] == 300_000_000


def test_benchmark_prints_the_table_and_writes_nab_layout(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    args = ["--data", str(corpus), "--results", str(results), "--quick"]
    assert main([*args, "--detector", "surprise,robust_zscore"]) == 0
    out = capsys.readouterr().out
    assert "3 series, 1,200 rows, 2 windows" in out
    rows = {line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ")}
    # the two spikes open their windows and are the highest scores: a perfect detection
    assert "| surprise | surprise | 100.0 | 100.0 | 100.0 |" in rows["surprise"]
    written = results / "surprise" / "realTraffic" / "surprise_b.csv"
    with written.open() as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == ROWS
    assert [int(row["label"]) for row in lines].count(1) == 10
    assert float(lines[SPIKE]["anomaly_score"]) > 0.5


def test_halves_score_every_other_series_apart(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--data", str(corpus), "--quick", "--no-write", "--detector", "surprise"]
    assert main([*args, "--halves"]) == 0
    out = capsys.readouterr().out
    whole, even, odd = out.split("-indexed series only")[0], *out.split("-indexed series only")[1:]
    assert "| surprise | surprise | 100.0 |" in whole
    # even: c.csv (no window) and b.csv, odd: a.csv; each half holds one spike, detected
    assert "| surprise | surprise | 100.0 | 100.0 | 100.0 |" in even
    assert "| surprise | surprise | 100.0 | 100.0 | 100.0 |" in odd


def test_unknown_variant_is_a_usage_error(corpus: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--data", str(corpus), "--detector", "nope", "--no-write"])
    assert info.value.code == 2
