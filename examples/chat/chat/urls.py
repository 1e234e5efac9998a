from __future__ import annotations

from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from . import views
from .schema import schema

urlpatterns = [
    path("", views.index, name="index"),
    path("graphiql/", views.graphiql, name="graphiql"),
    # Same path as the WebSocket endpoint: HTTP requests come here, upgrades go to
    # ChatConsumer (see chat.asgi). No IDE here: GraphiQL lives at /graphiql/.
    path("graphql/", csrf_exempt(views.ChatGraphQLView.as_view(schema=schema, graphql_ide=None))),
    path("assets/<path:name>", views.asset, name="asset"),
]
