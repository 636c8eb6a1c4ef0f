"""The C-MAPSS benchmark commands on a few engines: the machinery, not the scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.cmapss import __main__ as cmapss_bench
from benchmarks.cmapss.inputs import SHORTEST, held_out_cuts
from sentio_iot.streams.rul.cmapss import read_engines

DATA = Path(__file__).parent.parent / "data" / "cmapss"


def test_benchmark_prints_both_inputs_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--data", str(DATA), "--sets", "FD001_few", "--seeds", "1", "--epochs", "1"]
    assert cmapss_bench.main(args) == 0
    out = capsys.readouterr().out
    assert "FD001_few, history inputs (29 per cycle):" in out
    assert "FD001_few, window inputs (14 per cycle):" in out
    rows = [line for line in out.splitlines() if line.startswith("| FD001_few")]
    assert [row.split("|")[2].strip() for row in rows] == ["history", "window"]


def test_unknown_inputs_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cmapss_bench.main(["--data", str(DATA), "--inputs", "history,cycles"])
    assert exit_info.value.code == 2
    assert "--inputs: unknown cycles; use history, window or both" in capsys.readouterr().err


def test_held_out_engines_are_cut_like_test_engines() -> None:
    engines = read_engines(DATA / "train_FD001_few.txt")  # 2 engines: 1 held out
    train, cut, truth = held_out_cuts(engines, np.random.default_rng(0))
    assert len(train) == 1 and len(cut) == 10
    (held,) = [e for e in engines if e.unit not in {t.unit for t in train}]
    assert all(c.unit == held.unit and SHORTEST <= len(c) <= len(held) for c in cut)
    assert len({len(c) for c in cut}) == 10  # ten different cycles
    np.testing.assert_array_equal(truth, [len(held) - len(c) for c in cut])
    for c in cut:
        np.testing.assert_array_equal(c.values, held.values[: len(c)])
