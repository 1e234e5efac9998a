"""The benchmark server: one ASGI application per BENCH_MODE.

Modes:

* ``cgt``: this library, a typed subscription ``onBench(group, skip)`` and its resumable
  twin ``onBenchReplayed(group)`` (a replay history of 5,000 events);
* ``raw``: a plain Channels ``AsyncWebsocketConsumer`` that joins the group and sends
  the pre-rendered frame of each group message (the "raw" baseline);
* ``asgi``: no Channels at all: the sockets in a set, the same frame sent to each (the
  ceiling for any Channels-based server);
* ``strawberry``: Strawberry's own ``GraphQLWSConsumer`` (query round trips only).

HTTP ``POST /graphql/`` is GraphQL over HTTP: this library's ``GraphqlHttpConsumer`` in
mode ``cgt`` (with ``Accept: text/event-stream``, the SSE fan-out's subscriptions),
Strawberry's ``AsyncGraphQLView`` (through Django's ASGI handler, no middleware) in mode
``strawberry``.

With ``BENCH_OBSERVE`` set, the ``cgt`` server records the library's Prometheus metrics
(``metrics``), and OpenTelemetry spans too: every span (``all``) or 1% of the traces
(``sampled``, OpenTelemetry's ``ParentBased(TraceIdRatioBased(0.01))``). Spans go through
the SDK's batch processor into an exporter that discards them: what the server pays is
the spans' making, not their transport.

Every mode speaks enough graphql-transport-ws / graphql-ws for the load client: init,
ack, one subscription confirmed by a first ``{"data": null}`` result, then one frame per
broadcast carrying ``seq`` and the broadcast timestamp ``ts``.

HTTP ``GET /fire?count=K&groups=G&rate=R`` broadcasts K events to each of G groups
(``g0`` ... ``g{G-1}``) from inside the server, in a burst or at R per second, and
answers when they are sent (``&replayed=1``: events of ``onBenchReplayed``).
``GET /rss`` answers the server's resident memory in bytes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import time
import urllib.parse
from typing import Any, Self

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

import strawberry  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.layers import get_channel_layer  # noqa: E402
from strawberry.extensions import MaskErrors, QueryDepthLimiter  # noqa: E402

import channels_graphql_typed as cgt  # noqa: E402

MODE = os.environ.get("BENCH_MODE", "cgt")


@dataclasses.dataclass
class BenchEvent:
    seq: int
    ts: float
    group: str


class OnBench(cgt.Subscription[BenchEvent]):
    """One notification per broadcast."""

    seq: int
    ts: float

    @classmethod
    async def subscribe(cls, info: cgt.Info, group: str, skip: bool = False) -> list[str]:
        return [group]

    @classmethod
    async def publish(
        cls, payload: BenchEvent, info: cgt.Info, group: str, skip: bool = False
    ) -> Self | cgt.Skip:
        if skip:
            return cgt.SKIP
        return cls(seq=payload.seq, ts=payload.ts)


class OnBenchReplayed(cgt.Subscription[BenchEvent]):
    """OnBench, resumable: its broadcasts are kept in a replay history."""

    replay = cgt.Replay(events=5000)

    seq: int
    ts: float

    @classmethod
    async def subscribe(cls, info: cgt.Info, group: str) -> list[str]:
        return [group]

    @classmethod
    async def publish(cls, payload: BenchEvent, info: cgt.Info, group: str) -> Self:
        return cls(seq=payload.seq, ts=payload.ts)


@strawberry.type
class Query:
    @strawberry.field
    async def echo(self, text: str) -> str:
        return text


@strawberry.type
class Subscription:
    on_bench = OnBench.field()
    on_bench_replayed = OnBenchReplayed.field()


EXTENSIONS: list[Any] = (
    [MaskErrors, functools.partial(QueryDepthLimiter, max_depth=10)]
    if os.environ.get("BENCH_EXTENSIONS")
    else []
)
schema = strawberry.Schema(query=Query, subscription=Subscription, extensions=EXTENSIONS)


class DiscardingExporter:
    """An OpenTelemetry span exporter that drops what it gets."""

    def export(self, spans: Any) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def observe(what: str) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from channels_graphql_typed import observability

    observability.enable_metrics()
    if what == "metrics":
        return
    sampler = ParentBased(TraceIdRatioBased(0.01)) if what == "sampled" else None
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))  # type: ignore[arg-type]
    observability.enable_tracing(provider)


if os.environ.get("BENCH_OBSERVE"):
    observe(os.environ["BENCH_OBSERVE"])


class BenchConsumer(cgt.GraphqlWsConsumer):
    schema = schema
    confirm_subscriptions = True
    notification_queue_limit = 100_000


class BenchHttpConsumer(cgt.GraphqlHttpConsumer):
    """GraphQL over HTTP, and the SSE fan-out's subscriptions: the WebSocket consumer's
    settings (the response's start is the subscription's confirmation)."""

    schema = schema
    notification_queue_limit = 100_000


def frame(seq: int, ts: float, subprotocol: str = "graphql-transport-ws") -> str:
    kind = "next" if subprotocol == "graphql-transport-ws" else "data"
    payload = {"data": {"onBench": {"seq": seq, "ts": ts}}}
    return json.dumps({"type": kind, "id": "0", "payload": payload}, separators=(",", ":"))


CONFIRMATION = json.dumps({"type": "next", "id": "0", "payload": {"data": None}})


def subscription_group(message: dict[str, Any]) -> str:
    query: str = message["payload"]["query"]
    return query.split('group: "', 1)[1].split('"', 1)[0]


class RawConsumer(AsyncWebsocketConsumer):
    """The baseline: a plain consumer forwarding pre-rendered frames of its group."""

    async def connect(self) -> None:
        await self.accept("graphql-transport-ws")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message = json.loads(text_data or "{}")
        if message.get("type") == "connection_init":
            await self.send(text_data='{"type":"connection_ack"}')
        elif message.get("type") == "subscribe":
            await self.channel_layer.group_add(subscription_group(message), self.channel_name)
            await self.send(text_data=CONFIRMATION)

    async def bench_frame(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


async def fire(count: int, groups: int, rate: float | None, *, replayed: bool = False) -> None:
    interval = 1 / rate if rate else 0.0
    layer = get_channel_layer()
    assert layer is not None
    started = time.monotonic()
    for seq in range(count):
        if interval:
            await asyncio.sleep(max(0.0, started + seq * interval - time.monotonic()))
        for index in range(groups):
            group = f"g{index}"
            now = time.time()
            if MODE == "raw":
                await layer.group_send(group, {"type": "bench.frame", "text": frame(seq, now)})
            elif MODE == "asgi":
                text = frame(seq, now)
                for send in list(ASGI_SOCKETS.get(group, ())):
                    await send({"type": "websocket.send", "text": text})
            elif replayed:
                await OnBenchReplayed.broadcast(payload=BenchEvent(seq, now, group), group=group)
            else:
                await OnBench.broadcast(payload=BenchEvent(seq, now, group), group=group)


ASGI_SOCKETS: dict[str, set[Any]] = {}


async def raw_asgi_websocket(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ceiling: sockets kept in a set, no Channels, no channel layer."""
    group = None
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept", "subprotocol": "graphql-transport-ws"})
        elif event["type"] == "websocket.receive":
            message = json.loads(event.get("text") or "{}")
            if message.get("type") == "connection_init":
                await send({"type": "websocket.send", "text": '{"type":"connection_ack"}'})
            elif message.get("type") == "subscribe":
                group = subscription_group(message)
                ASGI_SOCKETS.setdefault(group, set()).add(send)
                await send({"type": "websocket.send", "text": CONFIRMATION})
        elif event["type"] == "websocket.disconnect":
            if group is not None:
                ASGI_SOCKETS[group].discard(send)
            return


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def http(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["path"] == "/graphql/":
        await _http_graphql(scope, receive, send)
        return
    query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode()))
    if scope["path"] == "/fire":
        await fire(
            int(query.get("count", "1")),
            int(query.get("groups", "1")),
            float(query["rate"]) if "rate" in query else None,
            replayed=query.get("replayed") == "1",
        )
        body = b"fired"
    else:
        body = str(rss_bytes()).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def websocket_application() -> Any:
    if MODE == "cgt":
        return BenchConsumer.as_asgi()
    if MODE == "raw":
        return RawConsumer.as_asgi()
    if MODE == "strawberry":
        from strawberry.channels import GraphQLWSConsumer

        return GraphQLWSConsumer.as_asgi(schema=schema)
    return raw_asgi_websocket


def http_graphql_application() -> Any:
    if MODE == "strawberry":
        from django.core.asgi import get_asgi_application

        return get_asgi_application()
    return BenchHttpConsumer.as_asgi()


_websocket = websocket_application()
_http_graphql = http_graphql_application()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await _websocket(scope, receive, send)
    else:
        await http(scope, receive, send)
