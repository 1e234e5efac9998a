"""HTTP views: the chat page, GraphiQL and the front-end files (GraphQL over HTTP is
:class:`chat.schema.ChatHttpConsumer`'s, routed in :mod:`chat.asgi`).

Front-end files are served from a fixed list, not from a directory: the project's own
files in ``frontend/`` and the few npm files (``node_modules/``, installed by
``npm install`` in ``examples/chat``) that the GraphiQL page loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final

from django.http import HttpResponse, HttpResponseNotFound

if TYPE_CHECKING:
    from django.http import HttpRequest

EXAMPLE_DIR: Final = Path(__file__).resolve().parent.parent
FRONTEND: Final = EXAMPLE_DIR / "frontend"
NODE_MODULES: Final = EXAMPLE_DIR / "node_modules"

ASSETS: Final[dict[str, Path]] = {
    "chat.css": FRONTEND / "chat.css",
    "chat.js": FRONTEND / "chat.js",
    "graphql-transport-ws.js": FRONTEND / "graphql-transport-ws.js",
    "graphql-sse.js": FRONTEND / "graphql-sse.js",
    "graphiql-page.js": FRONTEND / "graphiql-page.js",
    "vendor/react.production.min.js": NODE_MODULES / "react/umd/react.production.min.js",
    "vendor/react-dom.production.min.js": (
        NODE_MODULES / "react-dom/umd/react-dom.production.min.js"
    ),
    "vendor/graphql-ws.min.js": NODE_MODULES / "graphql-ws/umd/graphql-ws.min.js",
    "vendor/graphiql.min.js": NODE_MODULES / "graphiql/graphiql.min.js",
    "vendor/graphiql.min.css": NODE_MODULES / "graphiql/graphiql.min.css",
}
CONTENT_TYPES: Final = {
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
}


def _file_response(path: Path) -> HttpResponse:
    # Read whole (the largest file is about 1 MB): a streamed FileResponse would make
    # Django's ASGI handler warn about consuming a sync iterator.
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        hint = " (run `npm install` in examples/chat)" if NODE_MODULES in path.parents else ""
        return HttpResponseNotFound(
            f"{path.name} is missing{hint}\n", content_type="text/plain; charset=utf-8"
        )
    response = HttpResponse(content, content_type=CONTENT_TYPES[path.suffix])
    response["Cache-Control"] = "no-cache"
    return response


def index(request: HttpRequest) -> HttpResponse:
    """The chat page."""
    return _file_response(FRONTEND / "index.html")


def graphiql(request: HttpRequest) -> HttpResponse:
    """GraphiQL: queries and mutations over HTTP, subscriptions over the WebSocket."""
    return _file_response(FRONTEND / "graphiql.html")


def asset(request: HttpRequest, name: str) -> HttpResponse:
    """One of :data:`ASSETS`."""
    path = ASSETS.get(name)
    if path is None:
        return HttpResponseNotFound("Not found\n", content_type="text/plain; charset=utf-8")
    return _file_response(path)
