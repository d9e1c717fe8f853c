"""``sipscope index``: the sip.* topics -> daily Elasticsearch indices, at least once, never duplicated.

One loop, one thread::

    collect a batch (batch_size records or flush_interval seconds)
      -> decode each record; one that is not its topic's record type, or dated more than
         max_future_days ahead -> sip.rejected (bad_record, ts_in_future...)
      -> streaming_bulk, op type ``index``, ``_id`` = record id (a retry or replay overwrites, never adds)
           accepted                -> counted
           refused (400 mapping...) -> sip.rejected (es_mapping_error / es_rejected), counted
           429, 5xx, ES down        -> pause the partitions, back off, retry the rest of the batch,
                                       resume once Elasticsearch accepts it
      -> rejects delivered to Kafka -> offsets committed (synchronously)

Offsets are committed only after Elasticsearch accepted the batch (and its rejects reached
``sip.rejected``), so a crash at any point replays records that are then overwritten under the same
ids: nothing lost, nothing duplicated. While waiting for Elasticsearch the consumer keeps polling (so the
group does not evict it); records that arrive anyway are kept for the next batch and their partitions
paused. Processes with the same ``group_id`` share the partitions; a rebalance during a retry drops the
records of the partitions that moved (their new owner replays them from the last commit).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from indexers import documents, layout, metrics, retention
from indexers.documents import BadRecord
from indexers.errors import SetupError
from indexers.es import client as es_client
from indexers.families import Family, by_topic
from sipscope import records, topics
from sipscope.logs import get_logger
from sipscope.settings import Settings

log = get_logger(__name__)

_MAPPING_ERRORS = ("parsing", "mapping", "illegal_argument")
_NOT_OURS = (KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID,
             KafkaError._NO_OFFSET)


@dataclass
class _Item:
    msg: Message
    family: Family
    rec: Any
    lines: bytes
    """The item's two NDJSON lines of a ``_bulk`` body (:func:`indexers.documents.bulk_lines`)."""


@dataclass
class RunSummary:
    docs: int = 0
    rejected: int = 0
    retries: int = 0
    batches: int = 0
    seconds: float = 0.0
    by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def docs_per_s(self) -> float:
        return self.docs / self.seconds if self.seconds else 0.0


class Indexer:
    def __init__(self, settings: Settings, es: Elasticsearch | None = None, families: list[str] | None = None) -> None:
        self.settings = settings
        self.cfg = settings.indexer
        self.prefix = settings.elasticsearch.index_prefix
        self.families = by_topic(settings.kafka.topic_prefix, families or self.cfg.families)
        self.family_names = [f.name for f in self.families.values()]
        self.es = es or es_client(settings)
        self.rejected_topic = topics.name(topics.REJECTED, settings)
        self.summary = RunSummary()
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._gen = 0
        self._assigned: dict[tuple[str, int], int] = {}
        """Assigned partitions -> generation of the assignment (a re-assignment is a new generation)."""
        self._carry: list[Message] = []
        """Records polled while waiting (for Elasticsearch, for Kafka): the start of the next batch."""
        self._carry_paused: set[tuple[str, int]] = set()
        self._uncommitted: dict[tuple[str, int], int] = {}
        self._paused_since: float | None = None
        self._ilm = False
        self._next_sweep = 0.0
        self._next_progress = 0.0
        self._last_record = time.monotonic()
        self._progress_docs = 0
        self._error_logged: dict[tuple, float] = {}

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask :meth:`run` to return (from a signal handler or another thread)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self, exit_when_idle: float | None = None) -> RunSummary:
        """Index until :meth:`stop`, or, with ``exit_when_idle``, until no record arrived for that many
        seconds and every assigned partition is committed up to its end."""
        t0 = time.monotonic()
        self._prepare()
        if self.stopping:
            return self.summary
        self._consumer = Consumer(self._consumer_conf())
        self._producer = Producer({"bootstrap.servers": self.settings.kafka.bootstrap, "acks": "all",
                                   "enable.idempotence": True, "linger.ms": 20, "log_level": 3})
        self._consumer.subscribe(list(self.families), on_assign=self._on_assign, on_revoke=self._on_revoke,
                                 on_lost=self._on_lost)
        log.info("indexer_started", topics=list(self.families), group=self.cfg.group_id,
                 index_prefix=self.prefix, ilm=self._ilm, batch_size=self.cfg.batch_size)
        try:
            while not self.stopping:
                batch = self._collect()
                if batch:
                    self._handle(batch)
                self._periodic()
                if exit_when_idle is not None and time.monotonic() - self._last_record >= exit_when_idle and self._drained():
                    break
        finally:
            self.summary.seconds = time.monotonic() - t0
            self._close()
        return self.summary

    def _consumer_conf(self) -> dict[str, Any]:
        conf = {
            "bootstrap.servers": self.settings.kafka.bootstrap,
            "group.id": self.cfg.group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": self.cfg.session_timeout_ms,
            "heartbeat.interval.ms": min(3000, max(500, self.cfg.session_timeout_ms // 3)),
            "client.id": f"sipscope-indexer-{self.settings.node}",
            "fetch.min.bytes": self.settings.kafka.fetch_min_bytes,
            "fetch.wait.max.ms": self.settings.kafka.fetch_max_wait_ms,
            "log_level": 3,
        }
        if self.cfg.instance_id:
            conf["group.instance.id"] = self.cfg.instance_id
        return conf

    def _prepare(self) -> None:
        """Topics exist, index layout installed (waits for Elasticsearch, never gives up while running)."""
        wanted = [*self.families, self.rejected_topic]
        try:
            topics.ensure(self.settings.kafka.bootstrap, wanted, self.settings.kafka.partitions, timeout=10)
        except Exception as exc:  # noqa: BLE001 - Kafka may be restarting; subscribing works once it is back
            log.warning("kafka_topics_not_ensured", error=str(exc))
        backoff = self.cfg.backoff_initial
        while not self.stopping:
            try:
                if self.cfg.setup_on_start:
                    report = layout.setup(self.es, self.settings, self.family_names)
                    self._ilm = report.ilm
                    for w in report.warnings:
                        log.warning("setup_warning", detail=w)
                else:
                    self._ilm = layout.ilm_status(self.es)[0]
                return
            except (SetupError, TransportError) as exc:
                log.warning("elasticsearch_unavailable_at_start", error=str(exc), retry_in=backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.cfg.backoff_max)

    def _close(self) -> None:
        if self._producer is not None:
            self._producer.flush(10)
        if self._consumer is not None:
            try:
                self._consumer.close()
            except KafkaException as exc:
                log.warning("consumer_close_failed", error=str(exc))
        metrics.PAUSED.set(0)
        log.info("indexer_stopped", docs=self.summary.docs, rejected=self.summary.rejected,
                 retries=self.summary.retries, seconds=round(self.summary.seconds, 1))

    # ------------------------------------------------------------------ rebalance

    def _on_assign(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._gen += 1
        for tp in parts:
            self._assigned[(tp.topic, tp.partition)] = self._gen
        if self._paused_since is not None:
            consumer.assign(parts)
            consumer.pause(parts)
        log.info("partitions_assigned", partitions=_names(parts))

    def _on_revoke(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._forget(parts)
        log.info("partitions_revoked", partitions=_names(parts))

    def _on_lost(self, consumer: Consumer, parts: list[TopicPartition]) -> None:
        self._forget(parts)
        log.warning("partitions_lost", partitions=_names(parts))

    def _forget(self, parts: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in parts}
        for key in gone:
            self._assigned.pop(key, None)
            self._uncommitted.pop(key, None)
            try:
                metrics.LAG.remove(key[0], str(key[1]))
            except KeyError:
                pass
        self._carry = [m for m in self._carry if (m.topic(), m.partition()) not in gone]
        self._carry_paused -= gone

    # ------------------------------------------------------------------ batches

    def _collect(self) -> list[Message]:
        batch, self._carry = self._carry, []
        if self._carry_paused:
            self._consumer.resume([TopicPartition(t, p) for (t, p) in self._carry_paused if (t, p) in self._assigned])
            self._carry_paused.clear()
        deadline = time.monotonic() + self.cfg.flush_interval
        while len(batch) < self.cfg.batch_size and not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for m in self._consumer.consume(num_messages=self.cfg.batch_size - len(batch), timeout=remaining):
                if m.error():
                    self._kafka_error(m.error())
                else:
                    batch.append(m)
        if batch:
            self._last_record = time.monotonic()
        return [m for m in batch if (m.topic(), m.partition()) in self._assigned]

    def _handle(self, batch: list[Message]) -> None:
        gens = {key: self._assigned[key] for key in {(m.topic(), m.partition()) for m in batch}}
        items: list[_Item] = []
        rejects: list[records.Rejected] = []
        now, max_future = time.time(), self.cfg.max_future_days * 86400
        for m in batch:
            family = self.families[m.topic()]
            value, rec = m.value(), None
            try:
                rec = documents.decode(value, family)
                documents.check_time(rec, family, now, max_future)
                items.append(_Item(m, family, rec, documents.bulk_lines(rec, value, family, self.prefix)))
            except BadRecord as exc:
                rejects.append(self._reject(value, exc.reason, str(exc), rec, family))
        t0 = time.monotonic()
        outcome = self._bulk_until_accepted(items, gens)
        if outcome is None:  # stopping while Elasticsearch was down: nothing committed, replayed next time
            return
        moved, es_rejects = outcome
        metrics.BATCH_SECONDS.observe(time.monotonic() - t0)
        metrics.BATCH_DOCS.observe(len(batch))
        rejects += es_rejects
        if rejects and not self._publish_rejects(rejects):
            return
        self._commit(batch, gens, moved)
        self.summary.batches += 1

    def _reject(self, value: bytes | None, reason: str, detail: str, rec: Any, family: Family) -> records.Rejected:
        metrics.REJECTED.labels(family.name, reason).inc()
        self.summary.rejected += 1
        self.summary.by_reason[reason] = self.summary.by_reason.get(reason, 0) + 1
        if self._first_in(30, ("reject", family.name, reason)):  # a flood of bad input logs once per 30 s
            log.warning("record_rejected", family=family.name, reason=reason, detail=detail[:300],
                        total_for_reason=self.summary.by_reason[reason])
        return documents.rejected(value, reason, detail, rec, family, self.settings.node)

    # ------------------------------------------------------------------ Elasticsearch

    def _bulk_until_accepted(self, items: list[_Item], gens: dict) -> tuple[set, list] | None:
        """Write items until every one is accepted or refused for good. Returns (partitions that moved to
        another consumer meanwhile, rejects), or None when asked to stop before Elasticsearch came back."""
        pending, rejects, moved = items, [], set()
        backoff = self.cfg.backoff_initial
        while pending:
            results, exc = self._bulk(pending)
            retry: list[_Item] = []
            cause = None
            for item, (ok, info) in zip(pending, results):
                if ok:
                    metrics.DOCS.labels(item.family.name).inc()
                    self.summary.docs += 1
                    continue
                detail = next(iter(info.values()))
                status = detail.get("status") or 0
                if status == 429 or status >= 500 or status == 0:
                    retry.append(item)
                    cause = cause or ("es_429" if status == 429 else f"es_{status or 'error'}")
                else:
                    reason, text = _refusal(detail)
                    rejects.append(self._reject(item.msg.value(), reason, text, item.rec, item.family))
            if exc is not None:
                retry += pending[len(results):]
                cause = cause or f"es_unreachable:{type(exc).__name__}"
            pending = retry
            if not pending:
                break
            metrics.RETRIES.labels(cause.split(":")[0]).inc()
            self.summary.retries += 1
            self._pause(cause, exc)
            self._wait(backoff)
            if self.stopping:
                return None
            backoff = min(backoff * 2, self.cfg.backoff_max)
            moved |= {k for k, g in gens.items() if self._assigned.get(k) != g}
            pending = [it for it in pending if (it.msg.topic(), it.msg.partition()) not in moved]
        self._resume()
        return moved, rejects

    def _bulk(self, pending: list[_Item]) -> tuple[list[tuple[bool, dict]], Exception | None]:
        """One ``_bulk`` request per ``bulk_max_bytes`` of items. Returns ``(ok, {op: item result})`` per item
        in order (a request refused as a whole gives each of its items that status), and the transport error
        that stopped it early (the items after the answered ones are then retried)."""
        results: list[tuple[bool, dict]] = []
        start = 0
        try:
            while start < len(pending):
                end, size = start + 1, len(pending[start].lines)
                while end < len(pending) and size + len(pending[end].lines) <= self.cfg.bulk_max_bytes:
                    size += len(pending[end].lines)
                    end += 1
                body = b"".join(it.lines for it in pending[start:end])
                try:
                    resp = self.es.bulk(operations=body, filter_path="items.*.status,items.*.error")
                    answers = resp.get("items") or []
                except ApiError as exc:  # the request as a whole: 413, 429, 5xx...
                    error = {"type": "bulk_request_failed", "reason": str(exc)[:500]}
                    answers = [{"index": {"status": exc.meta.status, "error": error}}] * (end - start)
                if len(answers) != end - start:  # never seen; retried rather than guessed
                    answers = [{"index": {"status": 0, "error": {"type": "bulk_answer_mismatch"}}}] * (end - start)
                for answer in answers:
                    status = next(iter(answer.values())).get("status", 0)
                    results.append((200 <= status < 300, answer))
                start = end
        except TransportError as exc:  # connection refused/reset, timeout: the rest is retried
            return results, exc
        return results, None

    def _pause(self, cause: str, exc: Exception | None) -> None:
        metrics.PAUSED.set(1)
        if self._paused_since is not None:
            return
        self._paused_since = time.monotonic()
        parts = self._consumer.assignment()
        if parts:
            self._consumer.pause(parts)
        log.warning("elasticsearch_unavailable_pausing", cause=cause, error=str(exc) if exc else None,
                    partitions=len(parts))

    def _resume(self) -> None:
        if self._paused_since is None:
            return
        waited = time.monotonic() - self._paused_since
        self._paused_since = None
        parts = self._consumer.assignment()
        if parts:
            self._consumer.resume(parts)
        metrics.PAUSED.set(0)
        log.info("elasticsearch_back_resuming", waited_s=round(waited, 1), partitions=len(parts))

    def _wait(self, seconds: float) -> None:
        """Sleep while serving the consumer (group membership, rebalances); records that still arrive are
        kept for the next batch and their partitions paused."""
        deadline = time.monotonic() + seconds
        while not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._poll_keep(min(0.5, remaining))

    def _poll_keep(self, timeout: float) -> None:
        """One poll outside batch collection: a record it returns is kept for the next batch (never
        dropped: a later commit would skip it) and its partition paused until then."""
        m = self._consumer.poll(timeout)
        if m is None:
            return
        if m.error():
            self._kafka_error(m.error())
            return
        self._carry.append(m)
        tp = TopicPartition(m.topic(), m.partition())
        self._consumer.pause([tp])
        self._carry_paused.add((tp.topic, tp.partition))

    # ------------------------------------------------------------------ Kafka

    def _publish_rejects(self, rejects: list[records.Rejected]) -> bool:
        """Deliver the rejects to sip.rejected (waiting out a Kafka outage). False when stopping first."""
        todo = [records.encode(r) for r in rejects]
        backoff = self.cfg.backoff_initial
        while todo:
            failed: list[bytes] = []

            def on_delivery(err, msg, failed=failed):
                if err is not None:
                    failed.append(msg.value())

            for value in todo:
                while True:
                    try:
                        self._producer.produce(self.rejected_topic, value, documents.STAGE.encode(), on_delivery=on_delivery)
                        break
                    except BufferError:
                        self._producer.poll(0.5)
            while len(self._producer) and not self.stopping:
                self._producer.flush(1)
                self._poll_keep(0)
            if self.stopping and len(self._producer):
                return False
            todo = failed
            if todo:
                log.warning("rejects_not_delivered_retrying", count=len(todo), retry_in=backoff)
                self._wait(backoff)
                backoff = min(backoff * 2, self.cfg.backoff_max)
                if self.stopping:
                    return False
        return True

    def _commit(self, batch: list[Message], gens: dict, moved: set) -> None:
        for m in batch:
            key = (m.topic(), m.partition())
            if key in moved or self._assigned.get(key) != gens[key]:
                continue
            self._uncommitted[key] = max(self._uncommitted.get(key, -1), m.offset() + 1)
        if not self._uncommitted:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._uncommitted.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            err = exc.args[0]
            metrics.COMMITS_FAILED.inc()
            if err.code() in _NOT_OURS:
                self._uncommitted.clear()
            log.warning("offset_commit_failed", error=str(err), will_retry=bool(self._uncommitted))
            return
        self._uncommitted.clear()

    def _kafka_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        if err.fatal():
            log.error("kafka_fatal_error", error=err.str(), code=err.name())
            raise KafkaException(err)
        if self._first_in(30, ("kafka", err.code())):  # a broker outage repeats its error every second
            log.warning("kafka_error", error=err.str(), code=err.name())

    def _first_in(self, seconds: float, key: tuple) -> bool:
        """True at most once per ``seconds`` for ``key`` (log rate limiting)."""
        now = time.monotonic()
        if now < self._error_logged.get(key, 0.0):
            return False
        self._error_logged[key] = now + seconds
        return True

    def _lags(self) -> dict[tuple[str, int], int] | None:
        """Records not consumed yet per assigned partition, from the high watermark of the last fetch
        (no broker round trip: a request would queue behind the fetch long-poll); None while unknown."""
        parts = [TopicPartition(t, p) for (t, p) in self._assigned]
        if not parts:
            return None
        try:
            positions = self._consumer.position(parts)
            unknown = [tp for tp in positions if tp.offset < 0]
            if unknown:  # nothing consumed yet in this session: start from the group's committed offset
                known = {(tp.topic, tp.partition): tp.offset for tp in self._consumer.committed(unknown, timeout=10)}
            out = {}
            for tp in positions:
                low, high = self._consumer.get_watermark_offsets(tp, cached=True)
                if high < 0:
                    return None
                pos = tp.offset if tp.offset >= 0 else known.get((tp.topic, tp.partition), -1)
                out[(tp.topic, tp.partition)] = max(0, high - (pos if pos >= 0 else max(low, 0)))
            return out
        except KafkaException as exc:
            log.warning("lag_unknown", error=str(exc))
            return None

    def _drained(self) -> bool:
        lags = self._lags()
        return lags is not None and not any(lags.values()) and not self._carry and not self._uncommitted

    # ------------------------------------------------------------------ periodic work

    def _periodic(self) -> None:
        now = time.monotonic()
        if self._uncommitted:
            self._commit([], {}, set())
        if now >= self._next_progress:
            self._progress(now)
        if self.cfg.sweep_interval > 0 and not self._ilm and now >= self._next_sweep:
            self._next_sweep = now + self.cfg.sweep_interval
            try:
                deleted = retention.enforce(self.es, self.prefix, self.settings.elasticsearch.retention_days)
            except Exception as exc:  # noqa: BLE001 - a failed sweep is retried on schedule
                log.warning("retention_sweep_failed", error=str(exc))
            else:
                metrics.SWEPT.inc(len(deleted))
                if deleted:
                    log.info("retention_swept", deleted=deleted)

    def _progress(self, now: float) -> None:
        first = self._next_progress == 0.0
        self._next_progress = now + self.cfg.progress_interval
        if first:
            self._progress_docs = self.summary.docs
            return
        lags = self._lags() or {}
        for (t, p), lag in lags.items():
            metrics.LAG.labels(t, str(p)).set(lag)
        rate = (self.summary.docs - self._progress_docs) / self.cfg.progress_interval
        self._progress_docs = self.summary.docs
        log.info("indexer_progress", docs=self.summary.docs, docs_per_s=round(rate, 1),
                 rejected=self.summary.rejected, retries=self.summary.retries, lag=sum(lags.values()),
                 partitions=len(self._assigned), paused=self._paused_since is not None)


def _refusal(detail: dict) -> tuple[str, str]:
    """(stable reason, detail text) of a document Elasticsearch refused for good."""
    err = detail.get("error")
    if isinstance(err, dict):
        etype = str(err.get("type", ""))
        text = f"{detail.get('status')} {etype}: {err.get('reason')}"
        cause = err.get("caused_by")
        if isinstance(cause, dict):
            text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
    else:
        etype, text = "", f"{detail.get('status')} {err}"
    reason = "es_mapping_error" if any(k in etype for k in _MAPPING_ERRORS) else "es_rejected"
    return reason, text


def _names(parts: list[TopicPartition]) -> list[str]:
    return [f"{tp.topic}[{tp.partition}]" for tp in parts]
