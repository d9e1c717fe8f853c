"""RegistrationTracker on hand-written REGISTER chains."""

from __future__ import annotations

import msgspec
import pytest
from sipbuild import A, B, Leg, P

from sipscope.settings import CorrelationSettings
from streams.registrations import RegistrationTracker

T0 = 5000.0
UA, REGISTRAR = A, B


def reg_leg(call_id="reg-1@ua", user="1111"):
    return Leg(call_id, caller=UA, callee=REGISTRAR, from_user=user, to_user=user)


def REG(leg, ts, cseq, **kw):
    kw.setdefault("expires", 3600)
    kw.setdefault("contact", f"sip:{leg.from_user}@10.0.0.1:5060")
    kw.setdefault("user_agent", "UA/1")
    return leg.request(ts, "REGISTER", cseq, to_host="example.net", **kw)


def RESP(leg, ts, code, cseq, **kw):
    return leg.response(ts, code, cseq, "REGISTER", to_host="example.net", **kw)


def run(msgs, cfg=None, advance_to=None):
    tr = RegistrationTracker(cfg or CorrelationSettings())
    out = []
    for m in msgs:
        out += tr.feed(m)
    if advance_to is not None:
        out += tr.advance(advance_to)
    out += tr.flush_all()
    return out


def test_challenge_and_retry_joined():
    leg = reg_leg()
    msgs = [REG(leg, T0, 1), RESP(leg, T0 + 0.010, 100, 1), RESP(leg, T0 + 0.020, 401, 1),
            REG(leg, T0 + 0.021, 2, auth_user="1111"), RESP(leg, T0 + 0.030, 100, 2),
            RESP(leg, T0 + 0.040, 200, 2, expires=600)]
    tr = RegistrationTracker()
    out = []
    for m in msgs:
        out += tr.feed(m)
    assert len(out) == 1  # closed on the final 200 delivered to the UA, no waiting
    r = out[0]
    assert (r.outcome, r.final_status, r.challenges, r.attempts) == ("ok", 200, 1, 2)
    assert r.rrd_ms == pytest.approx(40.0)
    assert r.expires == 600  # granted, not the 3600 asked for
    assert (r.aor, r.user, r.auth_user, r.src_ip, r.src_port, r.dst_ip) == \
        ("1111@example.net", "1111", "1111", "10.0.0.1", 5060, "10.0.0.2")
    assert r.start_ts == T0 and r.end_ts == T0 + 0.040 and r.contact == "sip:1111@10.0.0.1:5060"


def test_deregistration():
    leg = reg_leg()
    r = run([REG(leg, T0, 3, expires=0), RESP(leg, T0 + 0.02, 200, 3, expires=0)])[0]
    assert (r.outcome, r.expires, r.attempts, r.challenges) == ("unregistered", 0, 1, 0)
    assert r.rrd_ms == pytest.approx(20.0)


def test_challenge_never_retried():
    leg = reg_leg()
    tr = RegistrationTracker(CorrelationSettings(auth_retry_wait_s=64))
    assert tr.feed(REG(leg, T0, 1)) == [] and tr.feed(RESP(leg, T0 + 0.1, 401, 1)) == []
    assert tr.advance(T0 + 64.0) == []
    r = tr.advance(T0 + 64.1)[0]
    assert (r.outcome, r.final_status, r.challenges, r.attempts, r.rrd_ms) == ("challenged", 401, 1, 1, None)


def test_wrong_password_fails():
    leg = reg_leg()
    msgs = [REG(leg, T0, 68), RESP(leg, T0 + 0.1, 401, 68), REG(leg, T0 + 17.4, 69, auth_user="1111"),
            RESP(leg, T0 + 17.5, 100, 69), RESP(leg, T0 + 17.6, 403, 69)]
    r = run(msgs)[0]
    assert (r.outcome, r.final_status, r.challenges, r.attempts, r.rrd_ms) == ("failed", 403, 1, 2, None)


def test_no_response_times_out_and_retransmissions_are_not_attempts():
    leg = reg_leg()
    first = REG(leg, T0, 1)
    tr = RegistrationTracker(CorrelationSettings(register_timeout_s=32))
    for m in [first, leg.again(first, T0 + 0.5), leg.again(first, T0 + 1.5)]:
        assert tr.feed(m) == []
    assert tr.advance(T0 + 31.9) == []
    r = tr.advance(T0 + 32)[0]
    assert (r.outcome, r.final_status, r.attempts) == ("timeout", None, 1)


def test_retry_left_unanswered_at_capture_end_is_timeout():
    leg = reg_leg()
    out = run([REG(leg, T0, 199), RESP(leg, T0 + 0.17, 401, 199), REG(leg, T0 + 0.171, 200)])
    assert [(r.outcome, r.final_status, r.challenges, r.attempts) for r in out] == [("timeout", None, 1, 2)]


def test_refresh_with_the_same_call_id_is_a_new_chain():
    leg = reg_leg()
    msgs = [REG(leg, T0, 1), RESP(leg, T0 + 0.01, 200, 1), REG(leg, T0 + 1800, 2), RESP(leg, T0 + 1800.01, 200, 2)]
    out = run(msgs)
    assert [(r.outcome, r.start_ts, r.attempts) for r in out] == [("ok", T0, 1), ("ok", T0 + 1800, 1)]
    assert out[0].id != out[1].id


def test_another_aor_starts_a_new_chain():
    leg = reg_leg(user="voi18062")
    other = Leg(leg.call_id, caller=UA, callee=REGISTRAR, from_user="35104723", to_user="35104723")
    msgs = [REG(leg, T0, 76, expires=0), RESP(leg, T0 + 0.1, 401, 76), REG(other, T0 + 17, 78)]
    out = run(msgs)
    assert [(r.user, r.outcome, r.attempts) for r in out] == [("voi18062", "challenged", 1), ("35104723", "timeout", 1)]


def test_late_copy_of_a_closed_register_is_ignored():
    leg = reg_leg()
    first = REG(leg, T0, 1)
    out = run([first, RESP(leg, T0 + 0.01, 200, 1), leg.again(first, T0 + 2, node="other")])
    assert len(out) == 1


def test_proxy_chain_closes_on_the_ua_facing_final():
    leg = reg_leg()
    msgs = [REG(leg, T0, 1, src=UA, dst=P, branch="u"), REG(leg, T0 + 0.01, 1, src=P, dst=REGISTRAR, branch="p"),
            RESP(leg, T0 + 0.05, 200, 1, src=REGISTRAR, dst=P, branch="p"),
            RESP(leg, T0 + 0.06, 200, 1, src=P, dst=UA, branch="u")]
    tr = RegistrationTracker()
    outs = [tr.feed(m) for m in msgs]
    assert outs[:3] == [[], [], []] and len(outs[3]) == 1
    r = outs[3][0]
    assert (r.attempts, r.rrd_ms, r.end_ts) == (1, pytest.approx(60.0), T0 + 0.06)


def test_state_round_trip():
    leg = reg_leg()
    tr = RegistrationTracker()
    tr.feed(REG(leg, T0, 1))
    tr.feed(RESP(leg, T0 + 0.02, 401, 1))
    state = msgspec.json.decode(msgspec.json.encode(tr.export_chain(leg.call_id)))
    tr2 = RegistrationTracker()
    tr2.import_chain(state)
    out = tr2.feed(REG(leg, T0 + 0.03, 2)) + tr2.feed(RESP(leg, T0 + 0.05, 200, 2))
    assert [(r.outcome, r.challenges, r.attempts) for r in out] == [("ok", 1, 2)]


def test_response_to_an_uncaptured_retry_counts_as_the_attempt():
    # attack-register-bruteforce: REGISTER 1, 401, then only "403 (CSeq 2)" was captured
    leg = reg_leg()
    out = run([REG(leg, T0, 1), RESP(leg, T0 + 0.1, 401, 1), RESP(leg, T0 + 0.3, 403, 2),
               REG(leg, T0 + 0.31, 2)])  # the late copy of the retry opens nothing
    assert [(r.outcome, r.final_status, r.challenges, r.attempts) for r in out] == [("failed", 403, 1, 2)]
