"""A third process that broadcasts: ``python -m tests.scale_out.broadcast ROOM TEXT...``.

Sends each TEXT, in order, to the subscribers of ``OnNewChatMessage`` in ROOM with
``broadcast_sync`` -- as a management command or a Celery task would -- then, with
``--unsubscribe``, ends their subscriptions with ``unsubscribe_sync``. The channel
layers come from ``tests.scale_out.settings`` (the environment).
"""

from __future__ import annotations

import argparse
import os


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("room")
    parser.add_argument("texts", nargs="*")
    parser.add_argument("--unsubscribe", action="store_true")
    arguments = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.scale_out.settings")
    import django

    django.setup()

    from tests.subscriptions import ChatEvent, OnNewChatMessage

    for text in arguments.texts:
        event = ChatEvent(
            chatroom=arguments.room, text=text, sender="script", sender_channel="script"
        )
        OnNewChatMessage.broadcast_sync(payload=event, group=arguments.room)
    if arguments.unsubscribe:
        OnNewChatMessage.unsubscribe_sync(group=arguments.room)


if __name__ == "__main__":
    main()
