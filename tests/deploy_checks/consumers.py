"""Consumers of the deployment-check settings: well configured."""

from __future__ import annotations

import channels_graphql_typed as cgt
from tests.schema import schema


class ServedConsumer(cgt.GraphqlWsConsumer):
    schema = schema
