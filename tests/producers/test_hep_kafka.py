"""`sipscope hep --sink kafka`: HEP3 over UDP in, SipMessage records in real Kafka out, keyed by Call-ID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
from confluent_kafka import Consumer

from producers.hep import HepPacket, encode_hep3
from sipscope import records, topics
from sipscope.records import Rejected, SipMessage
from sipscope.settings import KafkaSettings, Settings

pytestmark = pytest.mark.stack


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sip(i: int) -> bytes:
    return (f"OPTIONS sip:0289707501@carrier.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.1;branch=z9hG4bK{i}\r\n"
            f"From: <sip:+61299990000@10.1.1.1>;tag={i}\r\nTo: <sip:0289707501@carrier.example>\r\n"
            f"Call-ID: hep-{i}@10.1.1.1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()


def test_hep_collector_publishes_to_kafka(stack, names, tmp_path):
    port = _free_port()
    env = dict(os.environ, SIPSCOPE_KAFKA__TOPIC_PREFIX=names.prefix, SIPSCOPE_CAPTURE__SPOOL_DIR=str(tmp_path / "spool"),
               SIPSCOPE_HEP_AUTH_KEY="s3cret")
    proc = subprocess.Popen([sys.executable, "-m", "sipscope.cli", "hep", "--listen", f"127.0.0.1:{port}", "--sink", "kafka"],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(20):
                pkt = HepPacket(src_ip="10.1.1.1", dst_ip="10.2.2.2", src_port=5060, dst_port=5060, ts=1_790_000_000 + i + 0.25,
                                capture_id=7, auth_key="s3cret", payload=_sip(i), node_name="sbc-syd-1")
                s.sendto(encode_hep3(pkt), ("127.0.0.1", port))
            bad = HepPacket(src_ip="10.1.1.1", dst_ip="10.2.2.2", src_port=5060, dst_port=5060, ts=1_790_000_100,
                            capture_id=7, auth_key="wrong", payload=_sip(99))
            s.sendto(encode_hep3(bad), ("127.0.0.1", port))
        time.sleep(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    s = Settings(kafka=KafkaSettings(bootstrap=stack.bootstrap, topic_prefix=names.prefix))
    c = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    c.subscribe([topics.name(topics.MESSAGES, s), topics.name(topics.REJECTED, s)])
    msgs, rejs, idle = [], [], 0
    try:
        while idle < 20 and len(msgs) + len(rejs) < 21:
            m = c.poll(0.5)
            if m is None or m.error():
                idle += 1
                continue
            if m.topic().endswith(topics.MESSAGES):
                msgs.append((m.key(), records.decode(m.value(), SipMessage)))
            else:
                rejs.append(records.decode(m.value(), Rejected))
    finally:
        c.close()
    assert len(msgs) == 20
    assert {r.call_id for _, r in msgs} == {f"hep-{i}@10.1.1.1" for i in range(20)}
    assert all(k == r.call_id.encode() for k, r in msgs)
    r0 = next(r for _, r in msgs if r.call_id == "hep-0@10.1.1.1")
    assert r0.ts == pytest.approx(1_790_000_000.25)  # capture time from the HEP time chunks
    assert r0.node == "sbc-syd-1" and r0.src_ip == "10.1.1.1" and r0.dst_ip == "10.2.2.2"
    assert r0.to_user_e164 == "61289707501" and r0.from_user_e164 == "61299990000"
    assert [r.reason for r in rejs] == ["hep_auth_failed"]
