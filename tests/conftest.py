"""Fixtures shared by the whole suite."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from channels_graphql_typed import GRAPHQL_TRANSPORT_WS, GRAPHQL_WS

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture(params=[GRAPHQL_TRANSPORT_WS, GRAPHQL_WS])
def subprotocol(request: pytest.FixtureRequest) -> str:
    """Runs a test once per subprotocol."""
    value: str = request.param
    return value


@pytest.fixture(autouse=True)
def _database_reachable_from_threads(django_db_blocker: Any) -> Iterator[None]:
    """Sync resolvers run in a thread pool whose threads check their database
    connection like Channels does (``close_old_connections``); pytest-django would
    count that as database access. Tests that use the ORM still ask for ``django_db``."""
    with django_db_blocker.unblock():
        yield
