"""The Correlator facade and the analyze pipeline's extra-engine hook (no capture files needed)."""

from __future__ import annotations

import pytest
from sipbuild import Leg, answered_call

from sipscope.records import Alert, CallSummary, Registration, StatsRow
from sipscope.settings import CorrelationSettings
from streams import analyze
from streams.analyze import analyze_messages, render_text, report_json
from streams.engine import Correlator

T0 = 7000.0


def sipscope(argv: list[str]) -> int:
    """Run a ``sipscope`` subcommand as the CLI does, without reconfiguring the process's logging (which
    would bind structlog to this test's captured, soon closed, stderr)."""
    from sipscope.cli import build_parser

    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


def sipp_like(leg: Leg, t0: float):
    """REGISTER and INVITE on one Call-ID (the SIPp branch scenario)."""
    return [leg.request(t0, "REGISTER", 1, expires=300), leg.response(t0 + 0.001, 200, 1, "REGISTER", expires=300)] + \
        answered_call(leg, t0 + 0.002)


def test_correlator_routes_register_and_invite_of_one_call_id():
    leg = Leg("1-4461@127.0.1.1")
    corr = Correlator(CorrelationSettings())
    out = []
    for m in sipp_like(leg, T0):
        out += corr.feed(m)
    out += corr.flush_all()
    calls = [r for r in out if isinstance(r, CallSummary)]
    regs = [r for r in out if isinstance(r, Registration)]
    assert [(c.call_id, c.outcome, c.messages) for c in calls] == [(leg.call_id, "answered", 7)]
    assert [(r.call_id, r.outcome, r.expires) for r in regs] == [(leg.call_id, "ok", 300)]


def test_correlator_advance_moves_both_engines():
    a, b = Leg("a@x"), Leg("b@x")
    corr = Correlator(CorrelationSettings(no_final_timeout_s=32, register_timeout_s=32))
    assert corr.feed(a.invite(T0)) == [] and corr.feed(b.request(T0, "REGISTER", 1)) == []
    got = corr.advance(T0 + 40)
    assert sorted(type(r).__name__ for r in got) == ["CallSummary", "Registration"]
    assert corr.flush_all() == []


class FakeKpis:
    def __init__(self):
        self.records, self.messages, self.finished = [], 0, None

    def on_message(self, msg):
        self.messages += 1
        return ()

    def on_record(self, rec):
        self.records.append(type(rec).__name__)
        if isinstance(rec, CallSummary):
            yield StatsRow(id="s1", ts=60 * (rec.start_ts // 60), scope="all", key="*", attempts=1)

    def finish(self, now):
        self.finished = now
        return [Alert(id="a1", alert_id="a1", name="long_pdd", subject_type="ip", subject="10.0.0.1", ts=now,
                      window_start=now - 60, window_end=now, observed=4000.0)]


def test_extra_engines_receive_messages_and_records_and_add_stats_and_alerts():
    leg = Leg("c@x")
    msgs = sipp_like(leg, T0)
    eng = FakeKpis()
    rep = analyze_messages(msgs, CorrelationSettings(), [eng])
    assert eng.messages == len(msgs)
    assert sorted(eng.records) == ["CallSummary", "Registration"]
    assert eng.finished == msgs[-1].ts
    assert [s.scope for s in rep.stats] == ["all"] and [a.name for a in rep.alerts] == ["long_pdd"]
    doc = report_json(rep)
    assert doc["stats"][0]["key"] == "*" and doc["alerts"][0]["name"] == "long_pdd"
    assert "Alerts (1)" in render_text(rep)


def test_extra_engine_returning_something_else_is_an_error():
    class Bad:
        def on_message(self, msg):
            return ["oops"]

        def on_record(self, rec):
            return ()

        def finish(self, now):
            return ()

    with pytest.raises(TypeError, match="StatsRow or Alert"):
        analyze_messages(answered_call(Leg(), T0), CorrelationSettings(), [Bad()])


def test_register_engine_adds_a_default_factory(monkeypatch):
    monkeypatch.setattr(analyze, "ENGINE_FACTORIES", [])
    factory = analyze.register_engine(lambda settings: FakeKpis())
    analyze.register_engine(factory)
    assert analyze.ENGINE_FACTORIES == [factory]


def test_interim_summaries_are_not_listed_as_calls():
    leg = Leg()
    msgs = answered_call(leg, T0)[:5] + [Leg("other@x").request(T0 + 1000, "OPTIONS", 1)]
    eng = FakeKpis()
    rep = analyze_messages(msgs, CorrelationSettings(interim_interval_s=300), [eng])
    assert len(rep.calls) == 1 and rep.calls[0].final
    # event time jumps from +3 s to +1000 s in one step: one interim update (not one per missed interval),
    # then the final at capture end
    assert eng.records.count("CallSummary") == 2


def test_analyze_command_rejects_a_file_that_is_not_a_capture(tmp_path, capsys):

    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    assert sipscope(["analyze", str(bad)]) == 1
    assert "sipscope analyze: error:" in capsys.readouterr().err
    assert sipscope(["analyze", str(tmp_path / "missing.pcap")]) == 1


def test_worker_style_engines_are_adapted():
    class WorkerStyle:
        def __init__(self):
            self.seen = []

        def feed_message(self, m):
            self.seen.append("msg")
            return []

        def feed_call(self, c):
            self.seen.append("call")
            return []

        def feed_registration(self, r):
            self.seen.append("reg")
            return []

        def advance(self, ts):
            self.seen.append("advance")
            return [Alert(id="x", alert_id="x", name="asr_drop", subject_type="trunk", subject="t", ts=ts,
                          window_start=ts - 600, window_end=ts, observed=0.2)]

    eng = WorkerStyle()
    rep = analyze_messages(sipp_like(Leg(), T0), CorrelationSettings(), [eng])
    assert eng.seen.count("msg") == 9 and "call" in eng.seen and "reg" in eng.seen and eng.seen[-1] == "advance"
    assert [a.name for a in rep.alerts] == ["asr_drop"]
