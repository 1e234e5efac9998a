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

import asyncio
import collections
import concurrent.futures
import contextvars
import dataclasses
import datetime
import decimal
import enum
import hashlib
import inspect
import json
import logging
import threading
import uuid
from typing import TYPE_CHECKING, Any, Final, cast

import graphql
from graphql import (
    SKIP,
    ASTValidationRule,
    DocumentNode,
    ExecutionResult,
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    MiddlewareManager,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    ValidationContext,
)
from graphql.execution import create_source_event_stream, execute_subscription_event
from graphql.execution.executor_throwing_on_incremental import ExecutorThrowingOnIncremental
from graphql.validation import NoSchemaIntrospectionCustomRule, specified_rules

from .exceptions import OperationRejected
from .operation import PublishFailure

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Callable, Collection, Sequence

    import strawberry
    from graphql.execution.executor import Executor

    from .protocol.messages import ExecutionResultPayload, FormattedError, OperationPayload

logger = logging.getLogger("channels_graphql_typed")

STRAWBERRY_DEFINITION: Final = "strawberry-definition"
DEFAULT_DOCUMENT_CACHE_SIZE: Final = 1000
DEFAULT_DOCUMENT_CACHE_TOKENS: Final = 100_000
"""GraphQL tokens the document cache may hold in all (a parsed document costs a few
hundred bytes per token: about 40 MiB at most)."""
DEFAULT_MAX_QUERY_TOKENS: Final = 10_000
DEFAULT_MAX_QUERY_DEPTH: Final = 32
DEFAULT_MAX_QUERY_ALIASES: Final = 100
DEFAULT_MAX_RESULT_SIZE: Final = 2 * 1024 * 1024
MAX_CACHED_QUERY_LENGTH: Final = 64 * 1024
"""Longer query texts are parsed every time: the cache must not hold huge keys."""
LONG_DOCUMENT_LENGTH: Final = 4096
"""Query texts at least this long are parsed and validated off the event loop."""
ASYNC_FIELD_COST: Final = 128
"""What a field resolved asynchronously counts against ``max_result_size``."""
RESULT_TOO_LARGE: Final = (
    "The result is too large: it would exceed {limit} bytes (max_result_size)."
)


def max_depth_rule(max_depth: int) -> type[ASTValidationRule]:
    """A validation rule rejecting operations nested deeper than ``max_depth`` fields
    (fragments are followed; each fragment's depth is computed once)."""

    class MaxQueryDepthRule(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._fragment_depths: dict[str, int] = {}

        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> Any:
            if self._depth(node.selection_set, set(), max_depth + 1) > max_depth:
                name = f"'{node.name.value}' " if node.name else ""
                self.report_error(
                    GraphQLError(
                        f"Operation {name}is nested more than {max_depth} levels deep.", node
                    )
                )
            return SKIP

        def _depth(
            self, selection_set: SelectionSetNode | None, visiting: set[str], remaining: int
        ) -> int:
            # Never looks more than ``remaining`` levels down: a hostile document costs
            # at most max_depth + 1 levels of walking, not its real depth.
            if selection_set is None or remaining <= 0:
                return 0
            deepest = 0
            for selection in selection_set.selections:
                if isinstance(selection, FieldNode):
                    depth = 1 + self._depth(selection.selection_set, visiting, remaining - 1)
                elif isinstance(selection, InlineFragmentNode):
                    depth = self._depth(selection.selection_set, visiting, remaining)
                elif isinstance(selection, FragmentSpreadNode):
                    depth = min(self._fragment_depth(selection.name.value, visiting), remaining)
                else:
                    depth = 0
                deepest = max(deepest, depth)
                if deepest >= remaining:
                    break
            return deepest

        def _fragment_depth(self, name: str, visiting: set[str]) -> int:
            if name in self._fragment_depths:
                return self._fragment_depths[name]
            fragment = self.context.get_fragment(name)
            if fragment is None or name in visiting:
                return 0  # unknown or cyclic fragments are other rules' errors
            depth = self._depth(fragment.selection_set, visiting | {name}, max_depth + 1)
            self._fragment_depths[name] = depth
            return depth

    return MaxQueryDepthRule


def max_aliases_rule(max_aliases: int) -> type[ASTValidationRule]:
    """A validation rule rejecting documents with more than ``max_aliases`` aliased
    fields: aliases are how one small document asks for the same costly field many
    times."""

    class MaxQueryAliasesRule(ASTValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            self._count = 0

        def enter_field(self, node: FieldNode, *_: Any) -> None:
            if node.alias is None:
                return
            self._count += 1
            if self._count == max_aliases + 1:
                self.report_error(
                    GraphQLError(f"The document has more than {max_aliases} aliases.", node)
                )

    return MaxQueryAliasesRule


def count_tokens(document: DocumentNode) -> int:
    """How many lexical tokens the parser read for ``document`` (what its AST costs)."""
    count = 0
    token = document.loc.start_token if document.loc is not None else None
    while token is not None:
        count += 1
        token = token.next
    return count


@dataclasses.dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A parsed and validated document, or the errors that made it invalid."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...]
    tokens: int = 0
    """The document's size in lexical tokens (0 when it could not be parsed)."""


@dataclasses.dataclass(frozen=True, slots=True)
class PreparedOperation:
    """An operation ready to execute: the cached document plus this request's inputs."""

    query: str
    document: DocumentNode
    operation: OperationDefinitionNode
    variables: dict[str, Any] | None
    operation_name: str | None
    tokens: int = 0
    """The document's size in lexical tokens."""

    @property
    def operation_type(self) -> OperationType:
        return self.operation.operation


class DocumentCache:
    """Parse + validate once per query text; an LRU shared by all connections, bounded by
    its number of entries and by the tokens of the documents it holds."""

    def __init__(
        self,
        schema: GraphQLSchema,
        *,
        max_size: int = DEFAULT_DOCUMENT_CACHE_SIZE,
        max_cached_tokens: int = DEFAULT_DOCUMENT_CACHE_TOKENS,
        rules: Sequence[type[ASTValidationRule]] | None = None,
        max_tokens: int | None = DEFAULT_MAX_QUERY_TOKENS,
    ) -> None:
        self._schema = schema
        self._max_size = max_size
        self._max_cached_tokens = max_cached_tokens
        self._rules = rules
        self._max_tokens = max_tokens
        self._entries: collections.OrderedDict[str, PreparedDocument] = collections.OrderedDict()
        self._cached_tokens = 0
        # Connections run on one loop, but long documents are prepared in a thread (and a
        # cache may be shared by several loops in tests): the lock keeps the LRU
        # consistent.
        self._lock = threading.Lock()
        self._long_documents: concurrent.futures.ThreadPoolExecutor | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def cached_tokens(self) -> int:
        """The tokens of the documents held now."""
        return self._cached_tokens

    def get(self, query: str) -> PreparedDocument:
        """The prepared document of ``query``, parsed on the calling thread if needed."""
        entry = self._lookup(query)
        if entry is None:
            entry = self._prepare(query)
            self._store(query, entry)
        return entry

    async def get_async(self, query: str) -> PreparedDocument:
        """Like :meth:`get`, with long documents prepared in a thread of their own, one
        at a time: the loop serves other connections meanwhile."""
        entry = self._lookup(query)
        if entry is not None:
            return entry
        if len(query) < LONG_DOCUMENT_LENGTH:
            entry = self._prepare(query)
        else:
            if self._long_documents is None:
                self._long_documents = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix="graphql-documents"
                )
            loop = asyncio.get_running_loop()
            entry = await loop.run_in_executor(self._long_documents, self._prepare, query)
        self._store(query, entry)
        return entry

    def _lookup(self, query: str) -> PreparedDocument | None:
        with self._lock:
            entry = self._entries.get(query)
            if entry is not None:
                self._entries.move_to_end(query)
            return entry

    def _store(self, query: str, entry: PreparedDocument) -> None:
        if len(query) > MAX_CACHED_QUERY_LENGTH or entry.tokens > self._max_cached_tokens:
            return
        with self._lock:
            previous = self._entries.pop(query, None)
            if previous is not None:
                self._cached_tokens -= previous.tokens
            self._entries[query] = entry
            self._cached_tokens += entry.tokens
            while len(self._entries) > self._max_size or (
                self._cached_tokens > self._max_cached_tokens
            ):
                _, evicted = self._entries.popitem(last=False)
                self._cached_tokens -= evicted.tokens

    def _prepare(self, query: str) -> PreparedDocument:
        try:
            document = graphql.parse(query, max_tokens=self._max_tokens)
        except GraphQLError as exc:
            return PreparedDocument(None, (exc,))
        except RecursionError:
            return PreparedDocument(None, (GraphQLError("Document is nested too deeply."),))
        tokens = count_tokens(document)
        try:
            errors = graphql.validate(self._schema, document, self._rules)
        except RecursionError:
            return PreparedDocument(None, (GraphQLError("Document is nested too deeply."),), tokens)
        if errors:
            return PreparedDocument(None, tuple(errors), tokens)
        return PreparedDocument(document, (), tokens)


def format_errors(errors: Sequence[GraphQLError]) -> list[FormattedError]:
    return [cast("FormattedError", error.formatted) for error in errors]


def format_result(result: ExecutionResult) -> ExecutionResultPayload:
    """The wire form of a result; unexpected resolver exceptions are logged (a
    :class:`GraphQLError` or an :class:`OperationRejected` is an answer, not a failure)."""
    if result.errors:
        for error in result.errors:
            original = error.original_error
            if original is not None and not isinstance(original, GraphQLError | OperationRejected):
                logger.error(
                    "Exception in a resolver of field %s",
                    ".".join(str(part) for part in error.path or ()),
                    exc_info=(type(original), original, original.__traceback__),
                )
    return cast("ExecutionResultPayload", result.formatted)


def _classify_resolvers(
    schema: GraphQLSchema,
) -> tuple[set[Callable[..., Any]], set[Callable[..., Any]]]:
    """The resolve functions of fields whose user-written resolver is synchronous, and
    those of subscription root fields."""
    resolvers: set[Callable[..., Any]] = set()
    subscription_roots: set[Callable[..., Any]] = set()
    for type_ in schema.type_map.values():
        if type_.name.startswith("__") or not isinstance(
            type_, GraphQLObjectType | GraphQLInterfaceType
        ):
            continue
        for field in type_.fields.values():
            if field.resolve is None:
                continue
            definition = (field.extensions or {}).get(STRAWBERRY_DEFINITION)
            if definition is None:
                # A plain graphql-core field: offload unless it is a coroutine function.
                if not inspect.iscoroutinefunction(field.resolve):
                    resolvers.add(field.resolve)
                continue
            if definition.is_subscription:
                subscription_roots.add(field.resolve)
            elif definition.base_resolver is not None and not definition.is_async:
                resolvers.add(field.resolve)
    return resolvers, subscription_roots


TYPED_SUBSCRIPTION_MARKER: Final = "__cgt_subscription_class__"
"""Attribute of the resolver of a typed subscription field: its Subscription class."""


def _builtin_serializers() -> frozenset[Callable[..., Any]]:
    """The serializers of the scalars GraphQL specifies and of Strawberry's built-in ones
    (Date, DateTime, Time, Decimal, UUID, JSON, Base16/32/64, Void, Upload): functions of
    the value alone (``isoformat``, ``str``, the identity, an encoding), whatever the
    connection."""
    serializers: set[Callable[..., Any]] = {
        scalar.serialize for scalar in graphql.specified_scalar_types.values()
    }
    try:
        from strawberry.schema.types.scalar import DEFAULT_SCALAR_REGISTRY
    except ImportError:  # pragma: no cover - a Strawberry that moved its registry
        return frozenset(serializers)
    for definition in DEFAULT_SCALAR_REGISTRY.values():
        if definition.serialize is not None:
            serializers.add(definition.serialize)
    return frozenset(serializers)


_BUILTIN_SERIALIZERS: Final = _builtin_serializers()


def _context_free_scalar(scalar: graphql.GraphQLScalarType, declared: Collection[str]) -> bool:
    """Whether a scalar renders a value the same for every subscriber: a built-in one
    (recognised by its serializer, not its name: ``scalar_overrides`` may replace
    ``DateTime``), or one the consumer declares in ``context_free_scalars``. Any other
    serializer may read a context variable (the viewer's time zone, language)."""
    return scalar.name in declared or scalar.serialize in _BUILTIN_SERIALIZERS


def _context_free(type_: Any, seen: set[str], scalars: Collection[str] = frozenset()) -> bool:
    """Whether every field reachable from ``type_`` is a plain value, whose result depends
    on the event alone (no resolver of the user's that could read the context, no custom
    scalar whose serializer could, unless named in ``scalars``). Enums are plain values:
    graphql-core serializes them by lookup."""
    named = graphql.get_named_type(type_)
    if isinstance(named, graphql.GraphQLScalarType):
        return _context_free_scalar(named, scalars)
    if not isinstance(named, GraphQLObjectType) or named.name in seen:
        return not isinstance(named, GraphQLInterfaceType | graphql.GraphQLUnionType)
    seen.add(named.name)
    for field in named.fields.values():
        definition = (field.extensions or {}).get(STRAWBERRY_DEFINITION)
        if definition is None or definition.base_resolver is not None:
            return False
        if definition.permission_classes or definition.extensions:
            return False
        if not _context_free(field.type, seen, scalars):
            return False
    return True


def _shareable_subscription_fields(
    schema: GraphQLSchema, context_free_scalars: Collection[str] = frozenset()
) -> frozenset[str]:
    """Subscription root fields of typed subscriptions whose results may be shared."""
    root = schema.subscription_type
    if root is None:
        return frozenset()
    names = set()
    for name, field in root.fields.items():
        definition = (field.extensions or {}).get(STRAWBERRY_DEFINITION)
        resolver = getattr(getattr(definition, "base_resolver", None), "wrapped_func", None)
        if getattr(resolver, TYPED_SUBSCRIPTION_MARKER, None) is None:
            continue
        if _context_free(field.type, set(), context_free_scalars):
            names.add(name)
    return frozenset(names)


_VALUE_TYPES: Final = (
    str,
    int,
    float,
    bool,
    bytes,
    type(None),
    decimal.Decimal,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    enum.Enum,
)
"""Types whose equality means "same value" (a Django model instance, equal to any other
instance of its row whatever its field values, is not one of them)."""


def _exact(value: Any) -> Any:
    """A key for ``value`` that is equal only for values that render the same: the type
    is part of it (``1`` is not ``True``), and types whose equality is looser than their
    text (``Decimal("1.5") == Decimal("1.50")``, ``0.0 == -0.0``, one instant in two time
    zones) are keyed by their text. Raises TypeError for anything else."""
    if isinstance(value, tuple | frozenset):
        items = tuple(_exact(item) for item in value)
        return (type(value), frozenset(items) if isinstance(value, frozenset) else items)
    if isinstance(value, float | decimal.Decimal):
        return (type(value), repr(value))
    if isinstance(value, datetime.datetime | datetime.time):
        return (type(value), value.isoformat(), repr(value.tzinfo))
    if isinstance(value, _VALUE_TYPES):
        return (type(value), value)
    raise TypeError(type(value))


EVENT_KEY_METHOD: Final = "_cgt_event_key"
"""A result class may define this method: the plain values that determine its GraphQL
result (by default: all its fields, when they are plain values)."""


def _event_key(event: Any) -> tuple[Any, ...] | None:
    """Equal events of a typed subscription (same class, equal plain field values) give
    equal results; None when the event cannot be compared that way."""
    if isinstance(event, PublishFailure):
        return None
    custom = getattr(event, EVENT_KEY_METHOD, None)
    if custom is not None:
        values = tuple(custom())
    else:
        fields = getattr(type(event), "__dataclass_fields__", None)
        if fields is None:
            return None
        values = tuple(getattr(event, name) for name in fields)
    try:
        return (type(event), *(_exact(value) for value in values))
    except TypeError:
        return None


def _declared_scalars(schema: GraphQLSchema, names: Collection[str]) -> frozenset[str]:
    """``context_free_scalars``, checked against the schema (a misspelt name would
    silently share nothing)."""
    if isinstance(names, str):
        raise TypeError("context_free_scalars is a collection of scalar names, not one str")
    for name in names:
        if not isinstance(schema.type_map.get(name), graphql.GraphQLScalarType):
            raise ValueError(f"context_free_scalars: the schema has no scalar named {name!r}")
    return frozenset(names)


class SharedResultCache:
    """Serialized results shared by the subscribers of equal operations (bounded LRU)."""

    def __init__(self, max_size: int = 1024) -> None:
        self._entries: collections.OrderedDict[tuple[Any, ...], str] = collections.OrderedDict()
        self._max_size = max_size

    def get(self, key: tuple[Any, ...]) -> str | None:
        text = self._entries.get(key)
        if text is not None:
            self._entries.move_to_end(key)
        return text

    def put(self, key: tuple[Any, ...], text: str) -> None:
        self._entries[key] = text
        if len(self._entries) > self._max_size:
            self._entries.popitem(last=False)


def serialize_result(result: ExecutionResult) -> str:
    return json.dumps(format_result(result), separators=(",", ":"))


class SubscriptionResults:
    """The response stream of one subscription, as serialized payloads.

    Each source event is executed against the operation's selection (graphql-core's
    "ExecuteSubscriptionEvent"). When the operation's results cannot depend on the
    subscriber and the event is equal to one already executed for an equal operation
    (same query text, operation name and variables, keyed by their digests), the
    serialized result is reused: a broadcast to a thousand identical subscriptions is
    executed and serialized once.

    What "cannot depend on the subscriber" means, decided once per schema and consumer
    (:func:`_shareable_subscription_fields`): the root field is a typed subscription and
    every field its type reaches is a plain value -- no user resolver, permission class
    or field extension, no interface or union, and no custom scalar unless declared in
    ``context_free_scalars`` (a serializer may read a context variable) -- and there is
    no middleware unless declared harmless. What "equal events" means
    (:func:`_event_key`): the same class and, field by field, values of the same type
    and text (:func:`_exact`); every field counts, those ``publish`` sets for each
    subscriber included, and an event with any other value is never shared.
    """

    def __init__(
        self,
        executor: Executor[Any],
        source: AsyncIterable[Any],
        shared_key: tuple[Any, ...] | None,
        shared_results: SharedResultCache,
    ) -> None:
        self._executor = executor
        self._source = source.__aiter__()
        self._shared_key = shared_key
        self._shared_results = shared_results

    def __aiter__(self) -> SubscriptionResults:
        return self

    async def __anext__(self) -> str:
        event = await self._source.__anext__()
        key = None
        if self._shared_key is not None:
            event_key = _event_key(event)
            if event_key is not None:
                key = (*self._shared_key, event_key)
                text = self._shared_results.get(key)
                if text is not None:
                    return text
        event_executor = self._executor.build_per_event_executor(event)
        result = execute_subscription_event(event_executor)
        if inspect.isawaitable(result):
            result = await result
        if isinstance(event_executor, LimitedExecutor):
            result = event_executor.too_large() or result
        text = serialize_result(result)
        if key is not None:
            self._shared_results.put(key, text)
        return text

    async def aclose(self) -> None:
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()


class _ResultBudget:
    """How much of ``max_result_size`` a result has used, shared by an executor and its
    copies (graphql-core copies an executor for parts of one result)."""

    __slots__ = ("exceeded", "used")

    def __init__(self) -> None:
        self.used = 0
        self.exceeded = False


class LimitedExecutor(ExecutorThrowingOnIncremental):
    """graphql-core's executor, with the result's size bounded while it is built.

    Each completed value adds an estimate of its JSON size (its key, 8 bytes of
    punctuation, and the length of a string or of a list) to a budget; once
    ``max_result_size`` is passed every further value completes as null at once,
    without resolving anything below it, and the
    caller replaces the whole result with one error (see :meth:`too_large`). A list is
    charged for its length before its items are completed: a resolver returning a
    million rows costs one check, not a million nulls.
    """

    def __init__(self, *args: Any, max_result_size: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_result_size = max_result_size
        self.result_budget = _ResultBudget()

    def too_large(self) -> ExecutionResult | None:
        """The error result that replaces a result which outgrew the limit, or None."""
        if not self.result_budget.exceeded:
            return None
        return ExecutionResult(
            None, errors=[GraphQLError(RESULT_TOO_LARGE.format(limit=self.max_result_size))]
        )

    def build_per_event_executor(self, payload: Any) -> Executor[None]:
        executor = super().build_per_event_executor(payload)
        if isinstance(executor, LimitedExecutor):
            executor.result_budget = _ResultBudget()
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


def _call_in_thread(
    resolver: Callable[..., Any], root: Any, info: Any, args: dict[str, Any]
) -> Any:
    from django.db import close_old_connections
    from django.db.models import QuerySet

    close_old_connections()
    try:
        result = resolver(root, info, **args)
        # A lazy QuerySet would be evaluated later, on the event loop, where Django
        # refuses to query: evaluate it here.
        if isinstance(result, QuerySet):
            result = list(result)
        return result
    finally:
        close_old_connections()


def _raise_publish_failure(resolver: Callable[..., Any]) -> Callable[..., Any]:
    def resolve_event(root: Any, info: Any, **args: Any) -> Any:
        if isinstance(root, PublishFailure):
            raise root.error
        return resolver(root, info, **args)

    return resolve_event


class ExecutionMiddleware(MiddlewareManager):
    """User middleware, around our innermost layer: the thread offload of sync
    resolvers, and the error of a failed ``publish`` raised by its subscription field."""

    def __init__(
        self,
        *middlewares: Any,
        offloaded: set[Callable[..., Any]],
        subscription_roots: set[Callable[..., Any]],
        executor: Callable[[], concurrent.futures.Executor],
    ) -> None:
        super().__init__(*middlewares)
        self._offloaded = offloaded
        self._subscription_roots = subscription_roots
        self._executor = executor
        self._wrappers: dict[Callable[..., Any], Callable[..., Any]] = {}

    def get_field_resolver(self, field_resolver: Callable[..., Any]) -> Callable[..., Any]:
        wrapper = self._wrappers.get(field_resolver)
        if wrapper is None:
            if field_resolver in self._offloaded:
                wrapper = self._offload(field_resolver)
            elif field_resolver in self._subscription_roots:
                wrapper = _raise_publish_failure(field_resolver)
            else:
                wrapper = field_resolver
            self._wrappers[field_resolver] = wrapper
        return super().get_field_resolver(wrapper)

    def _offload(self, resolver: Callable[..., Any]) -> Callable[..., Any]:
        def run_in_thread(root: Any, info: Any, **args: Any) -> asyncio.Future[Any]:
            loop = asyncio.get_running_loop()
            context = contextvars.copy_context()
            return loop.run_in_executor(
                self._executor(), context.run, _call_in_thread, resolver, root, info, args
            )

        return run_in_thread


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
        rules = [*specified_rules, *validation_rules]
        if max_query_depth is not None:
            rules.append(max_depth_rule(max_query_depth))
        if max_query_aliases is not None:
            rules.append(max_aliases_rule(max_query_aliases))
        if not introspection:
            rules.append(NoSchemaIntrospectionCustomRule)
        self.documents = DocumentCache(
            self.schema,
            max_size=document_cache_size,
            max_cached_tokens=document_cache_tokens,
            rules=rules,
            max_tokens=max_query_tokens,
        )
        self.max_result_size = max_result_size
        self._max_worker_threads = max_worker_threads
        self._thread_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread_pool_lock = threading.Lock()
        offloaded, subscription_roots = _classify_resolvers(self.schema)
        # User middleware runs on every field and may read the context (to mask a field
        # for guests, say): with any, no result is shared between subscribers.
        share = not middleware or share_results_under_middleware
        scalars = _declared_scalars(self.schema, context_free_scalars)
        self._shareable_subscription_fields = (
            _shareable_subscription_fields(self.schema, scalars) if share else frozenset()
        )
        self.shared_results = SharedResultCache()
        self.middleware = ExecutionMiddleware(
            *middleware,
            offloaded=offloaded,
            subscription_roots=subscription_roots,
            executor=self.thread_pool,
        )

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

    async def prepare(self, payload: OperationPayload) -> PreparedOperation | list[FormattedError]:
        """Parse, validate and select the operation; errors are in wire form."""
        prepared = await self.documents.get_async(payload["query"])
        if prepared.document is None:
            return format_errors(prepared.errors)
        operation_name = payload.get("operationName")
        operation = graphql.get_operation_ast(prepared.document, operation_name)
        if operation is None:
            message = (
                f"Unknown operation named '{operation_name}'."
                if operation_name
                else "Must provide operation name if query contains multiple operations."
            )
            return [{"message": message}]
        return PreparedOperation(
            query=payload["query"],
            document=prepared.document,
            operation=operation,
            variables=payload.get("variables"),
            operation_name=operation_name,
            tokens=prepared.tokens,
        )

    async def execute(
        self, operation: PreparedOperation, context: Any, root_value: Any = None
    ) -> ExecutionResult:
        """Run a query or a mutation."""
        executor = self._build(operation, context, root_value)
        if isinstance(executor, list):
            return ExecutionResult(None, errors=executor)
        result = executor.execute_operation()
        if inspect.isawaitable(result):
            result = await result
        return executor.too_large() or cast("ExecutionResult", result)

    async def subscribe(
        self, operation: PreparedOperation, context: Any, root_value: Any = None
    ) -> SubscriptionResults | ExecutionResult:
        """Start a subscription: its stream of serialized results, or the result that
        refused it (request errors, or an error raised while setting up the stream)."""
        executor = self._build(operation, context, root_value)
        if isinstance(executor, list):
            return ExecutionResult(None, errors=executor)
        source = create_source_event_stream(executor)
        if inspect.isawaitable(source):
            source = await source
        if isinstance(source, ExecutionResult):
            return source
        return SubscriptionResults(
            executor, source, self._shared_results_key(operation), self.shared_results
        )

    def _build(
        self, operation: PreparedOperation, context: Any, root_value: Any
    ) -> LimitedExecutor | list[GraphQLError]:
        executor = LimitedExecutor.build(
            self.schema,
            operation.document,
            root_value,
            context,
            operation.variables,
            operation.operation_name,
            middleware=self.middleware,
            max_result_size=self.max_result_size,
        )
        return cast("LimitedExecutor | list[GraphQLError]", executor)

    def _shared_results_key(self, operation: PreparedOperation) -> tuple[Any, ...] | None:
        """What identifies results that every subscriber of this operation can share, or
        None when a result may depend on who receives it."""
        root = operation.operation.selection_set.selections
        if len(root) != 1 or not isinstance(root[0], FieldNode):
            return None
        if root[0].name.value not in self._shareable_subscription_fields:
            return None
        try:
            variables = json.dumps(operation.variables, sort_keys=True)
        except (TypeError, ValueError):
            return None
        # Digests, not the texts: the cache must not hold (up to a thousand) huge texts,
        # and the variables are the client's as much as the query is.
        digest = hashlib.sha256(operation.query.encode("utf-8", "surrogatepass")).digest()
        variables_digest = hashlib.sha256(variables.encode("utf-8", "surrogatepass")).digest()
        return (digest, operation.operation_name, variables_digest)
