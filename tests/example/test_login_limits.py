"""Failed logins to the chat example are limited per username and per connection: the
attempts beyond the limit are refused with a clear error before any password is
hashed, and hashing runs off the event loop (and off the ORM's thread), so the other
clients are answered meanwhile.

The tests run against a server of their own whose password hasher they count and
hold (:mod:`tests.example.observed_hasher`); none asserts a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from typing import TYPE_CHECKING, Final

import aiohttp
import pytest

import channels_graphql_typed as cgt
from tests.example.accounts import (
    LOGIN,
    ME,
    TIMEOUT,
    create_user,
    login,
    new_username,
    ws_client,
)
from tests.example.conftest import (
    EXAMPLE_DIR,
    ROOT,
    ChatServer,
    example_environment,
    new_room,
    serving_chat_example,
)
from tests.example.observed_hasher import CALLS, DIRECTORY_VARIABLE, HOLD

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.slow

HELD_TIMEOUT: Final = 60.0
"""The client's wait for an attempt that is held in the hasher until the test ends it."""
HISTORY: Final = "query History($chatroom: String!) { history(chatroom: $chatroom) { text } }"
FAILED_LOGINS_ALLOWED: Final = 5
"""The example's limit of failed logins per username, and per connection, per minute."""
ATTACK_ATTEMPTS: Final = 40
TOO_MANY: Final = re.compile(r"Too many login attempts; try again in (\d+) s")


class ObservedHasher:
    """The ``calls`` and ``hold`` files of the observed server's password hasher."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def calls(self) -> int:
        path = self.directory / CALLS
        return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Every hashing waits until the block ends."""
        (self.directory / HOLD).touch()
        try:
            yield
        finally:
            (self.directory / HOLD).unlink()

    async def wait_for_calls(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT):
            while True:
                if self.calls() >= count:
                    return
                await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def observed_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ChatServer, ObservedHasher]]:
    """The chat example on uvicorn with a password hasher that the tests observe."""
    directory = tmp_path_factory.mktemp("chat-observed")
    hasher_directory = directory / "hasher"
    hasher_directory.mkdir()
    environment = example_environment(directory / "chat.sqlite3")
    environment["DJANGO_SETTINGS_MODULE"] = "tests.example.observed_settings"
    environment["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(EXAMPLE_DIR)])
    environment[DIRECTORY_VARIABLE] = str(hasher_directory)
    with serving_chat_example(directory, environment) as server:
        yield server, ObservedHasher(hasher_directory)


def refusal(outcome: object) -> int:
    """The N of a "Too many login attempts; try again in N s" error (else fails)."""
    assert isinstance(outcome, cgt.GraphqlWsResponseError), outcome
    (error,) = outcome.errors
    match = TOO_MANY.fullmatch(error["message"])
    assert match, error
    assert error.get("extensions") == {"retryAfter": int(match[1])}, error
    return int(match[1])


async def test_failed_logins_on_one_socket_are_refused_past_the_limit_without_hashing(
    observed_server: tuple[ChatServer, ObservedHasher],
) -> None:
    server, hasher = observed_server
    username, password = new_username(), "the right one"
    await asyncio.to_thread(create_user, server, username, password)
    calls_before = hasher.calls()
    async with ws_client(server) as attacker, ws_client(server) as bystander:
        attempts: list[asyncio.Future[cgt.GraphqlWsResult]] = []
        try:
            with hasher.held():
                attempts += [
                    asyncio.ensure_future(
                        attacker.execute(
                            LOGIN,
                            {"username": username, "password": f"guess {number}"},
                            timeout=HELD_TIMEOUT,
                        )
                    )
                    for number in range(ATTACK_ATTEMPTS)
                ]
                # The allowed attempts are held in the hasher: whatever is answered now was
                # answered without hashing. All the others are, at once, and refused.
                refused = ATTACK_ATTEMPTS - FAILED_LOGINS_ALLOWED
                waits = asyncio.as_completed(attempts, timeout=TIMEOUT)
                outcomes: list[object] = []
                for _ in range(refused):
                    try:
                        outcomes.append(await next(waits))
                    except cgt.GraphqlWsResponseError as exc:
                        outcomes.append(exc)
                assert all(1 <= refusal(outcome) <= 60 for outcome in outcomes)
                # While passwords are being hashed, another client is answered, its
                # database queries included.
                await hasher.wait_for_calls(calls_before + 1)
                history = await bystander.execute(HISTORY, {"chatroom": new_room()})
                assert history.data == {"history": []}
                assert (await bystander.execute(ME)).data == {"me": None}
            results = await asyncio.gather(*attempts, return_exceptions=True)
        finally:
            for attempt in attempts:  # when the test fails early
                attempt.cancel()
        wrong = [result for result in results if isinstance(result, cgt.GraphqlWsResult)]
        assert [result.data for result in wrong] == [{"login": {"ok": False}}] * (
            FAILED_LOGINS_ALLOWED
        )
        assert hasher.calls() == calls_before + FAILED_LOGINS_ALLOWED

        # Locked for a while: this connection, with any password or username...
        with pytest.raises(cgt.GraphqlWsResponseError, match=TOO_MANY):
            await login(attacker, username, password)
        with pytest.raises(cgt.GraphqlWsResponseError, match=TOO_MANY):
            await login(attacker, "demo", "demo")
        # ...and this username, on any connection and over HTTP.
        with pytest.raises(cgt.GraphqlWsResponseError, match=TOO_MANY):
            await login(bystander, username, password)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                server.url("/graphql/"),
                json={"query": LOGIN, "variables": {"username": username, "password": password}},
                timeout=aiohttp.ClientTimeout(total=TIMEOUT),
            ) as response,
        ):
            body = await response.json()
        assert body["data"] is None
        assert TOO_MANY.fullmatch(body["errors"][0]["message"]), body
        assert hasher.calls() == calls_before + FAILED_LOGINS_ALLOWED
        # Other connections log other users in.
        assert await login(bystander, "demo", "demo") == {"login": {"ok": True}}
        assert hasher.calls() == calls_before + FAILED_LOGINS_ALLOWED + 1


async def test_logins_spread_over_usernames_are_limited_per_connection(
    observed_server: tuple[ChatServer, ObservedHasher],
) -> None:
    server, hasher = observed_server
    calls_before = hasher.calls()
    async with ws_client(server) as attacker:
        for _ in range(FAILED_LOGINS_ALLOWED):  # users that do not exist: hashed anyway
            assert await login(attacker, new_username(), "guess") == {"login": {"ok": False}}
        for _ in range(3):
            with pytest.raises(cgt.GraphqlWsResponseError, match=TOO_MANY):
                await login(attacker, new_username(), "guess")
    assert hasher.calls() == calls_before + FAILED_LOGINS_ALLOWED
