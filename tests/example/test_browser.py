"""The chat page and GraphiQL in headless Chromium (Debian's ``chromium`` package).

Driven by Playwright's Python package with the system browser (``playwright install``
is never run). Without ``/usr/bin/chromium`` these tests skip, except on CI
(``CI=true``), where they fail: ``.ci/run`` installs it. Screenshots go to
``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    WebSocketRoute,
    expect,
    sync_playwright,
)

from tests.example.conftest import ROOT, new_room, on_ci

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.example.conftest import ChatServer

pytestmark = pytest.mark.slow

CHROMIUM: Final = Path("/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
]
ARTIFACTS: Final = ROOT / "test-artifacts"
TIMEOUT_MS: Final = 10_000
MESSAGE_ATTEMPTS: Final = 10


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} not found (Debian: apt-get install chromium)"
        if on_ci():
            pytest.fail(f"{reason}, but CI=true and CI must run the browser tests")
        pytest.skip(f"{reason}: the browser tests drive the system Chromium")
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """Opens pages, each in a browser context of its own (its own cookies); a
    JavaScript error in any of them fails the test."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def open_page() -> Page:
        context = browser.new_context(viewport={"width": 1100, "height": 760})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()
    assert not errors, f"JavaScript errors: {errors}"


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png")


TRANSPORTS: Final = {"ws": "/", "sse": "/?transport=sse"}
"""The chat page's address for each of its transports: WebSocket, or HTTP and SSE."""


def open_room(page: Page, server: ChatServer, room: str, transport: str = "ws") -> None:
    page.goto(server.url(f"{TRANSPORTS[transport]}#{room}"))
    expect(page.locator("#transport")).to_have_attribute("data-transport", transport)
    # The subscription is confirmed and the history shown: nothing sent from now is missed.
    expect(page.locator("#messages")).to_have_attribute("data-state", "ready")
    expect(page.locator("#status")).to_have_attribute("data-status", "connected")


def send_in_page(page: Page, text: str) -> None:
    page.fill("#text", text)
    page.click("#send")
    expect(page.locator("#messages .message.own").last).to_contain_text(text)


def post_graphql(server: ChatServer, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        server.url("/graphql/"),
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_MS / 1000) as response:
        body: dict[str, Any] = json.load(response)
    return body


def record_transports(page: Page) -> dict[str, list[str]]:
    """The WebSockets and the event streams that ``page`` opens from now on."""
    opened: dict[str, list[str]] = {"websocket": [], "eventsource": []}
    page.on("websocket", lambda socket: opened["websocket"].append(socket.url))
    page.on(
        "request",
        lambda request: (
            opened["eventsource"].append(request.url)
            if request.resource_type == "eventsource"
            else None
        ),
    )
    return opened


def assert_transport(opened: dict[str, list[str]], transport: str) -> None:
    if transport == "ws":
        assert opened["websocket"], opened
        assert not opened["eventsource"], opened
    else:
        assert not opened["websocket"], opened
        # The room's messages and the page's edits and deletions.
        assert len(opened["eventsource"]) >= 2, opened


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_two_chat_pages_talk(
    new_page: Callable[[], Page], chat_server: ChatServer, transport: str
) -> None:
    room = new_room()
    alice = new_page()
    bob = new_page()
    opened = record_transports(bob)
    open_room(alice, chat_server, room, transport)
    open_room(bob, chat_server, room, transport)

    send_in_page(alice, "Hello from Alice's tab")
    bob_messages = bob.locator("#messages .message")
    expect(bob_messages.last).to_contain_text("AnonymousHello from Alice's tab")

    bob.fill("#username", "demo")
    bob.fill("#password", "demo")
    bob.click("#login")
    expect(bob.locator("#me")).to_have_text("demo")
    expect(bob.locator("#login-form")).to_be_hidden()
    send_in_page(bob, "Hi Alice, I am demo")
    expect(alice.locator("#messages .message").last).to_contain_text("demoHi Alice, I am demo")
    # Only the other tab's messages arrive live: each tab shows its own message once.
    expect(alice.locator("#messages .message")).to_have_count(2)
    expect(bob_messages).to_have_count(2)

    screenshot(alice, f"chat-alice-{transport}")
    screenshot(bob, f"chat-bob-{transport}")
    assert_transport(opened, transport)

    # A reload shows the history, oldest first.
    bob.reload()
    expect(bob.locator("#messages")).to_have_attribute("data-state", "ready")
    expect(bob.locator("#messages .message .sender")).to_have_text(["Anonymous", "demo"])
    expect(bob.locator("#messages .message .text")).to_have_text(
        ["Hello from Alice's tab", "Hi Alice, I am demo"]
    )


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_edits_deletions_and_logout_in_two_pages(
    new_page: Callable[[], Page], chat_server: ChatServer, transport: str
) -> None:
    room = new_room()
    author = new_page()
    reader = new_page()
    opened = record_transports(author)
    open_room(author, chat_server, room, transport)
    open_room(reader, chat_server, room, transport)
    author.fill("#username", "demo")
    author.fill("#password", "demo")
    author.click("#login")
    expect(author.locator("#me")).to_have_text("demo")
    expect(author.locator("#logout")).to_be_visible()
    expect(reader.locator("#logout")).to_be_hidden()

    send_in_page(author, "First draft")
    send_in_page(author, "To be deleted")
    reader_texts = reader.locator("#messages .message .text")
    expect(reader_texts).to_have_text(["First draft", "To be deleted"])
    # Only the author's page offers to change the author's messages.
    expect(author.locator("#messages .message .edit").first).to_be_visible()
    expect(reader.locator("#messages .message .edit").first).to_be_hidden()

    author.once("dialog", lambda dialog: dialog.accept("Final text"))
    author.locator("#messages .message").first.locator(".edit").click()
    expect(author.locator("#messages .message .text").first).to_have_text("Final text")
    expect(reader_texts).to_have_text(["Final text", "To be deleted"])

    author.locator("#messages .message").last.locator(".delete").click()
    expect(author.locator("#messages .message")).to_have_count(1)
    expect(reader_texts).to_have_text(["Final text"])
    screenshot(author, f"chat-edited-author-{transport}")
    screenshot(reader, f"chat-edited-reader-{transport}")

    # The reader's reload shows what is stored: the edit, without the deleted message.
    reader.reload()
    expect(reader.locator("#messages")).to_have_attribute("data-state", "ready")
    expect(reader_texts).to_have_text(["Final text"])

    author.click("#logout")
    expect(author.locator("#me")).to_have_text("Anonymous")
    expect(author.locator("#login-form")).to_be_visible()
    expect(author.locator("#logout")).to_be_hidden()
    expect(author.locator("#messages .message .edit").first).to_be_hidden()
    send_in_page(author, "After logout")
    expect(reader.locator("#messages .message").last).to_contain_text("AnonymousAfter logout")
    assert_transport(opened, transport)


def test_the_page_goes_on_over_http_when_no_websocket_opens(
    new_page: Callable[[], Page], chat_server: ChatServer
) -> None:
    room = new_room()
    blocked = new_page()
    # As a proxy that refuses upgrades: every WebSocket of the page closes at once.
    attempts: list[str] = []

    def refuse(socket: WebSocketRoute) -> None:
        attempts.append(socket.url)
        socket.close()

    blocked.route_web_socket("**/graphql/", refuse)
    opened = record_transports(blocked)
    other = new_page()
    blocked.goto(chat_server.url(f"/#{room}"))
    expect(blocked.locator("#transport")).to_have_attribute("data-transport", "sse")
    expect(blocked.locator("#messages")).to_have_attribute("data-state", "ready")
    expect(blocked.locator("#status")).to_have_attribute("data-status", "connected")
    open_room(other, chat_server, room)

    send_in_page(other, "Over the WebSocket")
    expect(blocked.locator("#messages .message").last).to_contain_text("Over the WebSocket")
    send_in_page(blocked, "Over HTTP")
    expect(other.locator("#messages .message").last).to_contain_text("AnonymousOver HTTP")
    expect(blocked.locator("#messages .message")).to_have_count(2)
    # The WebSocket client gave up for good: no retry (its first one comes after 0.5 s).
    blocked.wait_for_timeout(1500)
    expect(blocked.locator("#status")).to_have_attribute("data-status", "connected")
    assert len(attempts) == 1, attempts
    assert_transport(opened, "sse")
    screenshot(blocked, "chat-fallen-back-to-sse")


@pytest.mark.usefixtures("example_npm_packages")
def test_graphiql_runs_a_subscription(
    new_page: Callable[[], Page], chat_server: ChatServer
) -> None:
    room = new_room()
    subscription = (
        f'subscription {{\n  onNewChatMessage(chatroom: "{room}") {{\n'
        "    chatroom\n    text\n    sender\n  }\n}\n"
    )
    page = new_page()
    page.goto(chat_server.url("/graphiql/?" + urllib.parse.urlencode({"query": subscription})))
    expect(page.locator(".graphiql-query-editor")).to_contain_text("onNewChatMessage")
    page.locator(".graphiql-execute-button").click()
    response = page.locator(".graphiql-response")

    mutation = (
        'mutation($room: String!) { sendChatMessage(chatroom: $room, text: "Hi GraphiQL") { ok } }'
    )
    # GraphiQL's client does not ask for a confirmation, so nothing says when the
    # subscription is registered: send until a message arrives.
    for attempt in range(1, MESSAGE_ATTEMPTS + 1):
        assert post_graphql(chat_server, mutation, {"room": room}) == {
            "data": {"sendChatMessage": {"ok": True}}
        }
        try:
            expect(response).to_contain_text("Hi GraphiQL", timeout=1000)
            break
        except AssertionError:
            if attempt == MESSAGE_ATTEMPTS:
                raise
    expect(response).to_contain_text(room)
    screenshot(page, "graphiql-subscription")
