"""Graceful drain on shutdown: a process that stops lets its clients move elsewhere.

Theory of operation
-------------------
Channels gives a consumer no event when its server stops, and the servers do not wait:
on SIGTERM, uvicorn closes every WebSocket with 1012 at once (before the ASGI lifespan
``shutdown``, which comes after the connections are gone), Daphne cancels every
application. Whatever the fan-out had queued for a subscriber is lost, and every
client of the process reconnects in the same instant.

:func:`drain_on_shutdown` wraps the application. It takes the ASGI ``lifespan`` scope
for itself and, when the server starts (at ``lifespan.startup``, or on the first
connection of a server that sends no lifespan events, like Daphne), puts its own
handler in front of the server's for the shutdown signals (SIGTERM by default). The
first signal starts the drain of the process and hands the signal on to the server
once the drain is over; a second one hands it on at once. A ``lifespan.shutdown``
runs the drain too (for a server that sends it before it closes connections), or
waits for the one under way.

Every live connection of the process is registered with its event loop's
:class:`ProcessDrain` by its consumer (a :class:`ConnectionDrain`: the connection's
operation runner and how its transport closes). The drain, with ``window`` and
``in_flight_timeout`` seconds:

1. stops admitting: new HTTP requests get 503 with ``Retry-After``, new WebSockets are
   accepted and closed with 1012, and a new operation on an open WebSocket closes it
   (as below, at once) instead of starting;
2. fences each fan-out of the process (:meth:`~channels_graphql_typed._fanout.FanOut.fence`):
   every notification that reached the process before the drain began is then in its
   subscribers' queues;
3. gives each connection a close time in the window: the window is cut into as many
   equal slots as there are connections, and each connection (in random order) gets a
   random instant of its own slot, so closes are spread evenly, without bursts;
4. at its close time, each connection waits for its queries and mutations under way
   and for its subscriptions to send what is queued for them, at most
   ``in_flight_timeout`` seconds, then closes: a WebSocket with 1012 "Service Restart"
   (1000 under Daphne, which cannot send 1012: see :func:`close_for_restart`), an
   event stream with its end, a multipart response with a transport-level error, a
   request still without a response with 503. A
   connection that ends by itself meanwhile leaves the drain at once.

So the drain never takes more than ``window + in_flight_timeout`` seconds, plus the
fence (at most :data:`FENCE_TIMEOUT`) and the closes themselves (at most
:data:`CLOSE_GRACE`, twice: a close still under way then is cancelled, and given as
long again to end).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import threading
import weakref
from typing import TYPE_CHECKING, Any, Final, cast

from ._fanout import loop_fanouts
from ._log import logger
from ._protocol import SUBPROTOCOLS, CloseCode

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence
    from types import FrameType

    from asgiref.typing import (
        ASGI3Application,
        ASGIReceiveCallable,
        ASGISendCallable,
        Scope,
    )

    from ._protocol import Operation
    from ._runner import ConnectionOperations

    SignalHandler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None

DEFAULT_DRAIN_WINDOW: Final = 10.0
"""Seconds over which a draining process closes its connections."""
DEFAULT_IN_FLIGHT_TIMEOUT: Final = 10.0
"""Seconds a connection, at its close time, waits for its operations under way."""
DEFAULT_RETRY_AFTER: Final = 1
"""The ``Retry-After`` (seconds) of a request refused during the drain."""
FENCE_TIMEOUT: Final = 1.0
"""Seconds the drain waits for the fan-outs' fences (a failing layer answers none)."""
CLOSE_GRACE: Final = 1.0
"""Seconds, past the drain's bound, that the connections' closes may take."""
SERVICE_RESTART_REASON: Final = "Service Restart"


def close_offsets(
    count: int, window: float, uniform: Callable[[], float] = random.random
) -> list[float]:
    """Close times, in seconds from the drain's start, for ``count`` connections: one in
    each of ``count`` equal slots of ``window``, at a random point of it (``uniform``
    draws from [0, 1))."""
    if count <= 0:
        return []
    return [window * (slot + uniform()) / count for slot in range(count)]


class ConnectionDrain:
    """One live connection as the drain sees it: its operations and how it closes.

    ``close`` is awaited once, at the connection's close time: the transport closes
    (1012, the end of an event stream, or 503).
    """

    __slots__ = ("__weakref__", "_close", "_ended", "_now", "_operations")

    def __init__(
        self, operations: ConnectionOperations, close: Callable[[], Awaitable[None]]
    ) -> None:
        self._operations = operations
        self._close = close
        # Created when the drain begins: an idle connection that is never drained does
        # not pay for an Event (its deque of waiters is most of a kilobyte).
        self._now: asyncio.Event | None = None
        self._ended = False

    def _close_now(self) -> asyncio.Event:
        """Set once the close is due at once (the connection ended, or its client
        started an operation during the drain)."""
        if self._now is None:
            self._now = asyncio.Event()
            if self._ended:
                self._now.set()
        return self._now

    def ended(self) -> None:
        """The connection is closed: its drain has nothing left to wait for."""
        self._ended = True
        if self._now is not None:
            self._now.set()

    def begin(self) -> None:
        """Admit no new operation: one the client starts brings the close forward."""
        self._operations.stop_admitting(self._refused)

    def _refused(self, operation: Operation) -> None:
        self._close_now().set()

    async def finish(self, close_at: float, deadline: float) -> None:
        """At ``close_at`` (loop time; sooner if the client starts an operation), let
        the operations under way end and the subscriptions deliver what is queued, until
        ``deadline`` at most, then close."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout_at(close_at):
                await self._close_now().wait()
        if self._ended:
            return
        try:
            async with asyncio.timeout_at(deadline):
                await self._operations.wait_for_queries()
                await self._operations.deliver_queued()
        except TimeoutError:
            logger.warning(
                "Drain: a connection still had operations under way or notifications "
                "to send at its deadline; closing it"
            )
        await self._close()


class ProcessDrain:
    """The live connections of one event loop (one per server process) and their drain."""

    def __init__(self) -> None:
        self._connections: weakref.WeakSet[ConnectionDrain] = weakref.WeakSet()
        self._task: asyncio.Task[None] | None = None
        self._late: set[asyncio.Task[None]] = set()
        self._late_deadline: tuple[float, float] = (0.0, 0.0)
        self.retry_after = DEFAULT_RETRY_AFTER
        """The ``Retry-After`` of the requests refused during the drain (seconds)."""

    @property
    def draining(self) -> bool:
        """Whether the drain has begun (it goes on until the process ends)."""
        return self._task is not None

    def register(self, connection: ConnectionDrain) -> None:
        """A connection opened; during the drain it is closed at once (as drained)."""
        if self._task is None:
            self._connections.add(connection)
            return
        connection.begin()
        now = asyncio.get_running_loop().time()
        in_flight, bound = self._late_deadline
        task = asyncio.ensure_future(connection.finish(now, min(now + in_flight, bound)))
        self._late.add(task)
        task.add_done_callback(self._late.discard)
        task.add_done_callback(_report_failure)

    def unregister(self, connection: ConnectionDrain) -> None:
        """The connection is closed."""
        self._connections.discard(connection)
        connection.ended()

    def __len__(self) -> int:
        return len(self._connections)

    async def drain(
        self, window: float, in_flight_timeout: float, retry_after: int = DEFAULT_RETRY_AFTER
    ) -> None:
        """Drain the connections (see the module docstring); the first call runs it,
        later ones wait for it."""
        if self._task is None:
            self.retry_after = retry_after
            self._task = asyncio.ensure_future(self._drain(window, in_flight_timeout))
        await asyncio.shield(self._task)

    async def _drain(self, window: float, in_flight_timeout: float) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        bound = start + window + in_flight_timeout + FENCE_TIMEOUT
        self._late_deadline = (in_flight_timeout, bound)
        connections = list(self._connections)
        random.shuffle(connections)
        logger.info(
            "Draining %d connections over %s s (operations under way: %s s more at most)",
            len(connections),
            window,
            in_flight_timeout,
        )
        for connection in connections:
            connection.begin()
        await _fence(loop_fanouts())
        offsets = close_offsets(len(connections), window)
        tasks = {
            asyncio.ensure_future(
                connection.finish(start + offset, start + offset + in_flight_timeout)
            )
            for connection, offset in zip(connections, offsets, strict=True)
        }
        for task in tasks:
            task.add_done_callback(_report_failure)
        while True:
            pending = {task for task in tasks | self._late if not task.done()}
            remaining = bound + CLOSE_GRACE - loop.time()
            if not pending or remaining <= 0:
                break
            await asyncio.wait(pending, timeout=remaining)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("Drain: %d connections did not close in time", len(pending))
            await asyncio.wait(pending, timeout=CLOSE_GRACE)
        logger.info("Drain complete")


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("Drain: a connection failed to close", exc_info=task.exception())


async def _fence(fanouts: Iterable[Any]) -> None:
    fences = [asyncio.ensure_future(fanout.fence()) for fanout in fanouts]
    if not fences:
        return
    done, pending = await asyncio.wait(fences, timeout=FENCE_TIMEOUT)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            logger.warning("Drain: a fan-out could not fence: %r", task.exception())
    if pending:
        logger.warning("Drain: a fan-out's fence did not return in %s s", FENCE_TIMEOUT)


_drains: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ProcessDrain] = (
    weakref.WeakKeyDictionary()
)


def process_drain() -> ProcessDrain:
    """The drain of the running event loop (each server process runs one loop)."""
    loop = asyncio.get_running_loop()
    drain = _drains.get(loop)
    if drain is None:
        drain = _drains[loop] = ProcessDrain()
    return drain


class _DrainOnShutdown:
    """The application wrapped by :func:`drain_on_shutdown`."""

    def __init__(
        self,
        application: ASGI3Application,
        *,
        window: float,
        in_flight_timeout: float,
        retry_after: int,
        signals: Sequence[signal.Signals],
    ) -> None:
        self._application = application
        self._window = window
        self._in_flight_timeout = in_flight_timeout
        self._retry_after = retry_after
        self._signals = tuple(signals)
        self._previous: dict[int, SignalHandler] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signalled = False
        self._forwarding: asyncio.Task[None] | None = None

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        self._hook_signals()
        if process_drain().draining:
            if scope["type"] == "http":
                await self._refuse_request(send)
                return
            if scope["type"] == "websocket":
                await self._refuse_websocket(scope, receive, send)
                return
        await self._application(scope, receive, send)

    async def drain(self) -> None:
        """Drain this process's connections (once; later calls wait for it)."""
        await process_drain().drain(self._window, self._in_flight_timeout, self._retry_after)

    # --- the lifespan scope -------------------------------------------------------------

    async def _lifespan(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._hook_signals()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.drain()
                self._unhook_signals()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- refusals during the drain -------------------------------------------------------

    async def _refuse_request(self, send: ASGISendCallable) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json; charset=utf-8"),
                    (b"retry-after", str(process_drain().retry_after).encode("ascii")),
                    (b"connection", b"close"),
                ],
                "trailers": False,
            }
        )
        await send(
            {
                "type": "http.response.body",
                "body": b'{"errors":[{"message":"Service Restart"}]}',
                "more_body": False,
            }
        )

    async def _refuse_websocket(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        # Accepted (with a subprotocol the client offered: browsers fail a handshake
        # without one) so that the client sees 1012 and tries again elsewhere.
        offered = list(cast("Iterable[str]", scope.get("subprotocols") or ()))
        chosen = next((p for p in offered if p in SUBPROTOCOLS), offered[0] if offered else None)
        await send({"type": "websocket.accept", "subprotocol": chosen, "headers": []})
        await close_for_restart(send)

    # --- signals -------------------------------------------------------------------------

    def _hook_signals(self) -> None:
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        if threading.current_thread() is not threading.main_thread():
            logger.warning(
                "drain_on_shutdown: not in the main thread, so no signal starts the "
                "drain; only the ASGI lifespan shutdown does"
            )
            return
        for number in self._signals:
            self._previous[number] = signal.getsignal(number)
            signal.signal(number, self._on_signal)

    def _unhook_signals(self) -> None:
        for number, previous in self._previous.items():
            if signal.getsignal(number) == self._on_signal:
                signal.signal(number, previous)
        self._previous.clear()

    def _on_signal(self, number: int, frame: FrameType | None) -> None:
        if self._signalled or self._loop is None:
            # A second signal: the server's shutdown, now.
            self._forward(number, frame)
            return
        self._signalled = True
        logger.info("Signal %s: draining before the server shuts down", number)
        self._loop.call_soon_threadsafe(self._start_forwarding, number)

    def _start_forwarding(self, number: int) -> None:
        self._forwarding = asyncio.ensure_future(self._drain_then_forward(number))

    async def _drain_then_forward(self, number: int) -> None:
        try:
            await self.drain()
        finally:
            self._forward(number, None)

    def _forward(self, number: int, frame: FrameType | None) -> None:
        previous = self._previous.get(number, signal.SIG_DFL)
        if callable(previous):
            previous(number, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(number, signal.SIG_DFL)
            signal.raise_signal(number)


async def close_for_restart(send: ASGISendCallable) -> None:
    """Close a WebSocket with 1012 "Service Restart"; with 1000 where the server
    refuses 1012 (Daphne: autobahn sends only 1000 and 3000-4999)."""
    try:
        await send(
            {
                "type": "websocket.close",
                "code": int(CloseCode.SERVICE_RESTART),
                "reason": SERVICE_RESTART_REASON,
            }
        )
    except OSError:
        return
    except Exception:
        with contextlib.suppress(Exception):
            await send(
                {
                    "type": "websocket.close",
                    "code": int(CloseCode.NORMAL),
                    "reason": SERVICE_RESTART_REASON,
                }
            )


def drain_on_shutdown(
    application: ASGI3Application,
    *,
    window: float = DEFAULT_DRAIN_WINDOW,
    in_flight_timeout: float = DEFAULT_IN_FLIGHT_TIMEOUT,
    retry_after: int = DEFAULT_RETRY_AFTER,
    signals: Sequence[signal.Signals] = (signal.SIGTERM,),
) -> ASGI3Application:
    """Wrap the ASGI application so that each server process drains its connections
    when it shuts down, instead of dropping them all at once::

        application = drain_on_shutdown(
            ProtocolTypeRouter({"http": ..., "websocket": ...}), window=10
        )

    On the first of ``signals`` (or at the ASGI lifespan ``shutdown``), before the
    server's own shutdown: new HTTP requests get 503 with ``Retry-After:
    retry_after``, new WebSockets are closed with 1012; each open connection of
    :class:`~channels_graphql_typed.GraphqlWsConsumer` and
    :class:`~channels_graphql_typed.GraphqlHttpConsumer` is closed at its own random
    time in a ``window`` of seconds, spread evenly, once its queries and mutations
    under way have ended and its subscriptions have sent every notification the
    process had received before the drain began (waiting ``in_flight_timeout``
    seconds at most): a WebSocket with 1012 "Service Restart", an event stream with
    its end. Then the signal goes on to the server, which stops. The drain never takes
    longer than ``window + in_flight_timeout`` seconds, plus at most 3 (the fence of
    the channel layer, the closes themselves); a second signal stops the server at once.

    The wrapper answers the ``lifespan`` scope itself (the application does not get
    it): run uvicorn with ``--lifespan on`` (or the default ``auto``). See "Deploying"
    for the servers' flags.
    """
    if window < 0 or in_flight_timeout < 0:
        raise ValueError("window and in_flight_timeout must not be negative")
    return _DrainOnShutdown(
        application,
        window=window,
        in_flight_timeout=in_flight_timeout,
        retry_after=max(0, math.ceil(retry_after)),
        signals=signals,
    )
