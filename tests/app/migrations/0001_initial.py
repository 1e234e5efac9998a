from __future__ import annotations

import uuid

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Gadget",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, primary_key=True, serialize=False)),
                ("name", models.CharField(max_length=50)),
                (
                    "color",
                    models.CharField(
                        choices=[("red", "Red"), ("blue", "Blue")], default="red", max_length=10
                    ),
                ),
                ("enabled", models.BooleanField(default=True)),
                ("count", models.IntegerField(null=True)),
                ("ratio", models.FloatField(default=0.5)),
                ("price", models.DecimalField(decimal_places=2, default=0, max_digits=8)),
                ("made", models.DateTimeField(null=True)),
                ("day", models.DateField(null=True)),
                ("moment", models.TimeField(null=True)),
                ("serial", models.UUIDField(null=True)),
                ("settings", models.JSONField(default=dict)),
                ("address", models.GenericIPAddressField(null=True)),
                ("manual", models.FileField(blank=True, upload_to="")),
                ("lifetime", models.DurationField(null=True)),
                ("blob", models.BinaryField(null=True)),
            ],
        ),
        migrations.CreateModel(
            name="Note",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("text", models.CharField(max_length=200)),
                ("created", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.CreateModel(
            name="Room",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=100, unique=True)),
            ],
        ),
        migrations.CreateModel(
            name="Tag",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=50)),
            ],
        ),
        migrations.CreateModel(
            name="Message",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("text", models.TextField(help_text="What was said.")),
                ("sender", models.CharField(max_length=150)),
                ("secret", models.BooleanField(default=False)),
                ("created", models.DateTimeField(auto_now_add=True)),
                (
                    "room",
                    models.ForeignKey(
                        null=True, on_delete=django.db.models.deletion.CASCADE, to="app.room"
                    ),
                ),
                ("tags", models.ManyToManyField(blank=True, to="app.tag")),
            ],
        ),
    ]
