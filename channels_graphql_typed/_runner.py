"""The operation runner: what a connection does with the operations its client starts.

Theory of operation
-------------------
A protocol machine (:mod:`channels_graphql_typed._protocol`) decides which operations a
connection has and what goes over the wire; it runs nothing. A transport (the WebSocket
consumer today; an HTTP or SSE one tomorrow) owns the I/O. Between the two sits one
:class:`ConnectionOperations` per connection, the same for every transport:

* The transport hands it every list of actions its machine returns
  (:meth:`ConnectionOperations.handle`). The runner carries out
  :class:`~channels_graphql_typed._protocol.StartOperation` and
  :class:`~channels_graphql_typed._protocol.StopOperation` itself and passes every other
  action, in order, to the transport's :class:`OperationSink`, whose ``perform`` does
  the I/O (sends, closes, the handshake).
* Each operation runs in a task of its own. The sink's ``on_operation`` hook comes
  first and may refuse it. Then the operation goes through
  :class:`~channels_graphql_typed._execution.OperationRun`: ``prepare`` (parse, validate,
  select), the connection's budget (``max_operations_size_per_connection``), then
  ``execute`` (a query or mutation: its result, or the payloads of an incremental one
  where the transport can carry them, then complete) or ``subscribe`` (the
  confirmation when asked for, then every result until the stream ends or the client
  stops it).
* What an operation produces becomes actions through the machine
  (:class:`OperationMachine`: ``send_result``, ``send_errors``...), which drops the
  results of an operation that is no longer active, and the actions go to the sink.
* With ``strict_ordering`` the operations start one at a time, in arrival order: the
  next starts when the previous one has ended or, for a subscription, once it is in all
  its groups (from then on no broadcast can pass it by).
* A graceful drain (:mod:`channels_graphql_typed._drain`) asks the runner to admit no
  new operation (:meth:`~ConnectionOperations.stop_admitting`), to wait for the
  queries and mutations under way (:meth:`~ConnectionOperations.wait_for_queries`) and
  for the subscriptions to deliver what is queued for them
  (:meth:`~ConnectionOperations.deliver_queued`), before the transport closes.
* :meth:`ConnectionOperations.close` cancels every task of the connection, its
  operations and what the transport :meth:`~ConnectionOperations.spawn`-ed (its hooks
  and timers), and waits for them all: nothing outlives the connection.

Errors: an :class:`~channels_graphql_typed.OperationRejected` raised by ``on_operation``
is an answer, and its message goes to the client; a ``GraphQLError`` goes as GraphQL
errors. Anything else is a bug, whose text is not for the client (it may name a database
or a broker): it is logged with its traceback and the client gets
:data:`~channels_graphql_typed._contract.INTERNAL_ERROR_MESSAGE`. So does any other failure
of the server while an operation runs.

What a server class decides for all its connections is one frozen
:class:`ServerSettings`, built once per class; the runner reads nothing else of it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any, Final, Protocol

from graphql import GraphQLError, OperationType

from . import _log as log_where
from . import _observability as observing
from ._contract import INTERNAL_ERROR_MESSAGE, OperationSettings, current_operation
from ._exceptions import OperationRejected
from ._execution import GraphqlExecutor, format_errors
from ._log import logger
from ._notification_queue import DEFAULT_NOTIFICATION_QUEUE_LIMIT, operation_queues
from ._protocol import Failure, StartOperation, StopOperation
from ._protocol.common import (
    DEFAULT_MAX_OPERATIONS_SIZE,
    RELEASED_PAYLOAD,
    count_json_values,
    error,
)
from ._protocol.messages import ExecutionResultPayload, confirmation_requested

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Sequence

    from ._document_cache import PreparedOperation
    from ._execution import OperationRun, SubscriptionResults
    from ._notification_queue import NotificationQueue
    from ._observability import OperationObserver
    from ._protocol import Action, Operation
    from ._protocol.messages import FormattedError, OperationPayload


UNSUPPORTED: Final = "unsupported"
"""Why an operation failed, for the observers: the transport cannot run its type (a
subscription over plain HTTP, a mutation over GET)."""
SUBSCRIPTION_REFUSED: Final = "error"
"""Why a subscription failed, for the observers: its stream did not open (its
``subscribe`` raised, its variables could not be coerced), and its one result holds the
errors."""


def _default_confirmation() -> ExecutionResultPayload:
    return {"data": None}


_DEFAULT_OPERATION_SETTINGS: Final = OperationSettings(DEFAULT_NOTIFICATION_QUEUE_LIMIT)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """What a server class decides for the operations of all its connections.

    Built once per server class, from its class attributes, and shared by every
    connection of that class (its executor by every class with the same execution
    settings, whatever the transport). The defaults are those of
    :class:`~channels_graphql_typed.GraphqlWsConsumer`.
    """

    executor: GraphqlExecutor
    """Executes the class's schema; it holds the document cache and the shared results."""
    strict_ordering: bool = False
    """Run operations one at a time in arrival order instead of concurrently."""
    max_operations_size_per_connection: int | None = DEFAULT_MAX_OPERATIONS_SIZE
    """What the active operations of one connection may hold together, in tokens of
    their documents plus values of their variables (None: no limit)."""
    confirm_subscriptions: bool = False
    """Confirm every subscription, not only those whose ``extensions`` ask for it."""
    subscription_confirmation_message: ExecutionResultPayload = dataclasses.field(
        default_factory=_default_confirmation
    )
    """The confirmation's payload: a subscription's first result once it is registered."""
    operation: OperationSettings = _DEFAULT_OPERATION_SETTINGS
    """What the typed subscriptions an operation opens read of the server (see
    :data:`~channels_graphql_typed._contract.current_operation`)."""


class OperationMachine(Protocol):
    """What the runner needs of a protocol machine: the actions for an operation's
    outcomes. Each returns no action for an operation that is no longer active."""

    def send_result(
        self, operation: Operation, result: ExecutionResultPayload, *, request_error: bool = False
    ) -> list[Action]:
        """One result (a query's only one, or a subscription's next). ``request_error``:
        it holds request errors that stopped execution before it began (variables that
        cannot be coerced)."""

    def send_serialized_result(self, operation: Operation, payload_json: str) -> list[Action]:
        """One result already serialized to JSON."""

    def incremental_delivery(self, operation: Operation) -> bool:
        """Once :meth:`refusal` let a query or mutation run: whether the transport can
        deliver its result in several payloads (``@defer``, ``@stream``); if not, they
        are ignored and the result comes whole."""

    def send_incremental_result(self, operation: Operation, payload_json: str) -> list[Action]:
        """One payload of an incremental result (the initial one or a subsequent one),
        serialized to JSON."""

    def send_errors(
        self, operation: Operation, errors: Sequence[FormattedError], failure: Failure = ...
    ) -> list[Action]:
        """The operation failed before it ran, for the reason ``failure``; it ends."""

    def refusal(self, operation: Operation, operation_type: OperationType) -> list[Action] | None:
        """Once the operation is prepared: the actions that refuse it because the
        transport cannot run an operation of this type (it ends), or None to run it."""

    def subscribed(self, operation: Operation) -> list[Action]:
        """A subscription is in all its groups: from now on no broadcast passes it by."""

    def complete(self, operation: Operation) -> list[Action]:
        """The operation ended on the server's side."""


class OperationSink(Protocol):
    """The transport, as its runner sees it."""

    async def perform(self, actions: list[Action]) -> None:
        """Carry out actions, in order: every action of the machine but starting and
        stopping operations (sends, closes, the handshake)."""

    async def on_operation(self, id: str, payload: OperationPayload) -> None:
        """The server's hook, awaited before an operation runs; raising refuses it."""


class _RunningOperation:
    """One operation whose task has not ended, as its runner keeps it: one small object
    (and the task's done callback) rather than an entry in a container per question
    the runner asks of it, which an idle subscription would hold all its life."""

    __slots__ = ("operation", "operations", "queues", "stopped", "subscribed", "task")

    def __init__(self, operations: ConnectionOperations, operation: Operation) -> None:
        self.operations = operations
        self.operation = operation
        self.task: asyncio.Task[None] | None = None
        self.stopped = False
        """The client stopped it (or the runner is closing): it no longer counts as
        running, although its task may not have ended yet."""
        self.subscribed = False
        """It is a subscription in all its groups by now."""
        self.queues: list[NotificationQueue] = []
        """The notification queues it opened (see ``operation_queues``)."""

    def __call__(self, task: asyncio.Task[None]) -> None:
        self.operations._task_done(task, self)


class ConnectionOperations:
    """Runs the operations of one connection and keeps its tasks (see the module
    docstring): fed the machine's actions, it reports through ``sink``."""

    __slots__ = (
        "_closed",
        "_context",
        "_machine",
        "_operation_waiting",
        "_operations_changed",
        "_operations_size",
        "_refuse",
        "_running",
        "_settings",
        "_sink",
        "_tasks",
        "_waiting_operations",
    )

    def __init__(
        self,
        machine: OperationMachine,
        sink: OperationSink,
        settings: ServerSettings,
        context: object,
    ) -> None:
        self._machine = machine
        self._sink = sink
        self._settings = settings
        self._context = context  # what resolvers get as ``info.context``
        self._closed = False
        # The transport's tasks that have not ended (its hooks and timers; None when
        # there is none, as on an idle connection once its handshake is done).
        self._tasks: set[asyncio.Task[None]] | None = None
        # The operations whose task has not ended (stopped ones included, until it has).
        self._running: dict[Operation, _RunningOperation] = {}
        # strict_ordering: operations waiting for their turn, in arrival order (a dict, so
        # that one the client completes meanwhile leaves at once).
        self._waiting_operations: dict[Operation, None] = {}
        self._operation_waiting: asyncio.Event | None = None
        self._operations_size = 0
        # For a drain: what refuses new operations, and an event set whenever an
        # operation ends or becomes a subscription.
        self._refuse: Callable[[Operation], None] | None = None
        self._operations_changed: asyncio.Event | None = None

    # --- fed by the transport --------------------------------------------------------------

    async def handle(self, actions: list[Action]) -> None:
        """Carry out a machine's actions in order: operations start and stop here, every
        other action goes to the sink."""
        done = 0
        for index, action in enumerate(actions):
            if isinstance(action, StartOperation | StopOperation):
                if done < index:
                    await self._sink.perform(actions[done:index])
                done = index + 1
                if isinstance(action, StartOperation):
                    self.start(action.operation)
                else:
                    self.stop(action.operation)
        rest = actions[done:] if done else actions
        if rest:
            await self._sink.perform(rest)

    def start(self, operation: Operation) -> None:
        """Run ``operation`` (at its turn, under ``strict_ordering``)."""
        if self._closed:
            return
        if self._refuse is not None:
            self._refuse(operation)
            return
        if self._settings.strict_ordering:
            if self._operation_waiting is None:
                self._operation_waiting = asyncio.Event()
                self.spawn(self._run_in_order(self._operation_waiting))
            self._waiting_operations[operation] = None
            self._operation_waiting.set()
            return
        self._launch(operation, None)

    def stop(self, operation: Operation) -> asyncio.Task[None] | None:
        """Cancel ``operation``, running or waiting for its turn; its task, if it was
        running (awaiting it waits for the operation's clean-up)."""
        self._waiting_operations.pop(operation, None)
        running = self._running.get(operation)
        task = None if running is None else running.task
        if running is not None and not running.stopped:
            running.stopped = True
            assert task is not None
            task.cancel()
        self._changed()
        return task

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task of the connection (a hook, a timer of the
        transport): :meth:`close` cancels it with the operations; a failure is logged."""
        return self._spawn(coroutine, None)

    def stop_admitting(self, refuse: Callable[[Operation], None]) -> None:
        """From now on, an operation the client starts is not run: ``refuse`` gets it
        (the transport answers it, or closes)."""
        self._refuse = refuse

    async def wait_for_queries(self) -> None:
        """Wait until every operation has ended or is a subscription in all its groups:
        the queries and mutations under way (and those waiting for their turn) are
        done."""
        while self._waiting_operations or any(
            not running.stopped and not running.subscribed for running in self._running.values()
        ):
            changed = self._operations_changed = asyncio.Event()
            await changed.wait()

    async def deliver_queued(self) -> None:
        """Wait until each running subscription has handled every notification queued
        for it so far: its results are sent (or were dropped)."""
        for running in list(self._running.values()):
            for queue in list(running.queues):
                await queue.delivered()

    def _changed(self) -> None:
        if self._operations_changed is not None:
            self._operations_changed.set()

    async def wait_for_operations(self) -> None:
        """Wait until every running operation has ended by itself (a transport whose
        response is complete lets its operation finish its clean-up)."""
        while running := [
            running.task
            for running in self._running.values()
            if not running.stopped and running.task is not None
        ]:
            await asyncio.wait(running)

    async def close(self) -> None:
        """The connection is gone: cancel every task of it and wait until all have ended."""
        self._closed = True
        tasks = [*(self._tasks or ())]
        tasks += [running.task for running in self._running.values() if running.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- tasks -----------------------------------------------------------------------------

    def _spawn(
        self, coroutine: Coroutine[Any, Any, None], running: _RunningOperation | None
    ) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        if running is None:
            if self._tasks is None:
                self._tasks = set()
            self._tasks.add(task)
            task.add_done_callback(self._task_done)
        else:
            # Kept in _running until it ends (see _task_done).
            task.add_done_callback(running)
        return task

    def _task_done(
        self, task: asyncio.Task[None], running: _RunningOperation | None = None
    ) -> None:
        if running is None:
            if self._tasks is not None:
                self._tasks.discard(task)
                if not self._tasks:
                    self._tasks = None  # an empty set still costs 216 bytes
        else:
            if self._running.get(running.operation) is running:
                del self._running[running.operation]
            self._changed()
        if not task.cancelled() and task.exception() is not None:
            logger.error("A task of the connection failed", exc_info=task.exception())

    def _launch(self, operation: Operation, ready: asyncio.Event | None) -> asyncio.Task[None]:
        running = _RunningOperation(self, operation)
        self._running[operation] = running
        running.task = task = self._spawn(self._run_operation(running, ready), running)
        return task

    async def _run_in_order(self, operation_waiting: asyncio.Event) -> None:
        while True:
            while not self._waiting_operations:
                operation_waiting.clear()
                await operation_waiting.wait()
            operation = next(iter(self._waiting_operations))
            del self._waiting_operations[operation]
            ready = asyncio.Event()
            task = self._launch(operation, ready)
            waiter = asyncio.ensure_future(ready.wait())
            try:
                await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()

    # --- one operation ---------------------------------------------------------------------

    async def _run_operation(self, running: _RunningOperation, ready: asyncio.Event | None) -> None:
        operation = running.operation
        # Read by the typed subscriptions this operation opens (in this task's context).
        current_operation.set(self._settings.operation)
        log_where.operation_id.set(operation.id)
        operation_queues.set(running.queues)
        machine, sink = self._machine, self._sink
        observation = observing.observer.operation()
        try:
            try:
                await sink.on_operation(operation.id, operation.payload)
            except OperationRejected as exc:
                observation.failed(Failure.REFUSED.value)
                await sink.perform(
                    machine.send_errors(
                        operation, [error(str(exc) or "Operation rejected")], Failure.REFUSED
                    )
                )
                return
            except GraphQLError as exc:
                observation.failed(Failure.REFUSED.value)
                await sink.perform(
                    machine.send_errors(operation, format_errors([exc]), Failure.REFUSED)
                )
                return
            except Exception:
                # A bug of the hook, or of what it calls: its text is not for the client
                # (it may name a database or a broker).
                observation.failed(Failure.INTERNAL.value)
                logger.exception("on_operation raised; operation %r refused", operation.id)
                await sink.perform(
                    machine.send_errors(
                        operation, [error(INTERNAL_ERROR_MESSAGE)], Failure.INTERNAL
                    )
                )
                return
            run = self._settings.executor.start(operation.payload, self._context)
            try:
                subscription = await self._run_prepared(operation, run, ready, observation)
                if subscription is not None:
                    # Awaited here, not inside _run_prepared: one frame fewer for as
                    # long as the subscription lives.
                    await subscription
            finally:
                await run.close()
        except asyncio.CancelledError:
            raise
        except Exception:
            observation.failed(Failure.INTERNAL.value)
            logger.exception("Operation %r failed", operation.id)
            await sink.perform(
                machine.send_errors(operation, [error(INTERNAL_ERROR_MESSAGE)], Failure.INTERNAL)
            )
        finally:
            observation.ended()
            if ready is not None:
                ready.set()

    async def _run_prepared(
        self,
        operation: Operation,
        run: OperationRun,
        ready: asyncio.Event | None,
        observation: OperationObserver,
    ) -> Coroutine[Any, Any, None] | None:
        """Prepare and run a query or mutation; for a subscription that opened, return
        the coroutine that runs it, to be awaited at once (it releases the operation's
        size from the connection's budget when it ends)."""
        machine, sink, settings = self._machine, self._sink, self._settings
        prepared = await run.prepare()
        # From here on the operation needs only what was prepared (the declared
        # variables, coerced when it runs): the frame's other contents, unused variables
        # and extensions included, are let go (once read: a subscription's confirmation
        # may be asked for there).
        confirm = settings.confirm_subscriptions or confirmation_requested(operation.payload)
        operation.payload = RELEASED_PAYLOAD
        if isinstance(prepared, list):
            observation.failed(Failure.INVALID.value)
            await sink.perform(machine.send_errors(operation, prepared))
            return None
        name = prepared.operation.name
        observation.prepared(
            prepared.operation_type.value, name.value if name else None, prepared.query
        )
        size = self._charge(prepared)
        if size is None:
            observation.failed(Failure.INVALID.value)
            message = (
                "Too much in this connection's operations: their documents' tokens and "
                "their variables' values may total at most "
                f"{settings.max_operations_size_per_connection} "
                "(max_operations_size_per_connection)"
            )
            await sink.perform(machine.send_errors(operation, [error(message)]))
            return None
        released = False
        try:
            refusal = machine.refusal(operation, prepared.operation_type)
            if refusal is not None:
                observation.failed(UNSUPPORTED)
                await sink.perform(refusal)
                return None
            if prepared.operation_type is OperationType.SUBSCRIPTION:
                stream = await run.subscribe(prepared)
                del prepared  # the raw variables: the stream keeps the coerced ones
                released = True  # by the subscription, when it ends
                return self._run_subscription(
                    operation,
                    stream,
                    ready,
                    observation,
                    size,
                    confirm=confirm,
                    request_error=run.request_failed,
                )
            result = await run.execute(
                prepared, incremental=machine.incremental_delivery(operation)
            )
            if isinstance(result, dict):
                await sink.perform(
                    machine.send_result(operation, result, request_error=run.request_failed)
                )
            else:
                try:
                    async for payload_json in result:
                        await sink.perform(machine.send_incremental_result(operation, payload_json))
                finally:
                    await result.aclose()
            await sink.perform(machine.complete(operation))
            return None
        finally:
            if not released:
                self._operations_size -= size

    def _charge(self, prepared: PreparedOperation) -> int | None:
        """Counts an operation against ``max_operations_size_per_connection``: its size,
        or None when the connection cannot take it."""
        limit = self._settings.max_operations_size_per_connection
        if limit is None:
            return 0
        room = limit - self._operations_size - prepared.tokens
        if room < 0:
            return None
        values = count_json_values(prepared.variables, room) if prepared.variables else 0
        if values > room:
            return None
        size = prepared.tokens + values
        self._operations_size += size
        return size

    async def _run_subscription(
        self,
        operation: Operation,
        stream: SubscriptionResults | ExecutionResultPayload,
        ready: asyncio.Event | None,
        observation: OperationObserver,
        size: int,
        *,
        confirm: bool,
        request_error: bool = False,
    ) -> None:
        try:
            machine, sink = self._machine, self._sink
            # Typed subscriptions are in all their groups once subscribe() has returned:
            # from here on, no broadcast can be missed, so the confirmation may go out.
            if ready is not None:
                ready.set()
            running = self._running.get(operation)
            if running is not None:
                running.subscribed = True
            self._changed()
            if isinstance(stream, dict):
                observation.failed(SUBSCRIPTION_REFUSED)
                await sink.perform(
                    machine.send_result(operation, stream, request_error=request_error)
                )
                await sink.perform(machine.complete(operation))
                return
            try:
                await sink.perform(machine.subscribed(operation))
                if confirm:
                    await sink.perform(
                        machine.send_result(
                            operation, self._settings.subscription_confirmation_message
                        )
                    )
                observation.subscribed()
                async for payload_json in stream:
                    await sink.perform(machine.send_serialized_result(operation, payload_json))
                    observation.delivered()
                await sink.perform(machine.complete(operation))
            finally:
                await stream.aclose()
        finally:
            self._operations_size -= size
