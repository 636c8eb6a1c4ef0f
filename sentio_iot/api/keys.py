"""Ed25519 signing keys for the API's JWTs: generated on first start, mode 0600, with kids.

Keys live in ``<state_dir>/keys/<kid>.pem``. The newest key signs; every key in the folder
verifies, and the JWKS endpoint publishes them all, so a key can be rotated without logging
anyone out: add a key (``sentio users rotate-key``), wait one access-token lifetime for
clients to see it, then remove the old file. The kid is the RFC 7638 thumbprint of the
public key (first 16 hex digits), so a token names the exact key that signed it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sentio_iot.api.store import private_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey
    created: float

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def jwk(self) -> dict[str, str]:
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": _x(self.public),
            "kid": self.kid,
            "use": "sig",
            "alg": "EdDSA",
        }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _x(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return _b64(raw)


def thumbprint(public: Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint (SHA-256), first 16 hex digits (a safe file name)."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _x(public)}, separators=(",", ":"), sort_keys=True
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class KeyRing:
    """The signing keys of one state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.folder = private_dir(state_dir / "keys")
        self.keys: dict[str, SigningKey] = {}
        self.reload()

    def reload(self) -> None:
        keys: dict[str, SigningKey] = {}
        for path in sorted(self.folder.glob("*.pem")):
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private, Ed25519PrivateKey):
                log.warning("signing key skipped: not Ed25519 file=%s", path.name)
                continue
            key = SigningKey(thumbprint(private.public_key()), private, path.stat().st_mtime)
            keys[key.kid] = key
        self.keys = keys

    def ensure(self) -> SigningKey:
        """The signing key, generated (mode 0600) when the folder has none."""
        if not self.keys:
            return self.add()
        return self.signing

    def add(self) -> SigningKey:
        """A new key, which signs from now on; the older ones still verify."""
        private = Ed25519PrivateKey.generate()
        kid = thumbprint(private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path = self.folder / f"{kid}.pem"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        log.info("signing key created kid=%s", kid)
        self.reload()
        return self.keys[kid]

    @property
    def signing(self) -> SigningKey:
        return max(self.keys.values(), key=lambda k: (k.created, k.kid))

    def public(self, kid: str) -> Ed25519PublicKey | None:
        key = self.keys.get(kid)
        return key.public if key else None

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in sorted(self.keys.values(), key=lambda k: k.kid)]}
