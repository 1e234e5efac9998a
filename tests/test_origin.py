"""The handshake's Origin check: foreign browsers' pages refused, clients without Origin
accepted."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GraphqlWsConsumer
from channels_graphql_typed._origin import default_allowed_origins, origin_allowed, request_origin
from tests.helpers import WsSession
from tests.schema import schema


class SiteConsumer(GraphqlWsConsumer):
    """Allows the origins of ALLOWED_HOSTS (the default)."""

    schema = schema


class ListedOriginsConsumer(GraphqlWsConsumer):
    schema = schema
    allowed_origins = ("https://app.example.com", ".example.org")


class AnyOriginConsumer(GraphqlWsConsumer):
    schema = schema
    allowed_origins = ("*",)


@pytest.mark.parametrize(
    ("origin", "allowed", "verdict"),
    [
        (None, [], True),
        ("https://chat.example.com", ["chat.example.com"], True),
        ("http://chat.example.com:8000", ["chat.example.com"], True),
        ("https://CHAT.example.com", ["chat.example.com"], True),
        ("https://a.example.com", [".example.com"], True),
        ("https://example.com", [".example.com"], True),
        ("https://example.com.attacker.example", [".example.com"], False),
        ("https://attacker.example", ["chat.example.com"], False),
        ("https://chat.example.com", ["https://chat.example.com"], True),
        ("https://chat.example.com", ["https://chat.example.com/"], True),
        ("http://chat.example.com", ["https://chat.example.com"], False),
        ("https://chat.example.com:8443", ["https://chat.example.com"], False),
        ("https://chat.example.com:8443", ["https://chat.example.com:8443"], True),
        ("http://[::1]:8000", ["[::1]"], True),
        ("null", ["chat.example.com"], False),
        ("null", ["*"], True),
        ("https://anything.example", ["*"], True),
        ("not an origin", ["chat.example.com"], False),
        ("http://chat.example.com:99999", ["chat.example.com"], False),
    ],
)
def test_origin_allowed(origin: str | None, allowed: list[str], verdict: bool) -> None:
    assert origin_allowed(origin, allowed) is verdict


def test_request_origin_reads_the_header_case_insensitively() -> None:
    assert (
        request_origin([(b"host", b"x"), (b"Origin", b"https://a.example")]) == "https://a.example"
    )
    assert request_origin([(b"host", b"x")]) is None


def test_the_default_is_allowed_hosts_or_djangos_debug_hosts() -> None:
    with override_settings(ALLOWED_HOSTS=["chat.example.com"]):
        assert list(default_allowed_origins()) == ["chat.example.com"]
    with override_settings(ALLOWED_HOSTS=[], DEBUG=True):
        assert origin_allowed("http://localhost:8000", default_allowed_origins())
        assert not origin_allowed("http://attacker.example", default_allowed_origins())
    with override_settings(ALLOWED_HOSTS=[], DEBUG=False):
        assert not origin_allowed("http://localhost:8000", default_allowed_origins())


async def handshake(
    consumer: type[GraphqlWsConsumer], subprotocol: str, origin: str | None
) -> WebsocketCommunicator:
    headers = [(b"cookie", b"sessionid=victim")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return WebsocketCommunicator(
        consumer.as_asgi(), "/graphql/", headers=headers, subprotocols=[subprotocol]
    )


@pytest.mark.parametrize("origin", ["https://attacker.example", "null"])
async def test_a_foreign_origin_is_refused_before_accept(subprotocol: str, origin: str) -> None:
    with override_settings(ALLOWED_HOSTS=["chat.example.com"]):
        communicator = await handshake(SiteConsumer, subprotocol, origin)
        connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


@pytest.mark.parametrize("origin", [None, "https://chat.example.com"])
async def test_no_origin_and_the_sites_own_origin_are_accepted(
    subprotocol: str, origin: str | None
) -> None:
    with override_settings(ALLOWED_HOSTS=["chat.example.com"]):
        communicator = await handshake(SiteConsumer, subprotocol, origin)
        connected, chosen = await communicator.connect()
        assert connected
        assert chosen == subprotocol
        session = WsSession(communicator, subprotocol)
        ack = await session.init()
        assert ack["type"] == "connection_ack"
        assert await session.query("1", "{ hello }") == {"data": {"hello": "Hello, world!"}}
        await communicator.disconnect()


@pytest.mark.parametrize(
    ("consumer", "origin", "connected"),
    [
        (ListedOriginsConsumer, "https://app.example.com", True),
        (ListedOriginsConsumer, "http://app.example.com", False),
        (ListedOriginsConsumer, "https://www.example.org", True),
        (ListedOriginsConsumer, "https://chat.example.com", False),
        (AnyOriginConsumer, "https://anything.example", True),
        (AnyOriginConsumer, "null", True),
    ],
)
async def test_allowed_origins_replaces_allowed_hosts(
    consumer: type[GraphqlWsConsumer], origin: str, connected: bool
) -> None:
    with override_settings(ALLOWED_HOSTS=["chat.example.com"]):
        communicator = await handshake(consumer, GRAPHQL_TRANSPORT_WS, origin)
        assert (await communicator.connect())[0] is connected
    await communicator.disconnect()
