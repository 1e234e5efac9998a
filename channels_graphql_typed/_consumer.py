"""The I/O shell: a Channels consumer that serves a Strawberry schema over WebSocket.

The consumer owns the socket and nothing else. Every protocol decision is taken by the
sans-IO machine of the negotiated subprotocol (:mod:`channels_graphql_typed._protocol`);
every operation is run by the connection's
:class:`~channels_graphql_typed._runner.ConnectionOperations`, which the next transports
share. A frame goes in to the machine, the machine's actions go to the runner, which
starts and stops operations and hands the rest back to
:meth:`GraphqlWsConsumer._perform`: send, close, run ``on_connect``. Results come the same
way, from the runner through the machine to ``_perform``.

What stays here besides the socket is what only WebSocket has: the origin check, the
choice of subprotocol, the ``connection_init`` handshake (``on_connect``) with its wait
timer, and the keep-alive timer. Those timers and the ``on_connect`` task are tasks of
the runner too (:meth:`~channels_graphql_typed._runner.ConnectionOperations.spawn`), so
that disconnect cancels and awaits everything at once: nothing outlives the socket.

The class attributes that concern operations are read once per class into a
:class:`~channels_graphql_typed._runner.ServerSettings`, executor included; the ones of
the socket are read when it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, cast

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.urls import path

from . import _observability as observing
from ._context import Context
from ._drain import ConnectionDrain, close_for_restart, process_drain
from ._exceptions import ConnectionRejected
from ._fanout import get_fanout
from ._log import logger
from ._protocol import (
    PROTOCOL_MACHINES,
    SUBPROTOCOLS,
    Close,
    CloseCode,
    ConnectionInitRequested,
    ProtocolMachine,
    Send,
    SendText,
)
from ._runner import ConnectionOperations
from ._server import GraphqlServer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from asgiref.typing import (
        ASGIReceiveCallable,
        WebSocketConnectEvent,
        WebSocketDisconnectEvent,
        WebSocketReceiveEvent,
    )
    from channels.routing import URLRouter, _ExtendedURLPattern

    from ._context import Context
    from ._protocol import Action

    # What URLRouter's list holds; a union, so that a list of routes held in a variable
    # (``list`` is invariant) is what URLRouter takes too.
    WebsocketRoute: TypeAlias = _ExtendedURLPattern | URLRouter


class GraphqlWsConsumer(GraphqlServer, AsyncWebsocketConsumer):
    """Serves ``schema`` over both GraphQL WebSocket subprotocols.

    Subclass it and set ``schema``; every other class attribute has a default (those
    that concern operations come from :class:`~channels_graphql_typed.GraphqlServer`)::

        class MyGraphqlConsumer(GraphqlWsConsumer):
            schema = strawberry.Schema(query=Query, subscription=Subscription)
            send_ping_every = 20
    """

    subprotocols: ClassVar[Sequence[str]] = SUBPROTOCOLS
    """Accepted subprotocols; the client's first offered one that is listed here wins."""

    connection_init_wait_timeout: ClassVar[float | None] = 3
    """Seconds to wait for ``connection_init`` before closing 4408 (None: forever)."""

    send_ping_every: ClassVar[float | None] = None
    """Seconds between keep-alives: ``ping`` (graphql-transport-ws) or ``ka`` (graphql-ws)."""

    max_operations_per_connection: ClassVar[int | None] = 100
    """Active operations allowed per connection; beyond it an operation gets an error."""

    max_connection_init_payload_size: ClassVar[int | None] = 64 * 1024
    """Largest ``connection_init`` frame, in bytes; larger is refused like a bad frame."""

    # --- hooks ----------------------------------------------------------------------------

    async def on_connect(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Called with the ``connection_init`` payload; returns the ack payload.

        Raise :class:`ConnectionRejected` to refuse the connection.
        """
        return None

    async def on_disconnect(self, code: int) -> None:
        """Called once the socket is closed and every task of it has ended."""

    # --- class-level resources --------------------------------------------------------------

    @classmethod
    def as_route(cls, route: str, *, name: str | None = None, **initkwargs: Any) -> WebsocketRoute:
        """``django.urls.path(route, cls.as_asgi(**initkwargs), name=name)``, typed as the
        route that Channels' ``URLRouter`` takes::

            URLRouter([ChatConsumer.as_route("graphql/")])

        (The stubs of Django and Channels type ``path()`` for Django views only, so the
        plain spelling, which works the same at run time, fails ``mypy --strict``.)
        """
        application: Any = cls.as_asgi(**initkwargs)
        return cast("WebsocketRoute", path(route, application, name=name))

    # --- connection state ------------------------------------------------------------------

    machine: ProtocolMachine | None
    context: Context
    _operations: ConnectionOperations
    """The connection's operation runner (set with ``machine``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.machine = None
        self._closed = False
        self._close_code: int | None = None
        self._subprotocol = ""
        self._init_timer: asyncio.TimerHandle | None = None
        self._drain: ConnectionDrain | None = None

    # Channels' AsyncConsumer.__call__ sets ``channel_receive`` to the channel layer's
    # receive on the connection's own channel, and ends the connection when it raises:
    # a Redis restart would close every socket. It is replaced by the fan-out's receive
    # on the same channel, which waits such failures out (and ends when cancelled).
    @property
    def channel_receive(self) -> ASGIReceiveCallable:
        return self._channel_receive

    @channel_receive.setter
    def channel_receive(self, receive: ASGIReceiveCallable) -> None:
        self._channel_receive = cast("ASGIReceiveCallable", self._receive_from_layer)

    async def _receive_from_layer(self) -> dict[str, Any]:
        # The channel layer is a trust boundary: what comes from it is never taken for
        # the client's own frames (a writer to Redis can learn channel names), and a
        # message no handler takes is dropped, not an end of the connection.
        health = get_fanout(self.channel_layer_alias).health
        while True:
            message: Any = await health.receive(self.channel_name)
            kind = message.get("type") if isinstance(message, dict) else None
            if (
                isinstance(kind, str)
                and not kind.startswith(("websocket.", "."))
                and callable(getattr(self, get_handler_name(message), None))
            ):
                return cast("dict[str, Any]", message)
            health.malformed_message(
                f"a message of type {str(kind)[:40]!r} for a connection, which has no "
                "handler for it"
            )

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch takes a thread hop per message to close stale database
        # connections; our resolvers that may touch the database already run in
        # threads that do this themselves, so the hop would only add latency.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message: WebSocketConnectEvent) -> None:
        if not self._origin_allowed(self.scope.get("headers", ())):
            # Refused before accept: the ASGI server answers the handshake with 403.
            await self.close()
            return
        offered = self.scope.get("subprotocols") or []
        chosen = next(
            (p for p in offered if p in self.subprotocols and p in PROTOCOL_MACHINES), None
        )
        if chosen is None:
            # Accept first so that the client sees the close code and reason.
            await self.accept()
            await self._close(CloseCode.SUBPROTOCOL_NOT_ACCEPTABLE, "Subprotocol not acceptable")
            return
        settings = self._server_settings()
        self.machine = PROTOCOL_MACHINES[chosen](
            max_operations=self.max_operations_per_connection,
            max_message_size=self.max_message_size,
            max_init_payload_size=self.max_connection_init_payload_size,
        )
        self.context = self._new_context(self.scope, getattr(self, "channel_name", None))
        self._operations = ConnectionOperations(
            self.machine,
            _ConsumerSink(self),
            settings,
            self.context,
        )
        await self.accept(chosen)
        # Known to the process's graceful drain (see drain_on_shutdown) while it lives.
        self._drain = ConnectionDrain(self._operations, self._close_for_restart)
        process_drain().register(self._drain)
        self._subprotocol = chosen
        observing.observer.connection_opened("websocket", chosen)
        if self.connection_init_wait_timeout is not None:
            # A timer handle, not a task: it costs far less memory per waiting socket.
            self._init_timer = asyncio.get_running_loop().call_later(
                self.connection_init_wait_timeout, self._init_timed_out
            )

    async def websocket_receive(self, message: WebSocketReceiveEvent) -> None:
        if self.machine is None:
            return
        text = message.get("text")
        if text is not None:
            actions = self.machine.receive_text(text)
        else:
            actions = self.machine.receive_bytes(message.get("bytes") or b"")
        await self._handle(actions)

    async def websocket_disconnect(self, message: WebSocketDisconnectEvent) -> None:
        self._closed = True
        self._cancel_init_timer()
        if self._drain is not None:
            process_drain().unregister(self._drain)
        if self.machine is not None:
            # Its StopOperation actions need not be carried out: closing the runner
            # cancels every task of the connection.
            self.machine.close(CloseCode.NORMAL, "")
            await self._operations.close()
        if self.machine is not None:
            code = message.get("code", CloseCode.NORMAL)
            # The code the server closed with, else the client's.
            closed_with = code if self._close_code is None else self._close_code
            observing.observer.connection_closed("websocket", self._subprotocol, closed_with)
            try:
                await self.on_disconnect(code)
            except Exception:
                logger.exception("on_disconnect raised")
        await super().websocket_disconnect(message)

    # --- carrying out the machine's actions --------------------------------------------------

    async def _handle(self, actions: list[Action]) -> None:
        # Every action list of the machine goes through the runner, which starts and
        # stops the operations and hands the rest back to _perform, in order.
        await self._operations.handle(actions)

    async def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case Send(message):
                    await self._send_text(json.dumps(message, separators=(",", ":")))
                case SendText(text):
                    await self._send_text(text)
                case Close(code, reason):
                    await self._close(code, reason)
                case ConnectionInitRequested(payload):
                    self._cancel_init_timer()
                    self._operations.spawn(self._initialise(payload))
                # StartOperation and StopOperation are the runner's: they never get here.

    async def _send_text(self, text: str) -> None:
        if self._closed:
            return
        try:
            await self.send(text_data=text)
        except OSError:
            # The ASGI server says the socket is gone; disconnect will follow.
            self._closed = True

    async def _close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_code = code
        with contextlib.suppress(OSError):
            # A plain int: Daphne (autobahn) refuses int subclasses such as CloseCode.
            await self.close(int(code), reason)

    async def _close_for_restart(self) -> None:
        # The graceful drain's close: what was queued is sent, the client may reconnect.
        if self._closed:
            return
        self._closed = True
        await close_for_restart(self.base_send)

    # --- connection handshake and timers -------------------------------------------------------

    def _cancel_init_timer(self) -> None:
        if self._init_timer is not None:
            self._init_timer.cancel()
            self._init_timer = None

    def _init_timed_out(self) -> None:
        self._init_timer = None
        assert self.machine is not None
        actions = self.machine.init_timeout()
        if actions:
            self._operations.spawn(self._handle(actions))

    async def _initialise(self, payload: dict[str, Any]) -> None:
        assert self.machine is not None
        self.context.connection_params = payload
        try:
            ack = await self.on_connect(payload)
        except ConnectionRejected as exc:
            await self._handle(self.machine.reject_connection(exc.payload))
            return
        except Exception:
            logger.exception("on_connect raised")
            await self._handle(self.machine.reject_connection({"message": "Forbidden"}))
            return
        actions = self.machine.accept_connection(ack)
        if self.send_ping_every is not None and actions:
            if self.machine.keepalive_on_ack:
                actions += self.machine.keepalive()
            self._operations.spawn(self._keepalive_timer(self.send_ping_every))
        await self._handle(actions)

    async def _keepalive_timer(self, every: float) -> None:
        assert self.machine is not None
        while not self._closed:
            await asyncio.sleep(every)
            await self._handle(self.machine.keepalive())


class _ConsumerSink:
    """A consumer as its runner sees it: its ``_perform`` and its ``on_operation`` hook.

    A separate object, because a public ``perform`` of the consumer would be the handler
    of channel-layer messages of type ``perform``.
    """

    __slots__ = ("on_operation", "perform")

    def __init__(self, consumer: GraphqlWsConsumer) -> None:
        self.perform = consumer._perform
        self.on_operation = consumer.on_operation
