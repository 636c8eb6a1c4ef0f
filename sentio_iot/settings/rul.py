"""Settings: Remaining-useful-life prediction in the stream and the versioned model store."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from sentio_iot.settings import Section


def default_store_dir() -> Path:
    """``$XDG_STATE_HOME/sentio-iot/models`` (else ``~/.local/state/sentio-iot/models``)."""
    state = Path(os.environ.get("XDG_STATE_HOME", str(Path.home() / ".local" / "state")))
    return state / "sentio-iot" / "models"


class RulSettings(Section):
    """Remaining-useful-life prediction in the stream and the versioned model store."""

    store_dir: Path | None = Field(
        None,
        description="Folder of the user's model store (versions made by `sentio train rul`); it overrides the models shipped with the package. None: $XDG_STATE_HOME/sentio-iot/models (else ~/.local/state/sentio-iot/models).",
    )
    label: str = Field(
        "kind", min_length=1, description="Device label whose value picks the model (see models)."
    )
    models: dict[str, str] = Field(
        default_factory=lambda: {
            "pump": "plant_pump",
            "motor": "plant_motor",
            "press": "plant_press",
        },
        description="Model name per value of the device label, e.g. {pump: plant_pump}.",
    )
    feature_models: list[str] = Field(
        default_factory=lambda: ["cmapss_fd001"],
        description="Models tried, in order, for a device no label picks: the first whose feature metrics the device reports all of serves it.",
    )
    batch_size: int = Field(
        256, ge=1, le=100_000, description="Most devices predicted in one model call."
    )
    max_wait_s: float = Field(
        1.0, gt=0, le=60, description="Longest wait (s) to fill a batch before predicting."
    )
    min_interval_s: float = Field(
        10.0,
        ge=0,
        description="Least event time (s, reading timestamps) between two predictions for one device; 0: after every reading.",
    )

    def resolved_store_dir(self) -> Path:
        return self.store_dir if self.store_dir is not None else default_store_dir()
