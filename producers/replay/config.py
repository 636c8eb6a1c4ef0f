"""Replay configuration: which file, its format, how fast, and which timestamps the readings get."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ReplayFormat(StrEnum):
    AUTO = "auto"
    NAB = "nab"
    CMAPSS = "cmapss"


class ReplayConfig(BaseModel):
    """One CSV series replayed as device readings: NAB (timestamp,value) or C-MAPSS (engine cycles)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path = Field(..., description="The file to replay.")
    format: ReplayFormat = Field(
        ReplayFormat.AUTO,
        description="nab: 'timestamp,value' CSV; cmapss: whitespace-separated unit, cycle, 3 settings, 21 sensors; auto: told by the first line.",
    )
    device_id: str | None = Field(
        None,
        min_length=1,
        description="NAB: the device id; C-MAPSS: the prefix of <prefix>-<unit>. None: the file name without extension.",
    )
    metric: str = Field("value", min_length=1, description="NAB: the metric name of the value.")
    unit: str | None = Field(None, description="NAB: the unit of the value.")
    speed: float = Field(
        1.0,
        ge=0,
        description="Replay speed: 1 keeps the original pace, 10 is ten times faster, 0 is as fast as possible.",
    )
    timestamps: Literal["original", "shifted"] = Field(
        "shifted",
        description="original: the file's timestamps; shifted: moved by one offset so the first reading is now.",
    )
    cycle_s: float = Field(
        60.0, gt=0, description="C-MAPSS: seconds of time one engine cycle stands for."
    )
    cycle_origin: datetime = Field(
        "2008-01-01T00:00:00Z",
        validate_default=True,
        description="C-MAPSS: the timestamp of cycle 0 (UTC if no zone); every unit starts there.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels added to every reading."
    )

    def device_name(self) -> str:
        """The NAB device id or the C-MAPSS prefix."""
        return self.device_id or self.path.stem
