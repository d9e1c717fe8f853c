"""The Elasticsearch client of the indexer, search and setup (one place for URL, auth and serializer).

The client serializes with msgspec instead of the standard ``json`` module: the bulk helper serializes
every action and document through it, and msgspec is several times faster for SIP-sized documents.
Retries are left to the callers (the indexer has its own backoff and pause logic), so ``max_retries=0``.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from elastic_transport import JsonSerializer
from elasticsearch import Elasticsearch

from sipscope.settings import Settings

_encoder = msgspec.json.Encoder()


class MsgspecJsonSerializer(JsonSerializer):
    """``application/json`` (and the compatibility mimetype) through msgspec."""

    def json_dumps(self, data: Any) -> bytes:
        try:
            return _encoder.encode(data)
        except (TypeError, msgspec.EncodeError):
            return super().json_dumps(data)  # dates, UUIDs, Decimals: the standard path

    def json_loads(self, data: bytes) -> Any:
        return msgspec.json.decode(data)


def client(settings: Settings, url: str | None = None, request_timeout: float | None = None) -> Elasticsearch:
    """A client for ``settings.elasticsearch`` (or ``url``), no transport-level retries."""
    # the transport logs one INFO line per request and a WARNING per failed node; our callers say it once
    logging.getLogger("elastic_transport.transport").setLevel(logging.WARNING)
    logging.getLogger("elastic_transport.node_pool").setLevel(logging.ERROR)
    es = settings.elasticsearch
    auth = None
    if es.username:
        auth = (es.username, es.password.get_secret_value() if es.password else "")
    return Elasticsearch(
        url or es.url,
        basic_auth=auth,
        request_timeout=request_timeout or settings.indexer.request_timeout,
        max_retries=0,
        retry_on_timeout=False,
        serializers={"application/json": MsgspecJsonSerializer()},
    )
