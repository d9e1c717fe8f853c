"""CallTracker on hand-written message sequences: outcomes, timings, timers, retransmissions, duplicates."""

from __future__ import annotations

import msgspec
import pytest
from sipbuild import A, B, Leg, P, answered_call

from sipscope.records import CallSummary, SipMessage
from sipscope.settings import CorrelationSettings
from streams.dialogs import CallTracker

T0 = 1000.0


def run(msgs: list[SipMessage], cfg: CorrelationSettings | None = None, *, advance_to: float | None = None,
        flush: bool = True) -> list[CallSummary]:
    tr = CallTracker(cfg or CorrelationSettings())
    out: list[CallSummary] = []
    for m in msgs:
        out += tr.feed(m)
    if advance_to is not None:
        out += tr.advance(advance_to)
    if flush:
        out += tr.flush_all()
    return out


def finals(out: list[CallSummary]) -> list[CallSummary]:
    return [s for s in out if s.final]


def one(out: list[CallSummary]) -> CallSummary:
    f = finals(out)
    assert len(f) == 1, f
    return f[0]


# -- answered calls and timings -------------------------------------------------------------------------

def test_answered_call_timings_and_hangup_by_caller():
    leg = Leg()
    s = one(run(answered_call(leg, T0), advance_to=T0 + 100))
    assert (s.outcome, s.final_status, s.state, s.end_reason) == ("answered", 200, "terminated", "bye")
    assert s.start_ts == s.invite_ts == T0
    assert s.first_provisional_ts == s.ringing_ts == T0 + 0.2
    assert s.answer_ts == s.final_ts == T0 + 3.0
    assert s.ack_ts == T0 + 3.05 and s.bye_ts == T0 + 63.0 and s.bye_ok_ts == T0 + 63.02
    assert s.srd_success_ms == pytest.approx(200.0) and s.srd_failure_ms is None
    assert s.pdd_ms == pytest.approx(200.0)
    assert s.ring_time_s == pytest.approx(2.8)
    assert s.duration_s == pytest.approx(60.0)
    assert s.sdd_ms == pytest.approx(20.0)
    assert s.hangup_by == "caller"
    assert (s.messages, s.retransmissions, s.duplicates) == (7, 0, 0)
    assert s.hosts == ["10.0.0.1:5060", "10.0.0.2:5060"]
    assert (s.caller, s.callee) == ("61299990001", "61299990002")
    assert s.codecs == ["PCMA/8000"] and s.answer_codecs == ["PCMA/8000"]
    assert s.id and s.final


def test_hangup_by_callee_from_bye_from_tag():
    s = one(run(answered_call(Leg(), T0, bye_from_callee=True), advance_to=T0 + 100))
    assert s.hangup_by == "callee"
    assert s.sdd_ms == pytest.approx(20.0)


def test_summary_waits_for_the_bye_window_by_event_time():
    tr = CallTracker(CorrelationSettings(bye_wait_s=2.0))
    out = []
    for m in answered_call(Leg(), T0):
        out += tr.feed(m)
    assert out == []  # BYE at T0+63: closes only once event time passes T0+63.02+2
    assert tr.advance(T0 + 65.0) == []
    got = tr.advance(T0 + 65.03)
    assert len(got) == 1 and got[0].end_reason == "bye"
    assert tr.flush_all() == []


def test_unrelated_message_moves_event_time_and_closes():
    leg, other = Leg(), Leg("other@test")
    tr = CallTracker()
    out = []
    for m in answered_call(leg, T0):
        out += tr.feed(m)
    out += tr.feed(other.request(T0 + 70, "OPTIONS", 1))  # no leg for it, but time moves on
    assert [s.call_id for s in out] == [leg.call_id]


# -- failure outcomes -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "outcome"), [
    (486, "busy"), (600, "busy"), (408, "no_answer"), (480, "no_answer"),
    (403, "rejected"), (404, "rejected"), (488, "rejected"), (482, "rejected"), (603, "rejected"),
    (604, "rejected"), (606, "rejected"), (607, "rejected"),
    (500, "failed"), (503, "failed"), (504, "failed"),
    (301, "redirected"), (302, "redirected"),
])
def test_final_response_outcomes(code, outcome):
    leg = Leg()
    msgs = [leg.invite(T0), leg.response(T0 + 0.05, 100), leg.response(T0 + 1.5, code),
            leg.request(T0 + 1.55, "ACK", 1, to_tag=leg.to_tag)]
    s = one(run(msgs, advance_to=T0 + 10))
    assert (s.outcome, s.final_status, s.end_reason, s.state) == (outcome, code, "final_response", "terminated")
    assert s.final_ts == T0 + 1.5 and s.ack_ts == T0 + 1.55
    assert s.pdd_ms == pytest.approx(1500.0)  # no 18x: INVITE to the final response
    assert s.srd_success_ms is None and s.duration_s is None and s.hangup_by is None
    if code >= 400:
        assert s.srd_failure_ms == pytest.approx(1500.0)
    else:
        assert s.srd_failure_ms is None  # 3xx is neither success nor failure (RFC 6076 4.3)


def test_failure_after_ringing_has_ring_time_and_no_success_srd():
    leg = Leg()
    msgs = [leg.invite(T0), leg.response(T0 + 0.1, 180), leg.response(T0 + 20.1, 486, q850_cause=17),
            leg.request(T0 + 20.12, "ACK", 1, to_tag=leg.to_tag)]
    s = one(run(msgs))
    assert s.outcome == "busy"
    assert s.ring_time_s == pytest.approx(20.0)
    assert s.pdd_ms == pytest.approx(100.0)
    assert s.srd_failure_ms == pytest.approx(20100.0) and s.srd_success_ms is None
    assert s.q850_cause == 17


def test_failure_waits_final_wait_for_the_ack():
    leg = Leg()
    tr = CallTracker(CorrelationSettings(final_wait_s=5.0))
    assert tr.feed(leg.invite(T0)) == [] and tr.feed(leg.response(T0 + 1, 404)) == []
    assert tr.advance(T0 + 5.9) == []
    assert tr.feed(leg.request(T0 + 5.95, "ACK", 1, to_tag=leg.to_tag)) == []
    out = tr.advance(T0 + 6.0)
    assert len(out) == 1 and out[0].ack_ts == T0 + 5.95 and out[0].end_ts == T0 + 5.95


# -- CANCEL -----------------------------------------------------------------------------------------------

def cancel_flow(leg: Leg, ring: bool) -> list[SipMessage]:
    msgs = [leg.invite(T0), leg.response(T0 + 0.05, 100)]
    if ring:
        msgs.append(leg.response(T0 + 0.3, 180))
    msgs += [leg.request(T0 + 8.0, "CANCEL", 1), leg.response(T0 + 8.01, 200, 1, "CANCEL"),
             leg.response(T0 + 8.02, 487), leg.request(T0 + 8.03, "ACK", 1, to_tag=leg.to_tag)]
    return msgs


def test_cancel_before_ringing_is_cancelled():
    s = one(run(cancel_flow(Leg(), ring=False)))
    assert (s.outcome, s.final_status, s.end_reason, s.hangup_by) == ("cancelled", 487, "cancel", "caller")
    assert s.ring_time_s is None


def test_cancel_after_ringing_is_no_answer():
    s = one(run(cancel_flow(Leg(), ring=True)))
    assert (s.outcome, s.final_status, s.end_reason, s.hangup_by) == ("no_answer", 487, "cancel", "caller")
    assert s.ring_time_s == pytest.approx(7.7)  # 180 at +0.3 to the CANCEL at +8.0


def test_487_without_cancel_follows_the_ringing_rule():
    leg = Leg()
    before = one(run([leg.invite(T0), leg.response(T0 + 1, 487)]))
    after = one(run([leg.invite(T0), leg.response(T0 + 0.5, 183), leg.response(T0 + 1, 487)]))
    assert (before.outcome, after.outcome) == ("cancelled", "no_answer")
    assert before.end_reason == after.end_reason == "final_response"


def test_cancel_never_answered_closes_after_timer():
    leg = Leg()
    tr = CallTracker(CorrelationSettings(no_final_timeout_s=32))
    for m in [leg.invite(T0), leg.response(T0 + 0.05, 100), leg.request(T0 + 40, "CANCEL", 1)]:
        assert tr.feed(m) == []
    assert tr.advance(T0 + 71) == []
    s = tr.advance(T0 + 72)[0]
    assert (s.outcome, s.final_status, s.end_reason, s.state) == ("cancelled", None, "cancel", "terminated")


def test_final_response_decides_over_a_cancel():
    # wireshark-aaa pattern: CANCEL after 34 s of 100 Trying, then the proxy answers 408
    leg = Leg()
    msgs = [leg.invite(T0), leg.response(T0 + 2, 100), leg.request(T0 + 34, "CANCEL", 1),
            leg.response(T0 + 36.8, 408), leg.request(T0 + 36.81, "ACK", 1, to_tag=leg.to_tag)]
    s = one(run(msgs))
    assert (s.outcome, s.final_status, s.end_reason, s.hangup_by) == ("no_answer", 408, "final_response", "caller")


def test_answer_crossing_a_cancel_is_answered():
    leg = Leg()
    msgs = [leg.invite(T0), leg.response(T0 + 0.2, 180), leg.request(T0 + 5, "CANCEL", 1),
            leg.response(T0 + 5.001, 200), leg.request(T0 + 5.05, "ACK", 1, to_tag=leg.to_tag),
            leg.request(T0 + 5.1, "BYE", 2, to_tag=leg.to_tag), leg.response(T0 + 5.11, 200, 2, "BYE")]
    s = one(run(msgs))
    assert s.outcome == "answered" and s.end_reason == "bye"


def test_early_bye_is_treated_like_a_cancel():
    leg = Leg()
    msgs = [leg.invite(T0), leg.response(T0 + 0.1, 180), leg.request(T0 + 5, "BYE", 2, to_tag=leg.to_tag),
            leg.response(T0 + 5.01, 200, 2, "BYE")]
    s = one(run(msgs))
    assert (s.outcome, s.final_status, s.end_reason, s.hangup_by) == ("no_answer", None, "bye", "caller")
    assert s.duration_s is None and s.sdd_ms is None
    s2 = one(run([leg.invite(T0), leg.request(T0 + 1, "BYE", 2), leg.response(T0 + 1.01, 200, 2, "BYE")]))
    assert s2.outcome == "cancelled"


def test_bye_after_a_failure_changes_nothing():
    # SIPp branch scenario: INVITE, 180, 403, then BYE (no ACK)
    leg = Leg()
    msgs = [leg.invite(T0), leg.response(T0 + 0.0001, 180), leg.response(T0 + 0.004, 403),
            leg.request(T0 + 0.005, "BYE", 2, to_tag=leg.to_tag), leg.response(T0 + 0.006, 200, 2, "BYE")]
    s = one(run(msgs))
    assert (s.outcome, s.final_status, s.end_reason, s.hangup_by) == ("rejected", 403, "final_response", None)
    assert s.bye_ts == T0 + 0.005 and s.sdd_ms is None


# -- authentication ---------------------------------------------------------------------------------------

def test_401_never_retried_is_unauthorized_after_the_retry_wait():
    leg = Leg()
    tr = CallTracker(CorrelationSettings(auth_retry_wait_s=64))
    for m in [leg.invite(T0), leg.response(T0 + 0.01, 401), leg.request(T0 + 0.02, "ACK", 1, to_tag=leg.to_tag)]:
        assert tr.feed(m) == []
    assert tr.advance(T0 + 64.0) == []
    s = tr.advance(T0 + 64.02)[0]
    assert (s.outcome, s.final_status, s.end_reason) == ("unauthorized", 401, "final_response")
    assert s.srd_failure_ms is None  # 401/407 are not failure responses (RFC 6076)


@pytest.mark.parametrize("challenge", [401, 407])
def test_challenge_then_retry_is_the_same_call(challenge):
    leg = Leg()
    msgs = [leg.invite(T0), leg.response(T0 + 0.01, challenge), leg.request(T0 + 0.02, "ACK", 1, to_tag=leg.to_tag),
            leg.invite(T0 + 20.0, 2),  # a phone that asked its user for the password: 20 s later
            leg.response(T0 + 20.05, 100, 2), leg.response(T0 + 20.5, 180, 2),
            leg.response(T0 + 25.0, 200, 2), leg.request(T0 + 25.1, "ACK", 2, to_tag=leg.to_tag),
            leg.request(T0 + 30.0, "BYE", 3, to_tag=leg.to_tag), leg.response(T0 + 30.01, 200, 3, "BYE")]
    s = one(run(msgs))
    assert (s.outcome, s.final_status) == ("answered", 200)
    assert s.start_ts == T0  # t1 = the first INVITE, challenge round included (like RRD)
    assert s.pdd_ms == pytest.approx(20500.0)
    assert s.ack_ts == T0 + 25.1
    assert s.messages == 10


def test_challenge_then_retry_rejected():
    leg = Leg()
    msgs = [leg.invite(T0), leg.response(T0 + 0.01, 407), leg.request(T0 + 0.02, "ACK", 1, to_tag=leg.to_tag),
            leg.invite(T0 + 0.03, 2), leg.response(T0 + 0.5, 403, 2),
            leg.request(T0 + 0.51, "ACK", 2, to_tag=leg.to_tag)]
    s = one(run(msgs))
    assert (s.outcome, s.final_status) == ("rejected", 403)
    assert s.srd_failure_ms == pytest.approx(500.0)


def test_retry_after_the_wait_is_a_new_call():
    leg = Leg()
    msgs = [leg.invite(T0), leg.response(T0 + 0.01, 401), leg.invite(T0 + 100, 2), leg.response(T0 + 100.2, 486, 2)]
    out = finals(run(msgs, CorrelationSettings(auth_retry_wait_s=64)))
    assert [(s.outcome, s.start_ts) for s in out] == [("unauthorized", T0), ("busy", T0 + 100)]
    assert out[0].id != out[1].id


# -- timers -----------------------------------------------------------------------------------------------

def test_no_response_at_all_fails_after_timer_b():
    leg = Leg()
    tr = CallTracker(CorrelationSettings(no_final_timeout_s=32))
    assert tr.feed(leg.invite(T0)) == []
    assert tr.advance(T0 + 31.9) == []
    s = tr.advance(T0 + 32)[0]
    assert (s.outcome, s.final_status, s.end_reason, s.state) == ("failed", None, "timeout_no_final", "expired")
    assert tr.flush_all() == []


def test_provisional_then_silence_is_incomplete_after_timer_c():
    leg = Leg()
    tr = CallTracker(CorrelationSettings(proceeding_timeout_s=180))
    tr.feed(leg.invite(T0))
    tr.feed(leg.response(T0 + 1, 180))
    assert tr.advance(T0 + 100) == []  # Timer B does not apply once a provisional arrived
    s = tr.advance(T0 + 181)[0]
    assert (s.outcome, s.end_reason, s.state) == ("incomplete", "timeout_no_final", "expired")
    assert s.ring_time_s is None


def test_capture_end_before_a_final_is_incomplete():
    leg = Leg()
    s = one(run([leg.invite(T0), leg.response(T0 + 0.2, 180)]))
    assert (s.outcome, s.end_reason, s.state) == ("incomplete", "capture_end", "ringing")
    s = one(run([leg.invite(T0)]))
    assert (s.outcome, s.end_reason, s.state) == ("incomplete", "capture_end", "trying")


def test_answered_at_capture_end_measures_duration_to_the_end():
    leg, other = Leg(), Leg("other@test")
    msgs = answered_call(leg, T0)[:5] + [other.request(T0 + 50, "OPTIONS", 1)]
    s = one(run(msgs))
    assert (s.outcome, s.end_reason, s.state) == ("answered", "capture_end", "confirmed")
    assert s.duration_s == pytest.approx(47.0)  # 200 at +3 to the last event of the capture at +50


def test_answered_without_bye_expires():
    leg = Leg()
    tr = CallTracker(CorrelationSettings(answered_timeout_s=4 * 3600, interim_interval_s=0))
    for m in answered_call(leg, T0)[:5]:
        tr.feed(m)
    assert tr.advance(T0 + 3.05 + 4 * 3600 - 1) == []
    s = tr.advance(T0 + 3.05 + 4 * 3600)[0]
    assert (s.outcome, s.end_reason, s.state) == ("answered", "timeout_no_bye", "expired")
    assert s.duration_s == pytest.approx(0.05)  # to the last message seen (the ACK)


def test_interim_updates_for_long_calls():
    leg = Leg()
    tr = CallTracker(CorrelationSettings(interim_interval_s=300))
    out = []
    msgs = answered_call(leg, T0)
    for m in msgs[:5]:
        out += tr.feed(m)
    out += tr.advance(T0 + 3 + 650)
    interims = [s for s in out if not s.final]
    assert len(interims) == 1 and interims[0].state == "confirmed" and interims[0].outcome == "answered"
    assert interims[0].duration_s == pytest.approx(650.0)
    reinvite = leg.request(T0 + 700, "INVITE", 3, to_tag=leg.to_tag)
    out += tr.feed(reinvite)
    out += tr.advance(T0 + 3 + 900)
    interims = [s for s in out if not s.final]
    assert len(interims) == 2
    out += tr.flush_all()
    f = finals(out)
    assert len(f) == 1 and f[0].id == interims[0].id


# -- retransmissions, duplicates, hops ---------------------------------------------------------------------

def test_retransmissions_are_counted_not_double_counted():
    leg = Leg()
    inv = leg.invite(T0)
    ok = leg.response(T0 + 4.0, 200)
    msgs = [inv, leg.again(inv, T0 + 0.49998), leg.again(inv, T0 + 1.5), leg.response(T0 + 1.6, 180), ok,
            leg.again(ok, T0 + 4.5), leg.request(T0 + 4.6, "ACK", 1, to_tag=leg.to_tag)]
    s = one(run(msgs))
    assert (s.messages, s.retransmissions, s.duplicates) == (4, 3, 0)
    assert s.start_ts == T0 and s.answer_ts == T0 + 4.0  # never moved by a retransmission
    assert s.srd_success_ms == pytest.approx(1600.0)


def test_same_cseq_different_message_is_not_a_retransmission():
    # serial forking: the proxy tries two branches (same CSeq, new Via branch); FreeSWITCH sends 2 x 100
    leg = Leg()
    msgs = [leg.invite(T0, src=P, dst=B, branch="b1"), leg.invite(T0 + 4, src=P, dst=B, branch="b2"),
            leg.response(T0 + 4.01, 100, src=B, dst=P, branch="b2"),
            leg.response(T0 + 4.02, 100, src=B, dst=P, branch="b2", timestamp="1 0.1")]
    s = one(run(msgs))
    assert (s.messages, s.retransmissions) == (4, 0)


def test_duplicates_from_two_capture_points():
    leg = Leg(node="edge-a")
    inv = leg.invite(T0)
    ringing = leg.response(T0 + 0.2, 180)
    msgs = [inv, leg.again(inv, T0 + 0.003, node="edge-b"), ringing, leg.again(ringing, T0 + 0.45, node="edge-b")]
    s = one(run(msgs))
    assert (s.messages, s.retransmissions, s.duplicates) == (2, 0, 2)
    assert s.nodes == ["edge-a", "edge-b"]


def test_same_node_duplicate_vs_timer_a_retransmission():
    leg = Leg()
    inv = leg.invite(T0)
    # the same packet captured twice by one node 0.3 ms apart is a duplicate; 499.98 ms later it is
    # timer A's retransmission (a plain "same payload within 500 ms" rule would call it a duplicate)
    msgs = [inv, leg.again(inv, T0 + 0.0003), leg.again(inv, T0 + 0.49998)]
    s = one(run(msgs))
    assert (s.messages, s.retransmissions, s.duplicates) == (1, 1, 1)


def test_retransmission_seen_by_two_nodes():
    leg = Leg(node="a")
    inv = leg.invite(T0)
    msgs = [inv, leg.again(inv, T0 + 0.002, "b"), leg.again(inv, T0 + 0.5, "a"), leg.again(inv, T0 + 0.502, "b")]
    s = one(run(msgs))
    assert (s.messages, s.retransmissions, s.duplicates) == (1, 1, 2)


def test_proxy_hops_are_merged_and_caller_facing_times_win():
    leg = Leg()
    msgs = [leg.invite(T0, src=A, dst=P, branch="a"), leg.response(T0 + 0.01, 100, src=P, dst=A, branch="a"),
            leg.invite(T0 + 0.02, src=P, dst=B, branch="p"),
            leg.response(T0 + 0.10, 180, src=B, dst=P, branch="p"),
            leg.response(T0 + 0.12, 180, src=P, dst=A, branch="a"),
            leg.response(T0 + 5.00, 200, src=B, dst=P, branch="p"),
            leg.response(T0 + 5.02, 200, src=P, dst=A, branch="a"),
            leg.request(T0 + 5.05, "ACK", 1, src=A, dst=B, to_tag=leg.to_tag),
            leg.request(T0 + 9.0, "BYE", 1, src=B, dst=A, reverse=True),
            leg.response(T0 + 9.01, 200, 1, "BYE", src=A, dst=B, reverse=True)]
    s = one(run(msgs))
    assert s.hosts == ["10.0.0.1:5060", "10.0.0.5:5060", "10.0.0.2:5060"]
    assert s.src_ip == "10.0.0.1" and s.dst_ip == "10.0.0.5"
    assert s.first_provisional_ts == T0 + 0.12 and s.answer_ts == T0 + 5.02  # what the caller received
    assert s.pdd_ms == pytest.approx(120.0) and s.duration_s == pytest.approx(3.98)
    assert (s.messages, s.retransmissions, s.hangup_by) == (10, 0, "callee")


def test_proxy_translated_final_status_is_the_callers():
    leg = Leg()
    msgs = [leg.invite(T0, src=A, dst=P, branch="a"), leg.invite(T0 + 0.01, src=P, dst=B, branch="p"),
            leg.response(T0 + 1.0, 503, src=B, dst=P, branch="p"),
            leg.response(T0 + 1.02, 480, src=P, dst=A, branch="a")]
    s = one(run(msgs))
    assert (s.outcome, s.final_status, s.final_ts) == ("no_answer", 480, T0 + 1.02)


def test_reinvite_does_not_restart_the_call():
    leg = Leg()
    base = answered_call(leg, T0)
    reinv = [leg.request(T0 + 30, "INVITE", 2, to_tag=leg.to_tag, sdp=["PCMU/8000"]),
             leg.response(T0 + 30.1, 200, 2), leg.request(T0 + 30.2, "ACK", 2, to_tag=leg.to_tag)]
    bye = [leg.request(T0 + 63.0, "BYE", 3, to_tag=leg.to_tag), leg.response(T0 + 63.02, 200, 3, "BYE")]
    s = one(run(base[:5] + reinv + bye))
    assert (s.outcome, s.start_ts, s.answer_ts, s.final_status) == ("answered", T0, T0 + 3.0, 200)
    assert s.codecs == ["PCMA/8000"] and s.messages == 10 and s.duration_s == pytest.approx(60.0)


def test_callee_reinvite_with_colliding_cseq_is_not_the_initial_transaction():
    leg = Leg()
    msgs = [leg.invite(T0), leg.response(T0 + 1, 200), leg.request(T0 + 1.1, "ACK", 1, to_tag=leg.to_tag),
            leg.request(T0 + 2, "INVITE", 1, reverse=True), leg.response(T0 + 2.1, 488, 1, reverse=True)]
    s = one(run(msgs))
    assert (s.outcome, s.final_status) == ("answered", 200)


def test_out_of_dialog_and_register_messages_are_ignored():
    leg = Leg()
    tr = CallTracker()
    assert tr.feed(leg.request(T0, "OPTIONS", 1)) == []
    assert tr.feed(leg.request(T0 + 0.1, "BYE", 5)) == []  # a call that started before the capture
    tr.feed(leg.request(T0 + 0.2, "REGISTER", 1))
    msgs = answered_call(leg, T0 + 1)
    for m in msgs:
        tr.feed(m)
    tr.feed(leg.request(T0 + 2, "REGISTER", 2))
    s = tr.flush_all()[0]
    assert s.messages == 7 and s.start_ts == T0 + 1
    assert tr.stats["ignored"] == 4


def test_stray_invite_copy_after_close_opens_nothing():
    leg = Leg()
    inv = leg.invite(T0)
    msgs = [inv, leg.response(T0 + 0.1, 486), leg.again(inv, T0 + 10.0, node="late-node")]
    out = run(msgs, CorrelationSettings(final_wait_s=5, closed_memory_s=32))
    assert [s.outcome for s in out] == ["busy"]


def test_exactly_one_final_summary_per_call_id():
    legs = [Leg(f"c{i}@t") for i in range(6)]
    msgs = (answered_call(legs[0], T0) + cancel_flow(legs[1], True)
            + [legs[2].invite(T0 + 1)] + [legs[3].invite(T0 + 2), legs[3].response(T0 + 2.1, 180)]
            + [legs[4].invite(T0 + 3), legs[4].response(T0 + 3.1, 401)]
            + answered_call(legs[5], T0 + 4)[:5])
    msgs.sort(key=lambda m: m.ts)
    out = finals(run(msgs, advance_to=T0 + 40))
    assert sorted(s.call_id for s in out) == sorted(leg.call_id for leg in legs)


# -- state ------------------------------------------------------------------------------------------------

def test_export_import_mid_call_gives_the_same_result():
    leg = Leg()
    msgs = answered_call(leg, T0)
    ref = run(msgs)
    tr = CallTracker()
    for m in msgs[:4]:
        tr.feed(m)
    state = tr.export_call(leg.call_id)
    wire = msgspec.json.encode(state)  # what a changelog topic would carry
    tr2 = CallTracker()
    tr2.import_call(msgspec.json.decode(wire))
    out = []
    for m in msgs[4:]:
        out += tr2.feed(m)
    out += tr2.flush_all()
    assert out == ref


def test_snapshot_restore_keeps_closed_memory():
    leg = Leg()
    inv = leg.invite(T0)
    tr = CallTracker(CorrelationSettings(final_wait_s=1, closed_memory_s=32))
    tr.feed(inv)
    tr.feed(leg.response(T0 + 0.1, 486))
    assert len(tr.advance(T0 + 2)) == 1
    snap = msgspec.json.decode(msgspec.json.encode(tr.snapshot()))
    tr2 = CallTracker(CorrelationSettings(final_wait_s=1, closed_memory_s=32))
    tr2.restore(snap)
    assert tr2.feed(leg.again(inv, T0 + 3)) == [] and len(tr2) == 0 and tr2.stats["stale"] == 1


def test_take_changes_names_the_touched_legs():
    leg = Leg()
    tr = CallTracker(track_changes=True)
    tr.feed(leg.invite(T0))
    assert tr.take_changes() == {leg.call_id}
    assert tr.take_changes() == set()
    tr.feed(leg.response(T0 + 1, 404))
    tr.advance(T0 + 10)
    assert tr.take_changes() == {leg.call_id} and tr.export_call(leg.call_id) is None


def test_deterministic_ids_and_output():
    msgs = answered_call(Leg(), T0) + cancel_flow(Leg("x@y"), True)
    msgs.sort(key=lambda m: m.ts)
    assert run(msgs) == run(msgs)


def test_state_stays_small_on_long_calls():
    leg = Leg()
    tr = CallTracker(CorrelationSettings(interim_interval_s=0))
    for m in answered_call(leg, T0)[:5]:
        tr.feed(m)
    for i in range(100):  # session refresh every 60 s for 100 minutes
        t = T0 + 60.0 * (i + 1)
        for m in (leg.request(t, "INVITE", 10 + i, to_tag=leg.to_tag), leg.response(t + 0.1, 200, 10 + i),
                  leg.request(t + 0.2, "ACK", 10 + i, to_tag=leg.to_tag)):
            tr.feed(m)
    state = tr.export_call(leg.call_id)
    assert len(state["seen"]) <= 20
    assert len(msgspec.json.encode(state)) < 2500
    s = tr.flush_all()[0]
    assert s.messages == 5 + 300 and s.retransmissions == 0
