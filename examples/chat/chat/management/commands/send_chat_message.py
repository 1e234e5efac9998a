"""``manage.py send_chat_message ROOM TEXT``: store a message and broadcast it.

The broadcast goes through the channel layer: with Redis (``REDIS_URL``) it reaches the
subscribers of every server process; with the in-memory layer only this command's own
process, which has none, so the message is only stored.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...schema import store_and_broadcast_sync


class Command(BaseCommand):
    help = "Store a chat message in ROOM and broadcast it to the room's subscribers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("room", help="the chatroom")
        parser.add_argument("text", help="the message")
        parser.add_argument("--sender", default="system", help="the sender (default: system)")

    def handle(self, *args: Any, **options: Any) -> None:
        store_and_broadcast_sync(options["room"], options["text"], options["sender"])
        self.stdout.write(f"Sent to {options['room']}: {options['text']}")
