"""The versioned model store: a folder per model name, numbered versions, a current pointer.

Layout (one store)::

    <root>/<name>/current.json      {"version": 3, "history": [1, 2]}
    <root>/<name>/<version>/model.keras
    <root>/<name>/<version>/preprocessing.json
    <root>/<name>/<version>/metadata.json

``promote`` makes a version current and remembers the one before; ``rollback`` returns to
it. The package ships a read-only store (``streams/rul/models``) with trained defaults; the
user's store (writable) overrides it name by name. A user's first version of a shipped name
is numbered after the shipped ones, so a number names one version in either store. The
user's pointer may name a shipped version (promoting or rolling back to an older shipped
one); pointing at the shipped current version removes the user's pointer, so the shipped
store's own pointer (and history) serves again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sentio_iot.errors import ConfigError
from sentio_iot.streams.rul.model import load_keras, numpy2_quirks
from sentio_iot.streams.rul.preprocessing import Preprocessing

log = logging.getLogger(__name__)

PACKAGED = Path(__file__).parent / "models"
MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
METADATA_FILE = "metadata.json"
POINTER_FILE = "current.json"


@dataclass(frozen=True)
class ModelVersion:
    """One stored version: where it is, whether it is current, and its metadata."""

    name: str
    version: int
    path: Path
    shipped: bool
    current: bool
    metadata: dict[str, Any]

    @property
    def preprocessing(self) -> Preprocessing:
        return Preprocessing.from_json(_read_json(self.path / PREPROCESSING_FILE))


@dataclass
class LoadedModel:
    """A version ready to predict with."""

    name: str
    version: int
    network: Any
    preprocessing: Preprocessing
    metadata: dict[str, Any]


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_json(path: Path, data: Any) -> None:
    partial = path.with_suffix(".tmp")
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(path)  # atomic: a reader never sees half a pointer


def _weights_only_copy(network: Any) -> Any:
    """The network without optimizer state: a third of the file, and all serving needs."""
    copy = network.__class__.from_config(network.get_config())  # uncompiled: no optimizer
    for mine, theirs in zip(copy.weights, network.weights, strict=True):
        mine.assign(theirs)
    return copy


class FolderStore:
    """One store folder (the shipped one or the user's)."""

    def __init__(self, root: Path, shipped: bool = False) -> None:
        self.root = root
        self.shipped = shipped

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.numbers(p.name))

    def numbers(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(
            int(p.name) for p in folder.iterdir() if p.name.isdigit() and (p / MODEL_FILE).exists()
        )

    def pointer(self, name: str) -> dict[str, Any]:
        path = self.root / name / POINTER_FILE
        return dict(_read_json(path)) if path.exists() else {"version": None, "history": []}

    def set_pointer(self, name: str, version: int | None, history: list[int]) -> None:
        path = self.root / name / POINTER_FILE
        if version is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)  # pointing at a shipped version
            _write_json(path, {"version": version, "history": history})

    def version(self, name: str, number: int) -> ModelVersion:
        path = self.root / name / str(number)
        current = self.pointer(name).get("version")
        return ModelVersion(
            name, number, path, self.shipped, current == number, _read_json(path / METADATA_FILE)
        )


class ModelStore:
    """The user's store in front of the shipped one."""

    def __init__(self, root: Path, shipped: Path | None = PACKAGED) -> None:
        self.user = FolderStore(root)
        same = shipped is not None and shipped.resolve() == root.resolve()
        # Training straight into the package folder (to ship a model) writes it as a user store.
        self.packaged = FolderStore(shipped, shipped=True) if shipped and not same else None

    def _stores(self) -> list[FolderStore]:
        return [self.user] + ([self.packaged] if self.packaged is not None else [])

    def names(self) -> list[str]:
        return sorted({name for store in self._stores() for name in store.names()})

    def versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name`` in both stores; ``current`` marks the one that serves."""
        serving = self.current(name)
        found = []
        for store in self._stores():
            for number in store.numbers(name):
                version = store.version(name, number)
                is_current = serving is not None and serving.path == version.path
                found.append(replace(version, current=is_current))
        return sorted(found, key=lambda v: (v.version, v.shipped))

    def current(self, name: str) -> ModelVersion | None:
        """The serving version: the user's current if set, else the shipped current."""
        for store in self._stores():
            number = store.pointer(name).get("version")
            found = self._locate(name, number) if number is not None else None
            if found is not None:
                return replace(found, current=True)
        return None

    def _locate(self, name: str, number: int) -> ModelVersion | None:
        for store in self._stores():
            if number in store.numbers(name):
                return store.version(name, number)
        return None

    def _pointer(self, name: str) -> dict[str, Any]:
        """The pointer that serves: the user's if set, else the shipped one."""
        for store in self._stores():
            pointer = store.pointer(name)
            if pointer.get("version") is not None:
                return pointer
        return {"version": None, "history": []}

    def _point(self, name: str, number: int, history: list[int]) -> None:
        shipped = self.packaged.pointer(name).get("version") if self.packaged else None
        if number == shipped and number not in self.user.numbers(name):
            self.user.set_pointer(name, None, [])  # the shipped store serves (and keeps history)
        else:
            self.user.set_pointer(name, number, history)

    def find(self, name: str, number: int) -> ModelVersion:
        found = self._locate(name, number)
        if found is None:
            known = ", ".join(str(v.version) for v in self.versions(name)) or "none"
            raise ConfigError(f"model {name!r} has no version {number} (versions: {known})")
        serving = self.current(name)
        return replace(found, current=serving is not None and serving.path == found.path)

    def load(self, name: str, number: int | None = None) -> LoadedModel:
        """The Keras network, preprocessing and metadata of a version (default: current)."""
        keras = load_keras()
        version = self.current(name) if number is None else self.find(name, number)
        if version is None:
            raise ConfigError(
                f"no current version of model {name!r}; known models: "
                f"{', '.join(self.names()) or 'none'} (train one with `sentio train rul`)"
            )
        with numpy2_quirks():
            network = keras.saving.load_model(version.path / MODEL_FILE, compile=False)
        return LoadedModel(name, version.version, network, version.preprocessing, version.metadata)

    def save(
        self,
        name: str,
        network: Any,
        preprocessing: Preprocessing,
        metadata: dict[str, Any],
        promote: bool = True,
    ) -> ModelVersion:
        """Store a new version in the user's store, numbered after every existing one."""
        numbers = [v.version for v in self.versions(name)]
        number = max(numbers, default=0) + 1
        folder = self.user.root / name / str(number)
        folder.mkdir(parents=True, exist_ok=False)
        with numpy2_quirks():
            _weights_only_copy(network).save(folder / MODEL_FILE)
        _write_json(folder / PREPROCESSING_FILE, preprocessing.to_json())
        stamped = {
            "name": name,
            "version": number,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            **metadata,
        }
        _write_json(folder / METADATA_FILE, stamped)
        log.info("stored model %s version %d in %s", name, number, folder)
        if promote:
            self.promote(name, number)
        return self.find(name, number)

    def promote(self, name: str, number: int) -> ModelVersion:
        """Make ``number`` the serving version; the one serving before is kept for rollback."""
        self.find(name, number)  # an unknown version is a ConfigError
        before = self.current(name)
        history = list(self._pointer(name).get("history", []))
        if before is not None and before.version != number:
            history.append(before.version)
        self._point(name, number, history)
        return self.find(name, number)

    def rollback(self, name: str) -> ModelVersion:
        """Serve the version that served before the last promotion."""
        history = list(self._pointer(name).get("history", []))
        while history:
            previous = history.pop()
            if self._locate(name, previous) is not None:
                self._point(name, previous, history)
                return self.find(name, previous)
        raise ConfigError(f"model {name!r} has no earlier version to roll back to")
