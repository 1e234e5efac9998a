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
import contextlib
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
from typing import TYPE_CHECKING, Any, Final, NamedTuple, cast

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
from strawberry.extensions import MaskErrors, SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types.execution import ExecutionContext as StrawberryExecutionContext
from strawberry.types.graphql import OperationType as StrawberryOperationType

from ._contract import ALREADY_REPORTED, PublishFailure
from ._exceptions import OperationRejected

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Callable, Collection, Sequence

    import strawberry
    from graphql.execution.executor import Executor

    from ._protocol.messages import ExecutionResultPayload, FormattedError, OperationPayload

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


@dataclasses.dataclass(slots=True)
class ParsedDocument:
    """One cache entry: a query text parsed (or the error that stopped its parsing), and
    its validation results, one per set of rules it was validated with."""

    document: DocumentNode | None
    errors: tuple[GraphQLError, ...]
    tokens: int
    validations: dict[tuple[type[ASTValidationRule], ...], PreparedDocument] = dataclasses.field(
        default_factory=dict
    )


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


MAX_VALIDATIONS_PER_DOCUMENT: Final = 8
"""Rule sets whose results one cached document keeps (extensions may vary them)."""

_PLAIN_VALUES: Final = (str, int, float, bool, type(None), bytes)


def _rule_key(rule: type[ASTValidationRule]) -> Any:
    """What identifies a validation rule across operations, or None when its results
    must not be reused.

    A module-level rule class is its own key. Extensions make their rules per operation
    (``QueryDepthLimiter(max_depth=10)`` defines a new class each time); two such
    classes are the same rule when they come from the same code with the same plain
    values captured (the depth limit). A rule that captured anything else (a callback,
    a predicate) is validated every time, so it sees every document as in Strawberry.
    """
    if "<locals>" not in rule.__qualname__:
        return rule
    captured: list[Any] = []
    codes: list[Any] = []
    for value in vars(rule).values():
        code = getattr(value, "__code__", None)
        if code is None:
            continue
        codes.append(code)
        for cell in getattr(value, "__closure__", None) or ():
            contents = cell.cell_contents
            if contents is rule:
                continue  # the class cell that super() uses
            if not isinstance(contents, _PLAIN_VALUES):
                return None
            captured.append((type(contents), contents))
    return (rule.__module__, rule.__qualname__, tuple(codes), tuple(captured))


def rules_key(rules: tuple[type[ASTValidationRule], ...]) -> Any:
    """The cache key of a set of rules (see :func:`_rule_key`), or None."""
    keys = []
    for rule in rules:
        key = _rule_key(rule)
        if key is None:
            return None
        keys.append(key)
    return tuple(keys)


class DocumentCache:
    """Parse once per query text, validate once per text and set of rules; an LRU
    shared by all connections, bounded by its number of entries and by the tokens of
    the documents it holds.

    Parse options that a schema extension sets (Strawberry's ``MaxTokensLimiter`` sets
    ``max_tokens``) are part of the key, and the stricter token limit wins. Long texts
    are parsed and validated in a thread of their own, one at a time.
    """

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
        self._rules = tuple(rules if rules is not None else specified_rules)
        self._max_tokens = max_tokens
        self._entries: collections.OrderedDict[Any, ParsedDocument] = collections.OrderedDict()
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
        """``query`` parsed and validated with the cache's own rules, on this thread."""
        entry = self.parse(query)
        return self.validate(entry, self._rules)

    def parse(self, query: str, options: dict[str, Any] | None = None) -> ParsedDocument:
        key = self._key(query, options)
        entry = self._lookup(key)
        if entry is None:
            entry = self._parse(query, options)
            self._store(key, query, entry)
        return entry

    async def parse_async(
        self, query: str, options: dict[str, Any] | None = None
    ) -> ParsedDocument:
        key = self._key(query, options)
        entry = self._lookup(key)
        if entry is None:
            if len(query) < LONG_DOCUMENT_LENGTH:
                entry = self._parse(query, options)
            else:
                entry = await self._in_thread(self._parse, query, options)
            self._store(key, query, entry)
        return entry

    def validate(
        self, entry: ParsedDocument, rules: tuple[type[ASTValidationRule], ...]
    ) -> PreparedDocument:
        key = rules_key(rules)
        validated = entry.validations.get(key) if key is not None else None
        if validated is None:
            validated = self._validate(entry, rules)
            self._keep(entry, key, validated)
        return validated

    async def validate_async(
        self, entry: ParsedDocument, rules: tuple[type[ASTValidationRule], ...], *, long: bool
    ) -> PreparedDocument:
        if not long:
            return self.validate(entry, rules)
        key = rules_key(rules)
        validated = entry.validations.get(key) if key is not None else None
        if validated is None:
            validated = cast(
                "PreparedDocument", await self._in_thread(self._validate, entry, rules)
            )
            self._keep(entry, key, validated)
        return validated

    def _keep(self, entry: ParsedDocument, key: Any, validated: PreparedDocument) -> None:
        if key is not None and len(entry.validations) < MAX_VALIDATIONS_PER_DOCUMENT:
            entry.validations[key] = validated

    def _key(self, query: str, options: dict[str, Any] | None) -> Any:
        if not options:
            return query
        return (query, tuple(sorted(options.items(), key=lambda item: item[0])))

    async def _in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        if self._long_documents is None:
            self._long_documents = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="graphql-documents"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._long_documents, function, *args)

    def _lookup(self, key: Any) -> ParsedDocument | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def _store(self, key: Any, query: str, entry: ParsedDocument) -> None:
        if len(query) > MAX_CACHED_QUERY_LENGTH or entry.tokens > self._max_cached_tokens:
            return
        with self._lock:
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._cached_tokens -= previous.tokens
            self._entries[key] = entry
            self._cached_tokens += entry.tokens
            while len(self._entries) > self._max_size or (
                self._cached_tokens > self._max_cached_tokens
            ):
                _, evicted = self._entries.popitem(last=False)
                self._cached_tokens -= evicted.tokens

    def _parse(self, query: str, options: dict[str, Any] | None) -> ParsedDocument:
        options = dict(options or {})
        # Our limit and an extension's: the stricter wins.
        limits = [limit for limit in (self._max_tokens, options.get("max_tokens")) if limit]
        if limits:
            options["max_tokens"] = min(limits)
        try:
            document = graphql.parse(query, **options)
        except GraphQLError as exc:
            return ParsedDocument(None, (exc,), 0)
        except RecursionError:
            return ParsedDocument(None, (GraphQLError("Document is nested too deeply."),), 0)
        return ParsedDocument(document, (), count_tokens(document))

    def _validate(
        self, entry: ParsedDocument, rules: tuple[type[ASTValidationRule], ...]
    ) -> PreparedDocument:
        if entry.document is None:
            return PreparedDocument(None, entry.errors, entry.tokens)
        try:
            errors = graphql.validate(self._schema, entry.document, rules) if rules else []
        except RecursionError:
            errors = [GraphQLError("Document is nested too deeply.")]
        if errors:
            return PreparedDocument(None, tuple(errors), entry.tokens)
        return PreparedDocument(entry.document, (), entry.tokens)


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


def _classify_resolvers(schema: GraphQLSchema) -> set[Callable[..., Any]]:
    """The resolve functions of fields whose user-written resolver is synchronous."""
    resolvers: set[Callable[..., Any]] = set()
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
            if (
                not definition.is_subscription
                and definition.base_resolver is not None
                and not definition.is_async
            ):
                resolvers.add(field.resolve)
    return resolvers


def _install_publish_failure_resolvers(schema: GraphQLSchema) -> None:
    """Makes each subscription root field raise the error of a failed ``publish``.

    In the schema itself, not in our middleware: a typed subscription's failed publish
    is the field's error wherever the schema runs (Strawberry's own execution included).
    """
    root = schema.subscription_type
    if root is None:
        return
    for field in root.fields.values():
        if field.resolve is not None and not getattr(field.resolve, RAISES_PUBLISH_FAILURE, False):
            field.resolve = _raise_publish_failure(field.resolve)


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
        text = await self._run.event_text(result)
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


class _ResultBudget:
    """How much of ``max_result_size`` a result has used, shared by an executor and its
    copies (graphql-core copies an executor for parts of one result)."""

    __slots__ = ("exceeded", "used")

    def __init__(self) -> None:
        self.used = 0
        self.exceeded = False


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


RAISES_PUBLISH_FAILURE: Final = "__cgt_raises_publish_failure__"


def _raise_publish_failure(resolver: Callable[..., Any]) -> Callable[..., Any]:
    def resolve_event(root: Any, info: Any, **args: Any) -> Any:
        if isinstance(root, PublishFailure):
            raise root.error
        return resolver(root, info, **args)

    setattr(resolve_event, RAISES_PUBLISH_FAILURE, True)
    return resolve_event


class ExecutionMiddleware(MiddlewareManager):
    """User middleware, around our innermost layer: the thread offload of sync
    resolvers."""

    def __init__(
        self,
        *middlewares: Any,
        offloaded: set[Callable[..., Any]],
        executor: Callable[[], concurrent.futures.Executor],
    ) -> None:
        super().__init__(*middlewares)
        self._offloaded = offloaded
        self._executor = executor
        self._wrappers: dict[Callable[..., Any], Callable[..., Any]] = {}

    def get_field_resolver(self, field_resolver: Callable[..., Any]) -> Callable[..., Any]:
        wrapper = self._wrappers.get(field_resolver)
        if wrapper is None:
            if field_resolver in self._offloaded:
                wrapper = self._offload(field_resolver)
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
        self._max_worker_threads = max_worker_threads
        self._thread_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread_pool_lock = threading.Lock()
        offloaded = _classify_resolvers(self.schema)
        _install_publish_failure_resolvers(self.schema)
        # User middleware runs on every field and may read the context (to mask a field
        # for guests, say): with any, no result is shared between subscribers.
        # So may an extension's hook that runs per field or per result; one that only
        # refuses documents or masks errors (a function of the result) may not.
        share = (not middleware and not any(_per_subscriber(e) for e in extensions)) or (
            share_results_under_middleware
        )
        scalars = _declared_scalars(self.schema, context_free_scalars)
        self._shareable_subscription_fields = (
            _shareable_subscription_fields(self.schema, scalars) if share else frozenset()
        )
        self.shared_results = SharedResultCache()
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
    ) -> ExecutionResult:
        executor = self._build(operation, context, root_value, middleware, operation_extensions)
        if isinstance(executor, list):
            return RequestErrors(None, errors=executor)
        result = executor.execute_operation()
        if inspect.isawaitable(result):
            result = await result
        return executor.too_large() or cast("ExecutionResult", result)

    async def _open_source(
        self,
        operation: PreparedOperation,
        context: Any,
        root_value: Any,
        middleware: ExecutionMiddleware,
        operation_extensions: dict[str, Any] | None = None,
    ) -> tuple[LimitedExecutor, AsyncIterable[Any]] | ExecutionResult:
        executor = self._build(operation, context, root_value, middleware, operation_extensions)
        if isinstance(executor, list):
            return RequestErrors(None, errors=executor)
        source = create_source_event_stream(executor)
        if inspect.isawaitable(source):
            source = await source
        if isinstance(source, ExecutionResult):
            return source
        return executor, source

    def _build(
        self,
        operation: PreparedOperation,
        context: Any,
        root_value: Any,
        middleware: ExecutionMiddleware,
        operation_extensions: dict[str, Any] | None = None,
    ) -> LimitedExecutor | list[GraphQLError]:
        executor = LimitedExecutor.build(
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
        return cast("LimitedExecutor | list[GraphQLError]", executor)

    def shared_results_key(self, operation: PreparedOperation) -> tuple[Any, ...] | None:
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


STRAWBERRY_RULES: Final[tuple[type[ASTValidationRule], ...]] = (
    MaybeNullValidationRule,
    OneOfInputValidationRule,
)
"""The rules Strawberry adds to every validation (``strawberry.schema.validate_document``)."""

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

    async def prepare(self) -> PreparedOperation | list[FormattedError]:
        """Parse, select the operation and validate it; on errors the operation ends and
        its (processed, masked) errors are returned in wire form."""
        context = self.execution_context
        entry: ParsedDocument | None = None
        try:
            if self._extensions:
                self._stack = contextlib.AsyncExitStack()
                await self._stack.enter_async_context(self._runner.operation())
                async with self._runner.parsing():
                    entry = await self._parse()
            else:
                entry = await self._parse()
            if context.pre_execution_errors:
                return await self._refuse(context.pre_execution_errors)
            document = context.graphql_document
            assert document is not None
            operation = graphql.get_operation_ast(document, context._provided_operation_name)
            if operation is None:
                return await self._refuse([_missing_operation(context._provided_operation_name)])
            if self._extensions:
                async with self._runner.validation():
                    await self._validate(entry)
            else:
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

    async def execute(self, prepared: PreparedOperation) -> ExecutionResultPayload:
        """Run a prepared query or mutation to its one result, in wire form."""
        context = self.execution_context
        try:
            if self._extensions:
                async with self._runner.executing():
                    result = await self._execute_once(prepared)
            else:
                result = await self._execute_once(prepared)
        except Exception as exc:
            return format_result(await self._refused([_coerce_error(exc)]))
        # Errors are processed (logged) before the extensions see the result, then
        # on_operation ends (MaskErrors masks there), then get_results().
        if result.errors:
            context.pre_execution_errors = result.errors
            self._process_errors(result.errors)
        await self.close()
        if self._extensions:
            result.extensions = await self._runner.get_extensions_results(context)
        return format_result(result)

    async def subscribe(
        self, prepared: PreparedOperation
    ) -> SubscriptionResults | ExecutionResultPayload:
        """Start a prepared subscription: its stream of serialized results, or the one
        result that refused it (processed and masked like any event)."""
        try:
            if self._extensions:
                async with self._runner.executing():
                    opened = await self._open(prepared)
            else:
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
            self._executor.shared_results_key(prepared),
            self._executor.shared_results,
            self,
        )

    async def event_text(self, result: ExecutionResult) -> str:
        """One subscription result through error processing, ``get_results`` and
        ``on_stream_result``, serialized."""
        context = self.execution_context
        if result.errors:
            context.pre_execution_errors = result.errors
            self._process_errors(result.errors)
        if not self._extensions:
            return serialize_result(result)
        result.extensions = await self._runner.get_extensions_results(context)
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

    async def _execute_once(self, prepared: PreparedOperation) -> ExecutionResult:
        context = self.execution_context
        if context.result is not None:  # an on_execute hook answered (a result cache)
            return cast("ExecutionResult", context.result)
        result = await self._executor._execute_graphql(
            prepared,
            context.context,
            context.root_value,
            self._middleware,
            context.operation_extensions,
        )
        self.request_failed = isinstance(result, RequestErrors)
        context.result = result
        return result

    async def _open(
        self, prepared: PreparedOperation
    ) -> tuple[LimitedExecutor, AsyncIterable[Any]] | ExecutionResult:
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
