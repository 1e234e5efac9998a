"""The test ASGI application for real servers: ``uvicorn tests.e2e.asgi:application``.

WebSocket routes (from :func:`tests.consumers.application`): ``/graphql/`` is
``SchemaConsumer`` (default settings), ``/hooks/`` is ``HookConsumer`` (its
``on_connect`` wants ``{"token": "secret"}``).
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from tests.consumers import application as build_application  # noqa: E402

application = build_application()
