"""The one configuration file every child of ``sentio run`` reads (``-c FILE``).

It is the run's own configuration, written out whole, with the simulated plant added
unless the user's configuration already describes one. Environment overrides (``SENTIO_*``)
apply to the children too, since they inherit the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from sentio_iot.config import SentioConfig, load_config
from sentio_iot.secret_values import reveal


def write_run_config(config: SentioConfig, path: Path, plant: dict[str, Any]) -> SentioConfig:
    """Write the children's configuration to ``path`` (mode 0600: it may hold passwords),
    read it back as they will, and return it: a problem shows here, before anything starts."""
    data = reveal(config)  # the workers need the real secrets; the file is theirs alone
    if not data["producers"].get("simulate"):
        data["producers"] = {**data["producers"], "simulate": [plant]}
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("# written by `sentio run` for its workers; rewritten at every start\n")
        yaml.safe_dump(data, handle, sort_keys=False)
    temporary.replace(path)
    return load_config(path)
