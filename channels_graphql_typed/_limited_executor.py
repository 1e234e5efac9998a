"""Our graphql-core executors: results bounded as they are built, Strawberry's resolve info.

An operation whose response would grow past ``max_result_size`` stops growing there
and gets one error instead (:class:`LimitedExecutor`): every completed value adds its
estimated JSON size, a field waiting for an async resolver counts
:data:`ASYNC_FIELD_COST`, and past the limit nothing further is resolved. Resolvers get
the resolve info Strawberry gives them (:class:`ResolveInfo`).

Three executors share these limits (:class:`BoundedExecutor`), for the three ways an operation
may meet ``@defer`` and ``@stream`` (directives a schema has only when Strawberry's
``enable_experimental_incremental_execution`` is on):

* :class:`LimitedExecutor` refuses them (a subscription, which graphql-core never runs
  incrementally; and every operation of a schema without them);
* :class:`IncrementalLimitedExecutor` delivers them incrementally (graphql-core's
  incremental executor): the initial result, then subsequent payloads, all counted
  against the same budget, since the sub-executors of deferred and streamed parts are
  copies sharing it;
* :class:`InlineLimitedExecutor` ignores them, for a transport that can carry one
  result only (a JSON response): deferred and streamed parts complete in the one result,
  which the draft of incremental delivery allows.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

import graphql
from graphql import (
    ExecutionResult,
    FieldNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
)
from graphql.execution.executor import CollectedErrors, Executor
from graphql.execution.executor_throwing_on_incremental import ExecutorThrowingOnIncremental
from graphql.execution.incremental import IncrementalExecutor

if TYPE_CHECKING:
    from collections.abc import Callable


DEFAULT_MAX_RESULT_SIZE: Final = 2 * 1024 * 1024


ASYNC_FIELD_COST: Final = 128
"""What a field resolved asynchronously counts against ``max_result_size``."""


RESULT_TOO_LARGE: Final = (
    "The result is too large: it would exceed {limit} bytes (max_result_size)."
)


class _ResultBudget:
    """How much of ``max_result_size`` a result has used, shared by an executor and its
    copies (graphql-core copies an executor for parts of one result)."""

    __slots__ = ("exceeded", "used")

    def __init__(self) -> None:
        self.used = 0
        self.exceeded = False


class _NothingCollected(CollectedErrors):
    """The collected errors of an executor that only makes per-event copies (each of
    which collects its own): nothing may be added."""

    __slots__ = ()

    def add(self, error: GraphQLError, path: Any) -> None:
        raise RuntimeError("a subscription's executor executes its events in copies only")


_NOTHING_COLLECTED: Final = _NothingCollected()
_NO_FUTURES: Final[frozenset[Any]] = frozenset()


class ResolveInfo(NamedTuple):
    """The resolve info of a field: graphql-core's fields, with the coerced variables as
    a plain dict, plus the request's extensions, as Strawberry builds it."""

    field_name: str
    field_nodes: list[FieldNode]
    return_type: Any
    parent_type: GraphQLObjectType
    path: Any
    schema: GraphQLSchema
    fragments: Any
    root_value: Any
    operation: OperationDefinitionNode
    variable_values: dict[str, Any]
    context: Any
    is_awaitable: Callable[[Any], bool]
    abort_signal: Any
    async_helpers: Any
    operation_extensions: dict[str, Any] | None


class BoundedExecutor(Executor[Any]):
    """What our executors add to graphql-core's: the result's size bounded while it is
    built, and Strawberry's resolve info.

    Each completed value adds an estimate of its JSON size (its key, 8 bytes of
    punctuation, and the length of a string or of a list) to a budget; once
    ``max_result_size`` is passed every further value completes as null at once,
    without resolving anything below it, and the
    caller replaces the whole result with one error (see :meth:`too_large`). A list is
    charged for its length before its items are completed: a resolver returning a
    million rows costs one check, not a million nulls.
    """

    def __init__(
        self,
        *args: Any,
        max_result_size: int | None = None,
        operation_extensions: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_result_size = max_result_size
        self.operation_extensions = operation_extensions
        self.result_budget = _ResultBudget()

    def build_resolve_info(
        self,
        field_def: graphql.GraphQLField,
        field_nodes: list[FieldNode],
        parent_type: GraphQLObjectType,
        path: Any,
    ) -> Any:
        # What Strawberry's own executor gives resolvers: the coerced variables as a
        # plain dict, and the request's extensions (``info.operation_extensions``).
        return ResolveInfo(
            field_nodes[0].name.value,
            field_nodes,
            field_def.type,
            parent_type,
            path,
            self.schema,
            self.fragment_definitions,
            self.root_value,
            self.operation,
            self.variable_values.coerced,
            self.context_value,
            self.is_awaitable,
            self.abort_signal,
            self.async_helpers,
            self.operation_extensions,
        )

    def too_large(self) -> ExecutionResult | None:
        """The error result that replaces a result which outgrew the limit, or None."""
        if not self.result_budget.exceeded:
            return None
        return ExecutionResult(
            None, errors=[GraphQLError(RESULT_TOO_LARGE.format(limit=self.max_result_size))]
        )

    def events_only(self) -> None:
        """The subscription's source stream is open: from now on this executor only
        makes the per-event copies (:meth:`build_per_event_executor`), each with errors
        and incremental futures of its own, so it lets go of its own (empty) ones, which
        an idle subscription would otherwise hold for its whole life."""
        self.collected_errors = _NOTHING_COLLECTED
        self.pending_incremental_futures = cast("set[Any]", _NO_FUTURES)

    def build_per_event_executor(self, payload: Any) -> Executor[Any]:
        executor = super().build_per_event_executor(payload)
        if isinstance(executor, BoundedExecutor):
            executor.result_budget = _ResultBudget()
            executor.pending_incremental_futures = set()
        return executor

    def execute_fields(self, *args: Any, **kwargs: Any) -> Any:
        if self.result_budget.exceeded:
            return {}  # no field of the object is resolved
        return super().execute_fields(*args, **kwargs)

    def execute_field(self, *args: Any, **kwargs: Any) -> Any:
        budget = self.result_budget
        if budget.exceeded:
            return None  # its resolver is not even called
        result = super().execute_field(*args, **kwargs)
        if self.max_result_size is not None and inspect.iscoroutine(result):
            # A field waiting for an async resolver costs a task and its frames, far
            # more than its text: counted as such, a tiny query over nested async
            # lists stops before it has started thousands of them.
            budget.used += ASYNC_FIELD_COST
        return result

    async def complete_awaitable_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        if self.result_budget.exceeded:
            # Resolvers started before the limit was passed and not yet run: they are
            # not run at all (async resolvers of many list items start together).
            if inspect.iscoroutine(result):
                result.close()
            elif isinstance(result, asyncio.Future):
                result.cancel()
            return None
        return await super().complete_awaitable_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def complete_value(
        self,
        return_type: Any,
        field_details_list: Any,
        info: Any,
        path: Any,
        result: Any,
        position_context: Any,
    ) -> Any:
        limit = self.max_result_size
        if limit is not None and not isinstance(return_type, graphql.GraphQLNonNull):
            budget = self.result_budget
            if budget.exceeded:
                return None
            # Its key and its punctuation (in JSON: quotes, colon, comma; in memory and
            # in execution time every value costs more than its text says).
            key = path.key
            used = budget.used + (len(key) + 8 if isinstance(key, str) else 8)
            if isinstance(result, str | list | tuple):
                used += len(result)
            budget.used = used
            if used > limit:
                budget.exceeded = True
                return None
        return super().complete_value(
            return_type, field_details_list, info, path, result, position_context
        )


class LimitedExecutor(BoundedExecutor, ExecutorThrowingOnIncremental):
    """Bounded results; ``@defer`` and ``@stream`` refused (with graphql-core's errors)."""


class IncrementalLimitedExecutor(BoundedExecutor, IncrementalExecutor):
    """Bounded results, ``@defer`` and ``@stream`` delivered incrementally: the budget
    covers the initial result and every subsequent payload together."""


class InlineLimitedExecutor(BoundedExecutor):
    """Bounded results, ``@defer`` and ``@stream`` ignored: everything in one result."""
