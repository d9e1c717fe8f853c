"""``sipscope worker``: the Faust app. A thin adapter: Kafka and tables in, :mod:`streams.worker` decides.

Topology (names carry ``kafka.topic_prefix``)::

    sip.messages --agent correlate--> Shard per partition (streams.worker) --> sip.calls, sip.registrations
         |                                   |                                 --> sip.rejected (bad input)
         |                    tables "calls" / "registrations" (changelog-backed, keyed by Call-ID)
    @app.timer(tick_s): idle partitions move on by the wall clock; finished-call markers expire

* Input ``sip.messages`` is keyed by Call-ID, so a call's messages reach one partition, in order. The
  agent takes them in batches (``worker.batch_max`` within ``worker.batch_within_s``), feeds each to
  its partition's :class:`~streams.worker.Shard`, publishes the summaries (key = Call-ID, value =
  :func:`sipscope.records.encode`), writes the changed states to the tables (one write per Call-ID per
  batch), waits for Kafka to acknowledge the batch's final summaries, then writes their markers. The batch
  is acknowledged to Faust when that is done; Faust flushes the producer before it commits offsets
  (``processing_guarantee="at_least_once"``), so a committed offset means its effects are durable.
* Tables use the ``memory://`` store: on start (and after a rebalance) Faust replays their changelog
  topics (``<app_id>-calls-changelog``...), then the shards are rebuilt from them: the calls a stopped or
  killed worker held resume where they were. Table partitions follow the source partitions (each entry
  records its partition), never a key hash.
* Event time per partition: every message moves its shard's watermark (the engines' timers fire from it).
  A partition that got nothing for ``worker.idle_s`` and has nothing left to read is moved to
  ``wall clock - worker.clock_lag_s`` by the timer, so the last calls of a quiet link (or of a replayed
  capture) still close. ``clock_lag_s`` is the allowance for capture-to-worker delay and clock skew.
* A value that is not a SipMessage goes to ``sip.rejected`` (``bad_record``, ``unsupported_schema_version``),
  and so does a message the engine raised on (``engine_error``); the worker goes on.

Delivery: at least once on the topics; exactly once counted by record ``id`` (see :mod:`streams.worker`).

Known limit of faust-streaming 0.15.3, and what the worker does about it: during a rebalance Faust discards
records fetched in the previous consumer generation (its generation check in the stream iterator, and the
buffers it clears when the flow is suspended); when the new generation keeps the partition and does not seek
back, those records are never delivered. The runtime knows the next offset of every partition (the committed
offset after an assignment, or the earliest one for a partition the group never committed, then each record it
read), so it sees such a hole at the first record after it, seeks the partition back to the hole and skips
what was already fetched beyond it until the hole's first record comes again (``offset_hole_rewind`` log,
``sipscope_worker_rewinds_total``). A hole at the end of what the partition held has no record after it: the
tick sees it instead, as a partition with records left that delivered nothing for ``worker.stall_s`` although
its consumer fetched past them, and seeks back the same way (``offset_tail_rewind``). A hole that does not
come back within ``worker.rewind_timeout_s`` (records deleted by retention meanwhile) is counted as lost
(``offset_gap`` error log, ``sipscope_worker_offset_gaps_total``). This relies on offsets that never skip on
the input topics: sipscope's producers are idempotent but not transactional and the topics are not compacted
(a transactional producer's commit markers would each look like a hole and cost ``rewind_timeout_s``). The
rest of the guarantee is below.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust
from faust.sensors.monitor import Monitor
from prometheus_client import Counter, Gauge, start_http_server

from sipscope import records, topics
from sipscope.logs import get_logger
from sipscope.records import CallSummary, Registration, Rejected, SipMessage, StatsRow
from sipscope.settings import Settings
from streams import worker as wk
from streams.faust_fastpath import HookedApp, SipscopeApp, records_of

log = get_logger(__name__)

MESSAGES_IN = Counter("sipscope_worker_messages_total", "sip.messages records consumed by the worker.")
REPLAYED = Counter("sipscope_worker_replayed_total",
                   "Messages skipped because their effect was already in the tables (replay after a crash).")
OUTPUTS = Counter("sipscope_worker_outputs_total", "Records published by the worker.", ["topic"])
REJECTS = Counter("sipscope_worker_rejected_total", "Inputs sent to sip.rejected, by reason.", ["reason"])
LAG = Gauge("sipscope_worker_lag", "Messages not yet processed in an assigned sip.messages partition.", ["partition"])
OPEN = Gauge("sipscope_worker_open", "Calls / registration chains open in this worker.", ["kind"])
REWINDS = Counter("sipscope_worker_rewinds_total",
                  "Holes in the offsets Faust delivered, refetched by seeking the partition back.", ["partition"])
GAPS = Counter("sipscope_worker_offset_gaps_total",
               "Offsets Faust did not deliver between two consecutive records of a partition (it drops records "
               "fetched before a rebalance; see the report in streams/app.py).", ["partition"])
WATERMARK = Gauge("sipscope_worker_watermark_seconds", "Event-time watermark of a partition.", ["partition"])


class RawSchema(faust.Schema):
    """Key and value exactly as Kafka gave them: sipscope decodes with msgspec itself (skips Faust's
    codec registry, a few percent of the per-message cost)."""

    def loads_key(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.key

    def loads_value(self, app: Any, message: Any, *, loads: Any = None, serializer: Any = None) -> Any:
        return message.value


class LeanMonitor(Monitor):
    """Faust's monitor without its per-event bookkeeping (timings for Faust's web views, which the worker
    does not serve); the worker's Prometheus metrics count what matters."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any, state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None


def prepare_topics(settings: Settings, app_id: str | None = None, tables: tuple[str, ...] = (wk.CALLS, wk.REGISTRATIONS)) -> int:
    """Create the sip.* topics when missing, and the app's changelogs (compacted, with the source's partition
    count, before Faust looks for them); returns the partition count of ``sip.messages``."""
    from confluent_kafka.admin import AdminClient, NewTopic

    names = [topics.name(t, settings) for t in topics.ALL]
    topics.ensure(settings.kafka.bootstrap, names, settings.kafka.partitions)
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap, "log_level": 0})
    md = admin.list_topics(timeout=30)
    n = len(md.topics[topics.name(topics.MESSAGES, settings)].partitions)
    changelogs = [f"{app_id or settings.worker.app_id}-{t}-changelog" for t in tables]
    new = [NewTopic(t, num_partitions=n, replication_factor=1, config={"cleanup.policy": "compact"})
           for t in changelogs if t not in md.topics]
    for fut in (admin.create_topics(new, operation_timeout=30).values() if new else ()):
        try:
            fut.result(timeout=30)
        except Exception as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise
    return n


def _label(tp: Any) -> str:
    """Metric label of an input partition: its number for sip.messages, else ``topic:partition``."""
    return str(tp.partition) if tp.topic.endswith(topics.MESSAGES) else f"{tp.topic}:{tp.partition}"


async def _admit(app: faust.App, tp: Any, cur: wk.Cursor, offset: int, wall: float, timeout_s: float,
                 counts: dict[str, int]) -> bool:
    """Whether the record at ``offset`` of ``tp`` is to be processed now (the caller then notes it in
    ``cur``). A record after a hole (offsets ``cur.position + 1 .. offset - 1`` never delivered: see "Known
    limit" above): the first time, seek the partition back to the hole and skip what arrives until the
    hole's first record comes again (False; Faust commits no offset past the unacknowledged hole meanwhile).
    Only if the hole never comes back within ``timeout_s`` (records deleted by retention) is it counted as
    lost and processing goes on (True)."""
    expected = cur.position + 1
    if cur.anchored and offset > expected:
        if cur.rewind is None:
            await _seek_back(app, tp, cur, wall, timeout_s, counts, "offset_hole_rewind", got=offset)
            return False
        if wall < cur.rewind[1]:
            return False
        cur.rewind = None
        GAPS.labels(_label(tp)).inc(offset - expected)
        counts["offset_gaps"] += offset - expected
        log.error("offset_gap", topic=tp.topic, partition=tp.partition, expected=expected, got=offset,
                  hint="records between were not delivered again after a seek back; their effect is lost")
    elif cur.rewind is not None and offset == expected:
        log.info("offset_hole_refetched", topic=tp.topic, partition=tp.partition, offset=offset)
        cur.rewind = None
    return True


async def _tail_hole(app: faust.App, tp: Any, cur: wk.Cursor, hw: int | None, wall: float, w: Any,
                     counts: dict[str, int]) -> None:
    """A hole at the end of what ``tp`` held: records are left to read (``hw``), nothing was delivered for
    ``w.stall_s``, and the consumer fetched past them, so Faust dropped them and no later record shows that
    hole to :func:`_admit`: seek back to it. A consumer that has not fetched them yet (paused, slow) is left
    alone."""
    if hw is None or cur.position + 1 >= hw or wall - cur.last_message_wall < w.stall_s:
        return
    if not cur.anchored or (cur.rewind is not None and wall < cur.rewind[1]):
        return
    try:
        fetched = await app.consumer.position(tp)
    except Exception:  # noqa: BLE001 - not assigned any more
        return
    if fetched is not None and fetched > cur.position + 1:
        await _seek_back(app, tp, cur, wall, w.rewind_timeout_s, counts, "offset_tail_rewind", fetched_to=fetched,
                         highwater=hw)


async def _seek_back(app: faust.App, tp: Any, cur: wk.Cursor, wall: float, timeout_s: float, counts: dict[str, int],
                     event: str, **fields: Any) -> None:
    """Seek ``tp`` back to the record after the last one read, to refetch a hole (``event``: the log line);
    :func:`_admit` skips what arrives until that record comes, for ``timeout_s``."""
    expected = cur.position + 1
    cur.rewind = (expected, wall + timeout_s)
    counts["rewinds"] += 1
    REWINDS.labels(_label(tp)).inc()
    log.warning(event, topic=tp.topic, partition=tp.partition, expected=expected, **fields)
    consumer = app.consumer
    if hasattr(consumer, "forget_gaps"):
        consumer.forget_gaps(tp, expected)  # packed records' gaps above the hole: not done yet
    await consumer.seek(tp, expected)


async def _start_offsets(app: faust.App, tps: list[Any]) -> dict[Any, int]:
    """Next offset to read of each of ``tps`` after an assignment: the committed one, else the earliest
    (where the consumer starts when the group never committed the partition); partitions whose earliest
    offset cannot be had are left out (holes are then seen only between records read)."""
    committed = app.consumer._committed_offset  # Faust's seek on assignment fills it
    out: dict[Any, int] = {}
    unknown = []
    for tp in tps:
        c = committed.get(tp)
        if c:
            out[tp] = c
        else:
            unknown.append(tp)
    if unknown:
        try:
            earliest = await app.consumer.earliest_offsets(*unknown)
        except Exception as exc:  # noqa: BLE001
            log.warning("earliest_offsets_unknown", partitions=[f"{tp.topic}:{tp.partition}" for tp in unknown],
                        error=repr(exc))
            return out
        out.update((tp, e) for tp, e in earliest.items() if e is not None)
    return out


class Runtime:
    """State of one worker process: the shards of its partitions, and how batches and ticks reach them."""

    def __init__(self, app: faust.App, settings: Settings, source: str, tables: dict[str, Any]) -> None:
        self.app = app
        self.s = settings
        self.w = settings.worker
        self.source = source
        self.tables = tables
        self.t_calls = topics.name(topics.CALLS, settings)
        self.t_regs = topics.name(topics.REGISTRATIONS, settings)
        self.t_rejected = topics.name(topics.REJECTED, settings)
        self.changelogs = {name: t.changelog_topic.get_topic_name() for name, t in tables.items()}
        self.shards: dict[int, wk.Shard] | None = None
        self.held: dict[int, wk.Shard] = {}
        """Shards of the partitions held before a rebalance, until :meth:`_ready` keeps or drops them."""
        self.lock = asyncio.Lock()
        self.counts = {"messages": 0, "calls": 0, "interim": 0, "registrations": 0, "rejected": 0, "replayed": 0,
                       "rewinds": 0, "offset_gaps": 0}
        self._next_progress = time.monotonic() + self.w.progress_s

    # -- shards ---------------------------------------------------------------------------------------

    async def _ready(self, events: list[Any] | None = None) -> dict[int, wk.Shard] | None:
        """The shards, after a rebalance. The tick waits for Faust's recovery; delivered events never wait:
        Faust delivers them only from recovered partitions, and a batch taken before a rebalance may still
        arrive while the next one has begun (its partitions are revoked only after the batch is done).

        A partition this process held before the rebalance keeps its shard when nobody committed past what
        the shard processed: the shard is then the newest state there is (its last writes may not be in the
        changelog yet, and Faust's recovery of a kept partition re-applies the changelog records written
        since the previous recovery over the table, older values included). Any other partition is
        rebuilt from the tables."""
        if self.shards is not None:
            return self.shards
        app = self.app
        if events is None and (app.rebalancing or not app.tables.recovery.completed.is_set()):
            return None
        mine = {tp.partition for tp in app.consumer.assignment() if tp.topic == self.source}
        mine |= {ev.message.partition for ev in events or ()}
        committed = app.consumer._committed_offset  # next offset to read, per partition (Faust's seek on assignment)
        held, self.held = self.held, {}
        shards: dict[int, wk.Shard] = {}
        kept: list[int] = []
        for p in sorted(mine):
            c = committed.get(faust.types.TP(self.source, p))
            old = held.get(p)
            if old is not None and old.anchored and (not c or c <= old.position + 1):
                old.last_message_wall = time.time()  # the rebalance held its records back: not idle
                shards[p] = old
                kept.append(p)
            else:
                shards[p] = wk.Shard(p, self.s.correlation, done_keep_s=self.w.done_keep_s)
        t0 = time.perf_counter()
        foreign = 0
        fresh = {p: shard for p, shard in shards.items() if p not in kept}
        if fresh:
            for name, table in self.tables.items():
                for key, value in list(table.data.items()):
                    if value is None:
                        continue
                    entry = wk.decode_entry(name, value)
                    shard = fresh.get(entry.p)
                    if shard is None:
                        foreign += 1
                        continue
                    shard.load(name, key, entry)
        for p, shard in fresh.items():
            shard.loaded()
        await self._anchor(fresh)
        self.shards = shards
        log.info("partitions_loaded", partitions=sorted(mine), kept=kept, seconds=round(time.perf_counter() - t0, 3),
                 open=sum(s.stats["loaded_open"] for s in fresh.values()),
                 finished_markers=sum(s.stats["loaded_done"] for s in fresh.values()), other_partitions=foreign)
        return shards

    async def _anchor(self, shards: dict[int, wk.Shard]) -> None:
        """Where each loaded shard starts reading (:func:`_start_offsets`). Anchored, a shard sees a hole even
        before its first record, or with no record after it."""
        start = await _start_offsets(self.app, [faust.types.TP(self.source, p) for p in shards])
        for tp, offset in start.items():
            shards[tp.partition].anchor(offset)

    async def on_revoked(self, sender: Any = None, revoked: Any = None, **_: Any) -> None:
        async with self.lock:
            if self.shards is not None:
                log.info("partitions_revoked", partitions=sorted(self.shards))
                self.held = self.shards
            self.shards = None

    # -- processing -----------------------------------------------------------------------------------

    async def process(self, events: list[Any]) -> None:
        """One batch of ``sip.messages`` events (acknowledged to Faust when this returns)."""
        async with self.lock:
            shards = await self._ready(events)
            assert shards is not None
            outputs: list[Any] = []
            rejects: list[Rejected] = []
            touched: dict[int, wk.Shard] = {}
            wall = time.time()
            n = 0
            for ev in events:
                skipped = False
                for m in records_of(ev):
                    n += 1
                    value = m.value
                    shard = shards.get(m.partition)
                    if shard is None:
                        shard = shards[m.partition] = self._new_shard(m.partition)
                    touched[m.partition] = shard
                    if (shard.rewind is not None or (shard.anchored and m.offset > shard.position + 1)) \
                            and not await _admit(self.app, faust.types.TP(self.source, m.partition), shard, m.offset,
                                                 wall, self.w.rewind_timeout_s, self.counts):
                        skipped = True
                        continue  # refetching from a hole: this record comes again
                    shard.note(m.offset, wall)
                    rec = wk.decode_message(value)
                    if type(rec) is Rejected:
                        rejects.append(rec)
                        continue
                    try:
                        out = shard.feed(m.offset, rec)
                    except Exception as exc:  # noqa: BLE001 - one bad message must not stop the worker
                        log.warning("engine_error", call_id=rec.call_id, partition=m.partition, offset=m.offset,
                                    error=repr(exc))
                        rejects.append(wk.rejected(value, "engine_error", repr(exc), rec))
                        continue
                    if out:
                        outputs.extend(out)
                if skipped:
                    ev.message.incref()  # never acknowledged: its offsets come again after the seek
            self.counts["messages"] += n
            MESSAGES_IN.inc(n)
            await self._publish(outputs, rejects, touched.values())

    def _new_shard(self, partition: int) -> wk.Shard:
        log.warning("unexpected_partition", partition=partition)
        return wk.Shard(partition, self.s.correlation, done_keep_s=self.w.done_keep_s)

    async def tick(self) -> None:
        """Move idle partitions on by the wall clock; expire markers; metrics and progress."""
        async with self.lock:
            shards = await self._ready()
            if shards is None:
                return
            now = time.time()
            target = now - self.w.clock_lag_s
            outputs: list[Any] = []
            for p, shard in shards.items():
                hw = self._highwater(p)
                await _tail_hole(self.app, faust.types.TP(self.source, p), shard, hw, now, self.w, self.counts)
                if now - shard.last_message_wall >= self.w.idle_s and target > shard.watermark \
                        and await self._caught_up(p, shard, hw):
                    outputs.extend(shard.advance(target))
                if hw is not None:
                    LAG.labels(str(p)).set(max(0, hw - shard.position - 1))
                if shard.watermark > float("-inf"):
                    WATERMARK.labels(str(p)).set(shard.watermark)
            await self._publish(outputs, [], shards.values())
            OPEN.labels("calls").set(sum(len(s.corr.calls) for s in shards.values()))
            OPEN.labels("registrations").set(sum(len(s.corr.registrations) for s in shards.values()))
            if time.monotonic() >= self._next_progress:
                self._next_progress = time.monotonic() + self.w.progress_s
                replayed = sum(s.stats["replayed"] for s in shards.values())
                REPLAYED.inc(max(0, replayed - self.counts["replayed"]))
                self.counts["replayed"] = replayed
                log.info("progress", **self.counts, partitions=sorted(shards),
                         open_calls=sum(len(s.corr.calls) for s in shards.values()))

    async def _caught_up(self, partition: int, shard: wk.Shard, hw: int | None) -> bool:
        """Nothing left to read in the partition: its end is known and the consumer's position reached it
        (and this shard processed up to it, unless it processed nothing since it was loaded: then the
        ``idle_s`` grace after loading covers records fetched but still queued)."""
        if hw is None:
            return False
        try:
            pos = await self.app.consumer.position(faust.types.TP(self.source, partition))
        except Exception:  # noqa: BLE001 - not assigned any more, or not fetched yet
            return False
        return pos is not None and pos >= hw and (not shard.anchored or shard.position + 1 >= hw)

    def _highwater(self, partition: int) -> int | None:
        try:
            return self.app.consumer.highwater(faust.types.TP(self.source, partition))
        except Exception:  # noqa: BLE001 - not fetched yet
            return None

    async def _publish(self, outputs: list[Any], rejects: list[Rejected], shards: Any) -> None:
        producer = self.app.producer
        finals: list[asyncio.Future] = []
        for rec in outputs:
            if type(rec) is CallSummary:
                fut = await producer.send(self.t_calls, rec.call_id.encode(), records.encode(rec), None, None, None)
                if rec.final:
                    finals.append(fut)
                    self.counts["calls"] += 1
                else:
                    self.counts["interim"] += 1
                OUTPUTS.labels(topics.CALLS).inc()
            else:
                fut = await producer.send(self.t_regs, rec.call_id.encode(), records.encode(rec), None, None, None)
                finals.append(fut)
                self.counts["registrations"] += 1
                OUTPUTS.labels(topics.REGISTRATIONS).inc()
        for rej in rejects:
            await producer.send(self.t_rejected, wk.STAGE.encode(), records.encode(rej), None, None, None)
            REJECTS.labels(rej.reason).inc()
            self.counts["rejected"] += 1
        after: list[tuple[int, wk.Write]] = []
        for shard in shards:
            w = shard.collect()
            for write in w.now:
                await self._write(shard.partition, write)
            after.extend((shard.partition, write) for write in w.after_ack)
        if after:
            if finals:
                await asyncio.gather(*finals)  # a marker never becomes durable before its summary
            for p, write in after:
                await self._write(p, write)

    async def _write(self, partition: int, write: wk.Write) -> None:
        """Table write: the local store, and the changelog partition of the *source* partition (sent with
        the app's producer like the summaries, so Faust's flush-before-commit covers it)."""
        name, key, value = write
        table = self.tables[name]
        if value is None:
            table.data.pop(key, None)
        else:
            table.data[key] = value
        await self.app.producer.send(self.changelogs[name], key, value, partition, None, None)


SNAPSHOT_COST_FACTOR = 20.0
"""The analytics role waits at least this many times as long as its last snapshot took (~5% of its time)."""


def snapshot_wait(w: Any, took_s: float) -> float:
    """Seconds until the analytics role's next snapshot, after one that took ``took_s`` (see
    ``WorkerSettings.snapshot_s``): ``snapshot_s``, or 20 times the snapshot's cost when that is longer, at most
    ``snapshot_max_s``."""
    return max(w.snapshot_s, min(w.snapshot_max_s, SNAPSHOT_COST_FACTOR * took_s))


class AnalyticsRuntime:
    """``--role analytics``: one :class:`~streams.worker.Analytics` over every partition of sip.messages,
    sip.calls and sip.registrations -> sip.stats, sip.alerts. Input is acknowledged to Faust only once a
    snapshot covering it was written (its messages' refcount is held until then), so a restart resumes from
    the snapshot without counting anything twice. Records Faust drops in a rebalance (see "Known limit"
    above) are refetched as in :class:`Runtime`: each input partition's next offset is known (after the
    snapshot's last record, else the committed or earliest one), a hole before a record or at the end of a
    partition is sought back, and what arrives meanwhile is skipped and never acknowledged.

    Idle input: event time flows on at wall-clock speed from the last record's time (capped at
    ``now - clock_lag_s``), so the last minutes close ``kpi.lateness_s`` later and the call summaries that
    the correlating workers publish after their own idle timeout still count. (The correlating shards jump
    to ``now - clock_lag_s`` instead: their timeouts run to hours.)"""

    def __init__(self, app: faust.App, settings: Settings, table: Any) -> None:
        self.app = app
        self.s = settings
        self.w = settings.worker
        self.table = table
        self.changelog = table.changelog_topic.get_topic_name()
        self.kinds = {topics.name(topics.MESSAGES, settings): SipMessage,
                      topics.name(topics.CALLS, settings): CallSummary,
                      topics.name(topics.REGISTRATIONS, settings): Registration}
        self.t_stats = topics.name(topics.STATS, settings)
        self.t_alerts = topics.name(topics.ALERTS, settings)
        self.t_rejected = topics.name(topics.REJECTED, settings)
        self.engine: wk.Analytics | None = None
        self.pending: list[Any] = []
        self.cursors: dict[Any, wk.Cursor] = {}
        """Where the records of each input topic-partition are (also records not applied: bad ones)."""
        self.lock = asyncio.Lock()
        self.last_event_wall = time.time()
        self._flow: tuple[float, float] | None = None
        self.next_snapshot = time.monotonic() + self.w.snapshot_s
        self.counts = {"records": 0, "stats": 0, "alerts": 0, "rejected": 0, "replayed": 0, "snapshots": 0,
                       "rewinds": 0, "offset_gaps": 0}
        self._next_progress = time.monotonic() + self.w.progress_s

    async def _ready(self, events: bool = False) -> wk.Analytics | None:
        if self.engine is not None:
            return self.engine
        app = self.app
        if not events and (app.rebalancing or not app.tables.recovery.completed.is_set()):
            return None
        assigned = app.consumer.assignment()
        for topic in self.kinds:
            n = app.consumer.topic_partitions(topic)
            mine = {tp.partition for tp in assigned if tp.topic == topic}
            if n is not None and len(mine) != n:
                log.error("analytics_partial_input", topic=topic, partitions=sorted(mine), of=n,
                          hint="run exactly one `sipscope worker --role analytics` per app id")
        t0 = time.perf_counter()
        self.engine = wk.Analytics.restore(self.s, self.table.data)
        # where each input partition starts: after the snapshot's last record, else as the consumer starts
        inputs = [tp for tp in assigned if tp.topic in self.kinds]
        start = await _start_offsets(self.app, [tp for tp in inputs if f"{tp.topic}:{tp.partition}" not in
                                                self.engine.offsets])
        self.cursors = {tp: wk.Cursor() for tp in inputs}
        for tp, cur in self.cursors.items():
            applied = self.engine.offsets.get(f"{tp.topic}:{tp.partition}")
            if applied is not None:
                cur.anchor(applied + 1)
            elif tp in start:
                cur.anchor(start[tp])
        log.info("analytics_loaded", snapshot=self.engine.gen, seconds=round(time.perf_counter() - t0, 3),
                 watermark=self.engine.watermark)
        return self.engine

    async def on_revoked(self, sender: Any = None, revoked: Any = None, **_: Any) -> None:
        async with self.lock:
            self.engine = None

    async def before_wait_empty(self) -> None:
        """Faust is about to wait for every event in progress to be acknowledged (stopping, or partitions being
        revoked): write a snapshot now, which acknowledges the events held for one. Without it a stop waits
        forever (the timer that writes snapshots has ended) and a rebalance up to ``snapshot_s``."""
        async with self.lock:
            if self.engine is not None and self.pending:
                await self._snapshot(self.engine)
                log.info("analytics_snapshot_before_wait", snapshots=self.counts["snapshots"],
                         records=self.counts["records"])

    async def process(self, events: list[Any]) -> None:
        async with self.lock:
            eng = await self._ready(events=True)
            assert eng is not None
            outputs: list[Any] = []
            rejects: list[Rejected] = []
            n = 0
            wall = time.time()
            for ev in events:
                ev.message.incref()  # held until a snapshot covers it (see tick), or for good when skipped
                skipped = False
                for m in records_of(ev):
                    cur = self.cursors.get(m.tp)
                    if cur is None:
                        cur = self.cursors[m.tp] = wk.Cursor()
                    if not await _admit(self.app, m.tp, cur, m.offset, wall, self.w.rewind_timeout_s, self.counts):
                        skipped = True
                        continue  # refetching from a hole: this record comes again
                    cur.note(m.offset, wall)
                    n += 1
                    kind = self.kinds[m.topic]
                    try:
                        rec = records.decode(m.value, kind)
                    except Exception as exc:  # noqa: BLE001 - counted and reported, never fatal
                        if kind is SipMessage:  # the correlating workers report bad messages already
                            continue
                        rejects.append(wk.rejected(m.value, "bad_record", f"{m.topic}: {exc}"))
                        continue
                    try:
                        out = eng.feed(f"{m.topic}:{m.partition}", m.offset, rec)
                    except Exception as exc:  # noqa: BLE001
                        log.warning("analytics_engine_error", topic=m.topic, offset=m.offset, error=repr(exc))
                        rejects.append(wk.rejected(m.value, "engine_error", repr(exc)))
                        continue
                    if out:
                        outputs.extend(out)
                if not skipped:
                    self.pending.append(ev)
            self.counts["records"] += n
            self.last_event_wall = time.time()
            self._flow = None
            outputs.extend(eng.advance())
            await self._publish(outputs, rejects)

    async def tick(self) -> None:
        async with self.lock:
            eng = self.engine if self.engine is not None else await self._ready()
            if eng is None:
                return
            now = time.time()
            for tp, cur in self.cursors.items():
                try:
                    hw = self.app.consumer.highwater(tp)
                except Exception:  # noqa: BLE001 - not fetched yet
                    continue
                await _tail_hole(self.app, tp, cur, hw, now, self.w, self.counts)
            outputs: list[Any] = []
            if now - self.last_event_wall >= self.w.idle_s and eng.watermark is not None:
                # idle: event time flows on at wall-clock speed from where it stopped, up to now - lag (calls
                # of a replayed capture still arrive from the correlating workers; minutes must not be gone)
                if self._flow is None:
                    self._flow = (now, eng.watermark)
                t0, wm0 = self._flow
                outputs.extend(eng.advance(min(now - self.w.clock_lag_s, wm0 + (now - t0))))
            await self._publish(outputs, [])
            if self.pending and time.monotonic() >= self.next_snapshot:
                await self._snapshot(eng)
            if time.monotonic() >= self._next_progress:
                self._next_progress = time.monotonic() + self.w.progress_s
                self.counts["replayed"] = eng.replayed
                log.info("analytics_progress", **self.counts, watermark=eng.watermark)

    async def _snapshot(self, eng: wk.Analytics) -> None:
        t0 = time.perf_counter()
        for name, key, value in eng.snapshot():
            if value is None:
                self.table.data.pop(key, None)
            else:
                self.table.data[key] = value
            await self.app.producer.send(self.changelog, key, value, 0, None, None)
        pending, self.pending = self.pending, []
        for ev in pending:
            ev.ack()  # Faust flushes the producer (the snapshot) before it commits these offsets
        self.counts["snapshots"] += 1
        self.next_snapshot = time.monotonic() + snapshot_wait(self.w, time.perf_counter() - t0)

    async def _publish(self, outputs: list[Any], rejects: list[Rejected]) -> None:
        producer = self.app.producer
        for rec in outputs:
            if type(rec) is StatsRow:
                await producer.send(self.t_stats, f"{rec.scope}|{rec.key}".encode(), records.encode(rec), None, None,
                                    None)
                self.counts["stats"] += 1
                OUTPUTS.labels(topics.STATS).inc()
            else:
                await producer.send(self.t_alerts, f"{rec.name}|{rec.subject}".encode(), records.encode(rec), None,
                                    None, None)
                self.counts["alerts"] += 1
                OUTPUTS.labels(topics.ALERTS).inc()
        for rej in rejects:
            await producer.send(self.t_rejected, wk.STAGE.encode(), records.encode(rej), None, None, None)
            REJECTS.labels(rej.reason).inc()
            self.counts["rejected"] += 1


def create_analytics_app(settings: Settings, partitions: int | None = None) -> tuple[faust.App, AnalyticsRuntime]:
    """The KPI/anomaly app: its own app id (``worker.analytics_app_id``), so its own consumer group."""
    w = settings.worker
    app_id = w.analytics_app_id or f"{w.app_id}-analytics"
    n = partitions if partitions is not None else prepare_topics(settings, app_id, ("analytics",))
    app = _new_app(settings, app_id, n, table_standby_replicas=0)
    names = [topics.name(t, settings) for t in (topics.MESSAGES, topics.CALLS, topics.REGISTRATIONS)]
    src = app.topic(*names, schema=RawSchema(key_type=bytes, value_type=bytes, key_serializer="raw",
                                             value_serializer="raw"), partitions=n)
    table = app.Table("analytics", default=None, partitions=n, key_type=bytes, value_type=bytes)
    rt = AnalyticsRuntime(app, settings, table)
    app.on_partitions_revoked.connect(rt.on_revoked)
    app.before_wait_empty = (rt.before_wait_empty,)

    app.pack_topics = frozenset(names) if w.pack_records else frozenset()
    take = _take_size(w)

    @app.agent(src, name="analytics")
    async def analytics(stream):
        async for events in stream.take_events(take, within=w.batch_within_s):
            await _guarded(app, rt.process(events))

    @app.timer(interval=w.tick_s, name="analytics_tick")
    async def tick() -> None:
        await rt.tick()

    return app, rt


def _take_size(w: Any) -> int:
    """Events per batch: records, or fetch groups of up to ``batch_max`` records when they are packed."""
    return max(1, w.batch_max // 100) if w.pack_records and w.fast_handoff else w.batch_max


def _new_app(settings: Settings, app_id: str, partitions: int, **extra: Any) -> faust.App:
    """A Faust app with the settings both roles share (``extra``: role-specific Faust settings)."""
    w = settings.worker
    app = (SipscopeApp if w.fast_handoff else HookedApp)(
        app_id,
        broker=f"kafka://{settings.kafka.bootstrap}",
        store="memory://",
        processing_guarantee="at_least_once",
        autodiscover=False,
        web_enabled=bool(w.web_port),
        web_bind="127.0.0.1",
        web_port=w.web_port or 6066,
        topic_partitions=partitions,
        topic_replication_factor=1,
        broker_commit_interval=w.commit_interval_s,
        broker_session_timeout=w.session_timeout_s,
        broker_heartbeat_interval=w.heartbeat_s,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # throughput: batch outputs and changelog writes (a batch's summaries are awaited once, so some
        # ms of linger cost latency, not throughput); fetch many records per poll
        producer_linger=w.producer_linger_ms / 1000,
        producer_max_batch_size=1_000_000,
        producer_compression_type="zstd",
        broker_max_poll_records=w.batch_max,
        stream_buffer_maxsize=max(4096, 2 * w.batch_max),
        stream_wait_empty=True,  # a rebalance waits for the batch in progress (False lost records in tests)
        Monitor=LeanMonitor,
        **extra,
    )
    if isinstance(app, SipscopeApp):
        app.fetch_min_bytes = settings.kafka.fetch_min_bytes
        app.fetch_max_wait_ms = settings.kafka.fetch_max_wait_ms
    return app


async def _guarded(app: faust.App, coro: Any) -> None:
    """A batch failing outside the per-message handling is a bug: stop the worker (exit code 1, its batch
    is not committed and is replayed on restart) rather than leave Faust's agent dead in a live process."""
    try:
        await coro
    except Exception as exc:
        log.critical("worker_crashed", error=repr(exc))
        await app.crash(exc)
        raise


def create_app(settings: Settings, partitions: int | None = None) -> tuple[faust.App, Runtime]:
    """The Faust app and its runtime (``partitions``: of ``sip.messages``; looked up/created when None)."""
    w = settings.worker
    n = partitions if partitions is not None else prepare_topics(settings)
    app = _new_app(settings, w.app_id, n, consumer_group_instance_id=w.instance_id,
                   table_standby_replicas=w.standby_replicas)
    source = topics.name(topics.MESSAGES, settings)
    src = app.topic(source, schema=RawSchema(key_type=bytes, value_type=bytes, key_serializer="raw",
                                             value_serializer="raw"), partitions=n)
    tables = {
        name: app.Table(name, default=None, partitions=n, key_type=bytes, value_type=bytes)
        for name in (wk.CALLS, wk.REGISTRATIONS)
    }
    rt = Runtime(app, settings, source, tables)
    app.on_partitions_revoked.connect(rt.on_revoked)

    app.pack_topics = frozenset({source}) if w.pack_records else frozenset()
    take = _take_size(w)

    @app.agent(src, name="correlate")
    async def correlate(stream):
        async for events in stream.take_events(take, within=w.batch_within_s):
            await _guarded(app, rt.process(events))

    @app.timer(interval=w.tick_s, name="tick")
    async def tick() -> None:
        await rt.tick()

    return app, rt


def _event_loop_policy(want_uvloop: bool) -> str:
    """uvloop when asked for and installed (the asyncio loop is a large share of Faust's per-event cost)."""
    if want_uvloop:
        try:
            import uvloop
        except ImportError:
            return "asyncio (uvloop not installed)"
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return "uvloop"
    return "asyncio"


def run(settings: Settings, role: str = "correlate") -> int:
    """Run the worker until SIGINT/SIGTERM (open calls stay in the tables for the next start).

    ``role``: ``correlate`` (sip.messages -> calls, registrations; as many processes as partitions allow)
    or ``analytics`` (-> sip.stats, sip.alerts; exactly one process per app id)."""
    import logging

    from faust import Worker

    if settings.metrics_port:
        start_http_server(settings.metrics_port, addr=settings.metrics_host)
    loop = _event_loop_policy(settings.worker.uvloop)
    app, _ = create_analytics_app(settings) if role == "analytics" else create_app(settings)
    log.info("worker_starting", role=role, app_id=app.conf.id, bootstrap=settings.kafka.bootstrap,
             source=topics.name(topics.MESSAGES, settings), metrics_port=settings.metrics_port or None, loop=loop)
    level = max(logging.WARNING, getattr(logging, settings.log_level.upper(), logging.INFO))
    worker = Worker(app, loglevel=logging.getLevelName(level), quiet=True, redirect_stdouts=False)
    worker.spinner = None
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
