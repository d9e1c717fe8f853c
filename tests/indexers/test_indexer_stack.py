"""The indexer on the real stack: real captures -> capture agent -> Kafka -> indexer -> Elasticsearch -> trace.

Each test has its own topic/index/template prefix and consumer group (``names`` fixture).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest
from ixhelpers import (
    IndexerThread,
    consume_all,
    make_settings,
    produce,
    produce_records,
    publish_pcap,
    running_indexer,
    synthetic_messages,
    wait_count,
)

from indexers import kibana
from indexers.es import client
from indexers.search import Searcher
from sipscope import records, topics
from sipscope.records import Alert, CallSummary, Registration, Rejected, StatsRow

pytestmark = pytest.mark.stack

B2BUA = "b2bua-freeswitch-sbc-one-call-two-legs.pcap"
PROXY = "call-basic-udp-via-proxy.pcap"
IPV6 = "call-ipv6-fragmented-prack-update-sll.pcap"


def test_search_before_any_data_exists_finds_nothing_without_error(isettings):
    searcher = Searcher(client(isettings), isettings)
    for whole in (False, True):
        page = searcher.messages("+351913417084", last="5d", whole_calls=whole)
        assert page.hits == [] and page.total == 0 and page.next_after is None
    assert searcher.calls("417084", last="1h").total == 0


def test_a_2011_capture_lands_in_the_index_of_its_own_day(isettings):
    sent = publish_pcap(isettings, PROXY, retime=False)
    es = client(isettings)
    with running_indexer(isettings):
        name = f"{isettings.elasticsearch.index_prefix}sip-messages-2011.08.01"
        assert wait_count(es, name, len(sent)) == len(sent) == 11
    indices = es.cat.indices(index=f"{isettings.elasticsearch.index_prefix}sip-messages-*", h="index", format="json")
    assert [i["index"] for i in indices] == [name]
    doc = es.get(index=name, id=sent[0].id)["_source"]
    assert doc["ts"] == "2011-08-01T06:37:30.454022Z"


def _oracle(sent, call_ids):
    return {m.id for m in sent if m.call_id in call_ids and m.cseq_method != "REGISTER"}


def test_end_to_end_trace_finds_each_call_by_every_form_of_its_numbers(isettings):
    es = client(isettings)
    with running_indexer(isettings) as ix:
        ix.wait_assigned()
        sent = []
        for name in (PROXY, B2BUA, IPV6):
            sent += publish_pcap(isettings, name)
        t_end = time.monotonic()
        searcher = Searcher(es, isettings)
        leg_a, leg_b = "1-600760@38.242.140.216", "0ab3de64-a953-123e-4f86-00505658449a"
        proxy_call = "75104938772201062721@10.33.6.101"
        ipv6_call = next(m.call_id for m in sent if m.ruri_user == "08019200028")
        cases = {
            # number typed            -> the calls it must find
            "201": {proxy_call}, "101": {proxy_call},                     # extensions, raw form
            "+351913417084": {leg_a, leg_b},                               # +E.164 (From of leg B, PAI of leg A)
            "351913417084": {leg_a, leg_b},                                # E.164 digits
            "0913417084": {leg_a, leg_b},                                  # national form of the +351 plan
            "417084": {leg_a, leg_b}, "913417084": {leg_a, leg_b},         # 6+ trailing digits
            "08019200028": {ipv6_call},                                    # raw national Request-URI
            "+3518019200028": {ipv6_call}, "200028": {ipv6_call},          # its +E.164 and suffix
            "sip:+351913417084@sbc.example": {leg_a, leg_b},               # pasted URI
        }
        # within a few seconds of the replay's end, every form finds its calls with all their messages
        deadline = time.monotonic() + 20
        pending = dict(cases)
        while pending and time.monotonic() < deadline:
            for number, calls in list(pending.items()):
                page = searcher.messages(number, last="1h", whole_calls=True, size=500)
                if set(page.calls) == calls and {d["id"] for d in page.hits} == _oracle(sent, calls):
                    del pending[number]
            time.sleep(0.3)
        assert not pending, f"not found in time: {sorted(pending)}"
        assert time.monotonic() - t_end < 20
    # matching-only: the messages that carry the number themselves, newest first
    page = searcher.messages("0913417084", last="1h", size=500)
    carried = [m for m in sent if "351913417084" in (m.from_user_e164, m.to_user_e164, m.pai_user_e164, m.ruri_user_e164)]
    assert {d["id"] for d in page.hits} == {m.id for m in carried} and page.total == len(carried)
    ts = [d["ts"] for d in page.hits]
    assert ts == sorted(ts, reverse=True)
    # paging: pages of 3 give the same set, without overlap
    seen, after = [], None
    while True:
        p = searcher.messages("417084", last="1h", whole_calls=True, size=3, after=after)
        seen += [d["id"] for d in p.hits]
        if not p.next_after:
            break
        after = p.next_after
    assert len(seen) == len(set(seen)) == 13

    _trace_command(isettings, sent)


def _trace_command(settings, sent):
    env = dict(os.environ, SIPSCOPE_ELASTICSEARCH__URL=settings.elasticsearch.url,
               SIPSCOPE_ELASTICSEARCH__INDEX_PREFIX=settings.elasticsearch.index_prefix,
               SIPSCOPE_NUMBERING__COUNTRY_CODE="351")
    run = lambda *a: subprocess.run([sys.executable, "-m", "sipscope.cli", "trace", *a], check=False, env=env,
                                    capture_output=True, text=True, timeout=60)
    out = run("0913417084", "--last", "1h")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["Date", "(UTC)", "Method/Status", "From", "To", "Agent", "Source", "IP", "Call-ID"]
    assert len(lines) == 1 + 13
    assert "INVITE" in out.stdout and "180 Ringing" in out.stdout and "+351913417084" in out.stdout
    assert "13 message(s) of 2 call(s)" in out.stderr
    js = run("+351913417084", "--last", "30m", "--json")
    docs = [json.loads(line) for line in js.stdout.splitlines()]
    assert len(docs) == 13 and all(d["raw"] for d in docs)
    assert run("0913*", "--last", "1h").returncode == 2
    assert run("0913417084", "--last", "1h", "--from", "2026-01-01").returncode == 2
    assert run("00000000000999", "--last", "1h").returncode == 1


def test_malformed_and_refused_records_go_to_sip_rejected_and_the_rest_is_indexed(isettings):
    good = synthetic_messages(20)
    bad_ip = synthetic_messages(1)[0]
    bad_ip.src_ip = "not-an-ip"  # a valid record Elasticsearch refuses (ip field)
    bad_version = records.encode(good[0]).replace(b'"v":1', b'"v":7')
    future = synthetic_messages(1, start=time.time() + 30 * 86400)[0]  # a capture clock a month ahead
    garbage = [b"\x00\xffnot json", b'{"v":1,"call_id":"x"}', bad_version, records.encode(bad_ip),
               records.encode(future)]
    produce(isettings, topics.MESSAGES, [records.encode(m) for m in good[:10]] + garbage + [records.encode(m) for m in good[10:]])
    es = client(isettings)
    ix = IndexerThread(isettings, exit_when_idle=1.5).start()
    ix.join(90)
    s = ix.indexer.summary
    assert wait_count(es, f"{isettings.elasticsearch.index_prefix}sip-messages-*", 20) == 20
    assert s.docs == 20 and s.rejected == 5
    assert s.by_reason == {"bad_record": 2, "unsupported_schema_version": 1, "es_mapping_error": 1, "ts_in_future": 1}
    got = [records.decode(m.value(), Rejected) for m in consume_all(isettings, topics.REJECTED, 5)]
    assert len(got) == 5 and {r.stage for r in got} == {"indexer"}
    assert sorted(base64.b64decode(r.raw_b64) for r in got) == sorted(garbage)
    refused = next(r for r in got if r.reason == "es_mapping_error")
    assert "src_ip" in refused.detail and refused.ts == bad_ip.ts


def test_two_indexers_in_one_group_share_the_partitions_and_index_everything_once(isettings):
    msgs = synthetic_messages(3000, calls=300)
    a, b = IndexerThread(isettings).start(), IndexerThread(isettings).start()
    try:
        a.wait_assigned()
        b.wait_assigned()
        deadline = time.monotonic() + 30  # the group settles with both members
        while time.monotonic() < deadline and len(a.indexer._assigned) + len(b.indexer._assigned) != 3:
            time.sleep(0.2)
        assert a.indexer._assigned.keys().isdisjoint(b.indexer._assigned.keys())
        produce_records(isettings, topics.MESSAGES, msgs)
        es = client(isettings)
        assert wait_count(es, f"{isettings.elasticsearch.index_prefix}sip-messages-*", 3000, timeout=60) == 3000
    finally:
        a.stop()
        b.stop()
    assert a.indexer.summary.docs > 0 and b.indexer.summary.docs > 0
    assert a.indexer.summary.docs + b.indexer.summary.docs == 3000


def test_kibana_objects_match_the_real_mappings_after_indexing(isettings):
    """Data views, saved searches, Lens and dashboards checked against _field_caps of real indices."""
    publish_pcap(isettings, B2BUA)
    now = time.time()
    produce_records(isettings, topics.CALLS, [CallSummary(
        id="c1", call_id="call-1", outcome="answered", start_ts=now - 120, end_ts=now - 20, caller="+351913417084",
        caller_e164="351913417084", callee="22200", callee_e164="22200", src_ip="178.18.244.71", dst_ip="109.205.183.238",
        src_trunk="sbc-a", answer_ts=now - 110, duration_s=90.0, pdd_ms=12.0, final_status=200, hosts=["1.2.3.4:5060"],
        codecs=["PCMA/8000"], nodes=["n1"])])
    produce_records(isettings, topics.REGISTRATIONS, [Registration(
        id="r1", call_id="reg-1", start_ts=now - 60, end_ts=now - 59, user="1001", user_e164="1001", outcome="ok",
        src_ip="10.0.0.5", src_port=5060, dst_ip="10.0.0.1", expires=3600, rrd_ms=30.0)])
    produce_records(isettings, topics.STATS, [StatsRow(
        id="s1", ts=now - now % 60, scope="trunk", key="sbc-a", attempts=10, cps=0.17, concurrent_max=3, answered=6,
        busy=1, asr=0.6, ner=0.9, pdd_p50_ms=800.0, pdd_p95_ms=1500.0, responses={"200": 6, "486": 1}),
        StatsRow(id="s2", ts=now - now % 60, scope="all", key="*", attempts=10, concurrent_max=3)])
    produce_records(isettings, topics.ALERTS, [Alert(
        id="a1", alert_id="al-1", name="registration_bruteforce", severity="critical", subject_type="ip",
        subject="203.0.113.9", ts=now - 30, window_start=now - 330, window_end=now - 30, observed=250.0,
        threshold=50.0, description="250 failed REGISTERs in 5 min", evidence=["reg-1"])])
    es = client(isettings)
    prefix = isettings.elasticsearch.index_prefix
    ix = IndexerThread(isettings, families=["messages", "calls", "registrations", "stats", "alerts"], exit_when_idle=1.5).start()
    ix.join(90)
    for base, n in (("sip-messages", 13), ("sip-calls", 1), ("sip-registrations", 1), ("sip-stats", 2), ("sip-alerts", 1)):
        assert wait_count(es, f"{prefix}{base}-*", n) == n, base
    calls = Searcher(es, isettings).calls("0913417084", last="1h")  # national form of the caller
    assert [c["call_id"] for c in calls.hits] == ["call-1"] and calls.hits[0]["caller_e164_rev"] == "480714319153"
    objs = kibana.check(field_types=kibana.caps_field_types(es, prefix))
    assert len(objs) >= 20
    # and a field that does not exist in the real mapping is caught by the same check
    objs = kibana.load()
    next(o for o in objs if o["id"] == "sipscope-kpi-cps")["attributes"]["state"]["datasourceStates"]["formBased"][
        "layers"]["layer1"]["columns"]["cps"]["sourceField"] = "calls_per_second"
    assert any("calls_per_second" in p for p in kibana.validate(objs, kibana.caps_field_types(es, prefix)))


def test_settings_helper_isolated(stack, names, tmp_path):
    """The per-test settings never point at the shared names (guards the other tests' isolation)."""
    s = make_settings(stack, names.prefix, tmp_path)
    assert topics.name(topics.MESSAGES, s).startswith(names.prefix)
    assert s.elasticsearch.index_prefix == names.prefix and s.indexer.group_id.startswith(names.prefix)
