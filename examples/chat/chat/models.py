"""The one table of the example: chat messages, newest last by primary key."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class ChatMessage(models.Model):
    chatroom = models.CharField(max_length=100, db_index=True)
    text = models.TextField()
    sender = models.CharField(max_length=150)
    created = models.DateTimeField(auto_now_add=True)

    # Declared so that mypy's Django plugin, configured with the test suite's settings
    # (where this app is not installed), still types the manager.
    objects: ClassVar[models.Manager[ChatMessage]] = models.Manager()

    class Meta:
        app_label = "chat"
        ordering = ("id",)

    def __str__(self) -> str:
        return f"[{self.chatroom}] {self.sender}: {self.text}"
