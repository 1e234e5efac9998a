"""The chat example's settings with :class:`tests.example.observed_hasher.ObservedPasswordHasher`
as the password hasher, for the tests that count and hold password hashing.

Its processes have the repository root and ``examples/chat`` on their path.
"""

from __future__ import annotations

import importlib

globals().update(
    {
        name: value
        for name, value in vars(importlib.import_module("chat.settings")).items()
        if name.isupper()
    }
)
PASSWORD_HASHERS = ["tests.example.observed_hasher.ObservedPasswordHasher"]
