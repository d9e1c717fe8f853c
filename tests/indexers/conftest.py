"""Fixtures of the indexer tests (helpers in ixhelpers.py)."""

from __future__ import annotations

import pytest
from ixhelpers import make_settings

from sipscope.settings import Settings


@pytest.fixture
def isettings(stack, names, tmp_path) -> Settings:
    """Settings of one test: its own topic/index/template prefix and consumer group, numbering +351."""
    return make_settings(stack, names.prefix, tmp_path)


@pytest.fixture(autouse=True)
def _drop_consumer_group(request):
    """The consumer group of a test (``<prefix>indexer``) goes with its topics (tests/conftest.py drops those)."""
    if "names" not in request.fixturenames:
        yield
        return
    stack, names = request.getfixturevalue("stack"), request.getfixturevalue("names")  # torn down after us
    yield
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient({"bootstrap.servers": stack.bootstrap, "log_level": 0})
        for f in admin.delete_consumer_groups([f"{names.prefix}indexer"], request_timeout=10).values():
            f.result()
    except Exception:  # noqa: BLE001, S110 - cleanup must not hide the test's own result (the group may not exist)
        pass
