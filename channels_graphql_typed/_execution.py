"""The one place that talks to graphql-core.

* :class:`DocumentCache` parses and validates each distinct query text once (an LRU
  bounded by entries and by the GraphQL tokens it holds), so a thousand clients
  sending the same subscription cost one parse. Long documents are parsed and
  validated in a thread of their own, one at a time, so that a client sending big
  distinct documents cannot stall the event loop that serves everyone else.
* Results are bounded as they are built: an operation whose response would grow past
  ``max_result_size`` stops growing there and gets one error instead.
* :class:`GraphqlExecutor` runs operations against the GraphQLSchema that a
  Strawberry schema wraps: queries and mutations with ``execute``, subscriptions with
  ``subscribe``.
* Sync resolvers never run on the event loop. Which fields have a sync resolver of
  the user's is decided once per schema; those resolvers (and only those: plain
  attribute fields stay on the loop, where they cost nothing) are wrapped to run in a
  bounded thread pool, with Django's stale-connection cleanup around them like
  Channels' ``database_sync_to_async``. The wrapping is done through graphql-core's
  middleware hook, as the innermost layer, so user middleware still sees every field.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import inspect
import json
import threading
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

import graphql
from graphql import (
    ASTValidationRule,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
)
from graphql.execution import (
    CompletedResult,
    ExperimentalIncrementalExecutionResults,
    InitialIncrementalExecutionResult,
    SubsequentIncrementalExecutionResult,
    create_source_event_stream,
    execute_subscription_event,
)
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types.execution import ExecutionContext as StrawberryExecutionContext
from strawberry.types.graphql import OperationType as StrawberryOperationType

from . import _observability as observing
from ._contract import ALREADY_REPORTED, EventsMissed, delivered_event_id
from ._document_cache import (
    DEFAULT_DOCUMENT_CACHE_SIZE,
    DEFAULT_DOCUMENT_CACHE_TOKENS,
    LONG_DOCUMENT_LENGTH,
    DocumentCache,
    ParsedDocument,
    PreparedOperation,
)
from ._exceptions import OperationRejected
from ._limited_executor import (
    DEFAULT_MAX_RESULT_SIZE,
    RESULT_TOO_LARGE,
    BoundedExecutor,
    IncrementalLimitedExecutor,
    InlineLimitedExecutor,
    LimitedExecutor,
)
from ._log import logger
from ._protocol.messages import EVENT_ID_EXTENSION, EVENTS_MISSED
from ._resolver_offload import (
    ExecutionMiddleware,
    classify_resolvers,
    install_publish_failure_resolvers,
)
from ._result_sharing import (
    ResultSharing,
    SharedResultCache,
    event_key,
)
from ._validation_rules import (
    DEFAULT_MAX_QUERY_ALIASES,
    DEFAULT_MAX_QUERY_DEPTH,
    DEFAULT_MAX_QUERY_TOKENS,
    STRAWBERRY_RULES,
    count_tokens,
    max_aliases_rule,
    max_depth_rule,
)

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterable, Callable, Collection, Sequence

    import strawberry
    from graphql.execution.executor import Executor

    from ._protocol.messages import ExecutionResultPayload, FormattedError, OperationPayload


class RequestErrors(ExecutionResult):
    """The result of an operation whose execution could not begin: its variables could
    not be coerced (GraphQL spec, CoerceVariableValues raises a request error)."""

    __slots__ = ()


def format_errors(errors: Sequence[GraphQLError]) -> list[FormattedError]:
    return [cast("FormattedError", error.formatted) for error in errors]


def format_result(result: ExecutionResult) -> ExecutionResultPayload:
    """The wire form of a result (``extensions`` only when there are some, as in
    Strawberry's transports)."""
    if result.extensions is not None and not result.extensions:
        result.extensions = None
    return cast("ExecutionResultPayload", result.formatted)


def serialize_result(result: ExecutionResult) -> str:
    return _compact(format_result(result))


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


class IncrementalExecution(NamedTuple):
    """An operation that ``@defer`` or ``@stream`` made incremental: its results, and
    the executor whose budget (``max_result_size``) they all draw on."""

    results: ExperimentalIncrementalExecutionResults
    executor: BoundedExecutor


def _payload_errors(
    result: InitialIncrementalExecutionResult | SubsequentIncrementalExecutionResult,
) -> list[GraphQLError]:
    """Every error of one payload of an incremental result: its own (initial), those of
    its deferred and streamed parts, and those that ended a part (``completed``)."""
    if isinstance(result, InitialIncrementalExecutionResult):
        return list(result.errors or ())
    errors: list[GraphQLError] = []
    for part in (*(result.incremental or ()), *(result.completed or ())):
        errors.extend(part.errors or ())
    return errors


class SubscriptionResults:
    """The response stream of one subscription, as serialized payloads.

    Each source event is executed against the operation's selection (graphql-core's
    "ExecuteSubscriptionEvent"), unless an equal event's result for an equal operation
    is in the shared cache: see :mod:`channels_graphql_typed._result_sharing`.
    """

    # One per subscription, for its whole life.
    __slots__ = ("_executor", "_failed", "_run", "_shared_key", "_shared_results", "_source")

    def __init__(
        self,
        executor: Executor[Any],
        source: AsyncIterable[Any],
        shared_key: tuple[Any, ...] | None,
        shared_results: SharedResultCache,
        run: OperationRun,
    ) -> None:
        self._executor = executor
        self._source = source.__aiter__()
        self._shared_key = shared_key
        self._shared_results = shared_results
        self._run = run
        self._failed = False

    def __aiter__(self) -> SubscriptionResults:
        return self

    async def __anext__(self) -> str:
        if self._failed:
            raise StopAsyncIteration
        try:
            event = await self._source.__anext__()
        except StopAsyncIteration:
            raise
        except Exception as exc:
            # The source stream itself failed (not a resolver inside one event): as in
            # Strawberry, one last result with the error, through the schema's error
            # processing and masking, then the end of the stream.
            self._failed = True
            return await self._run.event_text(ExecutionResult(None, errors=[_coerce_error(exc)]))
        event_id = delivered_event_id.get()
        if event_id is not None:
            delivered_event_id.set(None)
        elif isinstance(event, EventsMissed):
            return serialize_result(
                ExecutionResult(
                    None, errors=[GraphQLError(event.message, extensions={"code": EVENTS_MISSED})]
                )
            )
        key = None
        if self._shared_key is not None:
            values = event_key(event)
            if values is not None:
                # Results of different events (ids) are never shared: each carries its id.
                key = (*self._shared_key, values, event_id)
                text = self._shared_results.get(key)
                if text is not None:
                    observing.observer.subscription_result(shared=True)
                    return text
        observing.observer.subscription_result(shared=False)
        event_executor = self._executor.build_per_event_executor(event)
        result = execute_subscription_event(event_executor)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(event_executor, BoundedExecutor):
            result = event_executor.too_large() or result
        text = await self._run.event_text(result, event_id)
        if key is not None:
            self._shared_results.put(key, text)
        return text

    async def aclose(self) -> None:
        try:
            aclose = getattr(self._source, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            await self._run.close()


class GraphqlExecutor:
    """Executes operations of one schema; one instance serves every connection of a
    consumer class."""

    def __init__(
        self,
        schema: strawberry.Schema,
        *,
        middleware: Sequence[Any] = (),
        share_results_under_middleware: bool = False,
        context_free_scalars: Collection[str] = (),
        max_worker_threads: int | None = None,
        document_cache_size: int = DEFAULT_DOCUMENT_CACHE_SIZE,
        document_cache_tokens: int = DEFAULT_DOCUMENT_CACHE_TOKENS,
        max_query_tokens: int | None = DEFAULT_MAX_QUERY_TOKENS,
        max_query_depth: int | None = DEFAULT_MAX_QUERY_DEPTH,
        max_query_aliases: int | None = DEFAULT_MAX_QUERY_ALIASES,
        max_result_size: int | None = DEFAULT_MAX_RESULT_SIZE,
        introspection: bool = True,
        validation_rules: Sequence[type[ASTValidationRule]] = (),
    ) -> None:
        self.strawberry_schema = schema
        self.schema: GraphQLSchema = schema._schema
        extensions = check_extensions(schema)
        self.has_extensions = bool(extensions)
        self.resolve_extensions = any(extension._implements_resolve() for extension in extensions)
        # Ours, run beside the rules of the schema's execution context (graphql-core's
        # specified rules plus what its extensions add) and Strawberry's own two.
        own_rules: list[type[ASTValidationRule]] = [*validation_rules]
        if max_query_depth is not None:
            own_rules.append(max_depth_rule(max_query_depth))
        if max_query_aliases is not None:
            own_rules.append(max_aliases_rule(max_query_aliases))
        if not introspection:
            own_rules.append(NoSchemaIntrospectionCustomRule)
        self.own_rules = tuple(own_rules)
        self.default_rules = (*specified_rules, *STRAWBERRY_RULES, *self.own_rules)
        self.documents = DocumentCache(
            self.schema,
            max_size=document_cache_size,
            max_cached_tokens=document_cache_tokens,
            rules=self.default_rules,
            max_tokens=max_query_tokens,
        )
        self.max_result_size = max_result_size
        self.incremental_directives = bool(schema.config.enable_experimental_incremental_execution)
        """Whether the schema has ``@defer`` and ``@stream`` (Strawberry's
        ``enable_experimental_incremental_execution``)."""
        self._max_worker_threads = max_worker_threads
        self._thread_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread_pool_lock = threading.Lock()
        offloaded = classify_resolvers(self.schema)
        install_publish_failure_resolvers(self.schema)
        # User middleware runs on every field and may read the context (to mask a field
        # for guests, say): with any, no result is shared between subscribers.
        # So may an extension's hook that runs per field or per result; one that only
        # refuses documents or masks errors (a function of the result) may not.
        share = (not middleware and not any(_per_subscriber(e) for e in extensions)) or (
            share_results_under_middleware
        )
        self.sharing = ResultSharing(self.schema, context_free_scalars, enabled=share)
        self._user_middleware = tuple(middleware)
        self._offloaded = offloaded
        self.middleware = self.middleware_for([])

    def thread_pool(self) -> concurrent.futures.ThreadPoolExecutor:
        """The pool that runs sync resolvers, created on first use."""
        if self._thread_pool is None:
            with self._thread_pool_lock:
                if self._thread_pool is None:
                    self._thread_pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=self._max_worker_threads,
                        thread_name_prefix="graphql-resolver",
                    )
        return self._thread_pool

    def middleware_for(self, extensions: Sequence[SchemaExtension]) -> ExecutionMiddleware:
        """The middleware of one operation: the ``resolve`` hooks of its extensions
        (outermost, as in Strawberry), the consumer's middleware, then ours."""
        return ExecutionMiddleware(
            *(extension for extension in extensions if extension._implements_resolve()),
            *self._user_middleware,
            offloaded=self._offloaded,
            executor=self.thread_pool,
        )

    def start(
        self, payload: OperationPayload, context: Any, root_value: Any = None
    ) -> OperationRun:
        """One operation, to be prepared and run through the schema's extensions."""
        return OperationRun(self, payload, context, root_value)

    async def prepare(self, payload: OperationPayload) -> PreparedOperation | list[FormattedError]:
        """Parse, validate and select the operation, outside any connection (for tests
        and benchmarks; connections use :meth:`start`)."""
        run = self.start(payload, None)
        try:
            return await run.prepare()
        finally:
            await run.close()

    async def _execute_graphql(
        self,
        operation: PreparedOperation,
        context: Any,
        root_value: Any,
        middleware: ExecutionMiddleware,
        operation_extensions: dict[str, Any] | None = None,
        *,
        incremental: bool = False,
    ) -> ExecutionResult | IncrementalExecution:
        executor = self._build(
            operation,
            context,
            root_value,
            middleware,
            operation_extensions,
            self._executor_class(incremental=incremental),
        )
        if isinstance(executor, list):
            return RequestErrors(None, errors=executor)
        result = executor.execute_operation()
        if inspect.isawaitable(result):
            result = await result
        if isinstance(result, ExperimentalIncrementalExecutionResults):
            return IncrementalExecution(result, executor)
        return executor.too_large() or result

    def _executor_class(self, *, incremental: bool) -> type[BoundedExecutor]:
        """The executor of a query or mutation: without ``@defer`` and ``@stream`` in the
        schema, the one that refuses them; with them, the incremental one when the
        transport can deliver several payloads, else the one that ignores them."""
        if not self.incremental_directives:
            return LimitedExecutor
        return IncrementalLimitedExecutor if incremental else InlineLimitedExecutor

    async def _open_source(
        self,
        operation: PreparedOperation,
        context: Any,
        root_value: Any,
        middleware: ExecutionMiddleware,
        operation_extensions: dict[str, Any] | None = None,
    ) -> tuple[BoundedExecutor, AsyncIterable[Any]] | ExecutionResult:
        executor = self._build(operation, context, root_value, middleware, operation_extensions)
        if isinstance(executor, list):
            return RequestErrors(None, errors=executor)
        source = create_source_event_stream(executor)
        if inspect.isawaitable(source):
            source = await source
        if isinstance(source, ExecutionResult):
            return source
        executor.events_only()
        return executor, source

    def _build(
        self,
        operation: PreparedOperation,
        context: Any,
        root_value: Any,
        middleware: ExecutionMiddleware,
        operation_extensions: dict[str, Any] | None = None,
        executor_class: type[BoundedExecutor] = LimitedExecutor,
    ) -> BoundedExecutor | list[GraphQLError]:
        executor = executor_class.build(
            self.schema,
            operation.document,
            root_value,
            context,
            operation.variables,
            operation.operation_name,
            middleware=middleware,
            max_result_size=self.max_result_size,
            operation_extensions=operation_extensions,
        )
        return cast("BoundedExecutor | list[GraphQLError]", executor)


ALL_OPERATION_TYPES: Final = tuple(StrawberryOperationType)


def check_extensions(schema: strawberry.Schema) -> list[SchemaExtension]:
    """The schema's extensions, instantiated once to be looked at; anything that is not a
    Strawberry extension is refused here, at start-up, naming it."""
    try:
        extensions = schema.get_extensions()
    except Exception as exc:
        raise TypeError(
            f"The schema's extensions cannot be created for an operation: {exc!r}"
        ) from exc
    custom = schema.execution_context_class
    if custom is not StrawberryGraphQLCoreExecutionContext:
        raise TypeError(
            f"The schema's execution_context_class {custom.__qualname__} cannot run here: "
            "operations over the socket run on this library's own graphql-core executor "
            "(thread offload of sync resolvers, result-size limit); leave it unset"
        )
    for extension in extensions:
        if not isinstance(extension, SchemaExtension):
            raise TypeError(
                f"{extension!r} in the schema's extensions is not a strawberry "
                "SchemaExtension (or a class or factory of one): it cannot run here"
            )
    return extensions


_PER_RESULT_HOOKS: Final = ("resolve", "get_results", "on_stream_result", "on_execute")


def _per_subscriber(extension: SchemaExtension) -> bool:
    """Whether ``extension`` may make one subscriber's result differ from another's: a
    hook that runs per field, per result or around execution. ``MaskErrors`` only
    rewrites the errors of a result, as a function of them: results stay shareable
    (the masked text is what is shared)."""
    kind = type(extension)
    for hook in _PER_RESULT_HOOKS:
        own = getattr(kind, hook, None)
        if own is getattr(SchemaExtension, hook):
            continue
        if isinstance(extension, MaskErrors) and own is getattr(MaskErrors, hook, None):
            continue
        return True
    return False


def _coerce_error(error: Exception) -> GraphQLError:
    if isinstance(error, GraphQLError):
        return error
    return GraphQLError(str(error), original_error=error)


def _missing_operation(operation_name: str | None) -> GraphQLError:
    if operation_name:
        return GraphQLError(f"Unknown operation named '{operation_name}'.")
    return GraphQLError("Must provide operation name if query contains multiple operations.")


class OperationRun:
    """One operation through its schema's extension lifecycle, in the order Strawberry
    runs it (``Schema.execute`` for queries and mutations, ``Schema.subscribe`` for
    subscriptions), so that a schema's extensions behave over the socket as they do in
    Strawberry:

    * ``on_operation`` wraps everything: from parsing to the result of a query, and the
      whole life of a subscription;
    * ``on_parse`` wraps parsing, which comes from the shared :class:`DocumentCache`
      unless an extension set ``execution_context.graphql_document`` (``ParserCache``);
      parse options an extension sets (``MaxTokensLimiter``) are honoured;
    * ``on_validate`` wraps validation with the execution context's rules, which
      extensions may change (``AddValidationRules``, ``QueryDepthLimiter``,
      ``MaxAliasesLimiter``, ``DisableIntrospection``, ``DisableValidation``) or
      replace with their own results (``ValidationCache``); the consumer's own limits
      run beside them (both must pass);
    * ``on_execute`` wraps execution; ``resolve`` hooks are middleware;
    * errors go through ``schema.process_errors`` (Strawberry's logging, or the user's
      override), each result gets ``get_results()`` as its ``extensions``, and each
      subscription result passes through ``on_stream_result`` (where ``MaskErrors``
      masks it) before it is serialized.

    A schema without extensions skips the hooks and pays only for error processing.
    """

    # One per operation; a subscription's lives as long as it does.
    __slots__ = (
        "_executor",
        "_extensions",
        "_middleware",
        "_runner",
        "_stack",
        "execution_context",
        "request_failed",
    )

    def __init__(
        self, executor: GraphqlExecutor, payload: OperationPayload, context: Any, root_value: Any
    ) -> None:
        self._executor = executor
        schema = executor.strawberry_schema
        self.execution_context = StrawberryExecutionContext(
            query=payload["query"],
            schema=schema,
            allowed_operations=ALL_OPERATION_TYPES,
            context=context,
            root_value=root_value,
            variables=payload.get("variables"),
            provided_operation_name=payload.get("operationName"),
            operation_extensions=payload.get("extensions"),
        )
        self._extensions: list[SchemaExtension] = (
            schema.get_extensions() if executor.has_extensions else []
        )
        for extension in self._extensions:
            extension.execution_context = self.execution_context
        self._runner = SchemaExtensionsRunner(self.execution_context, self._extensions)
        self._stack: contextlib.AsyncExitStack | None = None
        self.request_failed = False
        """Whether execution could not begin (see :class:`RequestErrors`)."""
        self._middleware = (
            executor.middleware_for(self._extensions)
            if executor.resolve_extensions
            else executor.middleware
        )

    # --- the phases -----------------------------------------------------------------------

    def _phase(
        self, hooks: Callable[[], contextlib.AbstractAsyncContextManager[object]]
    ) -> contextlib.AbstractAsyncContextManager[object]:
        """The extensions' hooks around a phase; nothing at all without extensions."""
        return hooks() if self._extensions else contextlib.nullcontext()

    async def prepare(self) -> PreparedOperation | list[FormattedError]:
        """Parse, select the operation and validate it; on errors the operation ends and
        its (processed, masked) errors are returned in wire form."""
        context = self.execution_context
        entry: ParsedDocument | None = None
        try:
            if self._extensions:
                self._stack = contextlib.AsyncExitStack()
                await self._stack.enter_async_context(self._runner.operation())
            async with self._phase(self._runner.parsing):
                entry = await self._parse()
            if context.pre_execution_errors:
                return await self._refuse(context.pre_execution_errors)
            document = context.graphql_document
            assert document is not None
            operation = graphql.get_operation_ast(document, context._provided_operation_name)
            if operation is None:
                return await self._refuse([_missing_operation(context._provided_operation_name)])
            async with self._phase(self._runner.validation):
                await self._validate(entry)
            if context.pre_execution_errors:
                return await self._refuse(context.pre_execution_errors)
        except Exception as exc:  # a hook raised: Strawberry answers with its text
            return await self._refuse([_coerce_error(exc)])
        # Only the declared variables are kept (for as long as a subscription lives):
        # a client's undeclared ones are never used.
        if context.variables:
            declared = {
                definition.variable.name.value
                for definition in operation.variable_definitions or ()
            }
            context.variables = {
                name: value for name, value in context.variables.items() if name in declared
            }
        assert context.query is not None
        return PreparedOperation(
            query=context.query,
            document=document,
            operation=operation,
            variables=context.variables,
            operation_name=context._provided_operation_name,
            tokens=entry.tokens if entry is not None else count_tokens(document),
        )

    async def execute(
        self, prepared: PreparedOperation, *, incremental: bool = False
    ) -> ExecutionResultPayload | AsyncGenerator[str, None]:
        """Run a prepared query or mutation to its one result, in wire form.

        ``incremental``: the transport can deliver several payloads, so ``@defer`` and
        ``@stream`` (in a schema that has them) are delivered incrementally: an
        operation they make incremental returns its payloads, serialized, instead (see
        :meth:`_incremental_payloads`); otherwise they are ignored."""
        context = self.execution_context
        try:
            async with self._phase(self._runner.executing):
                result = await self._execute_once(prepared, incremental=incremental)
        except Exception as exc:
            return format_result(await self._refused([_coerce_error(exc)]))
        if isinstance(result, IncrementalExecution):
            return self._incremental_payloads(result)
        # Errors are processed (logged) before the extensions see the result, then
        # on_operation ends (MaskErrors masks there), then get_results().
        if result.errors:
            context.pre_execution_errors = result.errors
            self._process_errors(result.errors)
        await self.close()
        if self._extensions:
            result.extensions = await self._runner.get_extensions_results(context)
        return format_result(result)

    async def _incremental_payloads(
        self, execution: IncrementalExecution
    ) -> AsyncGenerator[str, None]:
        """The payloads of an incremental result, serialized: the initial one, then each
        subsequent one as graphql-core's incremental executor produces it (graphql-js
        17.0.0-alpha.9's format, with ``pending``, ``incremental`` and ``completed``
        entries by id, as Apollo Client's ``GraphQL17Alpha9Handler`` and graphql-sse's
        client read it).

        Each payload goes through the schema's error processing and ``on_stream_result``
        (where ``MaskErrors`` masks the errors of its parts, as in Strawberry's streamed
        responses); the initial one also carries the extensions' ``get_results``;
        ``on_operation`` ends after the last. The payloads share one
        ``max_result_size``: once it is passed, one last payload ends every part still
        pending with the error, and nothing further runs. Closing the iterator (the
        client left) stops the deferred and streamed work."""
        results, executor = execution
        subsequent = results.subsequent_results
        try:
            too_large = executor.too_large()
            if too_large is not None:
                yield await self.event_text(too_large)
                return
            initial = results.initial_result
            pending = {entry.id for entry in initial.pending}
            yield await self._payload_text(initial)
            async for payload in subsequent:
                if executor.result_budget.exceeded:
                    message = RESULT_TOO_LARGE.format(limit=executor.max_result_size)
                    payload = SubsequentIncrementalExecutionResult(
                        has_next=False,
                        completed=[
                            CompletedResult(part, [GraphQLError(message)])
                            for part in sorted(pending, key=int)
                        ],
                    )
                    yield await self._payload_text(payload)
                    return
                pending.update(entry.id for entry in payload.pending or ())
                pending.difference_update(entry.id for entry in payload.completed or ())
                yield await self._payload_text(payload)
        finally:
            try:
                await subsequent.aclose()
            finally:
                await self.close()

    async def _payload_text(
        self, payload: InitialIncrementalExecutionResult | SubsequentIncrementalExecutionResult
    ) -> str:
        context = self.execution_context
        errors = _payload_errors(payload)
        if errors:
            context.pre_execution_errors = errors
            self._process_errors(errors)
        if not self._extensions:
            return _compact(payload.formatted)
        if isinstance(payload, InitialIncrementalExecutionResult):
            payload.extensions = await self._runner.get_extensions_results(context) or None
        async with self._runner.on_stream_result(cast("Any", payload)):
            return _compact(payload.formatted)

    async def subscribe(
        self, prepared: PreparedOperation
    ) -> SubscriptionResults | ExecutionResultPayload:
        """Start a prepared subscription: its stream of serialized results, or the one
        result that refused it (processed and masked like any event)."""
        try:
            async with self._phase(self._runner.executing):
                opened = await self._open(prepared)
        except Exception as exc:
            opened = ExecutionResult(None, errors=[_coerce_error(exc)])
        if isinstance(opened, ExecutionResult):
            try:
                return cast("ExecutionResultPayload", json.loads(await self.event_text(opened)))
            finally:
                await self.close()
        executor, source = opened
        # The request's extensions were for starting it (a persisted query's hash, say);
        # a subscription does not keep the client's whatever-it-sent for its lifetime.
        self.execution_context.operation_extensions = None
        executor.operation_extensions = None
        return SubscriptionResults(
            executor,
            source,
            self._executor.sharing.operation_key(prepared),
            self._executor.sharing.cache,
            self,
        )

    async def event_text(self, result: ExecutionResult, event_id: str | None = None) -> str:
        """One subscription result through error processing, ``get_results`` and
        ``on_stream_result``, serialized; with the event's id, if it has one, in its
        ``extensions``."""
        context = self.execution_context
        if result.errors:
            context.pre_execution_errors = result.errors
            self._process_errors(result.errors)
        if not self._extensions:
            if event_id is not None:
                result.extensions = {EVENT_ID_EXTENSION: event_id}
            return serialize_result(result)
        result.extensions = await self._runner.get_extensions_results(context)
        if event_id is not None:
            result.extensions = {**(result.extensions or {}), EVENT_ID_EXTENSION: event_id}
        context.result = result
        # Strawberry's hooks take its own result types; graphql-core's has the same
        # attributes (MaskErrors reads and replaces ``errors``).
        async with self._runner.on_stream_result(cast("Any", result)):
            return serialize_result(result)

    async def close(self) -> None:
        """End ``on_operation`` (once; later calls do nothing)."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    # --- helpers --------------------------------------------------------------------------

    async def _parse(self) -> ParsedDocument | None:
        context = self.execution_context
        if context.graphql_document is not None:
            return None  # an extension's on_parse provided it
        assert context.query is not None
        entry = await self._executor.documents.parse_async(
            context.query, cast("dict[str, Any]", context.parse_options)
        )
        if entry.query == context.query:
            # The cache's copy of the text, kept by the operation for as long as it lives
            # (a subscription's whole life), instead of this frame's own.
            context.query = entry.query
        if entry.document is None:
            context.pre_execution_errors = list(entry.errors)
        else:
            context.graphql_document = entry.document
        return entry

    async def _validate(self, entry: ParsedDocument | None) -> None:
        context = self.execution_context
        executor = self._executor
        rules: tuple[type[ASTValidationRule], ...] = ()
        if context.validation_rules and context.pre_execution_errors is None:
            rules = (*context.validation_rules, *STRAWBERRY_RULES)
        rules = (*rules, *executor.own_rules)
        if not rules:
            return
        document = context.graphql_document
        assert document is not None
        if entry is None or entry.document is not document:
            # A document from elsewhere (an extension's cache): validated, not cached.
            errors: Sequence[GraphQLError] = graphql.validate(executor.schema, document, rules)
        else:
            assert context.query is not None
            long = len(context.query) >= LONG_DOCUMENT_LENGTH
            errors = (await executor.documents.validate_async(entry, rules, long=long)).errors
        if errors:
            context.pre_execution_errors = [*(context.pre_execution_errors or ()), *errors]
        elif context.pre_execution_errors is None:
            context.pre_execution_errors = []

    async def _execute_once(
        self, prepared: PreparedOperation, *, incremental: bool = False
    ) -> ExecutionResult | IncrementalExecution:
        context = self.execution_context
        if context.result is not None:  # an on_execute hook answered (a result cache)
            return cast("ExecutionResult", context.result)
        result = await self._executor._execute_graphql(
            prepared,
            context.context,
            context.root_value,
            self._middleware,
            context.operation_extensions,
            incremental=incremental,
        )
        self.request_failed = isinstance(result, RequestErrors)
        # As Strawberry keeps it: an incremental result's container (``MaskErrors``
        # reads its initial result when on_operation ends).
        context.result = cast(
            "Any", result.results if isinstance(result, IncrementalExecution) else result
        )
        return result

    async def _open(
        self, prepared: PreparedOperation
    ) -> tuple[BoundedExecutor, AsyncIterable[Any]] | ExecutionResult:
        context = self.execution_context
        opened = await self._executor._open_source(
            prepared,
            context.context,
            context.root_value,
            self._middleware,
            context.operation_extensions,
        )
        self.request_failed = isinstance(opened, RequestErrors)
        return opened

    async def _refuse(self, errors: Sequence[GraphQLError]) -> list[FormattedError]:
        return format_errors((await self._refused(errors)).errors or [])

    async def _refused(self, errors: Sequence[GraphQLError]) -> ExecutionResult:
        """End the operation with ``errors`` (as Strawberry ends it with a
        ``PreExecutionError``): processed, given the extensions' results, masked when
        ``on_operation`` ends."""
        context = self.execution_context
        result = ExecutionResult(None, errors=list(errors))
        context.pre_execution_errors = result.errors
        self._process_errors(result.errors or [])
        if self._extensions:
            try:
                result.extensions = await self._runner.get_extensions_results(context)
            except Exception:
                logger.exception("An extension's get_results raised")
        context.result = result
        try:
            await self.close()
        except Exception as exc:
            logger.exception("An extension's on_operation raised while ending")
            result = ExecutionResult(None, errors=[_coerce_error(exc)])
        return result

    def _process_errors(self, errors: list[GraphQLError]) -> None:
        # An OperationRejected is an answer the application chose, not a failure: the
        # schema's error processing (Strawberry logs every error) does not see it.
        # A failure equal to one reported moments ago (the same publish failing for each
        # subscriber of a broadcast) is counted, not reported again.
        errors = [
            e
            for e in errors
            if not isinstance(e.original_error, OperationRejected)
            and not getattr(e.original_error, ALREADY_REPORTED, False)
        ]
        if not errors:
            return
        try:
            self._executor.strawberry_schema._process_errors(errors, self.execution_context)
        except Exception:
            logger.exception("The schema's process_errors raised")
