from __future__ import annotations

from django.urls import path

from channels_graphql_typed.observability import metrics_view

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("graphiql/", views.graphiql, name="graphiql"),
    path("assets/<path:name>", views.asset, name="asset"),
    # --8<-- [start:metrics-url]
    # Prometheus scrapes the library's metrics here. In production, route it where only
    # Prometheus reaches (another port, or a proxy that refuses it from outside).
    path("metrics", metrics_view, name="metrics"),
    # --8<-- [end:metrics-url]
]
