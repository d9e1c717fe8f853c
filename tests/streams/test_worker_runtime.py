"""The Faust adapter (streams/app.py Runtime) with a fake app: what it publishes, in which order, and how it
survives bad input. No Kafka: the producer records what it is given and acknowledges when the test says."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP
from sipbuild import Leg, answered_call

from sipscope import records, topics
from sipscope.records import CallSummary, Rejected
from sipscope.settings import KafkaSettings, Settings
from streams import app as appmod
from streams import worker as wk

SRC = "p-sip.messages"


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, int | None, asyncio.Future]] = []
        self.auto_ack = True

    async def send(self, topic, key, value, partition, timestamp, headers):
        fut = asyncio.get_running_loop().create_future()
        if self.auto_ack:
            fut.set_result(None)
        self.sent.append((topic, key, value, partition, fut))
        return fut

    def topics(self) -> list[str]:
        return [t for t, *_ in self.sent]


class FakeTable:
    def __init__(self, name: str) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: f"app-{name}-changelog")


def runtime(partitions=(0,)) -> tuple[appmod.Runtime, FakeProducer]:
    settings = Settings(kafka=KafkaSettings(topic_prefix="p-"))
    producer = FakeProducer()
    async def position(tp):
        return 1

    seeks: list[tuple[TP, int]] = []

    async def seek(tp, offset):
        seeks.append((tp, offset))

    forgotten: list[tuple[TP, int]] = []

    async def earliest_offsets(*tps):
        return {tp: 0 for tp in tps}

    consumer = SimpleNamespace(assignment=lambda: {TP(SRC, p) for p in partitions}, highwater=lambda tp: 1,
                               position=position, seek=seek, seeks=seeks, _committed_offset={},
                               earliest_offsets=earliest_offsets,
                               forget_gaps=lambda tp, o: forgotten.append((tp, o)), forgotten=forgotten)
    app = SimpleNamespace(rebalancing=False, producer=producer, consumer=consumer,
                          tables=SimpleNamespace(recovery=SimpleNamespace(completed=asyncio.Event())))
    app.tables.recovery.completed.set()
    tables = {name: FakeTable(name) for name in (wk.CALLS, wk.REGISTRATIONS)}
    return appmod.Runtime(app, settings, SRC, tables), producer


def events(values, partition=0, start=0):
    out = []
    for i, v in enumerate(values):
        msg = SimpleNamespace(partition=partition, offset=start + i, value=v, refs=1)
        msg.incref = lambda msg=msg: setattr(msg, "refs", msg.refs + 1)
        out.append(SimpleNamespace(message=msg, value=v))
    return out


def packed(values, partition=0, start=0):
    """One event standing for several records (a fetch group, streams/faust_fastpath.py)."""
    from streams.faust_fastpath import Packed

    msgs = [e.message for e in events(values, partition, start)]
    return [SimpleNamespace(message=msgs[-1], value=Packed(msgs))]


def run(coro):
    return asyncio.run(coro)


def test_batch_publishes_summaries_then_markers_after_the_acks():
    async def go():
        rt, prod = runtime()
        leg = Leg("a@rt")
        msgs = answered_call(leg, 5000.0)
        await rt.process(events([records.encode(m) for m in msgs]))
        # the open state is in the calls table and its changelog, on the source partition
        assert prod.topics() == ["app-calls-changelog"] and prod.sent[0][3] == 0
        entry = wk.decode_entry(wk.CALLS, rt.tables[wk.CALLS].data[b"a@rt"])
        assert entry.state is not None and entry.o == len(msgs) - 1
        prod.auto_ack = False
        stray = leg.again(msgs[-1], 5100.0)  # moves event time past the BYE wait: the call closes
        task = asyncio.create_task(rt.process(events([records.encode(stray)], start=len(msgs))))
        await asyncio.sleep(0.05)
        assert prod.topics()[-1] == "p-sip.calls", "no marker before the summary is acknowledged"
        assert not task.done()
        for *_, fut in prod.sent:
            if not fut.done():
                fut.set_result(None)
        await task
        assert prod.topics()[-1] == "app-calls-changelog"
        summary = records.decode(prod.sent[-2][2], CallSummary)
        assert summary.final and summary.call_id == "a@rt" and prod.sent[-2][1] == b"a@rt"
        marker = wk.decode_entry(wk.CALLS, rt.tables[wk.CALLS].data[b"a@rt"])
        assert marker.state is None and marker.done is not None
    run(go())


def test_bad_values_and_engine_errors_go_to_rejected_and_the_batch_goes_on(monkeypatch):
    async def go():
        rt, prod = runtime()
        ok, boom = Leg("ok@rt"), Leg("boom@rt")
        real_feed = wk.Shard.feed

        def feed(self, offset, msg):
            if msg.call_id == "boom@rt":
                raise ValueError("engine exploded")
            return real_feed(self, offset, msg)

        monkeypatch.setattr(wk.Shard, "feed", feed)
        values = [b"{not json", records.encode(boom.invite(1.0)), records.encode(ok.invite(2.0)),
                  b'{"v": 2, "call_id": "x"}']
        await rt.process(events(values))
        rejected = [(t, k, records.decode(v, Rejected)) for t, k, v, _, _ in prod.sent if t == "p-sip.rejected"]
        assert [(k, r.reason) for _, k, r in rejected] == [
            (b"worker", "bad_record"), (b"worker", "engine_error"), (b"worker", "unsupported_schema_version")]
        assert rejected[1][2].detail == "ValueError('engine exploded')" and rejected[1][2].ts == 1.0
        assert b"ok@rt" in rt.tables[wk.CALLS].data, "the good message of the batch was processed"
        assert rt.shards[0].position == 3 and rt.counts["rejected"] == 3
    run(go())


def test_tick_closes_idle_partitions_by_the_wall_clock(monkeypatch):
    async def go():
        rt, prod = runtime(partitions=(0, 1))
        leg = Leg("idle@rt")
        await rt.process(events([records.encode(leg.invite(1000.0))], partition=1))
        await rt.tick()
        assert "p-sip.calls" not in prod.topics(), "not idle yet"
        rt.shards[1].last_message_wall -= rt.w.idle_s + 1
        rt.app.consumer.highwater = lambda tp: 7  # more to read: not idle, whatever the clock says
        await rt.tick()
        assert "p-sip.calls" not in prod.topics()
        rt.app.consumer.highwater = lambda tp: 1
        await rt.tick()
        summary = records.decode(next(v for t, _, v, _, _ in prod.sent if t == "p-sip.calls"), CallSummary)
        assert (summary.call_id, summary.end_reason, summary.outcome) == ("idle@rt", "timeout_no_final", "failed")
        assert rt.shards[1].watermark > 1e9, "event time moved to the wall clock minus the lag"
        assert rt.shards[0].watermark == float("-inf"), "an empty partition has no event time to move"
    run(go())


def test_shards_are_rebuilt_from_the_tables_after_a_rebalance():
    async def go():
        rt, _prod = runtime(partitions=(0, 2))
        await rt.process(events([records.encode(Leg("keep@rt").invite(1000.0))], partition=2))
        await rt.on_revoked(None, {TP(SRC, 0), TP(SRC, 2)})
        assert rt.shards is None
        await rt.tick()  # rebuilds
        assert sorted(rt.shards) == [0, 2] and rt.shards[2].corr.calls.open_calls() == ["keep@rt"]
    run(go())


def test_a_partition_kept_through_a_rebalance_keeps_its_shard_unless_others_committed_past_it():
    """Faust's recovery of a partition kept through a rebalance re-applies the changelog records written
    since the previous recovery: the table may then hold an older state than the shard. The shard stays
    unless the committed offset shows that another worker processed the partition further meanwhile."""
    async def go():
        rt, _prod = runtime(partitions=(0, 1))
        leg0, leg1 = Leg("k0@rt"), Leg("k1@rt")
        inv0, inv1 = leg0.invite(1000.0), leg1.invite(1000.0)
        await rt.process(events([records.encode(inv0)], partition=0))
        await rt.process(events([records.encode(inv1)], partition=1))
        older = {name: dict(t.data) for name, t in rt.tables.items()}   # both calls after their INVITE
        await rt.process(events([records.encode(leg0.response(1000.2, 180))], partition=0, start=1))
        await rt.process(events([records.encode(leg1.response(1000.2, 180))], partition=1, start=1))
        newer = {p: rt.shards[p].corr.calls.export_call(c) for p, c in ((0, "k0@rt"), (1, "k1@rt"))}
        await rt.on_revoked(None, {TP(SRC, 0), TP(SRC, 1)})
        for name, t in rt.tables.items():
            t.data.update(older[name])                       # the recovery put the older states back
        rt.app.consumer._committed_offset[TP(SRC, 0)] = 2    # partition 0: nothing beyond what we did
        rt.app.consumer._committed_offset[TP(SRC, 1)] = 5    # partition 1: another worker went on to 5
        await rt.tick()
        assert rt.shards[0].corr.calls.export_call("k0@rt") == newer[0], "kept: the shard is the newest state"
        assert rt.shards[0].position == 1
        assert rt.shards[1].corr.calls.export_call("k1@rt") != newer[1], "rebuilt from the table"
        assert rt.shards[1].position == 4
    run(go())


@pytest.mark.parametrize("want", [True, False])
def test_event_loop_policy(want):
    got = appmod._event_loop_policy(want)
    try:
        assert got.startswith(("uvloop", "asyncio"))
        assert want or got == "asyncio"
    finally:
        asyncio.set_event_loop_policy(None)


def test_topic_names_follow_the_prefix():
    rt, _ = runtime()
    assert (rt.t_calls, rt.t_regs, rt.t_rejected) == tuple(
        topics.name(t, Settings(kafka=KafkaSettings(topic_prefix="p-")))
        for t in (topics.CALLS, topics.REGISTRATIONS, topics.REJECTED))


def test_a_hole_in_the_delivered_offsets_is_refetched_by_seeking_back():
    """faust-streaming can drop records it fetched before a rebalance; the runtime seeks back to the hole,
    skips what comes after it until the hole's first record is delivered again, then goes on."""
    async def go():
        rt, prod = runtime()
        msgs = answered_call(Leg("h@rt"), 5000.0)
        enc = [records.encode(m) for m in msgs]
        assert len(enc) >= 5
        await rt.process(events(enc[:2]))                       # offsets 0, 1
        await rt.process(events(enc[4:], start=4))              # 2 and 3 never came: a hole
        assert rt.app.consumer.seeks == [(TP(SRC, 0), 2)]
        assert rt.counts["rewinds"] == 1 and rt.shards[0].position == 1
        await rt.process(events(enc[4:], start=4))              # fetched before the seek took effect: skipped
        assert rt.app.consumer.seeks == [(TP(SRC, 0), 2)] and rt.shards[0].position == 1
        await rt.process(events(enc[2:], start=2))              # the refetch from the hole on
        assert rt.shards[0].rewind is None and rt.shards[0].position == len(enc) - 1
        assert rt.counts["offset_gaps"] == 0
        entry = wk.decode_entry(wk.CALLS, rt.tables[wk.CALLS].data[b"h@rt"])
        assert entry.o == len(enc) - 1
        return rt

    rt = run(go())
    # the call's state holds every message once: the same as feeding them in order
    whole = wk.Shard(0, rt.s.correlation)
    msgs = answered_call(Leg("h@rt"), 5000.0)
    for i, m in enumerate(msgs):
        whole.feed(i, m)
    assert rt.shards[0].corr.calls.export_call("h@rt") == whole.corr.calls.export_call("h@rt")


def test_a_hole_that_never_comes_back_is_counted_as_lost_and_processing_goes_on():
    async def go():
        rt, prod = runtime()
        rt.w = rt.w.model_copy(update={"rewind_timeout_s": 0.0})
        msgs = answered_call(Leg("g@rt"), 5000.0)
        enc = [records.encode(m) for m in msgs]
        await rt.process(events(enc[:1]))
        await rt.process(events(enc[3:4], start=3))  # first sight of the hole: seek back, skip
        assert rt.counts["rewinds"] == 1 and rt.counts["offset_gaps"] == 0
        await rt.process(events(enc[3:], start=3))   # still not back and the wait is over: lost, go on
        assert rt.counts["offset_gaps"] == 2 and rt.shards[0].position == len(enc) - 1
        assert rt.shards[0].rewind is None

    run(go())


def test_a_hole_at_the_end_of_a_partition_is_refetched_by_the_tick():
    """Records dropped at the very end of what a partition holds: no later record shows the hole. The tick
    sees records left to read, none delivered for ``stall_s`` and the consumer's fetch position past them."""
    async def go():
        rt, prod = runtime()
        msgs = answered_call(Leg("t@rt"), 5000.0)
        enc = [records.encode(m) for m in msgs]
        consumer = rt.app.consumer
        consumer.highwater = lambda tp: len(enc)
        fetched = {"to": 2}

        async def position(tp):
            return fetched["to"]

        consumer.position = position
        await rt.process(events(enc[:2]))                    # offsets 0, 1; the rest was dropped
        await rt.tick()
        assert consumer.seeks == [], "not stalled yet"
        rt.shards[0].last_message_wall -= rt.w.stall_s + 1
        await rt.tick()
        assert consumer.seeks == [], "the consumer has not fetched the rest yet (slow or paused): wait"
        fetched["to"] = len(enc)                              # fetched, and nothing came: dropped
        await rt.tick()
        assert consumer.seeks == [(TP(SRC, 0), 2)] and consumer.forgotten == [(TP(SRC, 0), 2)]
        assert rt.counts["rewinds"] == 1
        await rt.tick()
        assert consumer.seeks == [(TP(SRC, 0), 2)], "one seek per rewind_timeout_s"
        await rt.process(events(enc[2:], start=2))           # the refetch
        assert rt.shards[0].rewind is None and rt.shards[0].position == len(enc) - 1
        rt.shards[0].last_message_wall -= rt.w.stall_s + 1
        await rt.tick()                                        # caught up and idle: the call closes
        assert consumer.seeks == [(TP(SRC, 0), 2)], "caught up: no more seeks"
        summary = records.decode(next(v for t, _, v, _, _ in prod.sent if t == "p-sip.calls"), CallSummary)
        assert (summary.outcome, summary.messages, summary.retransmissions) == ("answered", len(enc), 0)
        assert summary.end_reason == "bye", "the BYE and its 200, dropped at the end, were refetched"

    run(go())


def test_the_committed_offset_at_assignment_makes_a_hole_at_the_start_visible():
    async def go():
        rt, prod = runtime()
        rt.app.consumer._committed_offset[TP(SRC, 0)] = 10
        msgs = answered_call(Leg("c@rt"), 5000.0)
        await rt.process(events([records.encode(m) for m in msgs], start=12))
        assert rt.app.consumer.seeks == [(TP(SRC, 0), 10)]
        assert rt.shards[0].position == 9

    run(go())


def test_a_partition_never_committed_starts_at_its_earliest_offset_and_a_hole_there_is_seen():
    """No committed offset (the group never committed it: a worker killed within its first commit interval):
    the consumer starts at the earliest offset, and so does the shard's count. Records Faust then drops
    before the first one it delivers are a hole like any other; and dropped at the end of what the partition
    held, they keep the partition from looking idle (its open calls are not closed by the wall clock)."""
    async def go():
        rt, prod = runtime()
        early = {TP(SRC, 0): 3}

        async def earliest_offsets(*tps):
            return {tp: early[tp] for tp in tps}

        rt.app.consumer.earliest_offsets = earliest_offsets
        msgs = answered_call(Leg("e@rt"), 5000.0)
        enc = [records.encode(m) for m in msgs]
        await rt.process(events(enc[2:], start=5))                # 3 and 4 (INVITE, 100) were dropped
        assert rt.app.consumer.seeks == [(TP(SRC, 0), 3)] and rt.shards[0].position == 2
        await rt.process(events(enc, start=3))                    # the refetch
        assert rt.shards[0].rewind is None and rt.shards[0].position == 3 + len(enc) - 1

        rt2, prod2 = runtime()
        rt2.app.consumer.earliest_offsets = earliest_offsets
        await rt2.tick()                                          # loaded, nothing read yet
        rt2.app.consumer.highwater = lambda tp: 3 + len(enc)      # all fetched and dropped

        async def position(tp):
            return 3 + len(enc)

        rt2.app.consumer.position = position
        rt2.shards[0].last_message_wall -= max(rt2.w.idle_s, rt2.w.stall_s) + 1
        await rt2.tick()
        assert rt2.app.consumer.seeks == [(TP(SRC, 0), 3)], "refetched from the earliest offset"
        return rt

    rt = run(go())
    whole = wk.Shard(0, rt.s.correlation)
    for i, m in enumerate(answered_call(Leg("e@rt"), 5000.0)):
        whole.feed(3 + i, m)
    assert rt.shards[0].corr.calls.export_call("e@rt") == whole.corr.calls.export_call("e@rt")


def test_packed_fetch_groups_are_processed_record_by_record_and_a_hole_before_one_is_refetched():
    async def go():
        rt, prod = runtime()
        msgs = answered_call(Leg("p@rt"), 5000.0)
        enc = [records.encode(m) for m in msgs]
        await rt.process(packed(enc[:2]))                   # one event, offsets 0 and 1
        assert rt.shards[0].position == 1 and rt.counts["messages"] == 2
        late = packed(enc[4:], start=4)                     # 2 and 3 were dropped: a hole
        await rt.process(late)
        assert rt.app.consumer.seeks == [(TP(SRC, 0), 2)]
        assert rt.app.consumer.forgotten == [(TP(SRC, 0), 2)]  # the group's gap is not "done" any more
        assert late[0].message.refs == 2                    # held: Faust never acknowledges the skipped group
        await rt.process(packed(enc[2:], start=2))          # the refetch
        assert rt.shards[0].rewind is None and rt.shards[0].position == len(enc) - 1
        entry = wk.decode_entry(wk.CALLS, rt.tables[wk.CALLS].data[b"p@rt"])
        return rt, entry

    rt, entry = run(go())
    msgs = answered_call(Leg("p@rt"), 5000.0)
    whole = wk.Shard(0, rt.s.correlation)
    for i, m in enumerate(msgs):
        whole.feed(i, m)
    assert entry.o == len(msgs) - 1
    assert rt.shards[0].corr.calls.export_call("p@rt") == whole.corr.calls.export_call("p@rt")


@pytest.mark.parametrize("fast", [True, False])
def test_worker_consumer_fetches_with_the_configured_minimum_and_wait(fast):
    s = Settings(kafka=KafkaSettings(fetch_min_bytes=123_456, fetch_max_wait_ms=345))
    s.worker.fast_handoff = fast

    async def consumer():
        app, _ = appmod.create_app(s, partitions=2)
        thread = app.consumer._thread
        return thread._create_worker_consumer(app.transport)

    c = asyncio.run(consumer())
    # faust-streaming as shipped (fast_handoff off): no minimum, its own 1.5 s wait
    assert (c._fetch_min_bytes, c._fetch_max_wait_ms) == ((123_456, 345) if fast else (1, 1500))


def analytics_runtime(committed=None, earliest=0):
    """AnalyticsRuntime over a fake app: one input partition per topic, nothing committed unless given."""
    settings = Settings(kafka=KafkaSettings(topic_prefix="p-"))
    producer = FakeProducer()
    inputs = [TP(f"p-{t}", 0) for t in (topics.MESSAGES, topics.CALLS, topics.REGISTRATIONS)]
    seeks: list[tuple[TP, int]] = []

    async def seek(tp, offset):
        seeks.append((tp, offset))

    async def earliest_offsets(*tps):
        return {tp: earliest for tp in tps}

    async def position(tp):
        return fetched.get(tp, 0)

    fetched: dict[TP, int] = {}
    consumer = SimpleNamespace(assignment=lambda: set(inputs), topic_partitions=lambda topic: 1,
                               _committed_offset=dict(committed or {}), earliest_offsets=earliest_offsets,
                               seek=seek, seeks=seeks, position=position, fetched=fetched,
                               highwater=lambda tp: fetched.get(tp, 0), forget_gaps=lambda tp, o: None)
    app = SimpleNamespace(rebalancing=False, producer=producer, consumer=consumer,
                          tables=SimpleNamespace(recovery=SimpleNamespace(completed=asyncio.Event())))
    app.tables.recovery.completed.set()
    return appmod.AnalyticsRuntime(app, settings, FakeTable("analytics")), inputs[0]


def analytics_events(values, tp, start):
    out = []
    for i, v in enumerate(values):
        msg = SimpleNamespace(topic=tp.topic, partition=tp.partition, tp=tp, offset=start + i, value=v, refs=1)
        msg.incref = lambda msg=msg: setattr(msg, "refs", msg.refs + 1)
        ev = SimpleNamespace(message=msg, value=v, acked=False)
        ev.ack = lambda ev=ev: setattr(ev, "acked", True)
        out.append(ev)
    return out


def test_analytics_refetch_records_faust_dropped_instead_of_never_counting_them():
    """The analytics apply each input offset once (Analytics.feed skips offsets at or below the last one):
    records Faust dropped would never be counted. A hole before a record (also at the start of a partition
    never committed) or at the end of a partition is sought back and refetched; skipped events are never
    acknowledged."""
    async def go():
        rt, src = analytics_runtime(earliest=0)
        calls = [answered_call(Leg(f"a{i}@rt"), 5000.0 + i) for i in range(3)]
        enc = [records.encode(m) for c in calls for m in c]
        late = analytics_events(enc[2:], src, 2)
        await rt.process(late)                                  # 0 and 1 were dropped: a hole at the start
        assert rt.app.consumer.seeks == [(src, 0)] and rt.counts["records"] == 0
        assert late[0].message.refs == 2 and rt.pending == []   # held, never acknowledged
        await rt.process(analytics_events(enc[:10], src, 0))   # the refetch, then the end is dropped
        assert rt.counts["records"] == 10
        rt.app.consumer.fetched[src] = len(enc)
        rt.cursors[src].last_message_wall -= rt.w.stall_s + 1
        await rt.tick()
        assert rt.app.consumer.seeks == [(src, 0), (src, 10)], "the tail hole is refetched by the tick"
        await rt.process(analytics_events(enc[10:], src, 10))
        assert rt.counts["records"] == len(enc) and rt.engine.offsets[f"{src.topic}:0"] == len(enc) - 1
        return rt, enc

    rt, enc = run(go())
    ref = wk.Analytics(rt.s)  # the same records in one pass, advanced where the runtime's batches ended
    for i, v in enumerate(enc):
        ref.feed("x", i, records.decode(v, wk.SipMessage))
        if i in (9, len(enc) - 1):
            ref.advance()
    assert rt.engine.kpi.to_state() == ref.kpi.to_state(), "every message counted once"
    assert rt.engine.anomaly.to_state() == ref.anomaly.to_state()


def test_analytics_snapshots_wait_twenty_times_their_cost_between_the_configured_bounds():
    """A snapshot is the whole KPI/anomaly state: a big one spaces out the next (at most ~5% of the time)."""
    from sipscope.settings import WorkerSettings
    from streams.app import snapshot_wait

    w = WorkerSettings(snapshot_s=5.0, snapshot_max_s=60.0)
    assert snapshot_wait(w, 0.1) == 5.0  # cheap: the configured interval
    assert snapshot_wait(w, 1.0) == 20.0  # 1 s of work -> 20 s until the next
    assert snapshot_wait(w, 10.0) == 60.0  # capped: input is held in memory until a snapshot covers it
    assert snapshot_wait(WorkerSettings(snapshot_s=600.0, snapshot_max_s=60.0), 1.0) == 600.0  # never below snapshot_s
