"""Helpers of the indexer tests: per-test settings, feeding Kafka, running an indexer in a thread.

Imported by the test modules (``from ixhelpers import ...``); the fixtures are in conftest.py.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from elastic_transport import TransportError
from elasticsearch import ApiError

from indexers.indexer import Indexer
from sipscope import records, topics
from sipscope.numbers import NumberPlan, normalise
from sipscope.records import SipMessage
from sipscope.settings import (
    ElasticsearchSettings,
    IndexerSettings,
    KafkaSettings,
    NumberingSettings,
    Settings,
    StackSettings,
)

PCAPS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "pcaps"
PLAN_PT = NumberingSettings(country_code="351", trunk_prefix="0", international_prefix="00")
"""Numbering of the test captures: +351 numbers appear in them, so national forms (0...) make sense."""


def make_settings(stack, prefix: str, tmp: Path, es_url: str | None = None, **indexer) -> Settings:
    ix = {"group_id": f"{prefix}indexer", "batch_size": 500, "flush_interval": 0.2, "session_timeout_ms": 6000,
          "sweep_interval": 0, "progress_interval": 2.0, "backoff_initial": 0.2, "backoff_max": 2.0}
    ix.update(indexer)
    return Settings(
        kafka=KafkaSettings(bootstrap=stack.bootstrap, topic_prefix=prefix, partitions=3),
        elasticsearch=ElasticsearchSettings(url=es_url or stack.es_url, index_prefix=prefix),
        numbering=PLAN_PT, indexer=IndexerSettings(**ix), stack=StackSettings(),
        capture={"spool_dir": tmp / "spool"}, log_json=True,
    )


def ensure_topics(settings: Settings, *names: str) -> None:
    names = names or (topics.MESSAGES, topics.REJECTED)
    topics.ensure(settings.kafka.bootstrap, [topics.name(t, settings) for t in names], settings.kafka.partitions)


def publish_pcap(settings: Settings, name: str, retime: bool = True) -> list[SipMessage]:
    """Replay a capture through the real capture path (parser -> records -> KafkaSink), shifted so it ends now."""
    from producers.cli import file_payloads, last_capture_time
    from producers.kafka_sink import KafkaSink
    from producers.pipeline import Options, Stats, publish_all, records_from, retimed

    path = PCAPS / name
    if not path.exists():
        pytest.skip(f"{path} is absent (third-party captures live outside the project)")
    ensure_topics(settings)
    payloads = file_payloads(str(path), None, settings)
    if retime:
        payloads = retimed(payloads, time.time() - last_capture_time(str(path)))
    recs = list(records_from(payloads, Options(plan=NumberPlan.from_settings(settings.numbering), node=settings.node), Stats()))
    sink = KafkaSink(settings, spool_dir=settings.capture.spool_dir)
    publish_all(recs, sink)
    sink.close(30)
    assert sink.spool_depth == 0
    return [r for r in recs if type(r) is SipMessage]


def synthetic_messages(n: int, start: float | None = None, calls: int = 50) -> list[SipMessage]:
    """n distinct messages (distinct ids) spread over the last minutes."""
    start = start or time.time() - 600
    out = []
    for i in range(n):
        num = f"+35191{i % calls:07d}"
        out.append(SipMessage(
            id=uuid.uuid4().hex, ts=start + i * 0.01, src_ip="192.0.2.1", src_port=5060, dst_ip="192.0.2.2",
            dst_port=5060, transport="udp", is_request=True, method="INVITE", call_id=f"call-{i % calls}@test",
            cseq_num=i, cseq_method="INVITE", from_user=num, from_user_e164=normalise(num, NumberPlan("351")),
            to_user="22200", to_user_e164="22200", raw=f"INVITE sip:22200@example.com SIP/2.0\r\nCSeq: {i} INVITE\r\n\r\n",
        ))
    return out


def produce(settings: Settings, topic: str, values: list[bytes], keys: list[bytes] | None = None) -> None:
    ensure_topics(settings, topic, topics.REJECTED)
    p = Producer({"bootstrap.servers": settings.kafka.bootstrap, "linger.ms": 5, "log_level": 3})
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topics.name(topic, settings), v, keys[i] if keys else None)
                break
            except BufferError:
                p.poll(0.2)
    assert p.flush(30) == 0


def produce_records(settings: Settings, topic: str, recs: list) -> None:
    produce(settings, topic, [records.encode(r) for r in recs], [getattr(r, "call_id", r.id).encode() for r in recs])


def consume_all(settings: Settings, topic: str, expect: int, timeout: float = 20.0) -> list:
    c = Consumer({"bootstrap.servers": settings.kafka.bootstrap, "group.id": uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "log_level": 3})
    c.subscribe([topics.name(topic, settings)])
    out: list = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) < expect:
            m = c.poll(0.3)
            if m is not None and not m.error():
                out.append(m)
        end = time.monotonic() + 1.0  # anything beyond what was expected
        while time.monotonic() < end:
            m = c.poll(0.2)
            if m is not None and not m.error():
                out.append(m)
    finally:
        c.close()
    return out


class IndexerThread:
    """An :class:`Indexer` running in a background thread (stop() joins it and re-raises its error)."""

    def __init__(self, settings: Settings, families: list[str] | None = None, exit_when_idle: float | None = None):
        self.indexer = Indexer(settings, families=families or ["messages"])
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(exit_when_idle,), daemon=True)

    def _run(self, exit_when_idle):
        try:
            self.indexer.run(exit_when_idle=exit_when_idle)
        except BaseException as exc:  # noqa: BLE001 - surfaced by stop()/join()
            self.error = exc

    def start(self) -> IndexerThread:
        self._thread.start()
        return self

    def wait_assigned(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.indexer._assigned and time.monotonic() < deadline:
            assert self._thread.is_alive(), f"indexer died: {self.error!r}"
            time.sleep(0.1)
        assert self.indexer._assigned, "the indexer got no partitions"

    def join(self, timeout: float = 60) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "indexer did not finish"
        if self.error:
            raise self.error

    def stop(self) -> None:
        self.indexer.stop()
        self.join()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


@contextlib.contextmanager
def running_indexer(settings: Settings, families: list[str] | None = None) -> Iterator[IndexerThread]:
    t = IndexerThread(settings, families).start()
    try:
        yield t
    finally:
        t.stop()


def wait_count(es, index: str, expected: int, timeout: float = 30.0, query: dict | None = None) -> int:
    """Refresh and count until ``expected`` documents are there (returns the last count)."""
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        try:
            es.options(ignore_status=404).indices.refresh(index=index, allow_no_indices=True, ignore_unavailable=True)
            n = es.count(index=index, query=query or {"match_all": {}}, allow_no_indices=True, ignore_unavailable=True)["count"]
        except (ApiError, TransportError):  # a daily index being created, a node recovering its shards
            n = max(n, 0)
        if n >= expected:
            return n
        time.sleep(0.3)
    return n
