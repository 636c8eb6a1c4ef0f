"""Settings: Remaining-useful-life prediction in the stream and the versioned model store."""

from __future__ import annotations

from sentio_iot.settings import Section


class RulSettings(Section):
    """Remaining-useful-life prediction in the stream and the versioned model store."""
