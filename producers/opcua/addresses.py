"""Where a value lives on an OPC-UA server: node ids and browse paths, parsed from their text form.

Pure parsing (no asyncua) so configuration validation stays fast and testable:

- node id: ``ns=2;i=1001``, ``ns=2;s=Pump1.Speed``, ``ns=2;g=<guid>``, ``ns=2;b=<base64>``,
  ``i=2258`` (namespace 0), or ``nsu=<namespace uri>;s=...`` (the index is looked up on the
  server when subscribing, so it survives a server that renumbers its namespaces).
- browse path: ``0:Objects/2:Plant/2:Pump1/2:Speed``, from the Root folder, each step
  ``<namespace index>:<browse name>`` along hierarchical references.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from dataclasses import dataclass
from typing import Literal

IdentifierKind = Literal["i", "s", "g", "b"]

NODE_ID_FORMS = "ns=<index>;i=<number>, ns=<index>;s=<name>, ns=<index>;g=<guid>, ns=<index>;b=<base64>, or nsu=<namespace uri>;s=<name>"
BROWSE_PATH_FORM = "<index>:<name>/<index>:<name>/..., e.g. 0:Objects/2:Plant/2:Pump1/2:Speed"

_PREFIX = re.compile(r"^(?:ns=(?P<ns>\d+);|nsu=(?P<nsu>[^;]+);)?(?P<kind>[isgb])=(?P<id>.+)$", re.S)
_STEP = re.compile(r"^(?P<ns>\d+):(?P<name>[^/]+)$")
MAX_UINT16 = 65535
MAX_UINT32 = 4294967295


@dataclass(frozen=True, slots=True)
class NodeIdText:
    """A parsed node id: a namespace (index, or URI to look up) and a typed identifier."""

    namespace: int | str
    kind: IdentifierKind
    identifier: int | str | uuid.UUID | bytes


@dataclass(frozen=True, slots=True)
class BrowseStep:
    """One step of a browse path: a browse name in a namespace."""

    namespace: int
    name: str


def parse_node_id(text: str) -> NodeIdText:
    """Parse the text form of a node id; ValueError says what is wrong and what would be valid."""
    match = _PREFIX.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a node id; use {NODE_ID_FORMS}")
    namespace: int | str = match["nsu"] if match["nsu"] is not None else int(match["ns"] or 0)
    if isinstance(namespace, int) and namespace > MAX_UINT16:
        raise ValueError(f"{text!r}: namespace index {namespace} is above 65535")
    kind: IdentifierKind = match["kind"]  # type: ignore[assignment]  # the pattern allows only these
    raw = match["id"]
    identifier: int | str | uuid.UUID | bytes
    if kind == "i":
        if not raw.isdigit() or int(raw) > MAX_UINT32:
            raise ValueError(f"{text!r}: a numeric identifier (i=) is a whole number 0..4294967295")
        identifier = int(raw)
    elif kind == "g":
        try:
            identifier = uuid.UUID(raw)
        except ValueError:
            raise ValueError(
                f"{text!r}: a guid identifier (g=) looks like 09087e75-8e5e-499b-954f-f2a9603db28a"
            ) from None
    elif kind == "b":
        try:
            identifier = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{text!r}: an opaque identifier (b=) is base64") from None
    else:
        identifier = raw
    return NodeIdText(namespace, kind, identifier)


def parse_browse_path(text: str) -> tuple[BrowseStep, ...]:
    """Parse ``0:Objects/2:Plant/...``; ValueError names the bad step and the expected form."""
    if not text.strip():
        raise ValueError(f"the browse path is empty; use {BROWSE_PATH_FORM}")
    steps: list[BrowseStep] = []
    for position, step in enumerate(text.strip().split("/"), start=1):
        match = _STEP.match(step)
        if match is None:
            raise ValueError(
                f"{text!r}: step {position} {step!r} is not <namespace index>:<browse name>; use {BROWSE_PATH_FORM}"
            )
        namespace = int(match["ns"])
        if namespace > MAX_UINT16:
            raise ValueError(f"{text!r}: step {position} has namespace index {namespace} > 65535")
        steps.append(BrowseStep(namespace, match["name"]))
    return tuple(steps)
