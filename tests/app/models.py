"""Models used by the test suite."""

from __future__ import annotations

import uuid

from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=200)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "app"


class Room(models.Model):
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        app_label = "app"


class Tag(models.Model):
    name = models.CharField(max_length=50)

    class Meta:
        app_label = "app"


class Message(models.Model):
    room = models.ForeignKey(Room, null=True, on_delete=models.CASCADE)
    text = models.TextField(help_text="What was said.")
    sender = models.CharField(max_length=150)
    secret = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    tags = models.ManyToManyField(Tag, blank=True)

    class Meta:
        app_label = "app"


class Gadget(models.Model):
    """One field of every kind that a model subscription can expose, and a few it cannot."""

    class Color(models.TextChoices):
        RED = "red"
        BLUE = "blue"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    name = models.CharField(max_length=50)
    color = models.CharField(max_length=10, choices=Color.choices, default=Color.RED)
    enabled = models.BooleanField(default=True)
    count = models.IntegerField(null=True)
    ratio = models.FloatField(default=0.5)
    price = models.DecimalField(max_digits=8, decimal_places=2, default=0)
    made = models.DateTimeField(null=True)
    day = models.DateField(null=True)
    moment = models.TimeField(null=True)
    serial = models.UUIDField(null=True)
    settings = models.JSONField(default=dict)
    address = models.GenericIPAddressField(null=True)
    manual = models.FileField(blank=True)
    lifetime = models.DurationField(null=True)
    blob = models.BinaryField(null=True)

    class Meta:
        app_label = "app"
