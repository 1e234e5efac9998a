"""The chat page in headless Chromium over HTTP and Server-Sent Events (``EventSource``)
does the README's tour of the chat example under uvicorn on Redis, on one process and on
two (the page on one, the other page and the management command sending to the other):
it reads the history, sends as Anonymous, logs in as demo (the session cookie), sends as
demo, and receives the messages of others, each of its own once (the page knows them by
the id that ``sendChatMessage`` returns). See ``tests/example/test_browser.py`` for the
page's other tests, on one process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.example.conftest import run_manage
from tests.example.test_browser import (  # noqa: F401 (fixtures)
    TRANSPORTS,
    assert_transport,
    browser,
    new_page,
    record_transports,
    screenshot,
    send_in_page,
)
from tests.processes import HOST
from tests.scale_out.conftest import new_room
from tests.scale_out.test_client_tour import tour_servers  # noqa: F401 (a fixture)

if TYPE_CHECKING:
    from collections.abc import Callable

    from playwright.sync_api import Page

    from tests.scale_out.conftest import ServerProcess

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def open_room(page: Page, server: ServerProcess, room: str, transport: str) -> None:
    page.goto(f"http://{HOST}:{server.port}{TRANSPORTS[transport]}#{room}")
    expect(page.locator("#transport")).to_have_attribute("data-transport", transport)
    # The subscription is confirmed and the history shown: nothing sent from now is missed.
    expect(page.locator("#messages")).to_have_attribute("data-state", "ready")
    expect(page.locator("#status")).to_have_attribute("data-status", "connected")


@pytest.mark.parametrize("other_transport", list(TRANSPORTS))
def test_the_page_over_sse_does_the_tour(
    new_page: Callable[[], Page],  # noqa: F811 (the fixture)
    tour_servers: tuple[dict[str, str], list[ServerProcess]],  # noqa: F811 (the fixture)
    other_transport: str,
) -> None:
    environment, servers = tour_servers
    room = new_room()
    tourist = new_page()
    opened = record_transports(tourist)
    open_room(tourist, servers[0], room, "sse")
    messages = tourist.locator("#messages .message")
    expect(messages).to_have_count(0)  # the room's history: empty
    send_in_page(tourist, "anonymous from chromium")
    tourist.fill("#username", "demo")
    tourist.fill("#password", "demo")
    tourist.click("#login")
    expect(tourist.locator("#me")).to_have_text("demo")
    send_in_page(tourist, "demo from chromium")

    other = new_page()
    open_room(other, servers[-1], room, other_transport)
    expect(other.locator("#messages .message .text")).to_have_text(
        ["anonymous from chromium", "demo from chromium"]
    )
    send_in_page(other, "from another page")
    expect(messages.last).to_contain_text("Anonymousfrom another page")
    completed = run_manage(environment, "send_chat_message", room, "from the command")
    assert f"Sent to {room}" in completed.stdout
    expect(messages.last).to_contain_text("systemfrom the command")
    # Its own messages once each, though the server notified its stream of them too.
    expect(tourist.locator("#messages .message .sender")).to_have_text(
        ["Anonymous", "demo", "Anonymous", "system"]
    )
    expect(tourist.locator("#messages .message .text")).to_have_text(
        ["anonymous from chromium", "demo from chromium", "from another page", "from the command"]
    )
    expect(tourist.locator("#messages .message.own")).to_have_count(2)
    assert_transport(opened, "sse")
    screenshot(tourist, f"chat-tour-sse-{len(servers)}-processes-{other_transport}")
