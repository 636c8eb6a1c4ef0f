"""One connection to an OPC-UA server: connect, resolve the nodes, subscribe, notice the loss.

A session is used once: when the server goes away it is closed and the connector opens a new
one (new secure channel, new session, new subscription). asyncua's own supervisor probes the
server state every ``watchdog_interval_s`` and reports a lost transport; a subscription that
the server closes (BadTimeout, BadShutdown) ends the session too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeNotif
from asyncua.ua.attribute_ids import AttributeIds
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaStatusCodeError

from sentio_iot.errors import ConfigError, ConnectError
from sentio_iot.producers.opcua.addresses import NodeIdText, parse_browse_path, parse_node_id
from sentio_iot.producers.opcua.config import NodeConfig, OpcUaServerConfig
from sentio_iot.producers.opcua.security import ClientIdentity, secure

logger = logging.getLogger(__name__)

ID_TYPES = {
    "i": ua.NodeIdType.Numeric,
    "s": ua.NodeIdType.String,
    "g": ua.NodeIdType.Guid,
    "b": ua.NodeIdType.ByteString,
}

# asyncua annotates booleans with its own Boolean class, which bool values cannot satisfy
TRUE = cast("ua.Boolean", True)
FALSE = cast("ua.Boolean", False)

OnChange = Callable[[int, ua.DataValue], None]  # (index in config.nodes, the value)
OnNodeError = Callable[[int, str], None]  # (index in config.nodes, what went wrong)


@dataclass(frozen=True, slots=True)
class Subscribed:
    """What ``open()`` achieved: nodes monitored out of those configured."""

    monitored: int
    configured: int


class OpcUaSession:
    """A client, its subscription and the monitored items of one connection."""

    def __init__(
        self,
        settings: OpcUaServerConfig,
        identity: ClientIdentity,
        on_change: OnChange,
        on_node_error: OnNodeError,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.on_change = on_change
        self.on_node_error = on_node_error
        self.lost = asyncio.Event()
        self.lost_reason = "session closed"
        self._client: Client | None = None

    async def open(self) -> Subscribed:
        """Connect and subscribe; ConnectError for anything the server or network does."""
        settings = self.settings
        client = Client(
            settings.url,
            timeout=settings.request_timeout_s,
            watchdog_intervall=settings.watchdog_interval_s,
            auto_reconnect=False,
        )
        client.session_timeout = int(settings.session_timeout_s * 1000)
        client.name = client.description = f"sentio-iot {settings.device_id}"
        client.connection_lost_callback = self._transport_lost
        try:
            await secure(client, settings, self.identity)
            await client.connect()  # cleans up its own socket when it fails
        except (ConfigError, asyncio.CancelledError):
            client.disconnect_socket()
            raise
        except Exception as exc:
            client.disconnect_socket()
            raise self._failure(exc) from exc
        self._client = client
        try:
            return await self._subscribe(client)
        except asyncio.CancelledError:
            await self.close()
            raise
        except Exception as exc:
            await self.close()
            raise self._failure(exc) from exc

    async def close(self) -> None:
        """Close the session and the channel; safe after a lost connection and twice.

        asyncua swallows a cancellation that arrives while it stops its own tasks; it is
        raised again here so that cancelling ``run()`` always ends it.
        """
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.disconnect()
        except Exception as exc:  # the transport may already be gone
            logger.debug("opcua %s: disconnect: %s", self.settings.device_id, describe(exc))
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

    def _failure(self, exc: Exception) -> ConnectError:
        """Every server or network fault becomes a ConnectError: retried, never raised on."""
        if isinstance(exc, ConnectError):
            return exc  # already one line (an untrusted server certificate)
        if isinstance(exc, TimeoutError):
            reason = f"no answer within {self.settings.request_timeout_s:g} s"
        else:
            reason = describe(exc)
        return ConnectError(f"{self.settings.url}: {reason}")

    async def _subscribe(self, client: Client) -> Subscribed:
        settings = self.settings
        node_ids = await self._resolve(client)
        subscription = await client.create_subscription(settings.publishing_interval_ms, self)
        found = [(i, node_id) for i, node_id in enumerate(node_ids) if node_id is not None]
        indexes = [i for i, _ in found]
        requests = [
            monitored_item_request(i, node_id, settings.nodes[i], settings) for i, node_id in found
        ]
        results = await subscription.create_monitored_items(requests) if requests else []
        monitored = 0
        for index, result in zip(indexes, results, strict=True):
            if isinstance(result, ua.StatusCode):
                self.on_node_error(index, f"the server refused to monitor it: {result.name}")
            else:
                monitored += 1
        return Subscribed(monitored, len(settings.nodes))

    async def _resolve(self, client: Client) -> list[ua.NodeId | None]:
        """Node ids for every configured node; None (and an error reported) where none exists."""
        nodes = self.settings.nodes
        resolved: list[ua.NodeId | None] = [None] * len(nodes)
        namespaces: list[str] | None = None
        paths: list[tuple[int, ua.RelativePath]] = []
        for index, node in enumerate(nodes):
            if node.browse_path is not None:
                paths.append((index, relative_path(node.browse_path)))
                continue
            parsed = parse_node_id(node.node_id or "")
            if isinstance(parsed.namespace, str) and namespaces is None:
                namespaces = await client.get_namespace_array()
            node_id = to_node_id(parsed, namespaces or [])
            if node_id is None:
                self.on_node_error(index, f"the server has no namespace {parsed.namespace}")
            resolved[index] = node_id
        if paths:
            root = ua.NodeId(ua.Int32(ObjectIds.RootFolder))
            results = await client.translate_browsepaths(root, [path for _, path in paths])
            for (index, _), result in zip(paths, results, strict=True):
                if not result.StatusCode.is_good() or not result.Targets:
                    self.on_node_error(
                        index, f"the browse path leads nowhere: {result.StatusCode.name}"
                    )
                    continue
                target = result.Targets[0].TargetId
                resolved[index] = ua.NodeId(
                    target.Identifier, target.NamespaceIndex, target.NodeIdType
                )
        return resolved

    # asyncua subscription handler: called in order, one task per notification

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        item = data.monitored_item
        self.on_change(int(item.ClientHandle) - 1, item.Value)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        code = status.Status
        if code is not None and not code.is_good():
            self._mark_lost(f"the server ended the subscription: {code.name}")

    async def _transport_lost(self, exc: Exception) -> None:
        if isinstance(exc, TimeoutError):
            watchdog = self.settings.watchdog_interval_s
            self._mark_lost(
                f"connection lost: no answer to the watchdog probe within {watchdog:g} s"
            )
        else:
            self._mark_lost(f"connection lost: {describe(exc)}")

    def _mark_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            self.lost.set()


def monitored_item_request(
    index: int, node_id: ua.NodeId, node: NodeConfig, settings: OpcUaServerConfig
) -> ua.MonitoredItemCreateRequest:
    """Monitor the Value attribute; the client handle is the node's index + 1."""
    parameters = ua.MonitoringParameters()
    parameters.ClientHandle = index + 1
    parameters.SamplingInterval = (
        node.sampling_interval_ms
        if node.sampling_interval_ms is not None
        else settings.sampling_interval_ms
    )
    parameters.QueueSize = settings.queue_size
    parameters.DiscardOldest = True
    data_filter = deadband_filter(node)
    if data_filter is not None:
        parameters.Filter = data_filter
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = ua.ReadValueId(NodeId=node_id, AttributeId=AttributeIds.Value)
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = parameters
    return request


def deadband_filter(node: NodeConfig) -> ua.DataChangeFilter | None:
    """A DataChangeFilter reporting status or value changes beyond the deadband, if one is set."""
    if node.deadband_absolute is not None:
        kind, value = ua.DeadbandType.Absolute, node.deadband_absolute
    elif node.deadband_percent is not None:
        kind, value = ua.DeadbandType.Percent, node.deadband_percent
    else:
        return None
    data_filter = ua.DataChangeFilter()
    data_filter.Trigger = ua.DataChangeTrigger.StatusValue
    data_filter.DeadbandType = kind
    data_filter.DeadbandValue = value
    return data_filter


def relative_path(browse_path: str) -> ua.RelativePath:
    """``0:Objects/2:Plant`` as forward hierarchical references from the Root folder."""
    hierarchical = ua.NodeId(ua.Int32(ObjectIds.HierarchicalReferences))
    return ua.RelativePath(
        Elements=[
            ua.RelativePathElement(
                ReferenceTypeId=hierarchical,
                IsInverse=FALSE,
                IncludeSubtypes=TRUE,
                TargetName=ua.QualifiedName(step.name, step.namespace),
            )
            for step in parse_browse_path(browse_path)
        ]
    )


def to_node_id(parsed: NodeIdText, namespaces: list[str]) -> ua.NodeId | None:
    """The wire node id; a namespace URI becomes its index (None if the server lacks it)."""
    namespace = parsed.namespace
    if isinstance(namespace, str):
        if namespace not in namespaces:
            return None
        namespace = namespaces.index(namespace)
    return ua.NodeId(_identifier(parsed.identifier), ua.Int16(namespace), ID_TYPES[parsed.kind])


def _identifier(
    raw: int | str | uuid.UUID | bytes,
) -> ua.Int32 | ua.String | ua.Guid | ua.ByteString:
    if isinstance(raw, int):
        return ua.Int32(raw)
    if isinstance(raw, uuid.UUID):
        return ua.Guid(int=raw.int)
    if isinstance(raw, bytes):
        return ua.ByteString(raw)
    return ua.String(raw)


def describe(exc: BaseException) -> str:
    """A one-line reason: status code names for OPC-UA errors, the message otherwise."""
    if isinstance(exc, UaStatusCodeError):
        return str(exc)  # e.g. BadUserAccessDenied(User does not have permission ...)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
