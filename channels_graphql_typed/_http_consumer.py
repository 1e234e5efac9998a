"""The I/O shell of GraphQL over HTTP and over Server-Sent Events: a Channels HTTP consumer.

Like the WebSocket consumer, it owns the request and nothing else: every protocol
decision is taken by the request's sans-IO
:class:`~channels_graphql_typed._protocol.http.GraphqlHttpProtocol`, and its one
operation is run by a :class:`~channels_graphql_typed._runner.ConnectionOperations`,
whose actions come back to :meth:`GraphqlHttpConsumer._perform` as response starts,
chunks and ends.

Channels' ``AsyncHttpConsumer`` hands the whole body to ``handle`` and stops the
consumer when it returns, and reads nothing from the client meanwhile: an event stream
whose client went away would run forever. So, once the body is complete, this consumer
waits for whichever comes first, the end of its response or the client's
``http.disconnect``, which it reads itself (Channels' dispatcher reads the next message
only once the handler of the current one has returned). A disconnect stops the
operation: the subscription leaves its groups and its ``unsubscribed`` hook runs
before the consumer ends. After a complete response the operation finishes on its own
(its clean-up included), then the consumer ends.

An HTTP request takes no channel-layer messages: typed subscriptions are notified
through the per-process fan-out, not through the consumer's channel.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, cast

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from django.urls import path

from . import _observability as observing
from ._drain import SERVICE_RESTART_REASON, ConnectionDrain, process_drain
from ._event_streams import SingleConnectionRequest, single_connection_request
from ._protocol import EndStream, Failure, Respond, SendChunk, StartStream
from ._protocol.common import error
from ._protocol.http import ALLOWED_METHODS, GraphqlHttpProtocol, RequestState
from ._protocol.multipart import GraphqlMultipartProtocol, multipart_requested
from ._protocol.sse_single import ALLOWED_METHODS as SINGLE_CONNECTION_METHODS
from ._runner import ConnectionOperations
from ._server import GraphqlServer

if TYPE_CHECKING:
    from asgiref.typing import (
        ASGIReceiveCallable,
        ASGISendCallable,
        HTTPDisconnectEvent,
        HTTPRequestEvent,
    )
    from channels.routing import URLRouter, _ExtendedURLPattern

    from ._context import Context
    from ._protocol import Action

    HttpRoute: TypeAlias = _ExtendedURLPattern | URLRouter


class GraphqlHttpConsumer(GraphqlServer, AsyncHttpConsumer):
    """Serves ``schema`` over GraphQL over HTTP (GET and POST), over Server-Sent
    Events (graphql-sse's distinct connections mode) and as Apollo's multipart
    subscriptions.

    Subclass it and set ``schema``; the operation settings are those of
    :class:`~channels_graphql_typed.GraphqlServer`, shared with
    :class:`~channels_graphql_typed.GraphqlWsConsumer` (``max_message_size`` bounds the
    request body). Queries and mutations get one JSON response (a mutation needs POST);
    a request that accepts ``text/event-stream`` gets its results as ``next`` events,
    which subscriptions need; one that accepts ``multipart/mixed;subscriptionSpec=1.0``
    (Apollo Client's ``HttpLink``) gets a subscription's results as multipart parts.
    Route it on the same path as the WebSocket consumer::

        ProtocolTypeRouter({
            "http": URLRouter([ChatHttpConsumer.as_route("graphql/")]),
            "websocket": URLRouter([ChatWsConsumer.as_route("graphql/")]),
        })
    """

    multipart_heartbeat_interval: ClassVar[float | None] = 5
    """Seconds between the empty parts (``{}``) that keep an idle multipart response
    open (None: none). Apollo's router sends one every 5 seconds."""

    sse_heartbeat_interval: ClassVar[float | None] = 12
    """Seconds between the comments (``:``) that keep an idle event stream open through
    proxies and load balancers (None: none). graphql-sse's own server sends one every
    12 seconds."""

    sse_single_connection: ClassVar[bool] = True
    """Serve graphql-sse's single connection mode: ``PUT`` reserves an event stream,
    ``GET`` opens it, ``POST`` submits operations to it from any process, ``DELETE``
    stops one (see :mod:`channels_graphql_typed._event_streams`)."""

    sse_reservation_timeout: ClassVar[float] = 30
    """Seconds a reserved event stream waits for its ``GET``; then it is closed."""

    # --- class-level resources --------------------------------------------------------------

    @classmethod
    def as_route(cls, route: str, *, name: str | None = None, **initkwargs: Any) -> HttpRoute:
        """``django.urls.path(route, cls.as_asgi(**initkwargs), name=name)``, typed as the
        route that Channels' ``URLRouter`` takes::

            URLRouter([ChatHttpConsumer.as_route("graphql/")])
        """
        application: Any = cls.as_asgi(**initkwargs)
        return cast("HttpRoute", path(route, application, name=name))

    # --- request state ----------------------------------------------------------------------

    machine: GraphqlHttpProtocol | None
    context: Context
    _operations: ConnectionOperations | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.machine = None
        self._operations = None
        self._response_done = False
        self._client_lost = False
        self._answered: asyncio.Event | None = None
        self._send_lock: asyncio.Lock | None = None
        self._single_connection: SingleConnectionRequest | None = None
        self._drain: ConnectionDrain | None = None
        self._status = 0
        """The response's status, once started (for the observers)."""
        self._observed_end = False

    async def __call__(
        self, scope: Any, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        # Kept to read the client's disconnect while the response is under way.
        self._receive_from_client = receive
        self._answered = asyncio.Event()
        self._send_lock = asyncio.Lock()
        await super().__call__(scope, receive, send)

    @property
    def channel_receive(self) -> ASGIReceiveCallable:
        return cast("ASGIReceiveCallable", self._no_layer_messages)

    @channel_receive.setter
    def channel_receive(self, receive: ASGIReceiveCallable) -> None:
        # Channels sets the channel layer's receive here; an HTTP request reads none.
        pass

    async def _no_layer_messages(self) -> dict[str, Any]:
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable")  # pragma: no cover

    async def dispatch(self, message: dict[str, Any]) -> None:
        # As GraphqlWsConsumer.dispatch: no thread hop per message to close stale
        # database connections (resolvers that touch the database run in threads that
        # do it themselves).
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def http_request(self, message: HTTPRequestEvent) -> None:
        if self.machine is None and self._single_connection is None and not await self._begin():
            raise StopConsumer()
        if self._single_connection is not None:
            await self._single_connection.receive(message)  # raises StopConsumer when done
            return
        assert self.machine is not None
        assert self._operations is not None
        actions = self.machine.receive_body(
            message.get("body", b""), message.get("more_body", False)
        )
        await self._operations.handle(actions)
        if self.machine.state is RequestState.RECEIVING:
            return  # more body to come
        try:
            await self._serve()
        finally:
            self._end_drain()
            await self._operations.close()
            self._observe_end()
        raise StopConsumer()

    async def http_disconnect(self, message: HTTPDisconnectEvent) -> None:
        # The client left before its body was complete: nothing was started.
        self._end_drain()
        if self._operations is not None:
            await self._operations.close()
            self._observe_end()
        raise StopConsumer()

    def _observe_end(self) -> None:
        if not self._observed_end:
            self._observed_end = True
            observing.observer.connection_closed("http", "http", self._status)

    # --- the request ------------------------------------------------------------------------

    async def _begin(self) -> bool:
        headers = self.scope.get("headers", ())
        if not self._origin_allowed(headers):
            # A page of another site: its browser would attach the victim's cookies.
            await self._perform(
                [
                    Respond(
                        403,
                        (("content-type", "application/json; charset=utf-8"),),
                        b'{"errors":[{"message":"Origin not allowed"}]}',
                    )
                ]
            )
            return False
        if self.sse_single_connection:
            self._single_connection = single_connection_request(self, self._receive_from_client)
            if self._single_connection is not None:
                return True
        settings = self._server_settings()
        self.context = self._new_context(self.scope, getattr(self, "channel_name", None))
        machine_class = (
            GraphqlMultipartProtocol if multipart_requested(headers) else GraphqlHttpProtocol
        )
        self.machine = machine_class(
            method=self.scope.get("method", "GET"),
            headers=headers,
            query_string=self.scope.get("query_string", b""),
            http_version=self.scope.get("http_version", "1.1"),
            operation_id=uuid.uuid4().hex,
            max_body_size=self.max_message_size,
            allowed_methods=(
                SINGLE_CONNECTION_METHODS if self.sse_single_connection else ALLOWED_METHODS
            ),
        )
        self._operations = ConnectionOperations(
            self.machine, _HttpSink(self), settings, self.context
        )
        # Known to the process's graceful drain (see drain_on_shutdown) while it lives.
        self._drain = ConnectionDrain(self._operations, self._close_for_restart)
        process_drain().register(self._drain)
        observing.observer.connection_opened("http", "http")
        return True

    def _end_drain(self) -> None:
        if self._drain is not None:
            process_drain().unregister(self._drain)
            self._drain = None

    async def _close_for_restart(self) -> None:
        # The graceful drain's close, once what was queued is sent (the operation then
        # stops, as for a client that left): an event stream ends without ``complete``
        # (the subscription did not end: graphql-sse's client retries); a multipart
        # response ends with a transport-level error (its clients' signal that the
        # subscription failed); a request still without its response gets 503.
        machine = self.machine
        assert machine is not None
        if self._response_done:
            return
        self._client_lost = True
        if machine.state is RequestState.STREAMING:
            if isinstance(machine, GraphqlMultipartProtocol) and machine.operation is not None:
                await self._perform(
                    machine.send_errors(
                        machine.operation, [error(SERVICE_RESTART_REASON)], Failure.INTERNAL
                    )
                )
            else:
                await self._perform([EndStream()])
        else:
            await self._perform(
                [
                    Respond(
                        503,
                        (
                            ("content-type", "application/json; charset=utf-8"),
                            ("retry-after", str(process_drain().retry_after)),
                        ),
                        b'{"errors":[{"message":"Service Restart"}]}',
                    )
                ]
            )

    async def _serve(self) -> None:
        # Until the response is complete or the client is gone, whichever comes first.
        assert self.machine is not None
        assert self._operations is not None
        assert self._answered is not None
        if self._answered.is_set():
            return
        heartbeat_interval = (
            self.multipart_heartbeat_interval
            if isinstance(self.machine, GraphqlMultipartProtocol)
            else self.sse_heartbeat_interval
        )
        if heartbeat_interval is not None:
            self._operations.spawn(self._heartbeat_timer(heartbeat_interval))
        gone = asyncio.ensure_future(self._client_gone())
        answered = asyncio.ensure_future(self._answered.wait())
        try:
            await asyncio.wait({gone, answered}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            answered.cancel()
        if answered.done() and not answered.cancelled() and not self._client_lost:
            # Let the operation end by itself: a subscription's clean-up runs after its
            # last event.
            await self._operations.wait_for_operations()
        else:
            self._response_done = True
            await self._operations.handle(self.machine.disconnect())

    async def _client_gone(self) -> None:
        while True:
            message = await self._receive_from_client()
            if message["type"] == "http.disconnect":
                return

    async def _heartbeat_timer(self, every: float) -> None:
        assert self.machine is not None
        while not self._response_done:
            await asyncio.sleep(every)
            await self._perform(self.machine.heartbeat())

    # --- carrying out the machine's actions --------------------------------------------------

    async def _perform(self, actions: list[Action]) -> None:
        assert self._send_lock is not None
        async with self._send_lock:
            for action in actions:
                if self._response_done:
                    return
                match action:
                    case Respond(status, headers, body):
                        await self._send_start(status, headers)
                        await self._send_body(body, more_body=False)
                    case StartStream(status, headers, body):
                        await self._send_start(status, headers)
                        await self._send_body(body, more_body=True)
                    case SendChunk(body):
                        await self._send_body(body, more_body=True)
                    case EndStream():
                        await self._send_body(b"", more_body=False)
                    # StartOperation and StopOperation are the runner's; the HTTP machine
                    # returns no other action.

    async def _send_start(self, status: int, headers: tuple[tuple[str, str], ...]) -> None:
        self._status = status
        encoded = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        try:
            await self.send_headers(status=status, headers=encoded)
        except OSError:
            self._lost()

    async def _send_body(self, body: bytes, *, more_body: bool) -> None:
        if self._response_done:
            return
        if not more_body:
            self._end_response()
        try:
            await self.send_body(body, more_body=more_body)
        except OSError:
            self._lost()

    def _end_response(self) -> None:
        self._response_done = True
        if self._answered is not None:
            self._answered.set()

    def _lost(self) -> None:
        # The server says the client is gone (its disconnect will follow): the operation
        # is stopped as for a disconnect.
        self._client_lost = True
        self._end_response()


class _HttpSink:
    """The consumer as its runner sees it (see ``_ConsumerSink`` of the WebSocket one)."""

    __slots__ = ("on_operation", "perform")

    def __init__(self, consumer: GraphqlHttpConsumer) -> None:
        self.perform = consumer._perform
        self.on_operation = consumer.on_operation
