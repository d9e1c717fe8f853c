"""KafkaSink on a real broker: keyed by Call-ID, and no loss across a broker outage (disk spool)."""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from producers.kafka_sink import KafkaSink
from sipscope import records, stack as stackmod, topics
from sipscope.records import SipMessage
from sipscope.settings import KafkaSettings, Settings, StackSettings

pytestmark = pytest.mark.stack


def _msg(i: int, call: int) -> SipMessage:
    raw = f"INVITE sip:{i}@example.com SIP/2.0\r\nCall-ID: call-{call}\r\nCSeq: {i} INVITE\r\n\r\n"
    return SipMessage(id=uuid.uuid4().hex, ts=1_700_000_000 + i, src_ip="10.0.0.1", src_port=5060, dst_ip="10.0.0.2",
                      dst_port=5060, transport="udp", is_request=True, method="INVITE", call_id=f"call-{call}",
                      cseq_num=i, cseq_method="INVITE", raw=raw)


def _consume(bootstrap: str, topic: str, n: int, timeout_polls: int = 240) -> list:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    out, idle = [], 0
    try:
        while idle < timeout_polls:
            m = c.poll(0.5)
            if m is None or m.error():
                idle += 1
                if len(out) >= n and idle > 6:
                    break
                continue
            out.append(m)
    finally:
        c.close()
    return out


def test_records_keyed_by_call_id(stack, names, tmp_path):
    s = Settings(kafka=KafkaSettings(bootstrap=stack.bootstrap, topic_prefix=names.prefix))
    topics.ensure(stack.bootstrap, [topics.name(topics.MESSAGES, s)], partitions=3)
    sink = KafkaSink(s, spool_dir=tmp_path / "spool")
    for i in range(30):
        sink.publish(_msg(i, i % 5))
    sink.close()
    assert sink.delivered == 30 and sink.spool_depth == 0
    got = _consume(stack.bootstrap, topics.name(topics.MESSAGES, s), 30)
    assert len(got) == 30
    part_of = {}
    for m in got:
        rec = records.decode(m.value(), SipMessage)
        assert m.key() == rec.call_id.encode()
        assert part_of.setdefault(rec.call_id, m.partition()) == m.partition()


@pytest.fixture
def private_kafka(tmp_path_factory):
    base = Path("/var/tmp") if os.geteuid() == 0 else tmp_path_factory.mktemp("k")
    st = StackSettings(state_dir=base / f"sipscope-spooltest-{os.getpid()}", kafka_port=29092, kafka_controller_port=29093)
    settings = Settings(stack=st)
    paths = stackmod.paths_for(settings)
    stackmod.start_kafka(settings, paths)
    yield settings, paths, "127.0.0.1:29092"
    stackmod.down(settings, quiet=True)
    subprocess.run(["rm", "-rf", str(st.state_dir)], check=False)


def test_broker_outage_spools_and_replays_exactly_once_in_order(private_kafka, tmp_path, stack):
    settings, paths, bootstrap = private_kafka
    s = Settings(kafka=KafkaSettings(bootstrap=bootstrap, topic_prefix="spool-"))
    topic = topics.name(topics.MESSAGES, s)
    topics.ensure(bootstrap, [topic], partitions=3)
    sink = KafkaSink(s, spool_dir=tmp_path / "spool", message_timeout_ms=3000, probe_interval=0.5)
    seq = 0
    sent = []

    def publish(n):
        nonlocal seq
        for _ in range(n):
            m = _msg(seq, seq % 7)
            sent.append(m.id)
            sink.publish(m)
            seq += 1

    publish(200)
    sink.flush(30)
    assert sink.delivered == 200 and not sink.degraded

    stackmod.down(settings, quiet=True)  # broker stops mid-replay
    publish(300)
    sink.flush(8)  # in-flight records time out -> spool
    assert sink.degraded
    publish(100)  # arrive while the broker is down: straight to the spool, after the failed ones
    assert sink.spool_depth == 400
    assert (tmp_path / "spool" / "spool.bin").stat().st_size > 0

    stackmod.start_kafka(settings, paths)  # broker returns
    sink.flush(90)
    assert not sink.degraded and sink.spool_depth == 0
    publish(100)
    sink.close()

    got = _consume(bootstrap, topic, 700)
    ids = [records.decode(m.value(), SipMessage).id for m in got]
    assert len(ids) == 700, "every message arrives"
    assert len(set(ids)) == 700 and set(ids) == set(sent), "exactly once"
    by_call: dict[str, list[int]] = {}
    for m in got:
        r = records.decode(m.value(), SipMessage)
        by_call.setdefault(r.call_id, []).append(r.cseq_num)
    for call, seqs in by_call.items():
        assert seqs == sorted(seqs), f"{call} kept its order"
