"""Django's URLs of the benchmark server: Strawberry's ``AsyncGraphQLView`` at ``/graphql/``,
the baseline of the HTTP query round trips (``BENCH_MODE=strawberry``)."""

from __future__ import annotations

from django.urls import path
from strawberry.django.views import AsyncGraphQLView

from bench.app import schema

urlpatterns = [path("graphql/", AsyncGraphQLView.as_view(schema=schema, graphql_ide=None))]
