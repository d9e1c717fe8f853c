"""Fixtures of the web tests (helpers in webhelpers.py).

``indexed`` (one per module): real captures retimed to end now, correlated by the streams code and written
into Elasticsearch under a prefix of the module's own (read-only for the tests that use it; tests that
write use the per-test ``names`` prefix). ``client``: a FastAPI TestClient logged in as a real user.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from webhelpers import (
    B2BUA,
    PASSWORD,
    PROXY,
    REGISTER,
    SIPCLI,
    drop_prefix,
    index_captures,
    web_settings,
)

from sipscope.records import SipMessage
from sipscope.settings import Settings


@dataclass
class Indexed:
    settings: Settings
    messages: dict[str, list[SipMessage]]
    tmp: Path

    def call_ids(self, capture: str) -> list[str]:
        return list(dict.fromkeys(m.call_id for m in self.messages[capture]))


@pytest.fixture(scope="module")
def indexed(stack, tmp_path_factory) -> Indexed:
    from indexers.es import client

    prefix = f"t{uuid.uuid4().hex[:10]}-"
    tmp = tmp_path_factory.mktemp("web")
    settings = web_settings(stack.es_url, prefix, tmp)
    try:
        msgs = index_captures(client(settings), settings, {PROXY: 300, B2BUA: 900, REGISTER: 120, SIPCLI: 60})
        from indexers.web.auth import UserStore

        UserStore(settings.web.users_file).add("alice", PASSWORD)
        yield Indexed(settings, msgs, tmp)
    finally:
        drop_prefix(stack.es_url, prefix)


@pytest.fixture(scope="module")
def app(indexed):
    from indexers.web.app import create_app

    return create_app(indexed.settings)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        r = c.post("/login", data={"username": "alice", "password": PASSWORD}, follow_redirects=False)
        assert r.status_code == 303, r.text
        yield c


@pytest.fixture
def anonymous(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c
