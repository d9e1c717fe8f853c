"""Test harness.

* Pure unit tests need nothing.
* Tests marked ``stack`` use the ``stack`` fixture: real Kafka (KRaft) and Elasticsearch, started once per
  session with ``sipscope stack up`` (or reused when already running) and stopped at the end only if this
  session started them (``SIPSCOPE_TEST_KEEP_STACK=1`` keeps them).
* ``names`` gives each test its own topic/index prefix and deletes what it created.
* ``shared_testdata`` is ``../shared/testdata`` (real third-party captures); tests needing it skip when absent.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from sipscope import stack as stackmod
from sipscope.settings import Settings

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "testdata"


@pytest.fixture(scope="session")
def shared_testdata() -> Path:
    if not (SHARED / "pcaps").is_dir():
        pytest.skip(f"{SHARED} is absent (third-party captures live outside the project)")
    return SHARED


def shared_captures() -> list[Path]:
    """Every capture file of ../shared/testdata/pcaps (empty when it is absent), for parametrize."""
    pcaps = SHARED / "pcaps"
    if not pcaps.is_dir():
        return []
    return sorted(p for p in pcaps.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap"))


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (make setup installs it as root)")
    return path


@dataclass(frozen=True)
class Stack:
    settings: Settings
    bootstrap: str
    es_url: str


@pytest.fixture(scope="session")
def stack() -> Stack:
    settings = Settings()
    st = settings.stack
    bootstrap = f"{st.kafka_host}:{st.kafka_port}"
    es_url = f"http://{st.es_host}:{st.es_port}"
    running = stackmod.kafka_answers(bootstrap) and (stackmod.es_health(es_url) or {}).get("status") in ("green", "yellow")
    if not running:
        try:
            stackmod.up(settings)
        except stackmod.StackError as exc:
            pytest.fail(f"the real stack did not start: {exc}")
    if not running:
        _warm_up(bootstrap, es_url)
    yield Stack(settings=settings, bootstrap=bootstrap, es_url=es_url)
    if not running and not os.environ.get("SIPSCOPE_TEST_KEEP_STACK"):
        stackmod.down(settings, quiet=True)


def _warm_up(bootstrap: str, es_url: str) -> None:
    """A freshly started stack pays one-time costs on first use (Kafka creates __consumer_offsets at the
    first group join; the JVMs are cold): pay them here, not inside the first test's timing."""
    from confluent_kafka import Consumer, Producer
    from elasticsearch import Elasticsearch

    topic = f"warmup-{uuid.uuid4().hex[:8]}"
    p = Producer({"bootstrap.servers": bootstrap, "log_level": 0})
    p.produce(topic, b"x")
    p.flush(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "auto.offset.reset": "earliest", "log_level": 0})
    c.subscribe([topic])
    for _ in range(60):
        m = c.poll(0.5)
        if m is not None and not m.error():
            break
    c.close()
    es = Elasticsearch(es_url)
    es.index(index=topic, document={"ts": "2026-01-01T00:00:00Z", "n": "1"}, refresh=True)
    es.search(index=topic, query={"term": {"n": "1"}})
    es.indices.delete(index=topic)
    _cleanup(Stack(settings=Settings(), bootstrap=bootstrap, es_url=es_url), "warmup-")


@dataclass
class Names:
    """Per-test isolation: prefix for Kafka topics and Elasticsearch indices/templates."""

    prefix: str

    def topic(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def index(self, name: str) -> str:
        return f"{self.prefix}{name}"


@pytest.fixture
def names(request, stack: Stack):
    n = Names(prefix=f"t{uuid.uuid4().hex[:10]}-")
    yield n
    if os.environ.get("SIPSCOPE_TEST_KEEP_TOPICS"):  # debugging a failure: keep the topics and indices
        print(f"\nkept topics and indices of prefix {n.prefix}")
        return
    _cleanup(stack, n.prefix)


def _cleanup(stack: Stack, prefix: str) -> None:
    from confluent_kafka.admin import AdminClient
    from elasticsearch import Elasticsearch

    try:
        admin = AdminClient({"bootstrap.servers": stack.bootstrap, "log_level": 0})
        topics = [t for t in admin.list_topics(timeout=10).topics if t.startswith(prefix)]
        if topics:
            for f in admin.delete_topics(topics, operation_timeout=10).values():
                f.result()
    except Exception:  # noqa: BLE001 - cleanup must not hide the test's own result
        pass
    try:
        es = Elasticsearch(stack.es_url)
        es.options(ignore_status=404).indices.delete(index=f"{prefix}*", expand_wildcards="all")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}*")
    except Exception:  # noqa: BLE001
        pass
