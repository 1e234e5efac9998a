"""Single connection mode's event streams: reservations, streams, and the requests
that drive them from any process.

Theory of operation
-------------------
The protocol is :mod:`channels_graphql_typed._protocol.sse_single`; this module does its
I/O. Each event loop has one :class:`EventStreams` per channel layer, which holds the
streams reserved in this process. A stream (:class:`EventStream`) is a connection as
the operation runner sees it: one :class:`~channels_graphql_typed._runner.ConnectionOperations`
with the settings, the ``on_operation`` hook and a context of the server class that
reserved it, and the stream's machine as its machine. So its operations have the same
limits, hooks, context class, typed subscriptions and fan-out as a WebSocket's.

* ``PUT`` (:meth:`EventStreams.reserve`) creates the stream, bound to the *principal*
  that reserved it (:func:`principal_of`: the authenticated user, else the session,
  else nobody) and to the server class; the token names the process's channel. A
  stream not opened within ``sse_reservation_timeout`` seconds is closed.
* ``GET`` opens it, in the process that reserved it: the request holds the event
  stream until its client leaves. Then the stream closes: every operation stops,
  leaves its groups and runs its ``unsubscribed`` hook; the runner's tasks end; the
  reservation is gone.
* ``POST`` and ``DELETE`` may reach any process. The one whose channel the token names
  handles them itself; any other forwards them to that channel over the channel layer
  (:class:`~channels_graphql_typed._layer_messages.StreamSubmitMessage`,
  :class:`~channels_graphql_typed._layer_messages.StreamStopMessage`) with a reply
  channel of its own, and answers its client with the answer it gets there, or 504
  after :data:`FORWARD_TIMEOUT` seconds. The stream's process checks every field of
  what it receives, the token's secret, the principal and the server class: a request
  of another user, or with a token it does not hold, finds no stream (404).

The streams' channel is listened to only while the process holds streams, and
:data:`CHANNEL_LINGER` seconds after, so that late requests for a stream just closed
get their 404: an idle process then holds no task. A request for a stream closed
longer ago, forwarded from another process, gets 504 there (nobody reads the channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import json
import uuid
import weakref
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol

from channels import DEFAULT_CHANNEL_LAYER
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer

from . import _observability as observing
from ._channel_layer import ChannelLayerHealth, end_receive, receive_to_the_end
from ._drain import ConnectionDrain, process_drain
from ._layer_messages import (
    MAX_STREAM_ANSWER_BODY,
    STREAM_STOP,
    MalformedLayerMessage,
    StreamRequestMessage,
    read_stream_answer,
    read_stream_request,
    send_stream_message,
    stream_answer_message,
    stream_stop_message,
    stream_submit_message,
)
from ._log import logger
from ._protocol.common import (
    AnswerSubmission,
    Operation,
    Respond,
    SendChunk,
    StartOperation,
    StartStream,
    StopOperation,
)
from ._protocol.http import BadRequest
from ._protocol.sse_single import (
    DuplicateOperation,
    EventStreamProtocol,
    EventStreamToken,
    RequestKind,
    StreamState,
    check_reserve,
    check_submission_head,
    classify,
    dumps,
    read_stop,
    read_submission,
    read_token,
    respond,
    respond_bad_request,
)
from ._runner import ConnectionOperations

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine, Mapping

    from asgiref.typing import ASGIReceiveCallable, HTTPRequestEvent
    from channels.layers import BaseChannelLayer

    from ._context import Context
    from ._protocol import Action
    from ._protocol.messages import OperationPayload
    from ._runner import ServerSettings

FORWARD_TIMEOUT: Final = 10.0
"""Seconds a request forwarded to the stream's process waits for its answer."""
CHANNEL_LINGER: Final = 30.0
"""Seconds the streams' channel is still listened to once the process holds no stream:
a request for a stream that just closed gets a 404 then, not a 504 from a process that
forwarded it to a channel nobody reads."""
MAX_EVENT_STREAMS: Final = 10_000
"""Most streams, reserved or open, one process holds: a reservation beyond is 503."""
MAX_PENDING_EVENTS_SIZE: Final = 1024 * 1024
"""Bytes of events a reserved stream keeps until it is opened; beyond, it is closed."""
STREAM_NOT_FOUND: Final = "Stream not found"


def principal_of(scope: Mapping[str, Any]) -> str:
    """Who sends a request, as a stream is bound to it: a hash of the authenticated
    user's primary key, else of the session's key, else the empty string (nobody: the
    token alone then opens the stream). A hash, since it crosses the channel layer."""
    user = scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False) is True:
        identity = f"user:{getattr(user, 'pk', None)!r}"
    else:
        session_key = getattr(scope.get("session"), "session_key", None)
        if not session_key:
            return ""
        identity = f"session:{session_key}"
    return hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()


class EventStreamServer(Protocol):
    """What a stream needs of the server class (the HTTP consumer) that reserves it."""

    scope: Any
    sse_heartbeat_interval: ClassVar[float | None]
    sse_reservation_timeout: ClassVar[float]
    max_message_size: ClassVar[int | None]

    @classmethod
    def _server_settings(cls) -> ServerSettings: ...

    def _new_context(self, scope: Mapping[str, Any], channel_name: str | None) -> Context: ...

    async def on_operation(self, id: str, payload: OperationPayload) -> None: ...


def server_identity(server: object) -> str:
    kind = type(server)
    return f"{kind.__module__}.{kind.__qualname__}"


class StreamWriter(Protocol):
    """The request that holds an open stream."""

    async def start(self, status: int, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        """Send the response's start and its first chunk; OSError: the client is gone."""

    async def send(self, body: bytes) -> None:
        """Send one more chunk; OSError: the client is gone."""

    async def end(self) -> None:
        """End the response (the stream closed while its client was there)."""


SINGLE_CONNECTION_PROTOCOL: Final = "graphql-sse-single"
"""The ``protocol`` label of a single connection mode stream in the metrics."""


class EventStream:
    """One reserved stream and its operations (see the module docstring)."""

    def __init__(
        self,
        streams: EventStreams,
        token: EventStreamToken,
        principal: str,
        server: EventStreamServer,
    ) -> None:
        self.streams = streams
        self.token = token
        self.principal = principal
        self.server = server_identity(server)
        self.machine = EventStreamProtocol()
        self.max_body_size = server.max_message_size
        self.heartbeat_interval = server.sse_heartbeat_interval
        self.on_operation = server.on_operation
        self.context = server._new_context(server.scope, None)
        # The connection's context variables (its connection id in the library's log
        # records): the stream's tasks start in them, whichever request starts them.
        self._variables = contextvars.copy_context()
        self.operations = ConnectionOperations(
            self.machine, self, server._server_settings(), self.context
        )
        self._answers: dict[Operation, asyncio.Future[Respond]] = {}
        self._writer: StreamWriter | None = None
        self._attached = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._lock = asyncio.Lock()
        self.closed = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self._expiry = asyncio.get_running_loop().call_later(
            server.sse_reservation_timeout, self._expire
        )
        # Known to the process's graceful drain while it lives: at its close time, the
        # stream ends without complete events (graphql-sse's client then reconnects,
        # to another process).
        self._drain = ConnectionDrain(self.operations, self.close)
        process_drain().register(self._drain)
        # A stream is one connection for the metrics, from its reservation to its close
        # (its own requests are not counted apart).
        observing.observer.connection_opened("http", SINGLE_CONNECTION_PROTOCOL)

    @property
    def reservation(self) -> str:
        return self.token.reservation

    def admits(self, token: EventStreamToken, principal: str, server: str) -> bool:
        """Whether a request with ``token``, from ``principal`` through ``server``, may
        use this stream."""
        return (
            token.opens(self.token.secret)
            and token.channel == self.token.channel
            and self.principal == principal
            and self.server == server
        )

    # --- requests ---------------------------------------------------------------------------

    async def submit(self, operation_id: str, payload: OperationPayload, method: str) -> Respond:
        """Start an operation; the answer for its request once it runs (or failed)."""
        try:
            actions = self.machine.submit(operation_id, payload, method)
        except DuplicateOperation:
            return respond(409, "Operation with ID already exists")
        if not actions:
            return respond(404, STREAM_NOT_FOUND)
        (start,) = actions
        assert isinstance(start, StartOperation)
        answer: asyncio.Future[Respond] = asyncio.get_running_loop().create_future()
        self._answers[start.operation] = answer
        self._variables.run(self.operations.start, start.operation)
        return await asyncio.shield(answer)

    async def stop(self, operation_id: str) -> Respond:
        """Stop an operation; answered once it has ended, out of its groups."""
        ended: list[asyncio.Task[None]] = []
        for action in self.machine.stop(operation_id):
            if isinstance(action, StopOperation):
                task = self.operations.stop(action.operation)
                if task is not None:
                    ended.append(task)
            else:
                await self.perform([action])
        if ended:
            await asyncio.wait(ended)
        return Respond(200, (), b"")

    async def attach(self, writer: StreamWriter, http_version: str) -> bool:
        """The stream's ``GET``: from now on events go to ``writer``. False if the
        stream was opened already or is gone."""
        async with self._lock:
            actions = self.machine.open(http_version)
            if not actions:
                return False
            self._expiry.cancel()
            self._writer = writer
            self._attached = True
            pending, self._pending, self._pending_size = self._pending, [], 0
            try:
                for action in actions:
                    if isinstance(action, StartStream):
                        await writer.start(action.status, action.headers, action.body)
                for chunk in pending:
                    await writer.send(chunk)
            except OSError:
                self._lost()
        if self.heartbeat_interval is not None:
            self._spawn(self._heartbeat(self.heartbeat_interval))
        return True

    # --- the runner's sink ------------------------------------------------------------------

    async def perform(self, actions: list[Action]) -> None:
        async with self._lock:
            for action in actions:
                if isinstance(action, AnswerSubmission):
                    answer = self._answers.pop(action.operation, None)
                    if answer is not None and not answer.done():
                        answer.set_result(Respond(action.status, action.headers, action.body))
                elif isinstance(action, SendChunk):
                    await self._send(action.body)

    async def _send(self, chunk: bytes) -> None:
        if self.closed.is_set():
            return
        if self._writer is None:
            self._pending.append(chunk)
            self._pending_size += len(chunk)
            if self._pending_size > MAX_PENDING_EVENTS_SIZE:
                logger.warning(
                    "Event stream %s: more than %d bytes of events before it was opened; closed",
                    self.reservation,
                    MAX_PENDING_EVENTS_SIZE,
                )
                self.start_closing()
            return
        try:
            await self._writer.send(chunk)
        except OSError:
            self._lost()

    def _lost(self) -> None:
        # The server says the client is gone: the stream closes as for a disconnect.
        self.start_closing()

    async def _heartbeat(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            await self.perform(self.machine.heartbeat())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        self._variables.run(self.operations.spawn, coroutine)

    # --- the end ----------------------------------------------------------------------------

    def _expire(self) -> None:
        if self.machine.state is StreamState.RESERVED:
            logger.info("Event stream %s was not opened in time; closed", self.reservation)
            self.start_closing()

    def start_closing(self) -> asyncio.Task[None]:
        """Close the stream (once), in a task of its own; the task."""
        if self._closing is None:
            self.closed.set()
            self._closing = self.streams.spawn(self._close())
        return self._closing

    async def close(self) -> None:
        """Close the stream and wait until everything of it has ended."""
        await asyncio.shield(self.start_closing())

    async def _close(self) -> None:
        self._expiry.cancel()
        process_drain().unregister(self._drain)
        self.streams.forget(self)
        # Opened, or never: a reservation that expired.
        observing.observer.connection_closed(
            "http", SINGLE_CONNECTION_PROTOCOL, 200 if self._attached else 408
        )
        try:
            await self.operations.handle(self.machine.close())
            await self.operations.close()
        finally:
            for answer in self._answers.values():
                if not answer.done():
                    answer.set_result(respond(404, STREAM_NOT_FOUND))
            self._answers.clear()
            self._pending.clear()
            writer, self._writer = self._writer, None
            if writer is not None:
                with contextlib.suppress(OSError):
                    await writer.end()
            await self.streams.idle()


class EventStreams:
    """The event streams of one event loop, for one channel layer (see the module
    docstring)."""

    def __init__(self, layer: BaseChannelLayer | None, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
        self.layer = layer
        self.alias = alias
        self.health = ChannelLayerHealth(layer, alias) if layer is not None else None
        self.streams: dict[str, EventStream] = {}
        """The streams of this process, by reservation id."""
        self.channel: str | None = None
        """This process's streams' channel, created with the first reservation."""
        self._listener: asyncio.Task[None] | None = None
        self._stopping: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def listening(self) -> bool:
        return self._listener is not None

    @property
    def tasks(self) -> int:
        """How many tasks of the streams' own are running (closes, forwarded answers)."""
        return len(self._tasks)

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("A task of the event streams failed", exc_info=task.exception())

    # --- reserving and finding ------------------------------------------------------------

    async def reserve(self, server: EventStreamServer, principal: str) -> EventStream | None:
        """A new stream (None: this process holds too many)."""
        if len(self.streams) >= MAX_EVENT_STREAMS:
            return None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        channel = await self._ensure_channel()
        stream = EventStream(self, EventStreamToken.new(channel), principal, server)
        self.streams[stream.reservation] = stream
        await self._ensure_listener(channel)
        return stream

    def local(self, token: EventStreamToken, principal: str, server: str) -> EventStream | None:
        stream = self.streams.get(token.reservation)
        if stream is None or not stream.admits(token, principal, server):
            return None
        return stream

    def forget(self, stream: EventStream) -> None:
        if self.streams.get(stream.reservation) is stream:
            del self.streams[stream.reservation]

    # --- requests from any process ----------------------------------------------------------

    async def submit(
        self, token: EventStreamToken, principal: str, server: str, method: str, body: str
    ) -> Respond:
        """Submit the operation ``body`` (JSON) to the stream ``token`` names."""
        if token.channel == self.channel:
            return await self._submit_here(token, principal, server, method, body)
        message = stream_submit_message(
            token=str(token), principal=principal, server=server, method=method, body=body, reply=""
        )
        return await self._forward(token, message)

    async def stop(
        self, token: EventStreamToken, principal: str, server: str, operation_id: str
    ) -> Respond:
        """Stop the operation ``operation_id`` of the stream ``token`` names."""
        if token.channel == self.channel:
            stream = self.local(token, principal, server)
            if stream is None:
                return respond(404, STREAM_NOT_FOUND)
            return await stream.stop(operation_id)
        message = stream_stop_message(
            token=str(token),
            principal=principal,
            server=server,
            operation_id=operation_id,
            reply="",
        )
        return await self._forward(token, message)

    async def _submit_here(
        self, token: EventStreamToken, principal: str, server: str, method: str, body: str
    ) -> Respond:
        stream = self.local(token, principal, server)
        if stream is None:
            return respond(404, STREAM_NOT_FOUND)
        if stream.max_body_size is not None and len(body) > stream.max_body_size:
            return respond(413, f"The request body is larger than {stream.max_body_size} bytes")
        try:
            operation_id, payload = read_submission(
                "POST", body.encode("utf-8", "surrogatepass"), b""
            )
        except BadRequest as exc:
            return respond_bad_request(exc)
        return await stream.submit(operation_id, payload, method)

    async def _forward(self, token: EventStreamToken, message: StreamRequestMessage) -> Respond:
        layer = self.layer
        if layer is None:
            return respond(404, STREAM_NOT_FOUND)
        receiving: asyncio.Task[dict[str, Any]] | None = None
        try:
            reply = await layer.new_channel()
            message["reply"] = reply
            await send_stream_message(layer, token.channel, message)
            receiving = asyncio.ensure_future(receive_to_the_end(layer, reply))
            done, _ = await asyncio.wait({receiving}, timeout=FORWARD_TIMEOUT)
            if not done:
                return respond(504, "The event stream's server process did not answer")
            answer = read_stream_answer(receiving.result())
        except MalformedLayerMessage as exc:
            logger.warning("A malformed answer of an event stream's process: %s", exc.reason)
            return respond(502, "The event stream's server process gave a malformed answer")
        except Exception:
            logger.exception("Forwarding a request to an event stream's process failed")
            return respond(503, "The event stream's server process cannot be reached")
        finally:
            if receiving is not None and not receiving.done():
                await end_receive(layer, message["reply"], receiving)
        body = answer["body"]
        headers: tuple[tuple[str, str], ...] = ()
        if body:
            headers = (("content-type", "application/json; charset=utf-8"),)
        if answer["status"] == 405:
            headers = (*headers, ("allow", "POST"))
        return Respond(answer["status"], headers, body)

    # --- the channel ------------------------------------------------------------------------

    async def _ensure_channel(self) -> str:
        if self.channel is None:
            if self.layer is None:
                self.channel = f"cgt-streams.local!{uuid.uuid4().hex}"
            else:
                self.channel = await self.layer.new_channel()
        return self.channel

    async def _ensure_listener(self, channel: str) -> None:
        if self.layer is None or self._listener is not None:
            return
        if self._stopping is not None:
            # The previous listener's receive ends first: one receive on a channel.
            await asyncio.shield(self._stopping)
            if self._listener is not None:
                return
        self._listener = asyncio.ensure_future(self._listen(channel))

    async def idle(self) -> None:
        """A stream closed: without streams, stop listening once the channel has
        lingered (so that the late requests of streams just closed get their 404)."""
        if self.streams or self._listener is None or self.layer is None:
            return
        if self._linger is None:
            self._linger = asyncio.get_running_loop().call_later(CHANNEL_LINGER, self._linger_ended)

    def _linger_ended(self) -> None:
        self._linger = None
        if not self.streams:
            self.spawn(self._stop_listening())

    async def _stop_listening(self) -> None:
        if self.streams or self._listener is None or self.layer is None:
            return
        listener, self._listener = self._listener, None
        assert self.channel is not None
        stopping = self._stopping = asyncio.ensure_future(
            end_receive(self.layer, self.channel, listener)
        )
        # The next busy period gets a channel of its own: a layer that subscribes to a
        # channel (the pub/sub one) does it in new_channel(), before any token names it.
        self.channel = None
        try:
            await asyncio.shield(stopping)
        finally:
            if self._stopping is stopping:
                self._stopping = None

    async def _listen(self, channel: str) -> None:
        assert self.health is not None
        while True:
            received = await self.health.receive(channel)
            try:
                message = read_stream_request(received)
            except MalformedLayerMessage as exc:
                self.health.malformed_message(exc.reason)
                continue
            if message is not None:
                self.spawn(self._answer_forwarded(message))

    async def _answer_forwarded(self, message: StreamRequestMessage) -> None:
        assert self.layer is not None
        try:
            token = EventStreamToken.parse(message["token"])
        except BadRequest as exc:
            answer = respond_bad_request(exc)
        else:
            if token.channel != self.channel:
                answer = respond(404, STREAM_NOT_FOUND)
            elif message["type"] == STREAM_STOP:
                answer = await self.stop(
                    token, message["principal"], message["server"], message["operation_id"]
                )
            else:
                answer = await self._submit_here(
                    token,
                    message["principal"],
                    message["server"],
                    message["method"],
                    message["body"],
                )
        body = answer.body
        if len(body) > MAX_STREAM_ANSWER_BODY:
            body = dumps({"errors": [{"message": "The errors are too large to be forwarded"}]})
        with contextlib.suppress(Exception):
            await send_stream_message(
                self.layer, message["reply"], stream_answer_message(answer.status, body)
            )


_event_streams: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, EventStreams]] = (
    weakref.WeakKeyDictionary()
)


def get_event_streams(alias: str) -> EventStreams:
    """The event streams of the running event loop for the channel layer ``alias``
    (streams without a channel layer, when ``alias`` names none, serve one process)."""
    by_alias = _event_streams.setdefault(asyncio.get_running_loop(), {})
    streams = by_alias.get(alias)
    if streams is None:
        streams = by_alias[alias] = EventStreams(get_channel_layer(alias), alias)
    return streams


class SingleConnectionRequest:
    """One request of single connection mode, as the HTTP consumer hands it over: fed
    the request's body (:meth:`receive`), it answers the request and raises
    ``StopConsumer`` when done."""

    def __init__(
        self,
        server: EventStreamServer,
        kind: RequestKind,
        *,
        streams: EventStreams,
        respond: Callable[[Respond], Awaitable[None]],
        writer: StreamWriter,
        receive_from_client: ASGIReceiveCallable,
    ) -> None:
        self.server = server
        self.kind = kind
        self.streams = streams
        self._respond = respond
        self._writer = writer
        self._receive_from_client = receive_from_client
        scope = server.scope
        self.method = str(scope.get("method", "GET")).upper()
        self.headers = list(scope.get("headers", ()))
        self.query_string: bytes = scope.get("query_string", b"")
        self.http_version = str(scope.get("http_version", "1.1"))
        self.principal = principal_of(scope)
        self._body: list[bytes] = []
        self._body_size = 0
        self._checked = False

    async def receive(self, message: HTTPRequestEvent) -> None:
        try:
            answer = await self._receive(message.get("body", b""), message.get("more_body", False))
        except BadRequest as exc:
            answer = respond_bad_request(exc)
        if answer is _MORE_BODY:
            return
        if answer is not _ANSWERED:
            await self._respond(answer)
        raise StopConsumer()

    async def _receive(self, chunk: bytes, more_body: bool) -> Respond:
        if self.kind is not RequestKind.SUBMIT:
            # A reservation, a stream or a stop has no body to read.
            return await self._serve()
        max_size = self.server.max_message_size
        if not self._checked:
            self._checked = True
            check_submission_head(self.method, self.headers, self.query_string, max_size)
        if self.method == "POST":
            self._body_size += len(chunk)
            if max_size is not None and self._body_size > max_size:
                raise BadRequest(413, f"The request body is larger than {max_size} bytes")
            self._body.append(chunk)
        if more_body:
            return _MORE_BODY
        return await self._serve()

    async def _serve(self) -> Respond:
        server = server_identity(self.server)
        if self.kind is RequestKind.RESERVE:
            check_reserve(self.headers)
            try:
                stream = await self.streams.reserve(self.server, self.principal)
            except Exception:
                logger.exception("Reserving an event stream failed")
                return respond(503, "The event stream cannot be reserved now")
            if stream is None:
                return respond(503, "Too many event streams: try again later")
            return Respond(
                201, (("content-type", "text/plain; charset=utf-8"),), str(stream.token).encode()
            )
        token = read_token(self.headers, self.query_string)
        if self.kind is RequestKind.STOP:
            return await self.streams.stop(
                token, self.principal, server, read_stop(self.query_string)
            )
        if self.kind is RequestKind.SUBMIT:
            body = b"".join(self._body)
            self._body = []
            if self.method == "GET":
                # Read here (the stream's process reads the JSON again).
                _, payload = read_submission("GET", b"", self.query_string)
                text = json.dumps(payload)
            else:
                try:
                    text = body.decode("utf-8")
                except UnicodeDecodeError:
                    raise BadRequest(400, "The request body is not valid UTF-8") from None
                read_submission("POST", body, b"")  # a malformed body gets its 400 here
            return await self.streams.submit(token, self.principal, server, self.method, text)
        return await self._open(token, server)

    async def _open(self, token: EventStreamToken, server: str) -> Respond:
        if token.channel != self.streams.channel:
            return respond(
                404,
                "Stream not found in this server process: the reservation (PUT) and the "
                "stream (GET) must reach the same process",
            )
        stream = self.streams.local(token, self.principal, server)
        if stream is None:
            return respond(404, STREAM_NOT_FOUND)
        if stream.machine.state is not StreamState.RESERVED:
            return respond(409, "Stream already open")
        if not await stream.attach(self._writer, self.http_version):
            return respond(409, "Stream already open")
        gone = asyncio.ensure_future(self._client_gone())
        closed = asyncio.ensure_future(stream.closed.wait())
        try:
            await asyncio.wait({gone, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            closed.cancel()
            await stream.close()
        return _ANSWERED

    async def _client_gone(self) -> None:
        while True:
            message = await self._receive_from_client()
            if message["type"] == "http.disconnect":
                return


_MORE_BODY: Final = Respond(0, (), b"")
"""Not an answer yet: more of the body is to come."""
_ANSWERED: Final = Respond(0, (), b"")
"""The request is answered already (its response was the event stream)."""


class _ResponseWriter:
    """An HTTP consumer's response (``send_headers``, ``send_body``) as a stream's writer."""

    __slots__ = ("_consumer",)

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer

    async def start(self, status: int, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        await self._consumer.send_headers(status=status, headers=_encoded(headers))
        await self._consumer.send_body(body, more_body=True)

    async def send(self, body: bytes) -> None:
        await self._consumer.send_body(body, more_body=True)

    async def end(self) -> None:
        await self._consumer.send_body(b"", more_body=False)

    async def respond(self, response: Respond) -> None:
        with contextlib.suppress(OSError):
            await self._consumer.send_headers(
                status=response.status, headers=_encoded(response.headers)
            )
            await self._consumer.send_body(response.body, more_body=False)


def _encoded(headers: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def single_connection_request(
    consumer: Any, receive_from_client: ASGIReceiveCallable
) -> SingleConnectionRequest | None:
    """The single-connection-mode request that ``consumer`` (a ``GraphqlHttpConsumer``)
    received, or None for any other request."""
    scope = consumer.scope
    kind = classify(
        str(scope.get("method", "GET")),
        list(scope.get("headers", ())),
        scope.get("query_string", b""),
    )
    if kind is None:
        return None
    writer = _ResponseWriter(consumer)
    return SingleConnectionRequest(
        consumer,
        kind,
        streams=get_event_streams(consumer.channel_layer_alias),
        respond=writer.respond,
        writer=writer,
        receive_from_client=receive_from_client,
    )
