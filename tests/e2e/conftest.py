"""Real ASGI servers (uvicorn, Daphne) serving :mod:`tests.e2e.asgi` in child processes.

Each server is started at most once per test session, on first use, by
:class:`ServerPool`, and terminated (then killed if it lingers) when the session
ends. Servers listen on 127.0.0.1 only, on a free ephemeral port chosen by the
test process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

import pytest

from tests.processes import HOST, free_port, stop_process, wait_until_listening

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT: Final = Path(__file__).resolve().parents[2]
ASGI_APPLICATION: Final = "tests.e2e.asgi:application"
SERVER_NAMES: Final = ("uvicorn", "daphne")

STARTUP_TIMEOUT: Final = 30.0
"""Seconds a server gets to import the application and accept connections."""
CONNECT_TIMEOUT: Final = 0.5
"""Seconds each connection attempt gets while waiting for a server to listen."""
START_ATTEMPTS: Final = 3
"""Another process may take the free port between our probe and the server's bind."""


@dataclasses.dataclass(frozen=True, slots=True)
class RunningServer:
    """One ASGI server process listening on ``HOST:port``."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def passes_close_reasons(self) -> bool:
        """Whether the server puts the ASGI close ``reason`` in the close frame.

        Daphne (4.x) sends only the code; uvicorn sends both.
        """
        return self.name != "daphne"

    def url(self, path: str) -> str:
        return f"ws://{HOST}:{self.port}{path}"

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            pytest.fail(
                f"{self.name} exited with {self.process.returncode}; its output:\n{self.output()}"
            )


def server_command(name: str, port: int) -> list[str]:
    if name == "uvicorn":
        # Channels' ProtocolTypeRouter has no lifespan support: turn it off rather
        # than let uvicorn probe it and log the failure.
        return [
            sys.executable,
            "-m",
            "uvicorn",
            ASGI_APPLICATION,
            "--host",
            HOST,
            "--port",
            str(port),
            "--lifespan",
            "off",
        ]
    if name == "daphne":
        return [sys.executable, "-m", "daphne", "-b", HOST, "-p", str(port), ASGI_APPLICATION]
    raise ValueError(f"Unknown server {name!r}")


class ServerPool:
    """Starts each server once, on first use, and stops them all at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.servers: dict[str, RunningServer] = {}
        self._logs: list[IO[bytes]] = []

    def get(self, name: str) -> RunningServer:
        server = self.servers.get(name)
        if server is None:
            server = self.servers[name] = self._start(name)
        server.check_alive()
        return server

    def _start(self, name: str) -> RunningServer:
        environment = dict(os.environ)
        environment["DJANGO_SETTINGS_MODULE"] = "tests.settings"
        environment["PYTHONUNBUFFERED"] = "1"
        environment["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(ROOT), environment.get("PYTHONPATH")])
        )
        for attempt in range(1, START_ATTEMPTS + 1):
            port = free_port()
            log_path = self.log_dir / f"{name}-{attempt}.log"
            log = log_path.open("wb")
            self._logs.append(log)
            process = subprocess.Popen(
                server_command(name, port),
                cwd=ROOT,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            server = RunningServer(name, port, process, log_path)
            try:
                listening = wait_until_listening(
                    process, port, timeout=STARTUP_TIMEOUT, connect_timeout=CONNECT_TIMEOUT
                )
            except BaseException:  # interrupted: leave no orphan behind
                stop_process(process)
                raise
            if listening:
                return server
            stop_process(process)
            output = server.output()
            if "address already in use" not in output.lower() or attempt == START_ATTEMPTS:
                pytest.fail(
                    f"{name} did not accept connections on {HOST}:{port} within "
                    f"{STARTUP_TIMEOUT} s (exit code {process.returncode}); its output:\n{output}"
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def stop_all(self) -> None:
        servers = list(self.servers.values())
        self.servers.clear()
        with contextlib.ExitStack() as cleanup:
            for log in self._logs:
                cleanup.callback(log.close)
            self._logs.clear()
            for server in servers:
                cleanup.callback(stop_process, server.process)


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    """The session's servers; each is started when a test first asks for it."""
    pool = ServerPool(tmp_path_factory.mktemp("servers"))
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture(scope="module", params=SERVER_NAMES)
def server(request: pytest.FixtureRequest, server_pool: ServerPool) -> RunningServer:
    """Runs a test once per ASGI server."""
    name: str = request.param
    return server_pool.get(name)


@pytest.fixture(scope="module")
def uvicorn_server(server_pool: ServerPool) -> RunningServer:
    """The uvicorn server alone, for tests that need one real server."""
    return server_pool.get("uvicorn")
