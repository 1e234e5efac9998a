"""A password hasher that the tests observe and hold, run by the chat example's server.

The server uses it when its ``DJANGO_SETTINGS_MODULE`` is
:mod:`tests.example.observed_settings`. ``CHAT_TEST_HASHER_DIRECTORY`` names a directory:
every hashing appends a line to the ``calls`` file there, then waits while a ``hold``
file exists. A test holds the hasher to see what else the server answers while
passwords are being hashed, and counts the lines to see how many attempts were hashed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Final

from django.contrib.auth.hashers import PBKDF2PasswordHasher

DIRECTORY_VARIABLE: Final = "CHAT_TEST_HASHER_DIRECTORY"
CALLS: Final = "calls"
HOLD: Final = "hold"
LONGEST_HOLD: Final = 60.0
"""Seconds a hashing waits for its hold to end at most: a test that fails while holding
must not leave the server stuck."""
POLL_INTERVAL: Final = 0.01


class ObservedPasswordHasher(PBKDF2PasswordHasher):
    """Django's default hasher (same algorithm and hashes), observed.

    ``encode`` is the one step that every hashing takes: making a password's hash,
    checking a password (its hash is made again with the stored salt) and the hashing
    that Django's ``ModelBackend`` does for a user that does not exist.
    """

    def encode(self, password: str, salt: str, iterations: int | None = None) -> str:
        directory = Path(os.environ[DIRECTORY_VARIABLE])
        with (directory / CALLS).open("a", encoding="utf-8") as calls:
            calls.write("encode\n")
        deadline = time.monotonic() + LONGEST_HOLD
        while (directory / HOLD).exists() and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        return super().encode(password, salt, iterations)
