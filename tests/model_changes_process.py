"""Changes messages in a process of its own, as a management command or a worker would:
``python -m tests.model_changes_process CHANNEL_LAYERS_JSON``.

It uses the test settings with the given channel layers and an in-memory database of
its own, rolls back one change, then creates, updates and deletes one message and
prints its primary key. The subscribers are in the process that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys


def main(channel_layers: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    from django.conf import settings

    settings.CHANNEL_LAYERS = json.loads(channel_layers)

    import django

    django.setup()

    from django.core.management import call_command
    from django.db import transaction

    # Declaring the subscriptions connects their signal receivers in this process too.
    import tests.model_subscriptions  # noqa: F401
    from tests.app.models import Message

    call_command("migrate", verbosity=0)
    with contextlib.suppress(RuntimeError), transaction.atomic():
        Message.objects.create(text="rolled back", sender="elsewhere")
        raise RuntimeError
    message = Message.objects.create(text="from another process", sender="elsewhere")
    message.text = "edited elsewhere"
    message.save()
    pk = message.pk
    message.delete()
    print(pk)


if __name__ == "__main__":
    main(sys.argv[1])
