"""The alert life cycle, for every detector: one open event per episode (no repeat within the cool-down
except a severity escalation), exactly one ``resolved`` with the same ``alert_id`` after the quiet period,
and baselines that do not learn while their key is alerting."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from test_anomaly_detectors import (
    ATTACKER,
    CARRIER,
    PROXY,
    T0,
    bruteforce,
    call_msgs,
    invites,
    msg,
    run,
    scan,
    summary,
    traffic,
)

from sipscope.records import Alert
from sipscope.settings import AnomalySettings
from streams.anomaly import DETECTORS, AnomalyEngine

TRUNKS = {CARRIER: "carrier-a"}


def _retrans():
    out = []
    for i in range(150):
        for dt in (0, 0.5, 1.5, 3.5, 7.5):
            out.append(msg(T0 + i + dt, "INVITE", src=PROXY, dst=CARRIER, call_id=f"r{i}"))
    return out


def _collapse(recover: bool = False):
    steady = [m for i in range(1200) for m in call_msgs(T0 + 2 * i, final=200, duration=60.0, dst=CARRIER)]
    low = [m for i in range(60) for m in call_msgs(T0 + 2400 + 20 * i, final=200, duration=60.0, dst=CARRIER)]
    back = [m for i in range(600) for m in call_msgs(T0 + 3600 + 2 * i, final=200, duration=60.0, dst=CARRIER)] if recover else []
    return steady + low + back


SCENARIOS = {
    "scanner_user_agent": lambda: [msg(T0 + i, "OPTIONS", src=ATTACKER, ua="sipvicious", call_id=f"s{i}") for i in range(900)],
    "registration_bruteforce": lambda: bruteforce(T0, 900),
    "extension_enumeration": lambda: scan(T0, 900, "OPTIONS", 404, step=1.0),
    "invite_flood": lambda: invites(T0, 2000, 900),
    "asr_drop": lambda: traffic(T0, 40, 10, lambda n: 200 if n % 2 else 486)
    + traffic(T0 + 2400, 20, 10, lambda n: 200 if n % 20 == 0 else 503),
    "error_spike": lambda: traffic(T0, 15, 12, lambda n: 503 if n % 5 == 0 else 200),
    "short_call_burst": lambda: [summary(i, outcome="cancelled") for i in range(180)],
    "high_risk_destination": lambda: [msg(T0 + 10 * i, "INVITE", call_id=f"h{i}", ruri_e164="88213600000")
                                      for i in range(90)],
    "retransmission_storm": _retrans,
    "long_pdd": lambda: traffic(T0, 15, 10, lambda n: 200, pdd=7.0),
    "traffic_collapse": lambda: _collapse(recover=True),
}


def test_every_detector_has_a_scenario():
    assert set(SCENARIOS) == set(DETECTORS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_life_cycle(name):
    s = AnomalySettings(cooldown_s=600, resolve_quiet_s=300)
    eng = AnomalyEngine(s, trunk_of=TRUNKS.get)
    records = SCENARIOS[name]()
    alerts = [a for a in run(eng, records) if a.name == name]
    last = max(getattr(r, "ts", None) or r.end_ts for r in records)
    alerts += [a for a in eng.advance(last + 1800) if a.name == name]
    assert alerts, f"{name} fired"
    episodes: dict[str, list[Alert]] = defaultdict(list)
    for a in alerts:
        episodes[a.alert_id].append(a)
    # (when the records stop, calls in progress fall to zero: a new, true traffic_collapse - not judged here)
    episodes = {k: v for k, v in episodes.items() if v[0].ts <= last}
    assert episodes
    rank = {"info": 0, "warning": 1, "critical": 2}
    for events in episodes.values():
        opens = [a for a in events if a.status == "open"]
        closes = [a for a in events if a.status == "resolved"]
        assert len(closes) == 1 and events[-1] is closes[0], "resolved once, last"
        assert len({(a.subject_type, a.subject) for a in events}) == 1
        for prev, cur in itertools.pairwise(opens):
            assert cur.ts - prev.ts >= s.cooldown_s or rank[cur.severity] > rank[prev.severity], (prev, cur)
        assert closes[0].ts >= opens[-1].ts + s.resolve_quiet_s
        assert len({a.id for a in events}) == len(events)
        assert all(len(a.evidence) <= s.evidence_max for a in events)
        assert all(a.window_start <= a.window_end for a in events)
    assert not {o.alert_id for o in eng.book.open.values()} & set(episodes), "resolved once the records stopped"


def _detector(eng: AnomalyEngine, name: str):
    return next(d for d in eng.detectors if d.name == name)


def test_retransmission_storm_baseline_is_frozen_while_alerting():
    eng = AnomalyEngine(AnomalySettings(retrans_floor=20), trunk_of=TRUNKS.get)
    # 40 minutes of 10 retransmissions per minute (a lossy link), then a storm of 200 per minute
    normal = []
    for k in range(40):
        for i in range(10):
            t, cid = T0 + 60 * k + 5 * i, f"n{k}-{i}"
            normal += [msg(t, "OPTIONS", src=PROXY, call_id=cid), msg(t + 0.5, "OPTIONS", src=PROXY, call_id=cid)]
    assert run(eng, normal) == []
    det = _detector(eng, "retransmission_storm")
    before = det.base.expected(PROXY, int((T0 + 2340) // 60))
    storm = []
    for k in range(10):
        for i in range(200):
            t, cid = T0 + 2400 + 60 * k + 0.3 * i, f"s{k}-{i}"
            storm += [msg(t, "OPTIONS", src=PROXY, call_id=cid), msg(t + 0.5, "OPTIONS", src=PROXY, call_id=cid)]
    alerts = run(eng, storm)
    assert [a.subject for a in alerts if a.status == "open"][:1] == [PROXY]
    after = det.base.expected(PROXY, int((T0 + 3000) // 60))
    assert before == pytest.approx(10, rel=0.05) and after == pytest.approx(before, rel=0.03)


def test_traffic_collapse_baseline_is_frozen_while_alerting():
    eng = AnomalyEngine(AnomalySettings(), trunk_of=TRUNKS.get)
    records = _collapse()
    run(eng, records[: len(records) - 60 * 6])
    det = _detector(eng, "traffic_collapse")
    alerts = run(eng, records[len(records) - 60 * 6:], advance_to=T0 + 2400 + 20 * 60)
    opened = [a for a in alerts if a.status == "open" and a.subject == "carrier-a"]
    assert opened
    base_at_alert = opened[0].baseline
    assert det.base.expected("trunk|carrier-a", int((T0 + 2400 + 20 * 60) // 60)) == pytest.approx(base_at_alert, rel=0.02)


def test_a_lasting_change_becomes_the_new_normal_after_max_freeze():
    """The trunk stays at the low level: after baseline_max_freeze_min the baseline learns it and the alert
    resolves instead of reminding for ever."""
    eng = AnomalyEngine(AnomalySettings(baseline_max_freeze_min=60), trunk_of=TRUNKS.get)
    records = _collapse()
    records += [m for i in range(540) for m in call_msgs(T0 + 3600 + 20 * i, final=200, duration=60.0, dst=CARRIER)]
    alerts = [a for a in run(eng, records) if a.name == "traffic_collapse" and a.subject == "carrier-a"]
    assert [a.status for a in alerts][:1] == ["open"] and alerts[-1].status == "resolved"
    assert alerts[-1].ts < T0 + 3600 + 20 * 540
