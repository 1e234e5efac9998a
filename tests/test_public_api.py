"""The public API is exactly what ``channels_graphql_typed.__all__`` lists."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import channels_graphql_typed as cgt


def test_public_names() -> None:
    assert sorted(cgt.__all__) == sorted(
        [
            "CONFIRM_SUBSCRIPTION_EXTENSION",
            "EVENTS_MISSED",
            "EVENT_ID_EXTENSION",
            "GRAPHQL_TRANSPORT_WS",
            "GRAPHQL_WS",
            "SKIP",
            "CloseCode",
            "ConnectionRejected",
            "Context",
            "GraphqlHttpConsumer",
            "GraphqlServer",
            "GraphqlWsClient",
            "GraphqlWsClientError",
            "GraphqlWsClientState",
            "GraphqlWsConnectionClosed",
            "GraphqlWsConsumer",
            "GraphqlWsError",
            "GraphqlWsProtocolError",
            "GraphqlWsResponseError",
            "GraphqlWsResult",
            "GraphqlWsRetriesExhausted",
            "GraphqlWsStateChange",
            "GraphqlWsSubscriptionStream",
            "GraphqlWsTimeoutError",
            "GraphqlWsTransport",
            "GraphqlWsTransportAiohttp",
            "Info",
            "ModelAction",
            "ModelEvent",
            "ModelSubscription",
            "OperationPayload",
            "OperationRejected",
            "PayloadSerializationError",
            "RESUME_AFTER_EXTENSION",
            "Replay",
            "Skip",
            "Subscription",
            "drain_on_shutdown",
            "register_payload_type",
        ]
    )
    for name in cgt.__all__:
        assert getattr(cgt, name) is not None


def test_exported_members() -> None:
    """Every public name that importing the package binds is in ``__all__``, and the other
    way round (httpx's test): what is not exported is in a private module."""
    names = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import json, channels_graphql_typed as m; print(json.dumps(sorted(vars(m))))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert sorted(name for name in names if not name.startswith("_")) == sorted(cgt.__all__)


def test_implementation_modules_are_private() -> None:
    """Besides the package itself, users import only its Django app configuration, the
    testing helpers (an extra) and the switches of metrics and traces; every other module
    is an implementation detail."""
    package = pathlib.Path(cgt.__file__).parent
    public = {
        module.stem if module.is_file() else module.name
        for module in package.iterdir()
        if not module.name.startswith(("_", "."))
        and (module.suffix == ".py" or (module / "__init__.py").exists())
    }
    assert public == {"apps", "observability", "testing"}


def test_observability_names() -> None:
    from channels_graphql_typed import observability

    assert sorted(observability.__all__) == [
        "disable",
        "enable_metrics",
        "enable_tracing",
        "metrics_view",
    ]


def test_exception_tree() -> None:
    assert issubclass(cgt.ConnectionRejected, cgt.GraphqlWsError)
    assert issubclass(cgt.OperationRejected, cgt.GraphqlWsError)
    assert issubclass(cgt.PayloadSerializationError, cgt.GraphqlWsError)
    assert issubclass(cgt.PayloadSerializationError, TypeError)
    assert issubclass(cgt.GraphqlWsClientError, cgt.GraphqlWsError)
    for client_error in (
        cgt.GraphqlWsConnectionClosed,
        cgt.GraphqlWsProtocolError,
        cgt.GraphqlWsResponseError,
        cgt.GraphqlWsRetriesExhausted,
        cgt.GraphqlWsTimeoutError,
    ):
        assert issubclass(client_error, cgt.GraphqlWsClientError)
    assert issubclass(cgt.GraphqlWsTimeoutError, TimeoutError)


def test_client_exceptions_carry_their_context() -> None:
    closed = cgt.GraphqlWsConnectionClosed(4403, "Forbidden", {"message": "Bad token"})
    assert (closed.code, closed.reason, closed.payload) == (
        4403,
        "Forbidden",
        {"message": "Bad token"},
    )
    assert str(closed) == (
        "WebSocket closed with code 4403: Forbidden (connection_error: {'message': 'Bad token'})"
    )
    response = cgt.GraphqlWsResponseError([{"message": "a"}, {"message": "b"}])
    assert response.errors == [{"message": "a"}, {"message": "b"}]
    assert str(response) == "a; b"


def test_importing_the_package_imports_neither_testing_nor_aiohttp() -> None:
    # channels_graphql_typed.testing imports channels.testing; the aiohttp transport
    # imports aiohttp when it connects: a server process pays for neither.
    code = (
        "import sys, channels_graphql_typed; "
        "print(sorted({'channels_graphql_typed.testing', 'channels.testing', 'aiohttp'}"
        " & set(sys.modules)))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert output.strip() == "[]"
