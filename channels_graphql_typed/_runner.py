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
  ``execute`` (a query or mutation: its result, then complete) or ``subscribe`` (the
  confirmation when asked for, then every result until the stream ends or the client
  stops it).
* What an operation produces becomes actions through the machine
  (:class:`OperationMachine`: ``send_result``, ``send_errors``...), which drops the
  results of an operation that is no longer active, and the actions go to the sink.
* With ``strict_ordering`` the operations start one at a time, in arrival order: the
  next starts when the previous one has ended or, for a subscription, once it is in all
  its groups (from then on no broadcast can pass it by).
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
import functools
from typing import TYPE_CHECKING, Any, Final, Protocol

from graphql import GraphQLError, OperationType

from . import _log as log_where
from ._contract import INTERNAL_ERROR_MESSAGE, OperationSettings, current_operation
from ._exceptions import OperationRejected
from ._execution import GraphqlExecutor, format_errors
from ._log import logger
from ._notification_queue import DEFAULT_NOTIFICATION_QUEUE_LIMIT
from ._protocol import Failure, StartOperation, StopOperation
from ._protocol.common import (
    DEFAULT_MAX_OPERATIONS_SIZE,
    RELEASED_PAYLOAD,
    count_json_values,
    error,
)
from ._protocol.messages import ExecutionResultPayload, confirmation_requested

if TYPE_CHECKING:
    from collections.abc import Coroutine, Sequence

    from ._document_cache import PreparedOperation
    from ._execution import OperationRun, SubscriptionResults
    from ._protocol import Action, Operation
    from ._protocol.messages import FormattedError, OperationPayload


def _default_confirmation() -> ExecutionResultPayload:
    return {"data": None}


_DEFAULT_OPERATION_SETTINGS: Final = OperationSettings(DEFAULT_NOTIFICATION_QUEUE_LIMIT)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ServerSettings:
    """What a server class decides for the operations of all its connections.

    Built once per server class, from its class attributes, and shared by every
    connection of that class. The defaults are those of
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


class ConnectionOperations:
    """Runs the operations of one connection and keeps its tasks (see the module
    docstring): fed the machine's actions, it reports through ``sink``."""

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
        self._context = context
        """What resolvers get as ``info.context``."""
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._operation_tasks: dict[Operation, asyncio.Task[None]] = {}
        # strict_ordering: operations waiting for their turn, in arrival order (a dict, so
        # that one the client completes meanwhile leaves at once).
        self._waiting_operations: dict[Operation, None] = {}
        self._operation_waiting: asyncio.Event | None = None
        self._operations_size = 0

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
        if self._settings.strict_ordering:
            if self._operation_waiting is None:
                self._operation_waiting = asyncio.Event()
                self.spawn(self._run_in_order(self._operation_waiting))
            self._waiting_operations[operation] = None
            self._operation_waiting.set()
            return
        self._launch(operation, None)

    def stop(self, operation: Operation) -> None:
        """Cancel ``operation``, running or waiting for its turn."""
        self._waiting_operations.pop(operation, None)
        task = self._operation_tasks.pop(operation, None)
        if task is not None:
            task.cancel()

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coroutine`` as a task of the connection (a hook, a timer of the
        transport): :meth:`close` cancels it with the operations; a failure is logged."""
        return self._spawn(coroutine, None)

    async def wait_for_operations(self) -> None:
        """Wait until every running operation has ended by itself (a transport whose
        response is complete lets its operation finish its clean-up)."""
        while self._operation_tasks:
            await asyncio.wait(list(self._operation_tasks.values()))

    async def close(self) -> None:
        """The connection is gone: cancel every task of it and wait until all have ended."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # --- tasks -----------------------------------------------------------------------------

    def _spawn(
        self, coroutine: Coroutine[Any, Any, None], operation: Operation | None
    ) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        if operation is None:
            task.add_done_callback(self._task_done)
        else:
            task.add_done_callback(functools.partial(self._task_done, operation=operation))
        return task

    def _task_done(self, task: asyncio.Task[None], operation: Operation | None = None) -> None:
        self._tasks.discard(task)
        if operation is not None and self._operation_tasks.get(operation) is task:
            del self._operation_tasks[operation]
        if not task.cancelled() and task.exception() is not None:
            logger.error("A task of the connection failed", exc_info=task.exception())

    def _launch(self, operation: Operation, ready: asyncio.Event | None) -> asyncio.Task[None]:
        task = self._spawn(self._run_operation(operation, ready), operation)
        self._operation_tasks[operation] = task
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

    async def _run_operation(self, operation: Operation, ready: asyncio.Event | None) -> None:
        # Read by the typed subscriptions this operation opens (in this task's context).
        current_operation.set(self._settings.operation)
        log_where.operation_id.set(operation.id)
        machine, sink = self._machine, self._sink
        try:
            try:
                await sink.on_operation(operation.id, operation.payload)
            except OperationRejected as exc:
                await sink.perform(
                    machine.send_errors(
                        operation, [error(str(exc) or "Operation rejected")], Failure.REFUSED
                    )
                )
                return
            except GraphQLError as exc:
                await sink.perform(
                    machine.send_errors(operation, format_errors([exc]), Failure.REFUSED)
                )
                return
            except Exception:
                # A bug of the hook, or of what it calls: its text is not for the client
                # (it may name a database or a broker).
                logger.exception("on_operation raised; operation %r refused", operation.id)
                await sink.perform(
                    machine.send_errors(
                        operation, [error(INTERNAL_ERROR_MESSAGE)], Failure.INTERNAL
                    )
                )
                return
            run = self._settings.executor.start(operation.payload, self._context)
            try:
                await self._run_prepared(operation, run, ready)
            finally:
                await run.close()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Operation %r failed", operation.id)
            await sink.perform(
                machine.send_errors(operation, [error(INTERNAL_ERROR_MESSAGE)], Failure.INTERNAL)
            )
        finally:
            if ready is not None:
                ready.set()

    async def _run_prepared(
        self, operation: Operation, run: OperationRun, ready: asyncio.Event | None
    ) -> None:
        machine, sink, settings = self._machine, self._sink, self._settings
        prepared = await run.prepare()
        # From here on the operation needs only what was prepared (the declared
        # variables, coerced when it runs): the frame's other contents, unused variables
        # and extensions included, are let go (once read: a subscription's confirmation
        # may be asked for there).
        confirm = settings.confirm_subscriptions or confirmation_requested(operation.payload)
        operation.payload = RELEASED_PAYLOAD
        if isinstance(prepared, list):
            await sink.perform(machine.send_errors(operation, prepared))
            return
        size = self._charge(prepared)
        if size is None:
            message = (
                "Too much in this connection's operations: their documents' tokens and "
                "their variables' values may total at most "
                f"{settings.max_operations_size_per_connection} "
                "(max_operations_size_per_connection)"
            )
            await sink.perform(machine.send_errors(operation, [error(message)]))
            return
        try:
            refusal = machine.refusal(operation, prepared.operation_type)
            if refusal is not None:
                await sink.perform(refusal)
                return
            if prepared.operation_type is OperationType.SUBSCRIPTION:
                stream = await run.subscribe(prepared)
                del prepared  # the raw variables: the stream keeps the coerced ones
                await self._run_subscription(
                    operation, stream, ready, confirm=confirm, request_error=run.request_failed
                )
                return
            result = await run.execute(prepared)
            await sink.perform(
                machine.send_result(operation, result, request_error=run.request_failed)
            )
            await sink.perform(machine.complete(operation))
        finally:
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
        *,
        confirm: bool,
        request_error: bool = False,
    ) -> None:
        machine, sink = self._machine, self._sink
        # Typed subscriptions are in all their groups once subscribe() has returned:
        # from here on, no broadcast can be missed, so the confirmation may go out.
        if ready is not None:
            ready.set()
        if isinstance(stream, dict):
            await sink.perform(machine.send_result(operation, stream, request_error=request_error))
            await sink.perform(machine.complete(operation))
            return
        try:
            await sink.perform(machine.subscribed(operation))
            if confirm:
                await sink.perform(
                    machine.send_result(operation, self._settings.subscription_confirmation_message)
                )
            async for payload_json in stream:
                await sink.perform(machine.send_serialized_result(operation, payload_json))
            await sink.perform(machine.complete(operation))
        finally:
            await stream.aclose()
