"""The worker's Faust-free half (streams/worker.py): shards, table entries, replay after a crash, rejects.

A crash is simulated the way Kafka and Faust make it happen: the tables and ``sip.calls`` hold whatever
the producer delivered before the kill, input offsets are committed only after a whole batch was
delivered, and a new shard is loaded from the tables and replays from the committed offset.
"""

from __future__ import annotations

import base64
import random
from collections import defaultdict

import pytest
from sipbuild import Leg, answered_call

from sipscope import records
from sipscope.records import CallSummary, Registration, Rejected, SipMessage
from sipscope.settings import CorrelationSettings
from streams import worker as wk
from streams.engine import Correlator

FAR = 1e12
"""Event time that fires every timer (what the wall-clock tick does for an old capture)."""


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def workload(n_calls: int = 60, seed: int = 7) -> list[SipMessage]:
    """Calls of several shapes, a REGISTER chain per few calls, interleaved in capture-time order."""
    rnd = random.Random(seed)
    msgs: list[SipMessage] = []
    for i in range(n_calls):
        t0 = 10_000.0 + i * 0.7
        leg = Leg(f"c{i}@wk")
        kind = i % 4
        if kind == 0:
            msgs += answered_call(leg, t0)
        elif kind == 1:
            msgs += [leg.invite(t0), leg.response(t0 + 0.01, 100), leg.response(t0 + 0.2, 180),
                     leg.response(t0 + 3.0, 486), leg.request(t0 + 3.01, "ACK")]
        elif kind == 2:
            inv = leg.invite(t0)
            msgs += [inv, leg.again(inv, t0 + 0.5), leg.response(t0 + 0.6, 100)]  # then silence: timer C
        else:
            r = Leg(f"r{i}@wk")
            msgs += [r.request(t0, "REGISTER", 1, expires=300), r.response(t0 + 0.02, 401, 1, "REGISTER"),
                     r.request(t0 + 0.05, "REGISTER", 2, expires=300),
                     r.response(t0 + 0.07, 200, 2, "REGISTER", expires=300)]
            msgs += [leg.invite(t0 + 0.1)]  # no answer at all: timer B
    rnd.shuffle(msgs)
    msgs.sort(key=lambda m: m.ts)
    return msgs


def offline(msgs: list[SipMessage], settings: CorrelationSettings) -> dict[str, CallSummary | Registration]:
    corr = Correlator(settings)
    out = []
    for m in msgs:
        out += corr.feed(m)
    out += corr.advance(FAR)
    return {r.id: r for r in out if not (type(r) is CallSummary and not r.final)}


class Kafka:
    """What survives a crash: the tables' changelogs and the output topic."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[bytes, bytes]] = {wk.CALLS: {}, wk.REGISTRATIONS: {}}
        self.outputs: list[CallSummary | Registration] = []

    def write(self, writes: list[wk.Write]) -> None:
        for table, key, value in writes:
            if value is None:
                self.tables[table].pop(key, None)
            else:
                self.tables[table][key] = value

    def load(self, settings: CorrelationSettings, clock: Clock) -> wk.Shard:
        shard = wk.Shard(0, settings, done_keep_s=60.0, clock=clock)
        for table, data in self.tables.items():
            for key, value in data.items():
                shard.load(table, key, wk.decode_entry(table, value))
        shard.loaded()
        return shard


def run_batch(shard: wk.Shard, batch: list[tuple[int, SipMessage]], kafka: Kafka, fate: str = "ok") -> None:
    """Process one batch as the Faust agent does; ``fate`` says what reached Kafka before a crash:
    ``ok`` everything, ``no_outputs`` the open-state writes only, ``no_markers`` all but the markers,
    ``nothing`` nothing."""
    out = []
    for off, msg in batch:
        shard.note(off)
        out += shard.feed(off, msg)
    w = shard.collect()
    if fate in ("ok", "no_outputs", "no_markers"):
        kafka.write(w.now)
    if fate in ("ok", "no_markers"):
        kafka.outputs += out
    if fate == "ok":
        kafka.write(w.after_ack)


def finals(outputs) -> list[CallSummary | Registration]:
    return [r for r in outputs if not (type(r) is CallSummary and not r.final)]


SETTINGS = CorrelationSettings()


def test_shard_without_crash_equals_the_offline_correlator():
    msgs = workload()
    expected = offline(msgs, SETTINGS)
    clock, kafka = Clock(), Kafka()
    shard = wk.Shard(0, SETTINGS, clock=clock)
    for i in range(0, len(msgs), 17):
        run_batch(shard, list(enumerate(msgs))[i:i + 17], kafka)
    kafka.outputs += shard.advance(FAR)
    kafka.write(shard.collect().after_ack)
    got = finals(kafka.outputs)
    assert len(got) == len(expected) == len({r.id for r in got})
    assert {r.id: r for r in got} == expected
    assert {type(r).__name__ for r in got} == {"CallSummary", "Registration"}
    # every finished call left a marker, nothing open is left in the tables
    entries = [wk.decode_entry(t, v) for t, d in kafka.tables.items() for v in d.values()]
    assert entries and all(e.state is None and e.done is not None for e in entries)


@pytest.mark.parametrize("fate", ["ok", "no_outputs", "no_markers", "nothing"])
@pytest.mark.parametrize("seed", range(6))
def test_crash_and_replay_yield_every_summary_once_by_id(fate, seed):
    msgs = workload(seed=seed)
    expected = offline(msgs, SETTINGS)
    rnd = random.Random(seed)
    batch = rnd.choice([1, 5, 13, 40])
    indexed = list(enumerate(msgs))
    batches = [indexed[i:i + batch] for i in range(0, len(indexed), batch)]
    crash = rnd.randrange(1, len(batches))          # the batch during which the worker dies
    committed = rnd.randrange(0, crash + 1)         # batches whose offsets were committed
    clock, kafka = Clock(), Kafka()
    shard = wk.Shard(0, SETTINGS, done_keep_s=60.0, clock=clock)
    for b in batches[:crash]:
        run_batch(shard, b, kafka)
        clock.t += 0.1
    run_batch(shard, batches[crash], kafka, fate)
    first_run = list(kafka.outputs)

    clock.t += 5
    shard = kafka.load(SETTINGS, clock)             # restart: replay from the committed offset
    for b in batches[committed:]:
        run_batch(shard, b, kafka)
    kafka.outputs += shard.advance(FAR)
    kafka.write(shard.collect().after_ack)

    got = finals(kafka.outputs)
    by_id = defaultdict(list)
    for r in got:
        by_id[r.id].append(r)
    assert set(by_id) == set(expected), "a call lost, or a call with a new id"
    for rid, recs in by_id.items():
        assert all(r == expected[rid] for r in recs), f"{rid}: a repeat differs from the offline summary"
    # repeats only for what the crash window replays: never for a call finished before the last commit
    assert len(got) - len(expected) <= len(finals(first_run))


def test_replayed_messages_only_move_time():
    leg = Leg("x@wk")
    msgs = answered_call(leg, 5000.0)
    clock, kafka = Clock(), Kafka()
    shard = wk.Shard(0, SETTINGS, clock=clock)
    run_batch(shard, list(enumerate(msgs[:3])), kafka)
    shard = kafka.load(SETTINGS, clock)
    assert shard.stats["loaded_open"] == 1
    run_batch(shard, list(enumerate(msgs)), kafka)  # offsets 0-2 again, then the rest
    assert shard.stats["replayed"] == 3
    kafka.outputs += shard.advance(FAR)
    (summary,) = finals(kafka.outputs)
    assert summary == next(iter(offline(msgs, SETTINGS).values()))  # nothing counted twice


def test_finished_call_is_not_reopened_by_a_replayed_invite_after_restart():
    leg = Leg("y@wk")
    msgs = answered_call(leg, 5000.0)
    stray = leg.again(msgs[0], 5070.0)  # a late copy of the INVITE, after the call closed
    clock, kafka = Clock(), Kafka()
    shard = wk.Shard(0, SETTINGS, clock=clock)
    run_batch(shard, list(enumerate(msgs)), kafka)
    kafka.outputs += shard.advance(5068.0)
    kafka.write(shard.collect().after_ack)
    assert len(finals(kafka.outputs)) == 1
    shard = kafka.load(SETTINGS, clock)
    assert shard.stats["loaded_done"] == 1
    run_batch(shard, list(enumerate(msgs + [stray])), kafka)
    kafka.outputs += shard.advance(FAR)
    assert len(finals(kafka.outputs)) == 1


def test_markers_expire_after_wall_and_event_time():
    leg = Leg("z@wk")
    clock, kafka = Clock(), Kafka()
    shard = wk.Shard(0, SETTINGS, done_keep_s=60.0, clock=clock)
    run_batch(shard, list(enumerate(answered_call(leg, 5000.0))), kafka)
    shard.advance(5068.0)
    kafka.write(shard.collect().after_ack)
    assert len(kafka.tables[wk.CALLS]) == 1
    clock.t += 61
    kafka.write(shard.collect().now)
    assert len(kafka.tables[wk.CALLS]) == 1, "event time has not passed closed_memory_s yet"
    shard.advance(5068.0 + SETTINGS.closed_memory_s + 1)
    kafka.write(shard.collect().now)
    assert kafka.tables[wk.CALLS] == {}


def test_entry_round_trip_keeps_the_engine_state():
    leg = Leg("e@wk")
    shard = wk.Shard(3, SETTINGS)
    for off, m in enumerate(answered_call(leg, 5000.0)[:4]):
        shard.note(off)
        shard.feed(off, m)
    (table, key, value), = shard.collect().now
    entry = wk.decode_entry(table, value)
    assert (table, key, entry.p, entry.o) == (wk.CALLS, b"e@wk", 3, 3)
    assert records.to_dict(entry.state) == shard.corr.calls.export_call("e@wk")


@pytest.mark.parametrize(("data", "reason"), [
    (b"", "bad_record"),
    (b"\xff\x00garbage", "bad_record"),
    (b'{"v": 1, "ts": "yesterday"}', "bad_record"),
    (b'{"v": 99, "ts": 1.0, "call_id": "x"}', "unsupported_schema_version"),
    (b"[1, 2, 3]", "bad_record"),
])
def test_decode_message_rejects_with_a_reason(data, reason):
    rej = wk.decode_message(data)
    assert type(rej) is Rejected and rej.stage == "worker" and rej.reason == reason
    assert base64.b64decode(rej.raw_b64) == data and (rej.detail or not data)


def test_decode_message_accepts_a_sip_message():
    msg = Leg("ok@wk").invite(1.0)
    assert wk.decode_message(records.encode(msg)) == msg


# -- KPIs and anomaly detection (worker --role analytics) ----------------------------------------------

def analytics_inputs(msgs: list[SipMessage]) -> list[tuple[str, int, object]]:
    """Messages and the correlator's outputs in one feed, as the analytics consumer sees three topics."""
    corr = Correlator(SETTINGS)
    feed: list[tuple[str, int, object]] = []
    n = {"m": 0, "c": 0, "r": 0}

    def add(tp, rec):
        feed.append((tp, n[tp], rec))
        n[tp] += 1

    for m in msgs:
        add("m", m)
        for rec in corr.feed(m):
            add("c" if type(rec) is CallSummary else "r", rec)
    for rec in corr.advance(FAR):
        add("c" if type(rec) is CallSummary else "r", rec)
    return feed


def run_analytics(eng: wk.Analytics, feed, start: int = 0, stop: int | None = None) -> list:
    out = []
    for tp, off, rec in feed[start:stop]:
        out += eng.feed(tp, off, rec)
        out += eng.advance()
    return out


def latest_by_id(outputs) -> dict:
    return {r.id: r for r in outputs}


@pytest.mark.parametrize("cut", [0.3, 0.7])
def test_analytics_restart_from_snapshot_counts_nothing_twice(cut):
    from sipscope.settings import Settings

    settings = Settings()
    feed = analytics_inputs(workload(n_calls=200, seed=3))
    ref = wk.Analytics(settings)
    expected = run_analytics(ref, feed) + ref.advance(FAR)
    assert any(type(r).__name__ == "StatsRow" for r in expected)

    k = int(len(feed) * cut)
    first = wk.Analytics(settings)
    out = run_analytics(first, feed, 0, k)
    table: dict[bytes, bytes] = {}
    for _, key, value in first.snapshot():
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value
    out += run_analytics(first, feed, k, k + 50)  # processed after the snapshot, then the crash
    again = wk.Analytics.restore(settings, table)
    out += run_analytics(again, feed, max(0, k - 40)) + again.advance(FAR)  # replay from an older commit
    assert again.replayed == min(40, k)
    assert latest_by_id(out) == latest_by_id(expected)


def test_analytics_snapshot_is_chunked_and_generations_replace_each_other(monkeypatch):
    from sipscope.settings import Settings

    monkeypatch.setattr(wk, "SNAPSHOT_CHUNK", 1000)
    settings = Settings()
    eng = wk.Analytics(settings)
    run_analytics(eng, analytics_inputs(workload(n_calls=40)))
    table: dict[bytes, bytes] = {}
    for _ in range(2):
        for _, key, value in eng.snapshot():
            if value is None:
                del table[key]
            else:
                table[key] = value
    chunks = [k for k in table if k != b"analytics:manifest"]
    assert len(chunks) > 1 and all(k.startswith(b"analytics:2:") for k in chunks)
    back = wk.Analytics.restore(settings, table)
    assert back.offsets == eng.offsets and back.gen == 2
    assert back.kpi.to_state() == eng.kpi.to_state() and back.anomaly.to_state() == eng.anomaly.to_state()
