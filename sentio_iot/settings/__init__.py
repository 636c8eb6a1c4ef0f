"""Configuration sections of the workers, one module per stage or concern.

Each module holds the pydantic models of one ``SentioConfig`` section; ``sentio_iot.config``
assembles them. Every field has a description: ``sentio config reference`` renders them
into docs/configuration.md.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base for every configuration section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)
