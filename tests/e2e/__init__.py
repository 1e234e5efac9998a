"""End-to-end tests: real ASGI servers in child processes, real WebSocket clients."""

from __future__ import annotations
