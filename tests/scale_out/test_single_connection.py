"""graphql-sse's client in single connection mode against two uvicorn processes on
Redis, on both channels-redis layers: the event stream is reserved and opened on one
process, and every operation's ``POST`` (and ``DELETE``) goes to the other, which
forwards it to the stream's process over the channel layer."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import pytest

from tests.e2e.test_node_clients import CLIENT_TIMEOUT, NPM_INSTALL_TIMEOUT, run_node_script
from tests.e2e.test_node_clients import node as node  # the fixture
from tests.redis_support import LAYERS, REDIS_URL, require_redis
from tests.scale_out.conftest import (
    APPLICATION,
    RECOMMENDED_SOCKET_TIMEOUT,
    channel_layers_for,
    layer_id,
    new_prefix,
    process_environment,
    running_servers,
    uvicorn_command,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from tests.scale_out.conftest import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.node,
    pytest.mark.timeout(NPM_INSTALL_TIMEOUT + 4 * CLIENT_TIMEOUT),
]

HTTP_APPLICATION: Final = "tests.scale_out.http_asgi:application"
TOKEN: Final = "x-graphql-event-stream-token"
EVENT_STREAM: Final = "text/event-stream"


def http_server_command(port: int) -> list[str]:
    return [HTTP_APPLICATION if part == APPLICATION else part for part in uvicorn_command(port)]


@pytest.fixture(scope="module", params=LAYERS, ids=layer_id)
def http_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    """Two uvicorn processes serving GraphqlHttpConsumer on the suite's Redis."""
    require_redis()
    backend: str = request.param
    layers = channel_layers_for(
        backend, REDIS_URL, new_prefix(backend), {"socket_timeout": RECOMMENDED_SOCKET_TIMEOUT}
    )
    with running_servers(
        2,
        process_environment(layers),
        tmp_path_factory.mktemp("http-servers"),
        command=http_server_command,
    ) as servers:
        yield servers


def url(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.port}/graphql/"


def test_single_connection_posts_to_the_other_process(
    node: str, http_servers: list[ServerProcess]
) -> None:
    stream_server, other_server = http_servers
    result = run_node_script(
        node,
        "graphql-sse-single.mjs",
        [url(stream_server), url(other_server)],
        lambda: f"stream server:\n{stream_server.output()}\nother:\n{other_server.output()}",
    )
    tree = {"data": {"onTree": {"label": "oak"}}}
    assert result == {
        "query": [{"data": {"hello": "Hello, world!"}}],
        "mutation": [{"data": {"broadcastTree": True}}],
        "subscription": [{"data": None}, tree, tree],
        "sent": {"PUT stream": 1, "GET stream": 1, "POST other": 5, "DELETE other": 1},
        "stopped": [200],
    }
    # The other process answered them all (uvicorn's access log), as the stream's
    # process decided.
    assert other_server.count('"POST /graphql/ HTTP/1.1" 202') == 5
    assert other_server.count('"DELETE /graphql/?operationId=') == 1
    assert stream_server.count('"PUT /graphql/ HTTP/1.1" 201') == 1
    assert stream_server.count("POST /graphql/") == 0


async def test_forwarded_requests_get_the_stream_process_answers(
    http_servers: list[ServerProcess],
) -> None:
    stream_server, other_server = http_servers
    here, there = url(stream_server), url(other_server)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        async with client.put(here) as reserved:
            assert reserved.status == 201
            token = await reserved.text()
        header = {TOKEN: token}
        # The stream lives where it was reserved.
        async with client.get(there, headers={**header, "accept": EVENT_STREAM}) as misdirected:
            assert misdirected.status == 404
            assert "same process" in (await misdirected.json())["errors"][0]["message"]
        async with client.get(here, headers={**header, "accept": EVENT_STREAM}) as stream:
            assert stream.status == 200
            events = sse_events(stream.content)

            async def post(query: str, operation_id: str, **headers: str) -> tuple[int, Any]:
                body = {"query": query, "extensions": {"operationId": operation_id}}
                async with client.post(there, json=body, headers=headers or header) as answer:
                    return answer.status, await answer.json() if await answer.read() else None

            assert await post("subscription { onTree { label } }", "trees") == (202, None)
            assert (await post("{ hello }", "trees"))[0] == 409
            assert (await post("{ nope }", "bad"))[0] == 400
            forged = token[: -len("x")] + ("A" if not token.endswith("A") else "B")
            assert await post("{ hello }", "q", **{TOKEN: forged}) == (
                404,
                {"errors": [{"message": "Stream not found"}]},
            )
            mutation = 'mutation { broadcastTree(tree: { label: "elm" }) }'
            assert await post(mutation, "grow") == (202, None)
            received: dict[str, Any] = {}
            while len(received) < 2:
                event, data = await anext(events)
                if event == "next":
                    received[data["id"]] = data["payload"]
            assert received == {
                "trees": {"data": {"onTree": {"label": "elm"}}},
                "grow": {"data": {"broadcastTree": True}},
            }
            async with client.delete(
                there, params={"operationId": "trees"}, headers=header
            ) as stopped:
                assert stopped.status == 200
    # The stream's client left: its token names nothing any more.
    for _ in range(50):
        async with aiohttp.ClientSession(timeout=timeout) as client:
            body = {"query": "{ hello }", "extensions": {"operationId": "late"}}
            async with client.post(there, json=body, headers=header) as answer:
                if answer.status == 404:
                    break
        await asyncio.sleep(0.1)
    assert answer.status == 404


async def sse_events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, Any]]:
    fields: dict[str, str] = {}
    async for raw in content:
        line = raw.decode().rstrip("\n")
        if not line:
            if "event" in fields:
                yield fields["event"], json.loads(fields.get("data") or "null")
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.strip()
