"""A Strawberry schema behaves over the socket as it does in Strawberry.

Each of Strawberry's extensions that apply to execution (and a custom one using every
hook) is put on a schema; each operation of a set is run over our socket, on both
subprotocols, and by Strawberry itself (``schema.execute`` / ``schema.subscribe``), and
the two results must be equal: data, error messages, paths and locations, and the
``extensions`` that ``get_results`` adds.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncGenerator, Iterator  # noqa: TC003 (Strawberry reads them)
from typing import Any, Self

import pytest
import strawberry
from graphql import GraphQLError, NoDeprecatedCustomRule
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    DisableValidation,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.types.execution import PreExecutionError

import channels_graphql_typed as cgt
from channels_graphql_typed import GraphqlWsConsumer
from channels_graphql_typed._fanout import get_fanout
from channels_graphql_typed._groups import group_name
from tests.app.models import Note
from tests.helpers import WsSession

SECRET = "db password is hunter2"


@strawberry.type
class Node:
    name: str

    @strawberry.field
    def child(self) -> Node:
        return Node(name=self.name + "+")


@strawberry.type
class Query:
    @strawberry.field
    async def hello(self, name: str = "world") -> str:
        return f"Hello, {name}!"

    @strawberry.field
    def fail(self) -> str | None:
        raise ValueError(SECRET)

    @strawberry.field(deprecation_reason="use hello")  # type: ignore[untyped-decorator]
    def old(self) -> str:
        return "old"

    @strawberry.field
    def node(self) -> Node:
        return Node(name="n")

    @strawberry.field
    def request(self, info: strawberry.Info, n: int = 0) -> str:
        seen = {"variables": info.variable_values, "extensions": info.input_extensions}
        return json.dumps(seen, sort_keys=True)


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def echo(self, text: str) -> str:
        return text

    @strawberry.mutation
    def explode(self) -> str:
        raise RuntimeError(SECRET)


class OnFidelity(cgt.Subscription[str]):
    """A typed subscription whose publish fails on one payload."""

    text: str

    @classmethod
    async def subscribe(cls, info: cgt.Info, room: str) -> list[str]:
        if room == "forbidden":
            raise PermissionError(SECRET)
        return [room]

    @classmethod
    async def publish(cls, payload: str, info: cgt.Info, room: str) -> Self:
        if payload == "explode":
            raise ValueError(SECRET)
        return cls(text=payload)


class OnFidelityNote(cgt.ModelSubscription[Note]):
    """Changes to notes; delivering one whose text is the secret fails."""

    class Meta:
        fields = ["id", "text"]

    @classmethod
    async def authorize_delivery(cls, event: cgt.ModelEvent[Note], info: cgt.Info) -> bool:
        if event.instance.text == SECRET:
            raise RuntimeError(SECRET)
        return True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def count(self, to: int) -> AsyncGenerator[int, None]:
        for number in range(1, to + 1):
            yield number

    @strawberry.subscription
    async def boom(self) -> AsyncGenerator[int, None]:
        yield 1
        raise ValueError(SECRET)

    on_fidelity = OnFidelity.field()
    on_fidelity_note = OnFidelityNote.field()


class Recorder(SchemaExtension):
    """Every hook, sync and async, and results in the response's ``extensions``."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def on_operation(self) -> Iterator[None]:
        self.calls.append("operation")
        yield
        self.calls.append("/operation")

    async def on_parse(self) -> AsyncGenerator[None, None]:
        self.calls.append("parse")
        yield
        self.calls.append("/parse")

    def on_validate(self) -> Iterator[None]:
        self.calls.append("validate")
        yield
        self.calls.append("/validate")

    async def on_execute(self) -> AsyncGenerator[None, None]:
        self.calls.append("execute")
        yield
        self.calls.append("/execute")

    async def resolve(self, _next: Any, root: Any, info: Any, *args: Any, **kwargs: Any) -> Any:
        result = _next(root, info, *args, **kwargs)
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        if isinstance(result, str):
            return result.upper()
        return result

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self.calls.append("stream_result")
        yield

    async def get_results(self) -> dict[str, Any]:
        return {"recorded": list(self.calls)}


EXTENSIONS: dict[str, list[Any]] = {
    "none": [],
    "MaskErrors": [MaskErrors],
    "MaxAliasesLimiter": [functools.partial(MaxAliasesLimiter, max_alias_count=2)],
    "MaxTokensLimiter": [functools.partial(MaxTokensLimiter, max_token_count=10)],
    "QueryDepthLimiter": [functools.partial(QueryDepthLimiter, max_depth=2)],
    "AddValidationRules": [functools.partial(AddValidationRules, [NoDeprecatedCustomRule])],
    "DisableValidation": [DisableValidation],
    "DisableIntrospection": [DisableIntrospection],
    "ParserCache": [ParserCache],
    "ValidationCache": [ValidationCache],
    "Recorder": [Recorder],
    "MaskErrors+QueryDepthLimiter": [MaskErrors, functools.partial(QueryDepthLimiter, max_depth=2)],
}


@functools.cache
def consumer_for(name: str) -> type[GraphqlWsConsumer]:
    schema = strawberry.Schema(
        query=Query, mutation=Mutation, subscription=Subscription, extensions=EXTENSIONS[name]
    )
    consumer: type[GraphqlWsConsumer] = type(
        f"Fidelity{name.replace('+', '')}",
        (GraphqlWsConsumer,),
        {"schema": schema, "confirm_subscriptions": True},
    )
    # Serving a schema readies its typed subscription fields for any server, Strawberry's
    # own execution included (a failed publish is the field's error there too).
    consumer.executor()
    return consumer


QUERIES: dict[str, tuple[str, dict[str, Any] | None]] = {
    "hello": ("{ hello }", None),
    "variables": ("query Q($n: String!) { hello(name: $n) }", {"n": "you"}),
    "resolver error": ("{ hello fail }", None),
    "aliases": ("{ a: hello b: hello c: hello d: hello }", None),
    "depth": ("{ node { child { child { name } } } }", None),
    "tokens": ("{ hello hello hello hello hello hello hello hello hello hello }", None),
    "deprecated": ("{ old }", None),
    "introspection": ("{ __schema { queryType { name } } }", None),
    "syntax error": ("{ hello", None),
    "unknown field": ("{ nope }", None),
    "mutation": ('mutation { echo(text: "hi") }', None),
    "mutation error": ("mutation { explode }", None),
}


def context() -> cgt.Context:
    return cgt.Context(scope={"type": "websocket"}, channel_name="strawberry!fidelity")


def outcome(result: Any) -> tuple[str, Any]:
    """A Strawberry result as the socket shows it: ``error`` (the errors) or ``next``."""
    if isinstance(result, PreExecutionError):
        return "error", [error.formatted for error in result.errors or ()]
    payload: dict[str, Any] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    return "next", payload


async def socket_outcome(session: WsSession, id: str) -> tuple[str, Any]:
    message = await session.receive()
    if message["type"] == "error":
        payload = message["payload"]
        return "error", payload["errors"] if isinstance(payload, dict) else payload
    assert message["type"] == session.result_type, message
    return "next", message["payload"]


@pytest.mark.parametrize("extensions", EXTENSIONS)
@pytest.mark.parametrize("operation", QUERIES)
async def test_queries_and_mutations_match_strawberry(
    extensions: str, operation: str, subprotocol: str
) -> None:
    consumer = consumer_for(extensions)
    query, variables = QUERIES[operation]
    expected = outcome(
        await consumer.schema.execute(query, variable_values=variables, context_value=context())
    )
    session = await WsSession.open(consumer.as_asgi(), subprotocol)
    await session.start("q", query, variables)
    received = await socket_outcome(session, "q")
    if received[0] == "next":
        await session.completed("q")
    assert received == expected
    await session.close()


SUBSCRIPTIONS: dict[str, str] = {
    "generator": "subscription { count(to: 2) }",
    "failing generator": "subscription { boom }",
    "too deep": "subscription { count(to: 1) count2: count(to: 1) count3: count(to: 1) }",
    "syntax error": "subscription { count(to: 2)",
}


async def strawberry_stream(consumer: type[GraphqlWsConsumer], query: str) -> list[Any]:
    try:
        results = await consumer.schema.subscribe(query, context_value=context())
    except GraphQLError as error:
        # Strawberry's stream lets an error raised in an on_parse hook (ParserCache's
        # parse) escape; over our socket it is the operation's error.
        return [("error", [error.formatted])]
    if isinstance(results, PreExecutionError):
        return [outcome(results)]
    try:
        return [outcome(result) async for result in results]
    except GraphQLError as error:
        return [("error", [error.formatted])]


@pytest.mark.parametrize("extensions", EXTENSIONS)
@pytest.mark.parametrize("operation", SUBSCRIPTIONS)
async def test_generator_subscriptions_match_strawberry(
    extensions: str, operation: str, subprotocol: str
) -> None:
    consumer = consumer_for(extensions)
    query = SUBSCRIPTIONS[operation]
    expected = await strawberry_stream(consumer, query)
    session = await WsSession.open(consumer.as_asgi(), subprotocol)
    await session.start("s", query)
    received = []
    first = await session.receive()
    if first["type"] == "error":
        payload = first["payload"]
        received.append(("error", payload["errors"] if isinstance(payload, dict) else payload))
    else:
        assert first["payload"] == {"data": None}  # the confirmation
        while (message := await session.receive())["type"] != "complete":
            received.append(("next", message["payload"]))
    assert received == expected
    await session.close()


async def joined(group: str) -> None:
    fanout = get_fanout(OnFidelity.channel_layer_alias)
    async with asyncio.timeout(5):
        while group not in fanout._joined:  # noqa: ASYNC110 (the fan-out has no event)
            await asyncio.sleep(0.01)


TYPED = "subscription($room: String!) { onFidelity(room: $room) { text } }"


@pytest.mark.parametrize("extensions", EXTENSIONS)
async def test_typed_subscriptions_match_strawberry(extensions: str, subprotocol: str) -> None:
    consumer = consumer_for(extensions)
    room = f"fidelity-{extensions}-{subprotocol}"
    results = await consumer.schema.subscribe(
        TYPED, variable_values={"room": room}, context_value=context()
    )
    assert not isinstance(results, PreExecutionError)
    first = asyncio.ensure_future(results.__anext__())
    waiting = asyncio.ensure_future(joined(group_name(OnFidelity.group_namespace, room)))
    await asyncio.wait({first, waiting}, return_when=asyncio.FIRST_COMPLETED)
    refused = first.done()  # refused before it joined anything (a limit)
    waiting.cancel()
    if not refused:
        await OnFidelity.broadcast(payload="one", group=room)
    expected = outcome(await first)
    await results.aclose()

    session = await WsSession.open(consumer.as_asgi(), subprotocol)
    await session.start("t", TYPED, {"room": room})
    if refused:
        assert await socket_outcome(session, "t") == expected
    else:
        assert await session.result("t") == {"data": None}
        await OnFidelity.broadcast(payload="one", group=room)
        assert await socket_outcome(session, "t") == expected
    await session.close()


MODEL = "subscription { onFidelityNote { action node { text } } }"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("extensions", EXTENSIONS)
async def test_model_subscriptions_match_strawberry(extensions: str, subprotocol: str) -> None:
    consumer = consumer_for(extensions)
    results = await consumer.schema.subscribe(MODEL, context_value=context())
    assert not isinstance(results, PreExecutionError)
    first = asyncio.ensure_future(results.__anext__())
    group = group_name(OnFidelityNote.group_namespace, None)
    waiting = asyncio.ensure_future(joined(group))
    await asyncio.wait({first, waiting}, return_when=asyncio.FIRST_COMPLETED)
    refused = first.done()
    waiting.cancel()
    expected = []
    if not refused:
        await Note.objects.acreate(text="hello")
        expected.append(outcome(await first))
        second = asyncio.ensure_future(results.__anext__())
        await Note.objects.acreate(text=SECRET)
        expected.append(outcome(await second))
    else:
        expected.append(outcome(await first))
    await results.aclose()

    session = await WsSession.open(consumer.as_asgi(), subprotocol)
    await session.start("m", MODEL)
    if refused:
        assert [await socket_outcome(session, "m")] == expected
    else:
        assert await session.result("m") == {"data": None}
        await Note.objects.acreate(text="hello")
        await Note.objects.acreate(text=SECRET)
        received = [await socket_outcome(session, "m") for _ in expected]
        assert received == expected
    await session.close()


@pytest.mark.parametrize("extensions", ["none", "MaskErrors", "Recorder"])
async def test_errors_of_typed_subscriptions_go_through_error_processing(
    extensions: str, subprotocol: str, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = consumer_for(extensions)
    room = f"fidelity-errors-{extensions}-{subprotocol}"
    masked = extensions == "MaskErrors"
    session = await WsSession.open(consumer.as_asgi(), subprotocol)
    # subscribe raises: the subscription's only result.
    await session.start("f", TYPED, {"room": "forbidden"})
    payload = await session.result("f")
    await session.completed("f")
    assert payload["data"] is None
    assert payload["errors"][0]["message"] == ("Unexpected error." if masked else SECRET)
    # publish raises for one event; the next one arrives.
    await session.start("t", TYPED, {"room": room})
    assert await session.result("t") == {"data": None}
    await OnFidelity.broadcast(payload="explode", group=room)
    await OnFidelity.broadcast(payload="two", group=room)
    failed = await session.result("t")
    assert failed["data"] is None
    assert failed["errors"][0]["message"] == ("Unexpected error." if masked else SECRET)
    assert failed["errors"][0]["path"] == ["onFidelity"]
    text = "TWO" if extensions == "Recorder" else "two"
    assert (await session.result("t"))["data"] == {"onFidelity": {"text": text}}
    # Strawberry's process_errors logged the originals (with their text) for operators.
    logged = [record for record in caplog.records if record.name == "strawberry.execution"]
    assert any(SECRET in record.getMessage() for record in logged)
    await session.close()


async def test_an_extension_that_is_not_one_is_refused_at_start_up() -> None:
    not_one: Any = lambda: "not an extension"  # noqa: E731
    schema = strawberry.Schema(query=Query, extensions=[not_one])

    class Broken(GraphqlWsConsumer):
        pass

    Broken.schema = schema
    with pytest.raises(TypeError, match="is not a strawberry SchemaExtension"):
        Broken.executor()


def test_masked_results_stay_shared_and_resolve_hooks_stop_sharing() -> None:
    masked = consumer_for("MaskErrors").executor()
    assert masked.sharing.shareable_fields == {"onFidelity", "onFidelityNote"}
    recorder = consumer_for("Recorder").executor()
    assert recorder.sharing.shareable_fields == frozenset()


def test_validation_of_extension_rules_is_cached_when_they_capture_plain_values() -> None:
    from channels_graphql_typed._document_cache import rules_key

    first = QueryDepthLimiter(max_depth=2).validation_rules
    second = QueryDepthLimiter(max_depth=2).validation_rules
    other = QueryDepthLimiter(max_depth=3).validation_rules
    assert first[0] is not second[0]  # a new class per operation
    assert rules_key(tuple(first)) == rules_key(tuple(second))
    assert rules_key(tuple(first)) != rules_key(tuple(other))
    # A rule that calls back into the application runs on every document.
    calls: list[Any] = []
    with_callback = QueryDepthLimiter(max_depth=2, callback=calls.append).validation_rules
    assert rules_key(tuple(with_callback)) is None


async def test_resolvers_see_the_request_as_in_strawberry(subprotocol: str) -> None:
    consumer = consumer_for("none")
    query = "query Q($n: Int!) { request(n: $n) }"
    variables = {"n": 3, "unused": "x"}
    extensions = {"trace": "abc"}
    expected = await consumer.schema.execute(
        query, variable_values=variables, context_value=context(), operation_extensions=extensions
    )
    session = await WsSession.open(consumer.as_asgi(), subprotocol)
    payload = {"query": query, "variables": variables, "extensions": extensions}
    await session.send({"type": session.start_type, "id": "r", "payload": payload})
    assert await session.result("r") == {"data": expected.data}
    assert expected.data is not None
    assert json.loads(expected.data["request"])["extensions"] == extensions
    await session.close()
