"""KpiRollup: every KPI formula checked by hand on small inputs, scopes, lateness/revisions, state."""

from __future__ import annotations

import json

import pytest

from sipscope.records import CallSummary, Registration, SipMessage, StatsRow, stable_id
from sipscope.settings import KpiSettings, Settings
from streams.kpis import OTHER, KpiRollup, nearest_rank

M = 1_699_999_980.0  # start of a UTC minute
A, B, C = "192.0.2.1", "198.51.100.2", "203.0.113.3"
_n = iter(range(10**9))


def call(outcome: str, *, start: float = M + 1, final_status: int | None = None, duration: float | None = None,
         pdd: float | None = None, src: str = A, dst: str = B, answer: float | None = None, end: float | None = None,
         src_trunk: str | None = None, dst_trunk: str | None = None, final: bool = True,
         call_id: str | None = None) -> CallSummary:
    i = next(_n)
    if outcome == "answered" and answer is None:
        answer = start + 2
    if end is None:
        end = (answer + (duration or 0)) if answer is not None else start + 3
    return CallSummary(id=f"id{i}", call_id=call_id or f"c{i}", outcome=outcome, start_ts=start, end_ts=end,
                       answer_ts=answer, final_status=final_status, duration_s=duration, pdd_ms=pdd, src_ip=src,
                       dst_ip=dst, src_trunk=src_trunk, dst_trunk=dst_trunk, final=final)


def rows_by(rows: list[StatsRow]) -> dict[tuple[float, str, str], StatsRow]:
    out = {}
    for r in rows:
        out[(r.ts, r.scope, r.key)] = r  # a later revision replaces an earlier one, as in Elasticsearch
    return out


def rollup(**kw) -> KpiRollup:
    trunks = kw.pop("trunks", None)
    return KpiRollup(KpiSettings(**kw), trunk_of=trunks.get if trunks else None)


# -- the formulas ---------------------------------------------------------------------------------------------

def ten_calls() -> list[CallSummary]:
    return [
        call("answered", final_status=200, duration=10, pdd=100),
        call("answered", final_status=200, duration=20, pdd=200),
        call("answered", final_status=200, duration=30, pdd=300),
        call("answered", final_status=200, duration=60, pdd=400),
        call("busy", final_status=486, pdd=500),
        call("no_answer", final_status=480, pdd=600),
        call("rejected", final_status=603, pdd=700),
        call("redirected", final_status=302, pdd=800),
        call("failed", final_status=503, pdd=900),
        call("incomplete", pdd=1000),
    ]


def test_every_ratio_by_hand():
    k = rollup(scopes=["all"])
    for c in ten_calls():
        k.add_call(c)
    rows = rows_by(k.flush())
    assert rows[(M + 60, "all", "*")].concurrent_max == 1  # the 60 s call, answered at 3 s, ends at 63 s
    row = rows[(M, "all", "*")]
    assert row.concurrent_max == 4
    # attempts 10; D = attempts - incomplete = 9; S = D - redirected = 8
    assert (row.ts, row.scope, row.key) == (M, "all", "*")
    assert row.attempts == 10 and row.cps == pytest.approx(10 / 60)
    assert (row.answered, row.busy, row.no_answer, row.cancelled, row.rejected, row.failed) == (4, 1, 1, 0, 1, 1)
    assert row.asr == pytest.approx(100 * 4 / 9)          # E.411: answered / D
    assert row.ner == pytest.approx(100 * (4 + 1 + 1 + 1) / 9)  # E.425: + busy, no answer, 603 decline
    assert row.ser == pytest.approx(100 * 4 / 8)           # RFC 6076 4.6
    assert row.seer == pytest.approx(100 * (4 + 1 + 1 + 1) / 8)  # 200 + 486 + 480 + 603 over S
    assert row.isa == pytest.approx(100 * 1 / 9)           # the 503
    assert row.acd_s == pytest.approx((10 + 20 + 30 + 60) / 4)
    assert row.pdd_p50_ms == 500 and row.pdd_p95_ms == 1000  # ranks ceil(5) and ceil(9.5) of 10
    assert row.id == stable_id(int(M), "all", "*")


def test_ner_and_seer_differ_on_a_rejection_that_is_not_603():
    k = rollup(scopes=["all"])
    for c in (call("answered", final_status=200, duration=5), call("rejected", final_status=404),
              call("rejected", final_status=600), call("no_answer", final_status=487),
              call("failed"), call("unauthorized", final_status=407), call("cancelled", final_status=487)):
        k.add_call(c)
    [row] = k.flush()
    # D = 7 (nothing incomplete), S = 7 (no 3xx)
    assert row.ner == pytest.approx(100 * 2 / 7)   # answered + no_answer(487 after ringing); 404/600 as mapped = rejected
    assert row.seer == pytest.approx(100 * 2 / 7)  # 200 + 600 (the RFC 6076 list has 600); the 487 is not in it
    assert row.isa == pytest.approx(100 * 1 / 7)   # failed without any final response (Timer B)
    assert row.asr == pytest.approx(100 / 7) and row.ser == pytest.approx(100 / 7)


def test_ratios_are_none_without_a_denominator():
    k = rollup(scopes=["all"])
    k.add_call(call("incomplete"))
    k.add_registration(Registration(id="r", call_id="r", start_ts=M + 5, end_ts=M + 6, outcome="ok", src_ip=A))
    [row] = k.flush()
    assert row.attempts == 1 and row.asr is row.ner is row.ser is row.seer is row.isa is None
    assert row.acd_s is None and row.pdd_p50_ms is None and row.registrations_ok == 1
    k = rollup(scopes=["all"])
    k.add_call(call("redirected", final_status=302))
    [row] = k.flush()
    assert row.asr == 0 and row.ser is None and row.seer is None


def test_nearest_rank():
    assert nearest_rank([], 0.5) is None
    assert nearest_rank([7.0], 0.95) == 7.0
    assert nearest_rank([1, 2, 3, 4], 0.5) == 2
    assert nearest_rank(list(range(1, 21)), 0.95) == 19
    assert nearest_rank(list(range(1, 101)), 0.95) == 95


def test_pdd_sample_is_deterministic_whatever_the_order():
    calls = [call("answered", final_status=200, duration=1, pdd=float(i)) for i in range(50)]
    r1, r2 = rollup(scopes=["all"], pdd_samples=10), rollup(scopes=["all"], pdd_samples=10)
    for c in calls:
        r1.add_call(c)
    for c in reversed(calls):
        r2.add_call(c)
    [a], [b] = r1.flush(), r2.flush()
    assert (a.pdd_p50_ms, a.pdd_p95_ms) == (b.pdd_p50_ms, b.pdd_p95_ms)


def test_registrations_ok_and_failed():
    k = rollup(scopes=["all", "src"])
    for i, outcome in enumerate(["ok", "unregistered", "failed", "challenged", "timeout", "ok"]):
        k.add_registration(Registration(id=f"r{i}", call_id=f"r{i}", start_ts=M + i, end_ts=M + i + 1,
                                        outcome=outcome, src_ip=A if i < 3 else C, dst_ip=B))
    rows = rows_by(k.flush())
    assert (rows[(M, "all", "*")].registrations_ok, rows[(M, "all", "*")].registrations_failed) == (3, 3)
    assert (rows[(M, "src", A)].registrations_ok, rows[(M, "src", A)].registrations_failed) == (2, 1)
    assert (rows[(M, "src", C)].registrations_ok, rows[(M, "src", C)].registrations_failed) == (1, 2)


# -- scopes ---------------------------------------------------------------------------------------------------

def test_scopes_all_trunk_src_dst():
    k = rollup()
    k.add_call(call("answered", final_status=200, duration=30, src=A, dst=B, src_trunk="pbx-1", dst_trunk="carrier-x"))
    k.add_call(call("busy", final_status=486, src=A, dst=C, src_trunk="pbx-1", dst_trunk="pbx-1"))
    k.add_call(call("failed", final_status=503, src=C, dst=B, start=M + 61))
    rows = rows_by(k.flush())
    assert rows[(M, "all", "*")].attempts == 2
    assert rows[(M, "trunk", "pbx-1")].attempts == 2      # the internal call counts once for its trunk
    assert rows[(M, "trunk", "carrier-x")].attempts == 1
    assert rows[(M, "src", A)].attempts == 2 and rows[(M, "dst", B)].attempts == 1 and rows[(M, "dst", C)].attempts == 1
    assert rows[(M + 60, "all", "*")].failed == 1 and rows[(M + 60, "src", C)].isa == 100.0
    assert len({r.id for r in rows.values()}) == len(rows)


def test_keys_beyond_the_cap_fold_into_other():
    k = rollup(scopes=["all", "src"], max_keys_per_minute=3)
    for i in range(5):
        k.add_call(call("answered", final_status=200, duration=1, src=f"10.0.0.{i}"))
    rows = rows_by(k.flush())
    assert rows[(M, "all", "*")].attempts == 5
    assert [rows[(M, "src", f"10.0.0.{i}")].attempts for i in range(3)] == [1, 1, 1]
    assert rows[(M, "src", OTHER)].attempts == 2


# -- messages: counts, responses, concurrency ------------------------------------------------------------------

def m(ts: float, method: str | None = None, status: int | None = None, *, src: str = A, dst: str = B,
      call_id: str = "x", cseq: int = 1, cseq_method: str | None = None, to_tag: str | None = None,
      node: str = "n1") -> SipMessage:
    return SipMessage(ts=ts, src_ip=src, src_port=5060, dst_ip=dst, dst_port=5060, transport="udp", node=node,
                      is_request=method is not None, method=method, status_code=status, call_id=call_id,
                      cseq_num=cseq, cseq_method=cseq_method or method or "INVITE", via_branch=f"z9-{call_id}-{cseq}",
                      to_tag=to_tag, raw="")


def dialog(cid: str, t_invite: float, t_answer: float, t_bye: float, src: str = A, dst: str = B) -> list[SipMessage]:
    return [m(t_invite, "INVITE", call_id=cid, src=src, dst=dst),
            m(t_answer, status=200, call_id=cid, src=dst, dst=src, to_tag="t"),
            m(t_answer + 0.01, "ACK", call_id=cid, src=src, dst=dst, to_tag="t"),
            m(t_bye, "BYE", call_id=cid, cseq=2, src=src, dst=dst, to_tag="t"),
            m(t_bye + 0.01, status=200, call_id=cid, cseq=2, cseq_method="BYE", src=dst, dst=src, to_tag="t")]


def test_messages_and_response_codes():
    k = rollup(scopes=["all", "src", "dst"])
    msgs = [m(M + 1, "INVITE", call_id="a"), m(M + 1.2, status=100, src=B, dst=A, call_id="a"),
            m(M + 1.5, status=407, src=B, dst=A, call_id="a", to_tag="t1"),
            m(M + 1.6, "ACK", call_id="a", to_tag="t1"),
            m(M + 1.7, "INVITE", call_id="a", cseq=2),
            m(M + 3.0, status=486, src=B, dst=A, call_id="a", cseq=2, to_tag="t2"),
            m(M + 3.6, status=486, src=B, dst=A, call_id="a", cseq=2, to_tag="t2"),           # retransmission
            m(M + 3.601, status=486, src=B, dst=A, call_id="a", cseq=2, to_tag="t2", node="n2"),  # other probe
            m(M + 4.0, status=200, src=B, dst=A, call_id="reg", cseq_method="REGISTER")]
    for x in msgs:
        k.add_message(x)
    rows = rows_by(k.flush())
    al = rows[(M, "all", "*")]
    assert al.messages == 8  # the copy from the second probe is not a message
    assert al.responses == {"407": 1, "486": 1}  # finals to INVITE only; the retransmission once
    assert rows[(M, "src", A)].responses == {"407": 1, "486": 1}  # keyed by the caller (request direction)
    assert rows[(M, "src", A)].messages == 3 and rows[(M, "src", B)].messages == 5  # by their own sender
    assert al.attempts == 0  # attempts come from call summaries only


def test_concurrency_from_messages_by_hand():
    """Answer/BYE times (seconds into minute 0): a 10-40, b 20-30, c 30-70 (BYE in minute 1), d 65-..."""
    k = rollup(scopes=["all"])
    msgs = (dialog("a", M + 9, M + 10, M + 40) + dialog("b", M + 19, M + 20, M + 30)
            + dialog("c", M + 29, M + 30, M + 70) + dialog("d", M + 64, M + 65, M + 185))
    for x in sorted(msgs, key=lambda x: x.ts):
        k.add_message(x)
    rows = rows_by(k.flush())
    # minute 0: a(10) 1, b(20) 2, b ends(30) then c starts(30): ends first -> 1 then 2; a ends(40) 1 => max 2
    assert rows[(M, "all", "*")].concurrent_max == 2
    # minute 1: c in progress (1), d starts at 65 -> 2, c ends at 70 -> 1
    assert rows[(M + 60, "all", "*")].concurrent_max == 2
    # minute 2: d alone, no message in it at all - still a row; minute 3: d ends at 185 (1 at its start)
    assert rows[(M + 120, "all", "*")].concurrent_max == 1 and rows[(M + 120, "all", "*")].messages == 0
    assert rows[(M + 180, "all", "*")].concurrent_max == 1


def test_concurrency_from_call_summaries_when_no_message_is_fed():
    k = rollup(scopes=["all"])
    k.add_call(call("answered", final_status=200, answer=M + 10, end=M + 40, duration=30))
    k.add_call(call("answered", final_status=200, answer=M + 20, end=M + 130, duration=110))
    k.add_call(call("busy", final_status=486))
    rows = rows_by(k.flush())
    assert rows[(M, "all", "*")].concurrent_max == 2
    assert rows[(M + 60, "all", "*")].concurrent_max == 1
    assert rows[(M + 120, "all", "*")].concurrent_max == 1


def test_call_answered_without_bye_ends_with_its_summary():
    k = rollup(scopes=["all"])
    msgs = dialog("z", M + 1, M + 2, M + 10**6)[:3]  # no BYE ever seen
    for x in msgs:
        k.add_message(x)
    k.add_call(call("answered", final_status=200, answer=M + 2, end=M + 150, duration=148, call_id="z"))
    rows = rows_by(k.flush())
    assert [rows[(M + 60 * i, "all", "*")].concurrent_max for i in range(3)] == [1, 1, 1]
    assert (M + 180, "all", "*") not in rows


# -- time: lateness, revisions, too late --------------------------------------------------------------------------

def test_minutes_close_after_lateness_and_late_summaries_revise_them():
    k = rollup(scopes=["all"], lateness_s=30, revise_s=600, revise_interval_s=0)
    k.add_call(call("busy", final_status=486, start=M + 5))
    assert k.close_until(M + 60 + 29) == []
    [first] = k.close_until(M + 60 + 30)
    assert first.attempts == 1 and first.ts == M
    assert k.close_until(M + 200) == []  # emitted once
    k.add_call(call("answered", final_status=200, start=M + 50, duration=500, end=M + 552))  # a long call
    rows = rows_by(k.close_until(M + 560))  # the revision, and minutes 2..7 now closed
    rev = rows[(M, "all", "*")]
    # the call is in progress from the minutes not yet emitted on (minute 1 was out already: not revised)
    assert (M + 60, "all", "*") not in rows
    assert [rows[(M + 60 * i, "all", "*")].concurrent_max for i in range(2, 8)] == [1] * 6
    assert rev.id == first.id and rev.attempts == 2 and rev.answered == 1 and rev.asr == 50.0
    # past revise_s the minute is forgotten and a summary for it is late
    later = rows_by(k.close_until(M + 60 + 30 + 600 + 60))
    assert set(later) == {(M + 480, "all", "*"), (M + 540, "all", "*")}  # the long call's last minutes
    k.add_call(call("busy", final_status=486, start=M + 10))
    assert k.late == 1 and k.flush() == []


def test_revisions_are_batched_per_interval():
    k = rollup(scopes=["all"], lateness_s=0, revise_s=3600, revise_interval_s=60)
    k.add_call(call("busy", final_status=486, start=M))
    assert len(k.close_until(M + 60)) == 1
    for i in range(5):
        k.add_call(call("busy", final_status=486, start=M + 1 + i))
        assert k.close_until(M + 61 + i) == []
    [rev] = k.close_until(M + 120)
    assert rev.attempts == 6


def test_flush_emits_everything_once():
    k = rollup()
    for c in ten_calls():
        k.add_call(c)
    rows = k.flush()
    assert len(rows) == len({r.id for r in rows}) == 6  # all, src A, dst B in minutes 0 and 1 (a call in progress)
    assert k.flush() == []


# -- state ------------------------------------------------------------------------------------------------------

def test_resume_from_state_gives_the_same_rows():
    events = []
    for i in range(30):
        events += dialog(f"s{i}", M + 7 * i, M + 7 * i + 1, M + 7 * i + 45)
    calls = [call("answered", final_status=200, start=M + 7 * i, answer=M + 7 * i + 1, end=M + 7 * i + 45,
                  duration=44, pdd=120.0 + i, call_id=f"s{i}") for i in range(30)]
    timeline = sorted([(x.ts, 0, x) for x in events] + [(c.end_ts + 2, 1, c) for c in calls], key=lambda t: (t[0], t[1]))

    def play(k: KpiRollup, items) -> list[StatsRow]:
        out = []
        for ts, kind, rec in items:
            (k.add_message if kind == 0 else k.add_call)(rec)
            out += k.close_until(ts)
        return out

    settings = KpiSettings(lateness_s=20, revise_interval_s=0)
    whole = KpiRollup(settings)
    expected = play(whole, timeline) + whole.flush()
    half = len(timeline) // 2
    first = KpiRollup(settings)
    got = play(first, timeline[:half])
    state = json.loads(json.dumps(first.to_state()))
    second = KpiRollup.loads(KpiRollup.from_state(state, settings).dumps(), settings)
    got += play(second, timeline[half:]) + second.flush()
    assert got == expected and expected


def test_from_settings_uses_trunk_map_for_messages():
    settings = Settings(correlation={"trunks": {"198.51.100.0/24": "carrier-x"}})
    k = KpiRollup.from_settings(settings)
    k.add_message(m(M + 1, "OPTIONS", src=A, dst=B))
    rows = rows_by(k.flush())
    assert rows[(M, "trunk", "carrier-x")].messages == 1


def test_analyze_protocol():
    k = rollup(scopes=["all"])
    assert k.on_message(m(M + 1, "OPTIONS")) == []
    assert k.on_record(call("busy", final_status=486)) == []
    assert k.on_record(call("busy", final_status=486, final=False)) == []  # interim: ignored
    [row] = k.finish(M + 100)
    assert row.attempts == 1 and row.messages == 1


def test_rows_in_memory_are_capped_oldest_emitted_first():
    k = rollup(scopes=["all", "src"], lateness_s=0, revise_s=10**6, max_rows=10)
    for i in range(30):
        k.add_call(call("busy", final_status=486, start=M + 60 * i, src=f"10.0.0.{i}"))
    rows = k.close_until(M + 60 * 30)
    assert len(rows) == 60 and sum(len(r) for r in k.minutes.values()) <= 10
    k.add_call(call("busy", final_status=486, start=M + 5))  # its minute was forgotten early
    assert k.late == 1
