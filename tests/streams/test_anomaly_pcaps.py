"""Anomaly detectors on real attack captures from ../shared/testdata (skipped when absent)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from sipscope.records import Alert, SipMessage
from sipscope.settings import Settings
from streams.anomaly import AnomalyEngine
from streams.kpis import KpiRollup

PCAPS = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "pcaps"

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not PCAPS.is_dir(), reason=f"{PCAPS} is absent (third-party captures live outside the project)"),
]


@cache
def messages(name: str) -> tuple[SipMessage, ...]:
    from producers.cli import _options, file_payloads
    from producers.pipeline import Stats, records_from

    settings = Settings()
    recs = [r for r in records_from(file_payloads(str(PCAPS / name), None, settings), _options(settings, "parse"), Stats())
            if isinstance(r, SipMessage)]
    recs.sort(key=lambda m: m.ts)
    return tuple(recs)


def alerts_of(name: str) -> tuple[list[Alert], tuple[SipMessage, ...]]:
    msgs = messages(name)
    eng = AnomalyEngine.from_settings(Settings())
    out: list[Alert] = []
    for m in msgs:
        out += eng.feed_message(m)
    out += eng.advance(msgs[-1].ts)
    return out, msgs


def test_register_bruteforce_from_its_single_ip():
    alerts, msgs = alerts_of("attack-register-bruteforce-single-ip.pcap")
    attacker = "199.105.226.32"
    bf = [a for a in alerts if a.name == "registration_bruteforce" and a.status == "open"]
    assert bf and {a.subject for a in bf} == {attacker}
    first = bf[0]
    assert first.ts - msgs[0].ts < 60, "raised within the first minute of the attack"
    assert first.subject_type == "ip" and first.observed >= 10 and first.evidence
    assert set(first.evidence) <= {m.call_id for m in msgs}
    # it also walks through users (extension_enumeration); nothing is raised against the registrars
    assert {a.subject for a in alerts} == {attacker}
    assert {a.name for a in alerts} <= {"registration_bruteforce", "extension_enumeration", "retransmission_storm"}


def test_sipcli_scanner_user_agent():
    alerts, msgs = alerts_of("attack-sipcli-invite-401-482-503.pcap")
    opened = [a for a in alerts if a.status == "open"]
    assert opened and all(a.name == "scanner_user_agent" for a in opened)
    a = opened[0]
    assert (a.subject_type, a.subject) == ("ip", "40.129.198.250")
    assert "sipcli" in a.description and a.ts == msgs[0].ts


def test_honeynet_unfriendly_scanner():
    alerts, msgs = alerts_of("honeynet-fc4-scanner-register-call-dtmf-http.pcap")
    [a] = [a for a in alerts if a.status == "open"]
    assert (a.name, a.subject) == ("scanner_user_agent", "172.25.105.43")
    assert "UNfriendly-scanner" in a.description and "friendly-scanner" in a.description
    assert a.evidence and a.evidence[0] in {m.call_id for m in msgs if m.src_ip == "172.25.105.43"}


@pytest.mark.parametrize("name", ["sipp-branch-load-1334-calls-403.pcapng",
                                  "b2bua-freeswitch-100-calls-ipv4-fragmented-invites.pcap",
                                  "register-and-calls-rtp-rtcp.pcap", "call-prack-rtp-rtcp.pcap"])
def test_ordinary_captures_raise_no_attack_alert(name):
    alerts, _ = alerts_of(name)
    attacks = {"scanner_user_agent", "registration_bruteforce", "extension_enumeration", "high_risk_destination",
               "short_call_burst"}
    assert [a for a in alerts if a.name in attacks] == []


def test_kpis_over_a_real_load_capture_add_up():
    msgs = messages("sipp-branch-load-1334-calls-403.pcapng")
    from streams.analyze import analyze_messages

    settings = Settings()
    rollup = KpiRollup.from_settings(settings)
    report = analyze_messages(msgs, settings.correlation, [rollup])
    rows = [r for r in report.stats if r.scope == "all"]
    assert sum(r.attempts for r in rows) == len(report.calls)
    assert sum(r.messages for r in rows) == len(msgs)
    assert len({r.id for r in report.stats}) == len(report.stats)
    outcomes = {}
    for c in report.calls:
        outcomes[c.outcome] = outcomes.get(c.outcome, 0) + 1
    assert sum(r.answered for r in rows) == outcomes.get("answered", 0)
    assert sum(r.rejected for r in rows) == outcomes.get("rejected", 0)
