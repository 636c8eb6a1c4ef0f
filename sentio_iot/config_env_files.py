"""Secrets read from files named in the environment: ``SENTIO_<SETTING>__FILE=/path``.

Docker Compose and Kubernetes hand secrets to a container as files (a secrets volume); a
password in the environment itself shows in ``docker inspect``. So, as Grafana's
``GF_<VAR>__FILE``, ``SENTIO_KAFKA__SASL_PASSWORD__FILE=/run/secrets/sentio/kafka.password``
sets ``kafka.sasl_password`` to the file's content (one trailing newline dropped).

Only secret settings (``SecretStr`` fields, e.g. ``kafka.sasl_password``,
``sinks.victoriametrics.auth.basic_auth``) may be read so; each problem is one
:class:`~sentio_iot.errors.ConfigError` line naming the variable: a setting that is not a
secret, the same setting also given directly, a file that cannot be read.
"""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings
from pydantic_settings.sources import EnvSettingsSource

from sentio_iot.errors import ConfigError

SUFFIX = "__FILE"
MAX_BYTES = 64 * 1024  # a password or token, never a data file


class SecretFileEnvSource(EnvSettingsSource):
    """``EnvSettingsSource`` whose variables are the ``<NAME>__FILE`` ones, read from files."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return secret_file_values(os.environ, self.settings_cls, self.env_prefix)


class PlainEnvSource(EnvSettingsSource):
    """``EnvSettingsSource`` without the ``<NAME>__FILE`` variables (else ``__FILE`` would
    be taken for a nested field named ``file``)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            name: value
            for name, value in super()._load_env_vars().items()
            if not name.upper().endswith(SUFFIX)
        }


def secret_file_values(
    environ: Mapping[str, str], settings_cls: type[BaseSettings], prefix: str
) -> dict[str, str | None]:
    """``{lower-case variable name: file content}`` for every ``<prefix>...__FILE`` in
    ``environ``; ConfigError for the first one that cannot be used."""
    values: dict[str, str | None] = {}
    for name, location in sorted(environ.items()):
        upper = name.upper()
        if not (upper.startswith(prefix.upper()) and upper.endswith(SUFFIX)):
            continue
        target = name[: -len(SUFFIX)]
        path = target[len(prefix) :].lower().split("__")
        if not is_secret_setting(settings_cls, path):
            raise ConfigError(
                f"{name}: {'.'.join(path)} is not a secret setting; only secrets "
                f"(passwords, tokens) are read from files: set {target} itself"
            )
        if target in environ:
            raise ConfigError(f"{name}: {target} is set too: keep one of them")
        values[target.lower()] = read_secret_file(name, Path(location))
    return values


def read_secret_file(variable: str, path: Path) -> str:
    """The secret in ``path`` without its trailing newline; ConfigError naming ``variable``."""
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"{variable}: cannot read {path}: {exc.strerror or exc}: mount the file or fix the path"
        ) from None
    if len(data) > MAX_BYTES:
        raise ConfigError(f"{variable}: {path} is over {MAX_BYTES} bytes: not a secret")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{variable}: {path} is not UTF-8 text") from None
    text = text[:-1] if text.endswith("\n") else text
    text = text[:-1] if text.endswith("\r") else text
    if not text:
        raise ConfigError(f"{variable}: {path} is empty: write the secret into it")
    return text


def is_secret_setting(model: type[BaseModel], path: list[str]) -> bool:
    """Whether ``path`` (lower-case field names) leads through nested sections to a
    ``SecretStr`` field of ``model``."""
    current: Any = model
    for index, part in enumerate(path):
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return False
        field = current.model_fields.get(part)
        if field is None:
            return False
        options = _options(field.annotation)
        if index == len(path) - 1:
            return SecretStr in options
        sections = [o for o in options if isinstance(o, type) and issubclass(o, BaseModel)]
        if len(sections) != 1:
            return False
        current = sections[0]
    return False


def _options(annotation: Any) -> tuple[Any, ...]:
    """The members of a union annotation (``SecretStr | None``), or the annotation itself."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return (annotation,)
