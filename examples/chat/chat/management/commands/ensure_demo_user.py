"""``manage.py ensure_demo_user``: create the demo account unless it exists (idempotent)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create the user USERNAME with PASSWORD (default demo / demo) unless it exists."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")
        parser.add_argument("--password", default="demo")

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        user_model = get_user_model()
        if user_model._default_manager.filter(username=username).exists():
            self.stdout.write(f"User {username!r} exists already.")
            return
        user_model._default_manager.create_user(username=username, password=options["password"])
        self.stdout.write(f"Created user {username!r}.")
