"""Secrets in configuration: hidden wherever configuration is shown, revealed only to use them.

Every secret field is a pydantic ``SecretStr`` (its ``str()`` and JSON dump are ``**********``).
Where settings are untyped (``kafka.extra``, a connector's device entries before its own model
validated them, an invalid value in a validation error) the key names decide: ``password``,
``secret``, ``*_token``, ``basic_auth``, ``private_key``, ``sasl.jaas.config`` and the like.
``reveal`` undoes the masking only where a child process needs the real values
(``sentio run`` writes its workers' configuration file, mode 0600).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "**********"
_URL_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*:)([^/@]*)@")

_SECRET_KEY = re.compile(
    r"(^|[._-])("
    r"pass(word|wd|phrase)?|secret|credentials?|authorization|"
    r"((access|bearer|auth|api|refresh|id)[_.-]?)?token|"
    r"basic[_.-]?auth|api[_.-]?key|private[_.-]?key|key[_.-]?pem|"
    r"jaas[_.-]?config|oauthbearer[_.-]?config"
    r")($|[._-])",
    re.IGNORECASE,
)


def is_secret_key(name: object) -> bool:
    """True for a key that names a secret (``sasl.password``, ``access_token``); False for
    one naming where a secret is found (``password_env``, ``private_key_path``)."""
    if not isinstance(name, str) or name.endswith(("_env", "_path", "_file")):
        return False
    return _SECRET_KEY.search(name) is not None


def secret_value(value: SecretStr | str | None) -> str | None:
    """The clear value of a secret setting (a plain string passes through)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value


def mask(data: Any) -> Any:
    """``data`` with every value under a secret-named key, and every SecretStr, masked."""
    if isinstance(data, SecretStr):
        return MASK
    if isinstance(data, dict):
        return {
            key: (MASK if is_secret_key(key) and value not in (None, "") else mask(value))
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [mask(item) for item in data]
    if isinstance(data, str) and "@" in data:  # http://user:password@host/...
        return _URL_PASSWORD.sub(lambda found: f"{found.group(1)}{MASK}@", data)
    return data


def reveal(model: BaseModel) -> dict[str, Any]:
    """``model.model_dump(mode="json")`` with the clear values of its secrets."""
    shown: dict[str, Any] = _revealed(model.model_dump(mode="json"), model.model_dump())
    return shown


def _revealed(shown: Any, actual: Any) -> Any:
    if isinstance(actual, SecretStr):
        return actual.get_secret_value()
    if isinstance(actual, dict) and isinstance(shown, dict):
        return {key: _revealed(value, actual.get(key)) for key, value in shown.items()}
    if isinstance(actual, list | tuple) and isinstance(shown, list):
        return [_revealed(s, a) for s, a in zip(shown, actual, strict=False)]
    return shown
