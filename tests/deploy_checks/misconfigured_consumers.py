"""Consumers the deployment checks warn about (and a base class they do not)."""

from __future__ import annotations

import channels_graphql_typed as cgt
from tests.schema import schema


class OpenToEveryOriginConsumer(cgt.GraphqlWsConsumer):
    schema = schema
    allowed_origins = ("*",)


class UnboundedConsumer(cgt.GraphqlWsConsumer):
    schema = schema
    max_query_depth = None
    max_result_size = None


class BaseWithoutSchema(cgt.GraphqlWsConsumer):
    """Not served (no schema): never reported."""

    allowed_origins = ("*",)
    max_message_size = None
