"""KafkaSink on a real broker: keyed by Call-ID, and no loss across a broker outage (disk spool)."""

from __future__ import annotations

import os
import subprocess
import sys
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


def _pcap_records(shared_testdata, name: str) -> list[SipMessage]:
    from producers.cli import _options, file_payloads
    from producers.pipeline import Stats, records_from

    s = Settings()
    path = str(shared_testdata / "pcaps" / name)
    return [r for r in records_from(file_payloads(path, None, s), _options(s, "test"), Stats()) if type(r) is SipMessage]


def test_capture_command_publishes_a_pcap_keyed_by_call_id(stack, names, shared_testdata, tmp_path):
    pcap = shared_testdata / "pcaps" / "call-basic-udp-via-proxy.pcap"
    env = dict(os.environ, SIPSCOPE_KAFKA__TOPIC_PREFIX=names.prefix, SIPSCOPE_CAPTURE__SPOOL_DIR=str(tmp_path / "spool"))
    out = subprocess.run([sys.executable, "-m", "sipscope.cli", "capture", "--pcap", str(pcap), "--quiet"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    s = Settings(kafka=KafkaSettings(bootstrap=stack.bootstrap, topic_prefix=names.prefix))
    got = _consume(stack.bootstrap, topics.name(topics.MESSAGES, s), 11)
    want = _pcap_records(shared_testdata, "call-basic-udp-via-proxy.pcap")
    assert len(got) == len(want) == 11
    assert sorted(records.decode(m.value(), SipMessage).id for m in got) == sorted(r.id for r in want)
    assert {m.key() for m in got} == {b"75104938772201062721@10.33.6.101"}


def test_broker_outage_mid_replay_spools_and_replays_exactly_once_in_order(private_kafka, tmp_path, shared_testdata):
    settings, paths, bootstrap = private_kafka
    s = Settings(kafka=KafkaSettings(bootstrap=bootstrap, topic_prefix="spool-"))
    topic = topics.name(topics.MESSAGES, s)
    topics.ensure(bootstrap, [topic], partitions=3)
    recs = _pcap_records(shared_testdata, "b2bua-freeswitch-100-calls-ipv4-fragmented-invites.pcap")
    assert len(recs) == 1400
    sink = KafkaSink(s, spool_dir=tmp_path / "spool", message_timeout_ms=3000, probe_interval=0.5)
    for r in recs[:500]:
        sink.publish(r)
    sink.flush(30)
    assert sink.delivered == 500 and not sink.degraded

    stackmod.down(settings, quiet=True)  # the broker stops mid-replay
    for r in recs[500:900]:
        sink.publish(r)
    sink.flush(8)  # in-flight records time out -> spool
    assert sink.degraded
    for r in recs[900:1100]:  # arrive while the broker is down: straight to the spool, after the failed ones
        sink.publish(r)
    assert sink.spool_depth == 600
    assert (tmp_path / "spool" / "spool.bin").stat().st_size > 0

    stackmod.start_kafka(settings, paths)  # the broker returns
    sink.flush(90)
    assert not sink.degraded and sink.spool_depth == 0
    for r in recs[1100:]:
        sink.publish(r)
    sink.close()

    got = [records.decode(m.value(), SipMessage) for m in _consume(bootstrap, topic, 1400)]
    assert len(got) == 1400, "every message arrives"
    assert sorted(r.id for r in got) == sorted(r.id for r in recs), "exactly once"
    pos = {r.id: i for i, r in enumerate(recs)}
    by_call: dict[str, list[int]] = {}
    for r in got:
        by_call.setdefault(r.call_id, []).append(pos[r.id])
    for call, order in by_call.items():
        assert order == sorted(order), f"{call} kept its order"
