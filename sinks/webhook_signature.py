"""The webhook sink's signature: HMAC-SHA256 over ``<timestamp>.<body>`` with the URL's secret.

Headers of every request::

    X-Sentio-Timestamp: 1765101600                  (Unix seconds when it was signed)
    X-Sentio-Signature: sha256=<64 hex digits>      (HMAC-SHA256(secret, f"{timestamp}." + body))

A receiver recomputes the HMAC over the raw body it got, compares in constant time and
refuses a timestamp older than a few minutes (a replayed request). docs/alerting.md has the
same check as a stand-alone snippet; tests run that snippet against this code.
"""

from __future__ import annotations

import hashlib
import hmac

TIMESTAMP_HEADER = "X-Sentio-Timestamp"
SIGNATURE_HEADER = "X-Sentio-Signature"
PREFIX = "sha256="


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>`` of ``<timestamp>.<body>``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return PREFIX + mac.hexdigest()


def signed_headers(secret: bytes, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }
