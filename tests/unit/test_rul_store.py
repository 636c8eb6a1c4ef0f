"""The versioned model store: numbering, metadata, promote, rollback, shipped models."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sentio_iot.errors import ConfigError
from sentio_iot.streams.rul.model import TrainingOptions, build
from sentio_iot.streams.rul.preprocessing import Preprocessing
from sentio_iot.streams.rul.store import ModelStore

PREP = Preprocessing(("a", "b"), 4, 125.0, "cycles", minimum=[[0.0, 0.0]], maximum=[[1.0, 2.0]])
TINY = TrainingOptions(filters=2, dense=2)


def network(seed: int) -> Any:
    return build(4, 2, 125.0, seed, TINY)


def test_versions_are_numbered_and_carry_metadata(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, shipped=None)
    first = store.save("m", network(1), PREP, {"metrics": {"rmse": 12.5}, "seeds": [1]})
    second = store.save("m", network(2), PREP, {"metrics": {"rmse": 11.0}, "seeds": [2]})
    assert (first.version, second.version) == (1, 2)
    assert store.names() == ["m"]
    assert [v.version for v in store.versions("m")] == [1, 2]
    current = store.current("m")
    assert current is not None and current.version == 2
    meta = json.loads((tmp_path / "m" / "2" / "metadata.json").read_text())
    assert meta["name"] == "m" and meta["version"] == 2 and meta["metrics"] == {"rmse": 11.0}
    assert "created" in meta
    assert second.preprocessing == PREP
    with zipfile.ZipFile(tmp_path / "m" / "2" / "model.keras") as archive:
        weights = archive.read("model.weights.h5")
    assert b"optimizer" not in weights  # serving needs no optimizer state
    assert sorted(p.name for p in (tmp_path / "m" / "2").iterdir()) == [
        "metadata.json",
        "model.keras",
        "preprocessing.json",
    ]


def test_load_gives_the_same_network(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, shipped=None)
    original = network(3)
    store.save("m", original, PREP, {})
    loaded = store.load("m")
    x = np.random.default_rng(0).random((5, 4, 2)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(loaded.network(x)), np.asarray(original(x)), rtol=1e-6)
    assert (loaded.name, loaded.version, loaded.preprocessing) == ("m", 1, PREP)


def test_promote_and_rollback(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, shipped=None)
    for seed in (1, 2, 3):
        store.save("m", network(seed), PREP, {})
    assert store.current("m").version == 3  # type: ignore[union-attr]
    store.promote("m", 1)
    assert store.current("m").version == 1  # type: ignore[union-attr]
    assert [v.version for v in store.versions("m") if v.current] == [1]
    assert store.rollback("m").version == 3
    assert store.rollback("m").version == 2
    assert store.rollback("m").version == 1
    with pytest.raises(ConfigError, match="no earlier version"):
        store.rollback("m")
    with pytest.raises(ConfigError, match="has no version 7"):
        store.promote("m", 7)


def test_unpromoted_version_does_not_serve(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, shipped=None)
    store.save("m", network(1), PREP, {})
    store.save("m", network(2), PREP, {}, promote=False)
    assert store.current("m").version == 1  # type: ignore[union-attr]


def test_user_store_overrides_the_shipped_one(tmp_path: Path) -> None:
    shipped = ModelStore(tmp_path / "shipped", shipped=None)
    shipped.save("m", network(1), PREP, {})
    store = ModelStore(tmp_path / "user", shipped=tmp_path / "shipped")
    served = store.current("m")
    assert served is not None and served.shipped and served.version == 1
    mine = store.save("m", network(2), PREP, {})
    assert mine.version == 2 and not mine.shipped  # numbered after the shipped versions
    assert store.current("m").version == 2  # type: ignore[union-attr]
    back = store.rollback("m")
    assert back.version == 1 and back.shipped
    assert store.current("m").shipped  # type: ignore[union-attr]
    assert [(v.version, v.shipped, v.current) for v in store.versions("m")] == [
        (1, True, True),
        (2, False, False),
    ]


def test_older_shipped_versions_can_be_promoted_and_rolled_back_to(tmp_path: Path) -> None:
    shipped = ModelStore(tmp_path / "shipped", shipped=None)
    shipped.save("m", network(1), PREP, {})
    shipped.save("m", network(2), PREP, {})  # the package ships v2 current, v1 before it
    store = ModelStore(tmp_path / "user", shipped=tmp_path / "shipped")

    def serving() -> list[tuple[int, bool]]:
        return [(v.version, v.shipped) for v in store.versions("m") if v.current]

    assert serving() == [(2, True)]
    assert store.rollback("m").version == 1 and serving() == [(1, True)]
    assert store.promote("m", 2).current and serving() == [(2, True)]
    assert not (tmp_path / "user" / "m" / "current.json").exists()  # the shipped pointer serves
    assert store.promote("m", 1).current and serving() == [(1, True)]
    mine = store.save("m", network(3), PREP, {})
    assert (mine.version, mine.shipped, mine.current) == (3, False, True)
    assert store.rollback("m").version == 1
    assert store.rollback("m").version == 2 and serving() == [(2, True)]
    assert store.rollback("m").version == 1  # the shipped history
    with pytest.raises(ConfigError, match="no earlier version"):
        store.rollback("m")


def test_unknown_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no current version of model 'nope'"):
        ModelStore(tmp_path, shipped=None).load("nope")
