"""Golden tests: ``sipscope analyze`` over real third-party captures, checked against values worked out by hand.

Every expectation below was derived from the capture itself with

    tshark -r F -Y sip -T fields -e frame.number -e frame.time_epoch -e ip.src -e ip.dst \
        -e sip.Method -e sip.Status-Code -e sip.Call-ID -e sip.CSeq -e sip.from.tag -e sip.to.tag

(frame numbers and times are quoted in the comments), applying the rules documented in
``streams/outcomes.py`` and ``streams/dialogs.py`` by hand: timings are differences of the quoted
frame times (t1 = the first INVITE; the response the caller received when a proxy relays it), outcomes
come from the final response to the initial INVITE. Default ``CorrelationSettings`` throughout.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path

import pytest

from sipscope.settings import CorrelationSettings, Settings
from streams.analyze import Report, analyze_file, report_json

TESTDATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
PCAPS = TESTDATA / "pcaps"

pytestmark = [pytest.mark.shared, pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/testdata is absent")]


def sipscope(argv: list[str]) -> int:
    """Run a ``sipscope`` subcommand as the CLI does, without reconfiguring the process's logging (which
    would bind structlog to this test's captured, soon closed, stderr)."""
    from sipscope.cli import build_parser

    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


@cache
def analyzed(name: str) -> Report:
    settings = Settings(correlation=CorrelationSettings(), node="golden")
    return analyze_file(str(PCAPS / name), settings, extra_engines=())


def ms(a: float, b: float) -> float:
    return (b - a) * 1000.0


def calls_by_id(name: str) -> dict:
    rep = analyzed(name)
    ids = [c.call_id for c in rep.calls]
    assert len(ids) == len(set(ids)), "exactly one final summary per Call-ID"
    return {c.call_id: c for c in rep.calls}


def check(call, **expected):
    for key, want in expected.items():
        got = getattr(call, key)
        if isinstance(want, float):
            assert got == pytest.approx(want, abs=2e-3), f"{call.call_id} {key}: {got} != {want}"
        else:
            assert got == want, f"{call.call_id} {key}: {got!r} != {want!r}"


# -- single calls -----------------------------------------------------------------------------------------

def test_call_basic_udp_via_proxy():
    # One Call-ID on two hops: A 10.33.6.101 -> proxy 10.33.6.102:5080 -> B 10.33.6.100.
    # f1 INVITE A->P 650.454022; f2 100 P->A; f3 INVITE P->B 650.490270; f4 100 B->P; f5 180 B->P 650.549798;
    # f6 180 P->A 650.575615; f7 200 B->P 651.162108; f8 200 P->A 651.179161; f9 ACK A->B 651.201173;
    # f10 BYE B->A 653.411284 (From-tag 1c2071048551 = the dialog's To-tag: the callee; Reason Q.850 16);
    # f11 200 A->B 653.424145.  (times: 1312180xxx.xxxxxx)
    calls = calls_by_id("call-basic-udp-via-proxy.pcap")
    assert len(calls) == 1
    c = calls["75104938772201062721@10.33.6.101"]
    t = 1312180000.0
    check(c, outcome="answered", final_status=200, end_reason="bye", state="terminated", hangup_by="callee",
          caller="201", callee="101", q850_cause=16, messages=11, retransmissions=0, duplicates=0,
          hosts=["10.33.6.101:5060", "10.33.6.102:5080", "10.33.6.100:5060"],
          start_ts=t + 650.454022,
          first_provisional_ts=t + 650.575615,      # the 180 the caller received (f6), not f5 deeper in
          answer_ts=t + 651.179161,                 # f8
          pdd_ms=ms(650.454022, 650.575615), srd_success_ms=ms(650.454022, 650.575615),
          ring_time_s=651.179161 - 650.575615, duration_s=653.411284 - 651.179161,
          sdd_ms=ms(653.411284, 653.424145), srd_failure_ms=None)


def test_call_prack_rtp_rtcp():
    # f1 INVITE 105.417810; f2 100; f3 180 105.508290; f4 PRACK; f5 200(PRACK); f6 200(INVITE) 107.461324;
    # f7 ACK 107.496549; f258 BYE from .100 with From-tag = To-tag (callee) 112.333833; f259 200 112.382576.
    c = calls_by_id("call-prack-rtp-rtcp.pcap")["1907983263271201083544@10.33.6.101"]
    check(c, outcome="answered", final_status=200, hangup_by="callee", messages=9, retransmissions=0,
          pdd_ms=ms(105.417810, 105.508290), srd_success_ms=ms(105.417810, 105.508290),
          ring_time_s=107.461324 - 105.508290, duration_s=112.333833 - 107.461324,
          sdd_ms=ms(112.333833, 112.382576), caller_agent="GW/v.6.20A.027.012", callee_agent="IPP/v.6.20A.027.012")


def test_call_tcp_with_rtp():
    # f3 INVITE 686.562096; f5 100; f7 180 686.621123; f9 200 690.905636; f11 ACK 690.933132;
    # f81 BYE from .101 (the callee) 693.057152; f83 200 693.088359.
    calls = calls_by_id("call-tcp-with-rtp.pcap")
    assert len(calls) == 1
    (c,) = calls.values()
    check(c, outcome="answered", final_status=200, hangup_by="callee", messages=7, caller="101", callee="201",
          pdd_ms=ms(686.562096, 686.621123), ring_time_s=690.905636 - 686.621123,
          duration_s=693.057152 - 690.905636, sdd_ms=ms(693.057152, 693.088359), ack_ts=1311857690.933132)


def test_call_ipv6_udp_with_broken_clock():
    # The six frames' timestamps jump by years (1328589362, 1529707907, 1530001712, ...; tshark shows the
    # same). By event time the INVITE (f1) gets no response within Timer B (32 s), so the leg is closed
    # as failed / timeout_no_final; the 100, 200, ACK, BYE, 200 arrive years "later" for a closed leg.
    calls = calls_by_id("call-ipv6-udp.pcap")
    (c,) = calls.values()
    check(c, outcome="failed", final_status=None, end_reason="timeout_no_final", state="expired", messages=1,
          start_ts=1328589362.251758, pdd_ms=None,
          hosts=["[fe80::21a:a0ff:fe07:32e0]:5060", "[fec0::216:d3ff:fe0d:22c]:5060"])


def test_invite_488_after_401():
    # 3 OPTIONS Call-IDs are not calls. NA4y5nr9Jk: f7 INVITE cseq 20 808.834678; f8 401; f9 ACK;
    # f10 INVITE cseq 21 (retry, same Call-ID, higher CSeq: same call); f11 100; f12 488 808.887985; f13 ACK.
    calls = calls_by_id("invite-488-not-acceptable-codec.pcapng")
    assert list(calls) == ["NA4y5nr9Jk"]
    check(calls["NA4y5nr9Jk"], outcome="rejected", final_status=488, end_reason="final_response",
          start_ts=1566926808.834678, srd_failure_ms=ms(808.834678, 808.887985),
          pdd_ms=ms(808.834678, 808.887985), srd_success_ms=None, messages=7, caller="8801", callee="8802")


def test_retransmitted_invite_to_dead_ata():
    # 2d456948-...: f3 INVITE .10->PBX .5 918.697670; f4 100 to the caller; the PBX forks serially to the dead
    # ATA .2 (branches L1-a..d: f5/f6/f8, f9/f10/f12, f13/f14/f15, f17/f18/f19 = 4 new INVITEs + 8 timer-A
    # retransmissions, no answer); f21 200 PBX->caller 932.775115 (no 18x: SRD/PDD end at the 200);
    # f23 ACK; f403 BYE from the PBX with From-tag = To-tag (callee) 936.680253; f409 200 936.829351.
    # 496ef3d0-...: only CANCELs (its INVITE precedes the capture): no call. 119e19c3...: REGISTER (below).
    calls = calls_by_id("retransmitted-invite-cancel-to-dead-ata-register-401.pcap")
    assert list(calls) == ["2d456948-fa5e1406-6ce4f293-ac498c84@192.168.5.10"]
    c = calls["2d456948-fa5e1406-6ce4f293-ac498c84@192.168.5.10"]
    check(c, outcome="answered", final_status=200, hangup_by="callee", end_reason="bye",
          messages=10, retransmissions=8, duplicates=0,
          srd_success_ms=ms(918.697670, 932.775115), pdd_ms=ms(918.697670, 932.775115), ring_time_s=None,
          duration_s=936.680253 - 932.775115, sdd_ms=ms(936.680253, 936.829351))
    # REGISTER f410 cseq 199 -> f411 401 -> f412 REGISTER cseq 200, then the capture ends
    (r,) = analyzed("retransmitted-invite-cancel-to-dead-ata-register-401.pcap").registrations
    assert (r.outcome, r.final_status, r.challenges, r.attempts) == ("timeout", None, 1, 2)


def test_sipcli_invite_attack():
    # 11 Call-IDs from sipcli/v1.8, each INVITE answered and ACKed:
    #  5 answered 482 Loop Detected directly (f1-f15, 1515976962.686811 + ...): rejected;
    #  6 challenged 401, retried with CSeq 2 (same call): 1 x 403 -> rejected, 5 x 503 -> failed.
    calls = calls_by_id("attack-sipcli-invite-401-482-503.pcap")
    assert Counter((c.outcome, c.final_status) for c in calls.values()) == \
        {("rejected", 482): 5, ("rejected", 403): 1, ("failed", 503): 5}
    # e7a0adcb...: f1 INVITE 962.686811, f2 482 962.710661, f3 ACK
    check(calls["e7a0adcb65b036bcce0655cc90649308"], srd_failure_ms=ms(962.686811, 962.710661), messages=3)
    # 62ec4367...: INVITE 9005.206894, 401 9005.207706, ACK, INVITE cseq 2 9005.607248, 100, 403 9005.698688, ACK
    check(calls["62ec4367844cc26307d29aea4ed9b3cd"], final_status=403, messages=7,
          start_ts=1515989005.206894, srd_failure_ms=ms(9005.206894, 9005.698688))
    assert {c.caller_agent for c in calls.values()} == {"sipcli/v1.8"}


def test_wireshark_aaa_cancel_408_407_480():
    calls = calls_by_id("wireshark-aaa-register-auth-cancel-408-480.pcap")
    assert len(calls) == 4
    t = 1120470000.0
    # 105090259: INVITE 049.188993 (+2 retransmissions .696866, 050.699023), 100 051.405231, CANCEL 083.308013
    # (+ retransmissions 083.815816, 084.827100, 086.840071, 090.856381 inside the 5 s after the final),
    # 408 085.961798, ACK 085.969731. The final 408 decides (no_answer); the CANCEL was the caller's.
    check(calls["105090259-446faf7a@192.168.1.2"], outcome="no_answer", final_status=408,
          end_reason="final_response", hangup_by="caller", messages=5, retransmissions=6,
          srd_failure_ms=ms(49.188993, 85.961798), pdd_ms=ms(49.188993, 85.961798), ring_time_s=None,
          start_ts=t + 49.188993)
    # 85216695: INVITE 233.794463 (+2 retx), 407 235.448732, ACK, INVITE cseq 2 267.923616 (32.5 s later,
    # within auth_retry_wait_s: same call), 403 268.128176, ACK.
    check(calls["85216695-42dcdb1d@192.168.1.2"], outcome="rejected", final_status=403, messages=6,
          retransmissions=2, srd_failure_ms=ms(233.794463, 268.128176))
    # 24487391: INVITE 848.528833, 407 848.682926, ACK, INVITE cseq 2 899.862890 (51 s), 100, 403 900.056743, ACK
    check(calls["24487391-449bf2a0@192.168.1.2"], outcome="rejected", final_status=403, messages=7,
          srd_failure_ms=ms(848.528833, 900.056743))
    # 11894297: INVITE 966.443914, 407, ACK, INVITE cseq 2 983.863488, 100, 183 984.289950,
    # 480 984.332623 (Reason Q.850 21), ACK
    check(calls["11894297-4432a9f8@192.168.1.2"], outcome="no_answer", final_status=480, q850_cause=21,
          pdd_ms=ms(966.443914, 984.289950), srd_failure_ms=ms(966.443914, 984.332623),
          ring_time_s=984.332623 - 984.289950, ringing_ts=t + 984.289950)


# -- B2BUA legs -------------------------------------------------------------------------------------------

def test_b2bua_freeswitch_one_call_two_legs():
    # A-leg 1-600760@38.242.140.216: f1 INVITE 475.881384, f2 100, f7 180 475.906634, f8 200 475.909655,
    #   f9 ACK, f10 BYE from the caller (From-tag = INVITE's) 485.918673, f11 200 485.929582.
    # B-leg 0ab3de64-...: f3 INVITE from the SBC 475.885735 (X-cid: 1-600760@38.242.140.216), f4 180 475.893195,
    #   f5 200 475.894297, f6 ACK, f12 BYE from the SBC = this leg's caller 485.936340, f13 200 485.944047.
    calls = calls_by_id("b2bua-freeswitch-sbc-one-call-two-legs.pcap")
    a, b = calls["1-600760@38.242.140.216"], calls["0ab3de64-a953-123e-4f86-00505658449a"]
    check(a, outcome="answered", hangup_by="caller", messages=7, correlation_id="1-600760@38.242.140.216",
          pdd_ms=ms(475.881384, 475.906634), ring_time_s=475.909655 - 475.906634,
          duration_s=485.918673 - 475.909655, sdd_ms=ms(485.918673, 485.929582))
    check(b, outcome="answered", hangup_by="caller", messages=6, correlation_id="1-600760@38.242.140.216",
          pdd_ms=ms(475.885735, 475.893195), ring_time_s=475.894297 - 475.893195,
          duration_s=485.936340 - 475.894297, sdd_ms=ms(485.936340, 485.944047))


def test_b2bua_asterisk_legs_linked_by_heuristic():
    # No correlation header: Asterisk at 172.16.98.101 bridges telephone1 (A-leg, to ext 2302) to telephone2.
    # A M2Q0...: f19 INVITE 795.920336 -> f20 401 -> f21 ACK -> f22 INVITE cseq 2 -> f23 100 -> f29 180 796.665071
    #   -> f34 200 802.986781 -> f36 ACK; Asterisk's re-INVITE f37 (cseq 102, with To-tag) + f38 200 + f39 ACK;
    #   f404 BYE from telephone1 (caller) 810.609451, f405 200 810.610386.   13 messages.
    # B 37686afc...: f24 INVITE from the PBX 795.923891 (3.6 ms after A's, to the host A's INVITE went to,
    #   same caller telephone1) -> f25 the same INVITE 499.6 ms later (retransmission) -> f26/f27 the same
    #   100 twice 0.28 ms apart (one node: duplicate) -> f28 180 796.664606 -> f32 200 802.982256 -> f33 ACK;
    #   re-INVITEs 103 (f35/f41/f42) and 104 (f406-f408); f409 BYE from the PBX (caller) 810.850300,
    #   f410 200 810.855632.   13 messages, 1 retransmission, 1 duplicate.
    calls = calls_by_id("b2bua-asterisk-two-phones-register-401.pcapng")
    a_id = "M2Q0ZDc1ZGM1NzIyMTlhZTA3NDU3NTgzMzA5YmJmZWQ."
    a, b = calls[a_id], calls["37686afc57ce24ac655742b3644a7bb8@172.16.98.101:5060"]
    check(a, outcome="answered", final_status=200, hangup_by="caller", correlation_id=a_id, messages=13,
          retransmissions=0, duplicates=0, callee="2302",
          pdd_ms=ms(795.920336, 796.665071), ring_time_s=802.986781 - 796.665071,
          duration_s=810.609451 - 802.986781, sdd_ms=ms(810.609451, 810.610386))
    check(b, outcome="answered", final_status=200, hangup_by="caller", correlation_id=a_id, messages=13,
          retransmissions=1, duplicates=1, callee="telephone2",
          pdd_ms=ms(795.923891, 796.664606), ring_time_s=802.982256 - 796.664606,
          duration_s=810.850300 - 802.982256, sdd_ms=ms(810.850300, 810.855632))
    # REGISTERs: f1 -> f2 401 -> f3 -> f4 200 (Expires 3600); f5 -> f6 401 -> f7 -> f8 200
    regs = analyzed("b2bua-asterisk-two-phones-register-401.pcapng").registrations
    assert [(r.user, r.outcome, r.challenges, r.attempts, r.expires) for r in regs] == \
        [("telephone1", "ok", 1, 2, 3600), ("telephone2", "ok", 1, 2, 3600)]
    assert regs[0].rrd_ms == pytest.approx(ms(783.881485, 783.882693), abs=2e-3)
    assert regs[1].rrd_ms == pytest.approx(ms(791.227835, 791.231966), abs=2e-3)


def test_b2bua_freeswitch_100_calls():
    # 1400 SIP messages: 100 SIPp calls 38.242.140.216 -> SBC 178.18.244.71 -> 109.205.183.238 = 200 Call-IDs.
    # Every leg: INVITE, (100 x2 on A-legs: two different 100 Trying), 180, 200, ACK, BYE, 200: all answered,
    # 8 + 6 messages per pair = 1400. B-leg INVITEs go out 2-9 ms after their A-leg's from the SBC.
    calls = calls_by_id("b2bua-freeswitch-100-calls-ipv4-fragmented-invites.pcap")
    assert len(calls) == 200
    assert Counter((c.outcome, c.final_status, c.end_reason) for c in calls.values()) == {("answered", 200, "bye"): 200}
    assert sum(c.messages for c in calls.values()) == 1400
    assert sum(c.retransmissions + c.duplicates for c in calls.values()) == 0
    groups: dict[str, list] = {}
    for c in calls.values():
        groups.setdefault(c.correlation_id, []).append(c)
    assert len(groups) == 100 and all(len(g) == 2 for g in groups.values())
    for cid, legs in groups.items():
        a = [c for c in legs if c.src_ip == "38.242.140.216"]
        assert len(a) == 1 and a[0].call_id == cid  # the correlation id is the A-leg's Call-ID
    # first pair by hand: A 1-1342@38.242.140.216: f1 INVITE 577.219900, f9 180 577.249345, f10 200 577.252955,
    # f12 BYE (caller) 587.314599, f13 200 587.330903; B 2df9094b-...: f5 INVITE 577.228366, f6 180 577.230336,
    # f7 200 577.231472, f16 BYE 587.339288, f17 200 587.340826.
    check(calls["1-1342@38.242.140.216"], messages=8, hangup_by="caller", pdd_ms=ms(577.219900, 577.249345),
          duration_s=587.314599 - 577.252955, sdd_ms=ms(587.314599, 587.330903))
    check(calls["2df9094b-bfd1-123e-27a9-00505658449a"], messages=6, hangup_by="caller",
          correlation_id="1-1342@38.242.140.216", pdd_ms=ms(577.228366, 577.230336),
          duration_s=587.339288 - 577.231472, sdd_ms=ms(587.339288, 587.340826))


# -- load -------------------------------------------------------------------------------------------------

def test_sipp_branch_load_1334_calls():
    # 1334 Call-IDs, each REGISTER/200 then an INVITE (SIPp branchc/branchs; the loopback capture lost
    # packets). Grouping each Call-ID's INVITE-dialog messages in order (tshark, REGISTER excluded):
    #   1021 INVITE 180 403 BYE 200 | 121 INVITE 180 403 | 6 INVITE 180 403 BYE   -> 1148 rejected 403
    #     96 INVITE 180 100 200 ACK BYE 200                                        -> answered, bye
    #      5 INVITE 180 100 200 ACK | 1 INVITE 180 100 200 (no BYE by capture end) -> answered, capture_end
    #      4 INVITE 180 100 BYE 200 | 3 ... 100 ACK BYE 200 | 1 INVITE 180 BYE 200 -> no final, BYE after
    #        ringing -> no_answer (end_reason bye)
    #      4 INVITE BYE 200                                                         -> cancelled (bye)
    #     71 INVITE only: 3 sent >= 32 s before the last frame (688.603277): 76-, 78-, 84-4461 -> failed
    #        (Timer B); 68 sent in the last 25.5 s                                  -> incomplete
    #      1 INVITE 180 100 (250-4461, 108 s before the end < Timer C)              -> incomplete
    rep = analyzed("sipp-branch-load-1334-calls-403.pcapng")
    assert len(rep.calls) == 1334
    assert Counter((c.outcome, c.final_status, c.end_reason) for c in rep.calls) == {
        ("rejected", 403, "final_response"): 1148,
        ("answered", 200, "bye"): 96,
        ("answered", 200, "capture_end"): 6,
        ("no_answer", None, "bye"): 8,
        ("cancelled", None, "bye"): 4,
        ("failed", None, "timeout_no_final"): 3,
        ("incomplete", None, "capture_end"): 69,
    }
    failed = sorted(c.call_id for c in rep.calls if c.outcome == "failed")
    assert failed == ["76-4461@127.0.1.1", "78-4461@127.0.1.1", "84-4461@127.0.1.1"]
    assert all(c.hangup_by == "caller" for c in rep.calls if c.end_reason == "bye")
    # first call 1-4461: f3 INVITE 555.303580, f4 180 555.303625, f5 403 555.307251 (then a BYE: noise)
    first = next(c for c in rep.calls if c.call_id == "1-4461@127.0.1.1")
    check(first, outcome="rejected", pdd_ms=ms(555.303580, 555.303625), srd_failure_ms=ms(555.303580, 555.307251),
          hangup_by=None, messages=5)
    # 1334 REGISTER/200 (Expires 300), one per Call-ID
    assert len(rep.registrations) == 1334
    assert Counter((r.outcome, r.final_status, r.expires, r.attempts) for r in rep.registrations) == \
        {("ok", 200, 300, 1): 1334}


# -- registrations ----------------------------------------------------------------------------------------

def test_register_401_challenge_then_200():
    # f1 REGISTER cseq 1 701.605468 (Expires 3600), f2 100, f3 401, f4 REGISTER cseq 2, f5 100,
    # f6 200 701.645643 (Expires 600); then f7 REGISTER cseq 3 (Expires 0) 710.202765, f8 100, f9 200 710.221424.
    regs = analyzed("register-401-challenge-then-200.pcapng").registrations
    assert [(r.outcome, r.final_status, r.challenges, r.attempts, r.expires) for r in regs] == \
        [("ok", 200, 1, 2, 600), ("unregistered", 200, 0, 1, 0)]
    assert regs[0].rrd_ms == pytest.approx(ms(701.605468, 701.645643), abs=2e-3)
    assert regs[1].rrd_ms == pytest.approx(ms(710.202765, 710.221424), abs=2e-3)
    assert regs[0].aor == "1111@192.168.0.102" and regs[0].user_agent == "Z 3.3.21933 r21903"


def test_wireshark_aaa_registrations():
    # Call-ID 578222729-...: the phone asks its user for the password, so retries come ~17 s after the 401.
    #   68 -> 401 -> 69 (17.4 s) -> 403                       failed, 1 challenge, 2 attempts
    #   70 -> 401 -> 71 (17.3 s) -> 401; next REGISTER 150 s later           challenged (2, 2)
    #   72 -> 401 -> 73 -> 401; next REGISTER 73.8 s later (> 64 s)          challenged (2, 2)
    #   74 -> 401 -> 75 (17.3 s) -> 100 -> 200 956.406918, Expires 1200    ok, RRD from 938.910409
    #   76 (Expires 0) -> 401 -> 77 -> 401; 78 is for another AOR (35104723)  challenged (2, 2)
    #   78 -> 401 -> 79 -> 401, nothing more on this Call-ID                  challenged (2, 2)
    # Call-ID 29858147-...:
    #   1 -> 401 -> 2 (17.4 s) -> 100 -> 200 814.349707                    ok, RRD from 796.804243
    #   3 -> 401 -> 4 (34.1 s, with credentials) -> 401; next 135 s later   challenged (2, 2)
    #   5 -> 401 -> 6 (17.5 s) -> 100 -> 200 018.881832 (1120471...)        ok, RRD from 001.263229
    regs = analyzed("wireshark-aaa-register-auth-cancel-408-480.pcap").registrations
    got = [(r.user, r.outcome, r.final_status, r.challenges, r.attempts) for r in regs]
    assert got == [
        ("voi18063", "failed", 403, 1, 2),
        ("voi18063", "challenged", 401, 2, 2),
        ("voi18062", "challenged", 401, 2, 2),
        ("voi18062", "ok", 200, 1, 2),
        ("voi18062", "challenged", 401, 2, 2),
        ("35104723", "challenged", 401, 2, 2),
        ("35104723", "ok", 200, 1, 2),
        ("35104723", "challenged", 401, 2, 2),
        ("35104723", "ok", 200, 1, 2),
    ]
    oks = [r for r in regs if r.outcome == "ok"]
    assert [r.rrd_ms for r in oks] == pytest.approx(
        [ms(469938.910409, 469956.406918), ms(470796.804243, 470814.349707), ms(471001.263229, 471018.881832)],
        abs=2e-3)
    assert all(r.expires == 1200 for r in oks)


# -- the command ------------------------------------------------------------------------------------------

def test_analyze_command_json(capsys):

    assert sipscope(["analyze", str(PCAPS / "b2bua-freeswitch-sbc-one-call-two-legs.pcap"), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"calls", "registrations", "stats", "alerts"} <= set(doc)
    assert doc["alerts"] == [], "an ordinary call through an SBC raises no alert"
    # KPI rows run by default: both legs are initial INVITEs, both answered (scope "all")
    rows = [r for r in doc["stats"] if r["scope"] == "all"]
    assert sum(r.get("attempts", 0) for r in rows) == 2
    assert sum(r.get("answered", 0) for r in rows) == 2
    assert [(c["call_id"], c["outcome"], c["final_status"], c["from_user"], c["to_user"]) for c in doc["calls"]] == [
        ("1-600760@38.242.140.216", "answered", 200, "11100", "service"),
        ("0ab3de64-a953-123e-4f86-00505658449a", "answered", 200, "+351913417084", "22200"),
    ]
    call = doc["calls"][0]
    for key in ("caller", "callee", "pdd_ms", "srd_success_ms", "srd_failure_ms", "duration_s", "sdd_ms",
                "ring_time_s", "hangup_by", "correlation_id"):
        assert key in call


def test_analyze_command_text(capsys):

    assert sipscope(["analyze", str(PCAPS / "register-401-challenge-then-200.pcapng")]) == 0
    out = capsys.readouterr().out
    assert "Calls (0)" in out and "Registrations (2)" in out and "unregistered" in out


def test_report_json_is_plain_json():
    doc = report_json(analyzed("call-basic-udp-via-proxy.pcap"))
    assert json.loads(json.dumps(doc)) == doc
