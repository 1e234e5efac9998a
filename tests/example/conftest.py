"""The chat example (``examples/chat``) served by a real uvicorn process.

The server is started once for this package's tests, on 127.0.0.1 and a free
ephemeral port, with its own SQLite database in a temporary directory (migrated, with
the demo user, before the server starts), and is always stopped at the end. Tests
share it, so each one uses chatrooms of its own (:func:`new_room`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Final

import pytest

from tests.processes import HOST, free_port, npm_install, stop_process, wait_until_listening

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT: Final = Path(__file__).resolve().parents[2]
EXAMPLE_DIR: Final = ROOT / "examples" / "chat"
STARTUP_TIMEOUT: Final = 30.0
CONNECT_TIMEOUT: Final = 1.0
"""Seconds each connection attempt gets while waiting for the server to listen."""
COMMAND_TIMEOUT: Final = 60.0
START_ATTEMPTS: Final = 3
"""Another process may take the free port between our probe and the server's bind."""
NPM_INSTALL_TIMEOUT: Final = 300.0


def on_ci() -> bool:
    return os.environ.get("CI") == "true"


def new_room() -> str:
    """A chatroom no other test uses."""
    return f"room-{uuid.uuid4().hex[:12]}"


@dataclasses.dataclass(frozen=True, slots=True)
class ChatServer:
    """The example's uvicorn process and the environment its commands share."""

    port: int
    process: subprocess.Popen[bytes]
    environment: dict[str, str]
    log_path: Path

    @property
    def origin(self) -> str:
        """The Origin header that a browser on the example's own pages sends."""
        return f"http://{HOST}:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.port}/graphql/"

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def manage(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run ``manage.py`` with the server's database and channel layer settings."""
        return run_manage(self.environment, *arguments)


def chat_server_command(port: int) -> list[str]:
    """The command that serves the chat example with uvicorn on ``HOST:port``."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--app-dir",
        str(EXAMPLE_DIR),
        "chat.asgi:application",
        "--host",
        HOST,
        "--port",
        str(port),
    ]


def run_manage(environment: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, str(EXAMPLE_DIR / "manage.py"), *arguments],
        cwd=ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(
            f"manage.py {' '.join(arguments)} exited with {completed.returncode}:\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
    return completed


def example_environment(database: Path) -> dict[str, str]:
    """The environment of the example's processes, with its database at ``database``."""
    environment = dict(os.environ)
    environment["CHAT_DATABASE"] = str(database)
    environment["PYTHONUNBUFFERED"] = "1"
    environment.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py and asgi.py set theirs
    return environment


@contextlib.contextmanager
def serving_chat_example(directory: Path, environment: dict[str, str]) -> Iterator[ChatServer]:
    """Migrate the database of ``environment``, create the demo user and serve the
    example with uvicorn (its output in ``directory``) until the block ends."""
    run_manage(environment, "migrate", "--noinput", "-v", "0")
    run_manage(environment, "ensure_demo_user")
    for attempt in range(1, START_ATTEMPTS + 1):
        port = free_port()
        log_path = directory / f"uvicorn-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                chat_server_command(port),
                cwd=ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = ChatServer(port, process, environment, log_path)
        try:
            listening = wait_until_listening(
                process, port, timeout=STARTUP_TIMEOUT, connect_timeout=CONNECT_TIMEOUT
            )
            if listening:
                yield server
                return
        finally:
            stop_process(process)
        output = server.output()
        if "address already in use" not in output.lower() or attempt == START_ATTEMPTS:
            pytest.fail(
                f"uvicorn did not accept connections on {HOST}:{port} within "
                f"{STARTUP_TIMEOUT} s (exit code {process.returncode}); its output:\n{output}"
            )


@pytest.fixture(scope="package")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChatServer]:
    """The chat example on uvicorn, with a fresh database holding the demo user."""
    directory = tmp_path_factory.mktemp("chat")
    environment = example_environment(directory / "chat.sqlite3")
    with serving_chat_example(directory, environment) as server:
        yield server


def node_packages_installed() -> bool:
    return all(
        (EXAMPLE_DIR / "node_modules" / name / "package.json").is_file()
        for name in ("graphiql", "graphql-ws", "react", "react-dom")
    )


@pytest.fixture(scope="package")
def example_npm_packages() -> None:
    """The example's npm packages (GraphiQL's files), installed as ``scripts/serve``
    does when missing; skips without npm, except on CI, where it fails."""
    if node_packages_installed():
        return
    npm = shutil.which("npm")
    if npm is None:
        if on_ci():
            pytest.fail("npm not found on PATH, but CI=true and CI must run the GraphiQL test")
        pytest.skip("npm not found on PATH: GraphiQL's files come from npm")
    npm_install(
        npm,
        EXAMPLE_DIR,
        installed=node_packages_installed,
        timeout=NPM_INSTALL_TIMEOUT,
        options=["--loglevel=error"],
    )
