"""The public API is exactly what ``channels_graphql_typed.__all__`` lists."""

from __future__ import annotations

import channels_graphql_typed as cgt


def test_public_names() -> None:
    assert sorted(cgt.__all__) == sorted(
        [
            "GRAPHQL_TRANSPORT_WS",
            "GRAPHQL_WS",
            "SKIP",
            "CloseCode",
            "ConnectionRejected",
            "Context",
            "GraphqlWsConsumer",
            "GraphqlWsError",
            "Info",
            "OperationPayload",
            "OperationRejected",
            "PayloadSerializationError",
            "Skip",
            "Subscription",
        ]
    )
    for name in cgt.__all__:
        assert getattr(cgt, name) is not None


def test_exception_tree() -> None:
    assert issubclass(cgt.ConnectionRejected, cgt.GraphqlWsError)
    assert issubclass(cgt.OperationRejected, cgt.GraphqlWsError)
    assert issubclass(cgt.PayloadSerializationError, cgt.GraphqlWsError)
    assert issubclass(cgt.PayloadSerializationError, TypeError)
