"""Sync resolvers never run on the event loop.

Which fields have a sync resolver of the user's is decided once per schema
(:func:`classify_resolvers`); those resolvers (and only those: plain attribute fields
stay on the loop, where they cost nothing) are wrapped to run in a bounded thread pool,
with Django's stale-connection cleanup around them like Channels'
``database_sync_to_async``. The wrapping is done through graphql-core's middleware hook
(:class:`ExecutionMiddleware`), as the innermost layer, so user middleware still sees
every field.

The subscription root fields also get, in the schema itself, a resolver that raises
the error of a failed ``publish`` (:func:`install_publish_failure_resolvers`).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from typing import TYPE_CHECKING, Any, Final

from graphql import (
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    MiddlewareManager,
)

from ._contract import PublishFailure

if TYPE_CHECKING:
    import concurrent.futures
    from collections.abc import Callable


STRAWBERRY_DEFINITION: Final = "strawberry-definition"


def classify_resolvers(schema: GraphQLSchema) -> set[Callable[..., Any]]:
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


def install_publish_failure_resolvers(schema: GraphQLSchema) -> None:
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
