"""KafkaSink: publish capture records to Kafka without loss, riding out broker outages on a disk spool.

* confluent-kafka idempotent producer, ``acks=all``, compression; key = Call-ID, so one call's messages
  stay in one partition, in order.
* Delivery reports drive error handling. A record whose delivery fails (broker unreachable beyond
  ``message.timeout.ms``) is appended to the :class:`~producers.spool.Spool`, and the sink switches to
  *degraded* mode: new records are held in memory until the producer's in-flight records have all
  resolved (so the spool keeps the original order), then appended to the spool.
* In degraded mode a background thread probes the broker every ``probe_interval`` seconds (publishing
  never blocks on a dead broker); when it answers, the
  spool is replayed in order, in chunks, and the sink goes back online once the spool is empty. A spool
  left on disk (the agent stopped during an outage) is replayed when the next agent starts.
* Duplicates are possible only for a record the broker stored but could not acknowledge; every record
  carries a stable id (:attr:`SipMessage.id`) that the indexer uses as document id, so they collapse.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from prometheus_client import Counter, Gauge

from sipscope import records, topics
from sipscope.logs import get_logger
from sipscope.records import Rejected, SipMessage
from sipscope.settings import Settings, get_settings

log = get_logger(__name__)

POLL_EVERY = 64
"""Produce calls between two ``poll(0)`` (delivery reports are served in batches; the queue holds 500,000)."""
DELIVERED = Counter("sipscope_kafka_delivered_total", "Records acknowledged by Kafka.", ["topic"])
SPOOLED = Counter("sipscope_spooled_total", "Records written to the disk spool during a broker outage.")
SPOOL_DROPPED = Counter("sipscope_spool_dropped_total", "Records refused because the disk spool was full.")
SPOOL_DEPTH = Gauge("sipscope_spool_depth", "Records waiting in the disk spool.")


class KafkaSink:
    name = "kafka"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        bootstrap: str | None = None,
        spool_dir: str | Path | None = None,
        spool_max_bytes: int | None = None,
        message_timeout_ms: int | None = None,
        probe_interval: float = 2.0,
        drain_chunk: int = 5000,
    ) -> None:
        from producers.spool import Spool

        s = settings or get_settings()
        self.settings = s
        self.topic_messages = topics.name(topics.MESSAGES, s)
        self.topic_rejected = topics.name(topics.REJECTED, s)
        bootstrap = bootstrap or s.kafka.bootstrap
        self._conf = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": s.capture.compression,
            "linger.ms": s.capture.linger_ms,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 500_000,
            "message.timeout.ms": message_timeout_ms or s.capture.message_timeout_ms,
            "log_level": 3,
        }
        self._p = Producer(self._conf)
        self._spool = Spool(spool_dir or s.capture.spool_dir, spool_max_bytes or s.capture.spool_max_bytes)
        self._hold: list[tuple[str, bytes | None, bytes]] = []
        self._degraded = len(self._spool) > 0
        self._probe_interval = probe_interval
        self._broker_up = threading.Event()
        self._closed = threading.Event()
        self._prober = threading.Thread(target=self._probe_loop, name="kafka-sink-probe", daemon=True)
        self._prober.start()
        self._drain_chunk = drain_chunk
        self.delivered = 0
        self._delivered_by_topic: dict[str, Any] = {}
        self._unpolled = 0
        self.spooled = 0
        self.dropped = 0
        SPOOL_DEPTH.set(len(self._spool))
        if self._degraded:
            log.warning("spool_backlog_found", records=len(self._spool), spool=str(self._spool.path))

    # ------------------------------------------------------------------ Sink protocol

    def publish(self, msg: SipMessage) -> None:
        self._send(self.topic_messages, msg.call_id.encode(), records.encode(msg))

    def reject(self, rej: Rejected) -> None:
        self._send(self.topic_rejected, rej.stage.encode(), records.encode(rej))

    def flush(self, timeout: float = 10) -> None:
        """Deliver everything queued; in degraded mode, try to drain the spool until ``timeout``."""
        deadline = time.monotonic() + timeout
        self._p.flush(max(0.0, timeout))
        while self._degraded and time.monotonic() < deadline:
            self._p.poll(0.1)
            self._move_hold()
            if not self._try_drain(force=True):
                time.sleep(min(self._probe_interval, max(0.0, deadline - time.monotonic())))

    def close(self, timeout: float = 30) -> None:
        self.flush(timeout)
        if len(self._spool):
            log.warning("spool_left_on_disk", records=len(self._spool), spool=str(self._spool.path),
                        hint="it is replayed when the next agent starts")
        self._closed.set()
        self._spool.close()

    @property
    def degraded(self) -> bool:
        return self._degraded

    @property
    def spool_depth(self) -> int:
        return len(self._spool)

    # ------------------------------------------------------------------ internals

    def _send(self, topic: str, key: bytes | None, value: bytes) -> None:
        if not self._degraded:
            try:
                self._p.produce(topic, value, key, on_delivery=self._on_delivery)
            except BufferError:
                self._p.poll(1.0)
                try:
                    self._p.produce(topic, value, key, on_delivery=self._on_delivery)
                except BufferError:
                    self._enter_degraded("local_queue_full")
                    self._hold.append((topic, key, value))
            self._unpolled += 1
            if self._unpolled >= POLL_EVERY:  # serve delivery reports in batches (poll costs ~1 us a call)
                self._unpolled = 0
                self._p.poll(0)
            return
        self._hold.append((topic, key, value))
        self._p.poll(0)
        self._move_hold()
        self._try_drain()

    def _on_delivery(self, err: KafkaError | None, msg) -> None:
        if err is None:
            self.delivered += 1
            topic = msg.topic()
            counter = self._delivered_by_topic.get(topic)
            if counter is None:
                counter = self._delivered_by_topic[topic] = DELIVERED.labels(topic)
            counter.inc()
            return
        if not self._degraded:
            self._enter_degraded(err.name())
        self._to_spool(msg.topic(), msg.key(), msg.value())

    def _enter_degraded(self, why: str) -> None:
        self._degraded = True
        self._broker_up.clear()
        log.warning("kafka_unreachable_spooling", reason=why, spool=str(self._spool.path))

    def _to_spool(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self._spool.append(topic, key, value):
            self.spooled += 1
            SPOOLED.inc()
        else:
            self.dropped += 1
            SPOOL_DROPPED.inc()
            log.error("spool_full_record_dropped", spool=str(self._spool.path), max_bytes=self._spool.max_bytes)
        SPOOL_DEPTH.set(len(self._spool))

    def _move_hold(self) -> None:
        """Once no record is in flight, held records go to the spool (after the failed in-flight ones)."""
        if self._hold and len(self._p) == 0:
            for t, k, v in self._hold:
                self._to_spool(t, k, v)
            self._hold.clear()

    def _probe_loop(self) -> None:
        """Background broker probe while degraded, so publishing never blocks on a dead broker."""
        while not self._closed.wait(self._probe_interval):
            if not self._degraded:
                continue
            try:
                self._p.list_topics(timeout=2.0)
                self._broker_up.set()
            except KafkaException:
                self._broker_up.clear()

    def _try_drain(self, force: bool = False) -> bool:
        """Replay the spool if the broker answers. True when the sink is back online."""
        if self._hold or len(self._p):
            return False
        if not self._broker_up.is_set():
            if not force:
                return False
            try:  # flush()/close() may wait: ask directly
                self._p.list_topics(timeout=min(2.0, self._probe_interval))
            except KafkaException:
                return False
        while len(self._spool):
            chunk = self._spool.peek(self._drain_chunk)
            failed: list[KafkaError] = []

            def on_drain(err, msg, failed=failed):
                if err is None:
                    self.delivered += 1
                    DELIVERED.labels(msg.topic()).inc()
                else:
                    failed.append(err)

            for _, t, k, v in chunk:
                while True:
                    try:
                        self._p.produce(t, v, k, on_delivery=on_drain)
                        break
                    except BufferError:
                        self._p.poll(0.5)
            self._p.flush(self._conf["message.timeout.ms"] / 1000 + 5)
            if failed:
                log.warning("spool_replay_interrupted", error=failed[0].name(), pending=len(self._spool))
                self._broker_up.clear()
                return False
            self._spool.commit(chunk[-1][0], len(chunk))
            SPOOL_DEPTH.set(len(self._spool))
        self._degraded = False
        log.info("kafka_back_spool_drained")
        return True
