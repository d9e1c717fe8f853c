"""AnomalyEngine as a whole: serialisable state (resume mid-stream = same alerts), bounded memory, event time."""

from __future__ import annotations

import json

import pytest
from test_anomaly_detectors import (
    CARRIER,
    T0,
    bruteforce,
    invites,
    msg,
    run,
    scan,
    summary,
    traffic,
)

from sipscope.records import SipMessage
from sipscope.settings import AnomalySettings, Settings
from streams.anomaly import AnomalyEngine

TRUNKS = {CARRIER: "carrier-a"}


def mixed_records() -> list:
    recs = traffic(T0, 40, 6, lambda n: (200, 486, 200, 503)[n % 4])
    recs += bruteforce(T0 + 300, 25) + scan(T0 + 900, 30, "OPTIONS", 404) + invites(T0 + 1500, 160, 50)
    recs += [msg(T0 + 1700 + i, "OPTIONS", src="203.0.113.9", ua="sipvicious", call_id=f"sv{i}") for i in range(5)]
    recs += [msg(T0 + 1800, "INVITE", call_id="irsf", ruri_e164="88213600000")]
    recs += [summary(i, outcome="cancelled") for i in range(30)]
    return sorted(recs, key=lambda r: r.ts if isinstance(r, SipMessage) else r.end_ts)


def feed(eng: AnomalyEngine, recs) -> list:
    out = []
    for r in recs:
        out += eng.feed_message(r) if isinstance(r, SipMessage) else eng.feed_call(r)
    return out


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.8])
def test_resume_from_state_gives_the_same_alerts(cut):
    recs = mixed_records()
    whole = AnomalyEngine(AnomalySettings(), trunk_of=TRUNKS.get)
    expected = feed(whole, recs) + whole.advance(T0 + 7200)
    assert {a.name for a in expected} >= {"registration_bruteforce", "extension_enumeration", "invite_flood",
                                          "scanner_user_agent", "high_risk_destination", "short_call_burst"}
    n = int(len(recs) * cut)
    first = AnomalyEngine(AnomalySettings(), trunk_of=TRUNKS.get)
    got = feed(first, recs[:n])
    blob = first.dumps()
    second = AnomalyEngine.loads(blob, AnomalySettings(), trunk_of=TRUNKS.get)
    got += feed(second, recs[n:]) + second.advance(T0 + 7200)
    assert got == expected
    assert second.to_state() == whole.to_state()


def test_state_is_plain_json():
    eng = AnomalyEngine(AnomalySettings(), trunk_of=TRUNKS.get)
    feed(eng, mixed_records()[:3000])
    state = eng.to_state()
    assert json.loads(json.dumps(state)) == state
    assert AnomalyEngine.from_state(json.loads(json.dumps(state)), AnomalySettings(), trunk_of=TRUNKS.get).to_state() == state


def test_state_version_is_checked():
    with pytest.raises(ValueError, match="unsupported anomaly state version"):
        AnomalyEngine.from_state({"version": 99})


def test_memory_is_bounded_by_the_key_caps():
    s = AnomalySettings(max_keys=500, max_tracked_messages=2000, max_tracked_calls=1000)
    eng = AnomalyEngine(s)
    for i in range(20_000):  # 20,000 distinct sources, each probing with a scanner agent and calling
        ip = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        eng.feed_message(msg(T0 + i * 0.01, "INVITE", src=ip, call_id=f"m{i}", to_user=str(i), ua="sipcli"))
    for d in eng.detectors:
        for attr in ("keys",):
            table = getattr(d, attr, None)
            if table is not None:
                assert len(table) <= 500, d.name
        base = getattr(d, "base", None)
        if base is not None:
            assert len(base) <= 500
    assert len(eng.tracker.recent.seen) <= 2000
    assert len(eng.tracker.trying) + len(eng.tracker.proceeding) + len(eng.tracker.active) <= 3000
    assert eng.tracker.dropped > 0


def test_event_time_only_late_records_and_no_wall_clock(monkeypatch):
    import time

    monkeypatch.setattr(time, "time", lambda: (_ for _ in ()).throw(AssertionError("wall clock used")))
    eng = AnomalyEngine()
    recs = bruteforce(T0, 12)
    recs[3], recs[5] = recs[5], recs[3]  # a little out of order
    assert [a.name for a in run(eng, recs)] == ["registration_bruteforce"]
    assert eng.now == max(r.ts for r in recs)


def test_interim_call_summaries_are_ignored():
    eng = AnomalyEngine()
    calls = [summary(i, outcome="cancelled") for i in range(30)]
    for c in calls:
        c.final = False
    assert run(eng, calls) == [] and eng.counts["calls"] == 0


def test_from_settings_uses_the_correlation_trunk_map():
    settings = Settings(correlation={"trunks": {"198.51.100.0/24": "carrier-a"}})
    eng = AnomalyEngine.from_settings(settings)
    assert eng.trunk_of(CARRIER) == "carrier-a" and eng.trunk_of("192.0.2.1") is None
    assert AnomalyEngine.from_settings(Settings()).trunk_of(CARRIER) is None


def test_analyze_protocol():
    eng = AnomalyEngine()
    out = []
    for m in bruteforce(T0, 12):
        out += eng.on_message(m)
    out += eng.on_record(summary(0, outcome="answered", duration=10.0))
    out += eng.finish(T0 + 5000)
    assert [a.status for a in out] == ["open", "resolved"]
