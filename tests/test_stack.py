"""The real local stack: Kafka answers (confluent-kafka and aiokafka), Elasticsearch is Elasticsearch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from elasticsearch import Elasticsearch

from sipscope import stack as stackmod

pytestmark = pytest.mark.stack


def _create_topic(bootstrap: str, topic: str, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic].result(timeout=30)


def test_status_reports_both_services_answering(stack):
    s = stackmod.status(stack.settings)
    assert s["kafka"]["answering"] is True
    assert s["kafka"]["address"] == "127.0.0.1:9092"
    assert s["elasticsearch"]["answering"] is True
    assert s["elasticsearch"]["health"] in ("green", "yellow")
    out = subprocess.run([sys.executable, "-m", "sipscope.cli", "stack", "status"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "127.0.0.1:9092" in out.stdout and "answering" in out.stdout
    assert "http://127.0.0.1:9200" in out.stdout


def test_elasticsearch_client_info_is_real_elasticsearch(stack):
    es = Elasticsearch(stack.es_url)
    info = es.info()
    assert info["version"]["number"] == stackmod.ES_VERSION
    assert info["tagline"] == "You Know, for Search"
    assert es.cluster.health()["status"] in ("green", "yellow")


def test_confluent_kafka_produce_consume(stack, names):
    topic = names.topic("roundtrip")
    _create_topic(stack.bootstrap, topic)
    p = Producer({"bootstrap.servers": stack.bootstrap, "enable.idempotence": True, "acks": "all"})
    payloads = {f"call-{i}".encode(): f"INVITE sip:{i}@x SIP/2.0".encode() for i in range(20)}
    delivered = []
    for k, v in payloads.items():
        p.produce(topic, key=k, value=v, on_delivery=lambda err, msg: delivered.append(err))
    assert p.flush(30) == 0
    assert delivered == [None] * 20
    c = Consumer({"bootstrap.servers": stack.bootstrap, "group.id": f"g-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = {}
    try:
        for _ in range(200):
            m = c.poll(0.5)
            if m is None or m.error():
                if len(got) == len(payloads):
                    break
                continue
            got[m.key()] = m.value()
            if len(got) == len(payloads):
                break
    finally:
        c.close()
    assert got == payloads


def test_aiokafka_produce_consume(stack, names):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic as AioNewTopic

    topic = names.topic("aio")

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
        await admin.start()
        try:
            # topic creation through aiokafka: what Faust does on Kafka 4 (needs aiokafka >= 0.13)
            await admin.create_topics([AioNewTopic(topic, num_partitions=2, replication_factor=1)])
        finally:
            await admin.close()
        prod = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", enable_idempotence=True)
        await prod.start()
        try:
            for i in range(10):
                await prod.send_and_wait(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
        finally:
            await prod.stop()
        cons = AIOKafkaConsumer(topic, bootstrap_servers=stack.bootstrap, group_id=f"g-{uuid.uuid4().hex}", auto_offset_reset="earliest")
        await cons.start()
        got = {}
        try:
            async with asyncio.timeout(30):
                async for m in cons:
                    got[m.key] = m.value
                    if len(got) == 10:
                        break
        finally:
            await cons.stop()
        return got

    got = asyncio.run(run())
    assert got == {f"k{i}".encode(): f"v{i}".encode() for i in range(10)}
