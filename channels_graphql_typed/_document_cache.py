"""Each distinct query text parsed and validated once.

:class:`DocumentCache` is an LRU bounded by entries and by the GraphQL tokens it holds,
so a thousand clients sending the same subscription cost one parse and one validation
(per set of validation rules: extensions may add rules per operation, see
:func:`rules_key`). Long documents are parsed and validated in a thread of their own,
one at a time, so that a client sending big distinct documents cannot stall the event
loop that serves everyone else.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import threading
from typing import TYPE_CHECKING, Any, Final, cast

import graphql
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
)
from graphql.validation import specified_rules

from ._validation_rules import DEFAULT_MAX_QUERY_TOKENS, count_tokens

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


DEFAULT_DOCUMENT_CACHE_SIZE: Final = 1000


DEFAULT_DOCUMENT_CACHE_TOKENS: Final = 100_000
"""GraphQL tokens the document cache may hold in all (a parsed document costs a few
hundred bytes per token: about 40 MiB at most)."""


MAX_CACHED_QUERY_LENGTH: Final = 64 * 1024
"""Longer query texts are parsed every time: the cache must not hold huge keys."""


LONG_DOCUMENT_LENGTH: Final = 4096
"""Query texts at least this long are parsed and validated off the event loop."""


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
    query: str = ""
    """The text it was parsed from: the operations of every connection that sends it may
    keep this one copy rather than each its own."""
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
            return ParsedDocument(None, (exc,), 0, query)
        except RecursionError:
            return ParsedDocument(None, (GraphQLError("Document is nested too deeply."),), 0, query)
        return ParsedDocument(document, (), count_tokens(document), query)

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
