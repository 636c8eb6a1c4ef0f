"""Logging set-up (key=value lines). Tracing is set up in sentio_iot.tracing."""

from __future__ import annotations

import logging
import sys


class KeyValueFormatter(logging.Formatter):
    """``ts level logger message key=value ...`` from ``extra={...}`` fields."""

    _standard = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
        "message",
        "asctime",
    }

    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = " ".join(
            f"{key}={value}" for key, value in record.__dict__.items() if key not in self._standard
        )
        line = f"{base} {extras}" if extras else base
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: int = logging.INFO) -> None:
    root = logging.getLogger()
    if any(getattr(h, "_sentio", False) for h in root.handlers):
        root.setLevel(level)
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    handler._sentio = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore"):  # one line per HTTP request drowns ours
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
