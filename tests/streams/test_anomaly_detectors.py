"""Every anomaly detector on synthetic record sequences: fires when it should, stays quiet on normal
traffic, respects the cool-down, resolves after a quiet period, and does not learn from the attack."""

from __future__ import annotations

import itertools

import pytest

from sipscope.records import Alert, CallSummary, SipMessage
from sipscope.settings import AnomalySettings
from streams.anomaly import AnomalyEngine

T0 = 1_699_999_980.0  # a minute boundary
ATTACKER = "203.0.113.66"
PBX = "192.0.2.10"
PROXY = "198.51.100.1"
CARRIER = "198.51.100.77"
_seq = itertools.count()


def msg(ts: float, method: str | None = None, status: int | None = None, *, src: str = PBX, dst: str = PROXY,
        call_id: str = "c1", cseq: int = 1, cseq_method: str | None = None, branch: str | None = None,
        to_user: str = "100", to_tag: str | None = None, ua: str | None = None, auth_user: str | None = None,
        node: str = "n1", ruri_e164: str | None = None, from_user: str = "200") -> SipMessage:
    return SipMessage(
        ts=ts, src_ip=src, src_port=5060, dst_ip=dst, dst_port=5060, transport="udp", node=node,
        is_request=method is not None, method=method, status_code=status, call_id=call_id, cseq_num=cseq,
        cseq_method=cseq_method or method or "INVITE", via_branch=branch or f"z9hG4bK-{call_id}-{cseq}",
        to_user=to_user, to_tag=to_tag, user_agent=ua, auth_user=auth_user, ruri_user=to_user,
        ruri_user_e164=ruri_e164, to_user_e164=ruri_e164, from_user=from_user, raw="",
    )


def call_msgs(ts: float, *, src: str = PBX, dst: str = CARRIER, final: int = 200, pdd: float = 0.5,
              setup: float = 2.0, duration: float = 30.0, to_user: str | None = None,
              call_id: str | None = None, ringing: bool = True) -> list[SipMessage]:
    """One call as messages: INVITE, (180), final, ACK, and BYE/200 for answered calls."""
    cid = call_id or f"call-{next(_seq)}"
    user = to_user or f"6129{next(_seq):07d}"
    out = [msg(ts, "INVITE", src=src, dst=dst, call_id=cid, to_user=user)]
    if ringing:
        out.append(msg(ts + pdd, status=180, src=dst, dst=src, call_id=cid, to_user=user, to_tag="t"))
    out.append(msg(ts + setup, status=final, src=dst, dst=src, call_id=cid, to_user=user, to_tag="t"))
    out.append(msg(ts + setup + 0.01, "ACK", src=src, dst=dst, call_id=cid, to_user=user, to_tag="t"))
    if 200 <= final < 300:
        end = ts + setup + duration
        out.append(msg(end, "BYE", src=src, dst=dst, call_id=cid, cseq=2, to_user=user, to_tag="t"))
        out.append(msg(end + 0.02, status=200, src=dst, dst=src, call_id=cid, cseq=2, cseq_method="BYE",
                       to_user=user, to_tag="t"))
    return out


def run(eng: AnomalyEngine, records, advance_to: float | None = None) -> list[Alert]:
    out: list[Alert] = []
    for r in sorted(records, key=lambda r: r.ts if isinstance(r, SipMessage) else r.end_ts):
        out += eng.feed_message(r) if isinstance(r, SipMessage) else eng.feed_call(r)
    if advance_to is not None:
        out += eng.advance(advance_to)
    return out


def opened(alerts: list[Alert], name: str | None = None) -> list[Alert]:
    return [a for a in alerts if a.status == "open" and (name is None or a.name == name)]


def resolved(alerts: list[Alert], name: str | None = None) -> list[Alert]:
    return [a for a in alerts if a.status == "resolved" and (name is None or a.name == name)]


def engine(**kw) -> AnomalyEngine:
    trunks = kw.pop("trunks", None)
    return AnomalyEngine(AnomalySettings(**kw), trunk_of=(trunks.get if trunks else None))


# -- scanner_user_agent -------------------------------------------------------------------------------------

def test_scanner_user_agent_fires_at_once_with_ua_and_evidence():
    eng = engine()
    alerts = run(eng, [msg(T0 + i, "OPTIONS", src=ATTACKER, call_id=f"s{i}", to_user=str(100 + i),
                           ua="friendly-scanner") for i in range(3)])
    [a] = opened(alerts)
    assert (a.name, a.subject_type, a.subject, a.severity) == ("scanner_user_agent", "ip", ATTACKER, "warning")
    assert a.ts == T0 and a.observed == 1 and a.threshold == 1
    assert "friendly-scanner" in a.description and a.evidence == ["s0"]
    assert a.window_start == T0 - 300 and a.window_end == T0


@pytest.mark.parametrize("ua", ["sipvicious 0.3.4", "UNfriendly-scanner - for demo purposes", "sipcli/v1.8",
                                "VaxSIPUserAgent/3.1", "pplsip", "SIP Call", "iWar"])
def test_scanner_user_agent_default_patterns(ua):
    assert opened(run(engine(), [msg(T0, "INVITE", src=ATTACKER, ua=ua)]), "scanner_user_agent")


@pytest.mark.parametrize("ua", ["Yealink SIP-T46S 66.85.0.5", "Asterisk PBX 18.2.0", "MySIP Caller 2.0",
                                "kamailio (5.6.3 (x86_64/linux))", "Cisco v11.0.0"])
def test_scanner_user_agent_quiet_on_normal_agents(ua):
    assert run(engine(), [msg(T0 + i, "INVITE", ua=ua, call_id=f"n{i}") for i in range(20)]) == []


def test_scanner_user_agent_ignores_the_server_header_of_responses():
    assert run(engine(), [msg(T0, status=404, src=PROXY, dst=PBX, ua="friendly-scanner")]) == []


def test_scanner_patterns_are_configurable_and_min_hits():
    eng = engine(scanner_patterns=[r"evil\d"], scanner_min_hits=2)
    alerts = run(eng, [msg(T0, "OPTIONS", src=ATTACKER, ua="friendly-scanner", call_id="a"),
                       msg(T0 + 1, "OPTIONS", src=ATTACKER, ua="EVIL9 tool", call_id="b")])
    assert alerts == []
    alerts = eng.feed_message(msg(T0 + 2, "OPTIONS", src=ATTACKER, ua="evil9", call_id="c"))
    assert [a.observed for a in opened(alerts)] == [2]


def test_cooldown_reminder_and_resolution_keep_one_alert_id():
    eng = engine(cooldown_s=600, resolve_quiet_s=300)
    hits = [msg(T0 + 10 * i, "OPTIONS", src=ATTACKER, ua="sipvicious", call_id=f"s{i}") for i in range(70)]
    alerts = run(eng, hits)  # 0..690 s: one open, one reminder at 600 s (cool-down passed, still firing)
    assert [a.ts - T0 for a in alerts] == [0, 600]
    assert all(a.status == "open" for a in alerts)
    assert alerts[0].alert_id == alerts[1].alert_id and alerts[0].id != alerts[1].id
    assert eng.advance(T0 + 690 + 299.9) == []
    [r] = eng.advance(T0 + 690 + 300)
    assert r.status == "resolved" and r.alert_id == alerts[0].alert_id and r.ts == T0 + 990
    assert r.window_end == T0 + 690
    # after resolution a new episode is a new alert
    [again] = eng.feed_message(msg(T0 + 2000, "OPTIONS", src=ATTACKER, ua="sipvicious", call_id="x"))
    assert again.status == "open" and again.alert_id != alerts[0].alert_id


def test_resolution_time_does_not_depend_on_how_often_time_advances():
    def episode(step: float) -> list[Alert]:
        eng = engine()
        out = run(eng, [msg(T0, "OPTIONS", src=ATTACKER, ua="sipcli")])
        t = T0
        while t < T0 + 1000:
            t += step
            out += eng.advance(t)
        return out

    assert [(a.id, a.ts) for a in episode(1.0)] == [(a.id, a.ts) for a in episode(333.0)]


# -- registration_bruteforce --------------------------------------------------------------------------------

def bruteforce(t0: float, n: int, *, src: str = ATTACKER, step: float = 1.0, code: int = 401,
               user: str = "100") -> list[SipMessage]:
    """``n`` REGISTERs with credentials from ``src``, each answered ``code`` (wrong password)."""
    out = []
    for i in range(n):
        t = t0 + i * step
        cid = f"bf-{src}-{t}"
        out.append(msg(t, "REGISTER", src=src, dst=PROXY, call_id=cid, cseq=2, to_user=user, auth_user=user))
        out.append(msg(t + 0.01, status=code, src=PROXY, dst=src, call_id=cid, cseq=2, cseq_method="REGISTER",
                       to_user=user, to_tag="x"))
    return out


def test_registration_bruteforce_fires_on_the_tenth_failure():
    eng = engine()
    alerts = run(eng, bruteforce(T0, 12))
    [a] = opened(alerts, "registration_bruteforce")
    assert (a.subject_type, a.subject, a.observed, a.threshold) == ("ip", ATTACKER, 10, 10)
    assert a.ts == T0 + 9 + 0.01
    assert len(a.evidence) == 5 and "100" in a.description


def test_registration_bruteforce_counts_403_without_credentials():
    msgs = []
    for i in range(10):
        cid = f"b{i}"
        msgs.append(msg(T0 + i, "REGISTER", src=ATTACKER, call_id=cid, to_user=str(i)))
        msgs.append(msg(T0 + i + 0.01, status=403, src=PROXY, dst=ATTACKER, call_id=cid, cseq_method="REGISTER",
                        to_user=str(i), to_tag="x"))
    assert opened(run(engine(), msgs), "registration_bruteforce")


def test_registration_bruteforce_quiet_on_a_nat_full_of_phones():
    """50 phones behind one address: challenge, retry with credentials, 200 - twice a minute."""
    msgs = []
    for rnd, phone in itertools.product(range(2), range(50)):
        t = T0 + rnd * 30 + phone * 0.5
        cid = f"reg-{phone}-{rnd}"
        user = f"{1000 + phone}"
        msgs += [msg(t, "REGISTER", call_id=cid, to_user=user),
                 msg(t + 0.01, status=401, src=PROXY, dst=PBX, call_id=cid, cseq_method="REGISTER", to_user=user, to_tag="x"),
                 msg(t + 0.02, "REGISTER", call_id=cid, cseq=2, to_user=user, auth_user=user),
                 msg(t + 0.03, status=200, src=PROXY, dst=PBX, call_id=cid, cseq=2, cseq_method="REGISTER", to_user=user,
                     to_tag="x")]
    # and one phone with a wrong password keeps failing
    msgs += bruteforce(T0, 4, src=PBX, step=15, user="1099")
    assert run(engine(), msgs) == []


def test_registration_bruteforce_below_threshold_spread_out_or_mostly_accepted():
    assert run(engine(), bruteforce(T0, 9)) == []
    assert run(engine(), bruteforce(T0, 30, step=7.0)) == []  # 30 failures but never 10 within 60 s
    ok = []
    for i in range(3):
        ok += [msg(T0 + i, "REGISTER", src=ATTACKER, call_id=f"ok{i}", cseq=2, auth_user="u"),
               msg(T0 + i + 0.01, status=200, src=PROXY, dst=ATTACKER, call_id=f"ok{i}", cseq=2, cseq_method="REGISTER", to_tag="x")]
    assert run(engine(), bruteforce(T0 + 5, 10) + ok) == []  # 3 accepted > 0.2 x 10 failures


def test_registration_bruteforce_ignores_retransmitted_responses():
    msgs = bruteforce(T0, 6)
    msgs += [msg(m.ts + 0.6, status=m.status_code, src=m.src_ip, dst=m.dst_ip, call_id=m.call_id, cseq=2,
                 cseq_method="REGISTER", to_user="100", to_tag="x") for m in msgs if not m.is_request]
    eng = engine()
    assert run(eng, msgs) == []
    assert eng.counts["retransmissions"] == 6


def test_registration_bruteforce_resolves_after_quiet_period():
    eng = engine(resolve_quiet_s=120)
    alerts = run(eng, bruteforce(T0, 15), advance_to=T0 + 400)
    o, = opened(alerts)
    r, = resolved(alerts)
    assert r.alert_id == o.alert_id and r.ts == pytest.approx(T0 + 14.01 + 120)


# -- extension_enumeration -----------------------------------------------------------------------------------

def scan(t0: float, n: int, method: str, code: int, *, src: str = ATTACKER, step: float = 0.2) -> list[SipMessage]:
    out = []
    for i in range(n):
        t, cid, user = t0 + i * step, f"scan-{method}-{i}", str(100 + i)
        out.append(msg(t, method, src=src, call_id=cid, to_user=user, ua="unknown"))
        out.append(msg(t + 0.01, status=code, src=PROXY, dst=src, call_id=cid, cseq_method=method, to_user=user, to_tag="x"))
    return out


@pytest.mark.parametrize("method,code", [("OPTIONS", 404), ("INVITE", 404), ("REGISTER", 401), ("INVITE", 483)])
def test_extension_enumeration_fires_on_a_scan(method, code):
    alerts = opened(run(engine(), scan(T0, 15, method, code)), "extension_enumeration")
    assert len(alerts) == 1
    a = alerts[0]
    assert (a.subject, a.observed, a.threshold) == (ATTACKER, 10, 10)
    assert a.ts == pytest.approx(T0 + 9 * 0.2 + 0.01)  # on the response that completed the pattern


def test_extension_enumeration_quiet_on_a_pbx_challenged_on_every_call():
    msgs = []
    for i in range(30):
        t, cid, user = T0 + i, f"pbx{i}", f"61299{i:05d}"
        msgs += [msg(t, "INVITE", call_id=cid, to_user=user),
                 msg(t + 0.01, status=407, src=PROXY, dst=PBX, call_id=cid, to_user=user, to_tag="x"),
                 msg(t + 0.02, "ACK", call_id=cid, to_user=user, to_tag="x"),
                 msg(t + 0.03, "INVITE", call_id=cid, cseq=2, to_user=user),
                 msg(t + 0.5, status=200, src=PROXY, dst=PBX, call_id=cid, cseq=2, to_user=user, to_tag="y")]
    assert opened(run(engine(), msgs), "extension_enumeration") == []


def test_extension_enumeration_quiet_when_users_exist_or_are_few():
    assert run(engine(), scan(T0, 30, "OPTIONS", 200)) == []
    assert run(engine(), scan(T0, 9, "OPTIONS", 404)) == []
    assert run(engine(), scan(T0, 30, "OPTIONS", 404, step=7.0)) == []  # never 10 users within 60 s


# -- invite_flood ---------------------------------------------------------------------------------------------

def invites(t0: float, n: int, seconds: float, *, src: str = ATTACKER, dst: str = PROXY,
            spread: int = 0) -> list[SipMessage]:
    """``n`` initial INVITEs in ``seconds``; with ``spread``, from that many addresses ``src.0``, ``src.1``..."""
    out = []
    for i in range(n):
        s = f"{src}.{i % spread}" if spread else src
        out.append(msg(t0 + i * seconds / n, "INVITE", src=s, dst=dst, call_id=f"inv-{s}-{t0}-{i}", to_user=str(i)))
    return out


def test_invite_flood_from_an_unknown_source_uses_the_floor():
    assert opened(run(engine(), invites(T0, 99, 59)), "invite_flood") == []
    [a] = opened(run(engine(), invites(T0, 150, 59)), "invite_flood")
    assert (a.subject_type, a.subject, a.observed, a.threshold, a.baseline) == ("ip", ATTACKER, 100, 100, None)


def test_invite_flood_to_a_trunk_against_its_baseline_which_stays_frozen():
    eng = engine(trunks={CARRIER: "carrier-a"}, detectors=["invite_flood"])
    normal = [m for k in range(40) for m in invites(T0 + 60 * k, 200, 59.9, src="10.0.0", dst=CARRIER, spread=20)]
    assert run(eng, normal) == []
    flood = eng.detectors[[d.name for d in eng.detectors].index("invite_flood")]
    before = flood.base.expected("trunk|carrier-a", int((T0 + 2340) // 60))  # through the minute before the last
    assert before == pytest.approx(200, rel=0.01)
    attack = [m for k in range(10) for m in invites(T0 + 2400 + 60 * k, 700, 59.9, src="10.1.0", dst=CARRIER, spread=50)]
    alerts = run(eng, attack)
    trunk_alerts = [a for a in opened(alerts, "invite_flood") if a.subject_type == "trunk"]
    assert trunk_alerts and trunk_alerts[0].subject == "carrier-a"
    assert trunk_alerts[0].threshold == pytest.approx(600, rel=0.02) and trunk_alerts[0].baseline == pytest.approx(200, rel=0.02)
    assert trunk_alerts[0].ts < T0 + 2400 + 60  # within the first attack minute
    after = flood.base.expected("trunk|carrier-a", int((T0 + 3000) // 60))
    assert after == pytest.approx(before, rel=0.02), "the attack minutes were not learnt (one idle minute decays it 1 %)"
    # without freezing, ten minutes at 700 would have pulled the EWMA (half-life 60 min) to about 250
    assert after < 210


def test_invite_flood_trunk_needs_a_warm_baseline():
    eng = engine(trunks={CARRIER: "carrier-a"})
    alerts = run(eng, invites(T0, 900, 59, src="10.9.9.9", dst=CARRIER))
    assert {a.subject_type for a in opened(alerts, "invite_flood")} == {"ip"}


# -- call quality: asr_drop, error_spike, long_pdd ----------------------------------------------------------

def traffic(t0: float, minutes: int, per_minute: int, final_for, *, pdd: float = 0.5, dst: str = CARRIER,
            duration: float = 20.0) -> list[SipMessage]:
    out = []
    for k in range(minutes):
        for i in range(per_minute):
            n = k * per_minute + i
            out += call_msgs(t0 + 60 * k + i * 60 / per_minute, final=final_for(n), pdd=pdd, setup=pdd + 1.0,
                             dst=dst, duration=duration)
    return out


def test_asr_drop_fires_on_a_trunk_and_freezes_its_baseline():
    eng = engine(trunks={CARRIER: "carrier-a"})
    normal = traffic(T0, 40, 10, lambda n: 200 if n % 2 == 0 else 486)  # ASR 50 %
    assert run(eng, normal) == []
    asr = eng.detectors[[d.name for d in eng.detectors].index("asr_drop")]
    minute = int((T0 + 2400) // 60)
    base_before = asr.ans.expected("trunk|carrier-a", minute) / asr.att.expected("trunk|carrier-a", minute)
    assert base_before == pytest.approx(0.5, abs=0.01)
    bad = traffic(T0 + 2400, 15, 10, lambda n: 200 if n % 20 == 0 else 503)  # ASR 5 %
    alerts = run(eng, bad)
    got = opened(alerts, "asr_drop")
    a = got[0]
    assert [x.severity for x in got] == ["warning", "critical"] and got[1].alert_id == a.alert_id  # escalation
    assert (a.subject_type, a.subject) == ("trunk", "carrier-a")
    # the first bad minutes, before the 10-minute window crossed the threshold, were learnt (a little)
    assert a.baseline == pytest.approx(50, abs=3) and a.threshold == pytest.approx(30, abs=3) and a.observed <= a.threshold
    assert a.ts - (T0 + 2400) <= 6 * 60, "raised within minutes of the drop"
    minute = int((T0 + 2400 + 900) // 60)
    base_after = asr.ans.expected("trunk|carrier-a", minute) / asr.att.expected("trunk|carrier-a", minute)
    assert base_after == pytest.approx(a.baseline / 100, abs=0.002), "frozen from the moment the alert opened"


def test_asr_drop_gated_on_volume():
    eng = engine(trunks={CARRIER: "carrier-a"})
    run(eng, traffic(T0, 40, 2, lambda n: 200))  # 20 attempts per 10 min < 60
    assert opened(run(eng, traffic(T0 + 2400, 20, 2, lambda n: 503)), "asr_drop") == []


@pytest.mark.parametrize("bad_every,severity", [(5, "critical"), (12, "warning"), (50, None)])
def test_error_spike_bands(bad_every, severity):
    eng = engine(trunks={CARRIER: "carrier-a"})
    alerts = run(eng, traffic(T0, 5, 12, lambda n: 503 if n % bad_every == 0 else 200))
    got = opened(alerts, "error_spike")
    if severity is None:
        assert got == []
    else:
        assert got and got[-1].severity == severity and got[0].subject == "carrier-a"
        assert got[0].threshold == 5.0


def test_error_spike_counts_invites_nobody_answered():
    eng = engine()
    msgs = [msg(T0 + i, "INVITE", dst=CARRIER, call_id=f"dead{i}") for i in range(40)]
    alerts = run(eng, msgs, advance_to=T0 + 100)
    a = opened(alerts, "error_spike")[0]
    assert (a.subject_type, a.subject, a.severity) == ("ip", CARRIER, "critical")
    assert a.ts == pytest.approx(T0 + 29 + 32)  # Timer B after the 30th INVITE (error_min_attempts)


def test_long_pdd_fires_on_slow_ringing_only():
    eng = engine(trunks={CARRIER: "carrier-a"})
    assert run(eng, traffic(T0, 2, 10, lambda n: 200, pdd=1.0)) == []
    alerts = run(eng, traffic(T0 + 600, 2, 10, lambda n: 200, pdd=7.0))
    a = opened(alerts, "long_pdd")[0]
    assert a.subject == "carrier-a" and a.observed >= 50 and a.threshold == 50
    assert "7000 ms" in a.description or "PDD >" in a.description


# -- traffic_collapse ---------------------------------------------------------------------------------------

def test_traffic_collapse_against_moving_average_and_gated():
    eng = engine(trunks={CARRIER: "carrier-a"})
    # ~30 calls in progress: a 60 s call starts every 2 s for 40 minutes
    steady = [m for i in range(1200) for m in call_msgs(T0 + 2 * i, final=200, duration=60.0, dst=CARRIER)]
    assert run(eng, steady) == []
    # then only one new call every 20 s: about 3-4 in progress
    low = [m for i in range(30) for m in call_msgs(T0 + 2400 + 20 * i, final=200, duration=60.0, dst=CARRIER)]
    alerts = run(eng, low, advance_to=T0 + 3000)
    got = opened(alerts, "traffic_collapse")
    assert {(a.subject_type, a.subject) for a in got} == {("trunk", "*"), ("trunk", "carrier-a")}
    a = got[0]
    assert a.baseline == pytest.approx(31, abs=2) and a.observed <= a.threshold
    assert a.ts <= T0 + 2400 + 180


def test_traffic_collapse_quiet_below_the_minimum_average():
    eng = engine(trunks={CARRIER: "carrier-a"})
    run(eng, [m for i in range(240) for m in call_msgs(T0 + 10 * i, final=200, duration=20.0, dst=CARRIER)])
    assert opened(eng.advance(T0 + 7200), "traffic_collapse") == []


# -- short_call_burst ---------------------------------------------------------------------------------------

def summary(i: int, *, outcome: str, src: str = ATTACKER, caller: str = "88216000001", ring: float | None = 1.0,
            duration: float | None = None, callee: str | None = None) -> CallSummary:
    t = T0 + 5 * i
    return CallSummary(id=f"id{i}", call_id=f"w{i}", outcome=outcome, start_ts=t, end_ts=t + 3, src_ip=src,
                       caller=caller, caller_e164=caller, callee=callee or f"6140000{i:04d}",
                       callee_e164=callee or f"6140000{i:04d}", ring_time_s=ring, duration_s=duration)


def test_short_call_burst_wangiri():
    calls = [summary(i, outcome="no_answer" if i % 3 else "cancelled") for i in range(25)]
    got = opened(run(engine(), calls), "short_call_burst")
    assert {(a.subject_type, a.subject) for a in got} == {("ip", ATTACKER), ("number", "88216000001")}
    assert got[0].observed == 100.0 and got[0].threshold == 80.0 and len(got[0].evidence) == 5


def test_short_call_burst_quiet_on_normal_calls_and_few_numbers():
    normal = [summary(i, outcome="answered", duration=95.0) for i in range(40)]
    assert run(engine(), normal) == []
    same_number = [summary(i, outcome="cancelled", callee="61400000001") for i in range(40)]
    assert run(engine(), same_number) == []
    long_ring = [summary(i, outcome="no_answer", ring=25.0) for i in range(40)]
    assert run(engine(), long_ring) == []


def test_short_call_burst_false_answer():
    calls = [summary(i, outcome="answered", duration=1.0) for i in range(25)]
    assert opened(run(engine(), calls), "short_call_burst")


# -- high_risk_destination ----------------------------------------------------------------------------------

def test_high_risk_destination_on_the_first_invite():
    alerts = run(engine(), [msg(T0, "INVITE", call_id="irsf", to_user="0088213600000", ruri_e164="88213600000"),
                            msg(T0 + 0.5, "INVITE", call_id="irsf", to_user="0088213600000", ruri_e164="88213600000")])
    [a] = alerts
    assert (a.name, a.subject_type, a.subject, a.evidence) == ("high_risk_destination", "prefix", "882", ["irsf"])
    assert "+88213600000" in a.description and PBX in a.description


def test_high_risk_destination_prefixes_are_configurable_longest_wins():
    eng = engine(high_risk_prefixes=["+53", "5399"])
    [a] = run(eng, [msg(T0, "INVITE", call_id="c", ruri_e164="5399123456")])
    assert a.subject == "5399"
    assert run(engine(), [msg(T0, "INVITE", call_id=f"n{i}", ruri_e164=f"6129970{i:04d}") for i in range(50)]) == []


# -- retransmission_storm -----------------------------------------------------------------------------------

def test_retransmission_storm_and_duplicates_are_not_retransmissions():
    msgs = []
    for i in range(40):  # INVITEs to a dead peer, each sent 1 + 4 times (T1 backoff), never answered
        cid = f"r{i}"
        for k, dt in enumerate((0, 0.5, 1.5, 3.5, 7.5)):
            msgs.append(msg(T0 + i + dt, "INVITE", src=PROXY, dst=CARRIER, call_id=cid))
            msgs.append(msg(T0 + i + dt + 0.001, "INVITE", src=PROXY, dst=CARRIER, call_id=cid, node="n2"))
    eng = engine()
    alerts = run(eng, msgs)
    [a] = opened(alerts, "retransmission_storm")
    assert (a.subject_type, a.subject, a.observed, a.threshold) == ("ip", PROXY, 100, 100)
    assert eng.counts["duplicates"] >= 100


def test_retransmission_storm_quiet_on_a_busy_proxy_with_a_few_retransmissions():
    msgs = []
    for i in range(3000):
        cid = f"p{i}"
        msgs.append(msg(T0 + i * 0.02, "OPTIONS", src=PROXY, call_id=cid))
        if i % 20 == 0:
            msgs.append(msg(T0 + i * 0.02 + 0.5, "OPTIONS", src=PROXY, call_id=cid))
    assert run(engine(), msgs) == []


# -- everything together ------------------------------------------------------------------------------------

def test_normal_mixed_traffic_raises_nothing():
    eng = engine(trunks={CARRIER: "carrier-a"})
    msgs = traffic(T0, 45, 6, lambda n: (200, 200, 486, 480, 200, 404)[n % 6])
    for i in range(45 * 4):  # registrations every 15 s with a challenge round
        t, cid, user = T0 + 15 * i, f"reg{i}", f"{1000 + i % 40}"
        msgs += [msg(t, "REGISTER", call_id=cid, to_user=user, ua="Yealink"),
                 msg(t + 0.01, status=401, src=PROXY, dst=PBX, call_id=cid, cseq_method="REGISTER", to_user=user, to_tag="x"),
                 msg(t + 0.02, "REGISTER", call_id=cid, cseq=2, to_user=user, auth_user=user, ua="Yealink"),
                 msg(t + 0.03, status=200, src=PROXY, dst=PBX, call_id=cid, cseq=2, cseq_method="REGISTER", to_user=user, to_tag="x")]
    assert run(eng, msgs, advance_to=T0 + 3 * 3600) == []


def test_same_records_same_alerts_and_ids():
    records = bruteforce(T0, 20) + scan(T0 + 100, 20, "OPTIONS", 404) + invites(T0 + 200, 150, 30)
    a1 = run(engine(), records, advance_to=T0 + 2000)
    a2 = run(engine(), records, advance_to=T0 + 2000)
    assert a1 and [x.id for x in a1] == [x.id for x in a2] and a1 == a2
    assert len({x.id for x in a1}) == len(a1)


def test_unknown_detector_name_is_refused():
    with pytest.raises(ValueError, match="unknown detectors"):
        AnomalyEngine(AnomalySettings(detectors=["scanner_user_agent", "nope"]))


def test_only_enabled_detectors_run():
    eng = engine(detectors=["registration_bruteforce"])
    alerts = run(eng, [msg(T0, "OPTIONS", src=ATTACKER, ua="friendly-scanner")] + bruteforce(T0, 12))
    assert {a.name for a in alerts} == {"registration_bruteforce"}
