"""Apollo Client 4's ``HttpLink`` and ``gql``'s aiohttp transport subscribe over Apollo's
multipart protocol to one uvicorn process while the broadcasting mutations go to
another, the two on Redis (both channel layers): the broadcasts cross processes to a
subscription served over HTTP (see ``tests/e2e/test_multipart_clients.py``)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

import pytest

from tests.e2e.test_multipart_clients import check_apollo, gql_round, run_apollo
from tests.e2e.test_node_clients import node  # noqa: F401 (a fixture)
from tests.processes import HOST
from tests.redis_support import LAYERS, REDIS_URL, require_redis
from tests.scale_out.conftest import (
    RECOMMENDED_SOCKET_TIMEOUT,
    channel_layers_for,
    layer_id,
    new_prefix,
    process_environment,
    running_servers,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.scale_out.conftest import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

APPLICATION: Final = "tests.e2e.asgi:application"
"""GraphqlHttpConsumer at /graphql/ (the e2e tests' application), here on Redis."""


def http_application_command(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        APPLICATION,
        "--host",
        HOST,
        "--port",
        str(port),
        "--lifespan",
        "off",
    ]


@pytest.fixture(scope="module", params=LAYERS, ids=layer_id)
def http_servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServerProcess]]:
    require_redis()
    layers = channel_layers_for(
        request.param,
        REDIS_URL,
        new_prefix(request.param),
        {"socket_timeout": RECOMMENDED_SOCKET_TIMEOUT},
    )
    with running_servers(
        2,
        process_environment(layers),
        tmp_path_factory.mktemp("multipart"),
        command=http_application_command,
    ) as servers:
        yield servers


def urls(servers: list[ServerProcess]) -> list[str]:
    return [f"http://{HOST}:{server.port}/graphql/" for server in servers]


def outputs(servers: list[ServerProcess]) -> str:
    return "\n".join(server.output() for server in servers)


@pytest.mark.node
def test_apollo_client_across_processes(
    node: str,  # noqa: F811 (the fixture)
    http_servers: list[ServerProcess],
) -> None:
    check_apollo(run_apollo(node, urls(http_servers), lambda: outputs(http_servers)))


async def test_gql_across_processes(http_servers: list[ServerProcess]) -> None:
    await gql_round(*urls(http_servers))
