"""Helpers for tests that run servers and tools in child processes.

Servers listen on :data:`HOST` (127.0.0.1 only), on a free ephemeral port from
:func:`free_port`; :func:`wait_until_listening` waits for them to accept connections,
and :func:`stop_process` ends them. :func:`npm_install` installs a directory's npm
packages, failing the test with npm's output when it cannot.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from typing import TYPE_CHECKING, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

HOST: Final = "127.0.0.1"
SHUTDOWN_TIMEOUT: Final = 10.0
"""Seconds a process gets to exit after SIGTERM before it is killed."""
POLL_INTERVAL: Final = 0.05


def free_port(host: str = HOST) -> int:
    """A port no socket on ``host`` is bound to right now (another may take it later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def accepts_connections(port: int, *, timeout: float, host: str = HOST) -> bool:
    """Whether a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until_listening(
    process: subprocess.Popen[bytes],
    port: int,
    *,
    timeout: float,
    connect_timeout: float,
    poll_interval: float = POLL_INTERVAL,
    host: str = HOST,
) -> bool:
    """Whether ``process`` accepts connections on ``host:port`` within ``timeout`` seconds.

    Gives up early (``False``) when the process exits. Each connection attempt gets
    ``connect_timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if accepts_connections(port, timeout=connect_timeout, host=host):
            return True
        # Waiting on the process is the poll interval and notices an early exit.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=poll_interval)
            return False
    return False


def stop_process(process: subprocess.Popen[bytes], *, timeout: float = SHUTDOWN_TIMEOUT) -> None:
    """Terminate the process; kill it if it has not exited in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def npm_install(
    npm: str,
    directory: Path,
    *,
    installed: Callable[[], bool],
    timeout: float,
    options: Sequence[str] = (),
) -> None:
    """Run ``npm install`` in ``directory``; fail the test with npm's output when it
    exits with an error, runs over ``timeout`` seconds or leaves ``installed()`` false.

    ``options`` come after ``--no-audit --no-fund``.
    """
    try:
        completed = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", *options],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"npm install did not finish within {timeout} s: {exc.output}")
    if completed.returncode != 0 or not installed():
        pytest.fail(
            f"npm install failed ({completed.returncode}) in {directory}:\n"
            f"{completed.stdout}\n{completed.stderr}"
        )
