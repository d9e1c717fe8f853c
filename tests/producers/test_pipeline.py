"""payloads -> records: good messages become SipMessage, bad ones a Rejected with reason and bytes."""

from __future__ import annotations

import base64

from producers.pcap_source import Payload
from producers.pipeline import Options, Stats, records_from, retimed
from sipscope.numbers import NumberPlan
from sipscope.records import Rejected, SipMessage

GOOD = (b"BYE sip:0289707501@10.0.0.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
        b"From: <sip:+61299990000@10.0.0.1>;tag=a\r\nTo: <sip:0289707501@10.0.0.2>;tag=b\r\n"
        b"Call-ID: pipe-1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n")
NO_CALL_ID = GOOD.replace(b"Call-ID: pipe-1\r\n", b"")


def _p(data: bytes, ts: float = 100.0) -> Payload:
    return Payload(ts, "10.0.0.1", 5060, "10.0.0.2", 5060, "udp", data)


def test_good_and_bad_payloads_are_both_accounted_for():
    stats = Stats()
    out = list(records_from([_p(GOOD), _p(NO_CALL_ID), _p(b"\x00\x01\x02garbage")], Options(plan=NumberPlan(), node="n1"), stats))
    assert [type(r) for r in out] == [SipMessage, Rejected, Rejected]
    msg, rej1, rej2 = out
    assert msg.call_id == "pipe-1" and msg.method == "BYE" and msg.node == "n1"
    assert msg.to_user_e164 == "61289707501" and msg.from_user_e164 == "61299990000"
    assert rej1.reason == "missing_call_id" and base64.b64decode(rej1.raw_b64) == NO_CALL_ID
    assert rej1.ts == 100.0 and rej1.src_ip == "10.0.0.1" and rej1.stage == "capture"
    assert rej2.reason in ("binary_junk", "not_sip")
    assert stats.payloads == 3 and stats.messages == 1 and sum(stats.rejected.values()) == 2


def test_retime_shifts_capture_time_and_keeps_gaps():
    ps = [_p(GOOD, 10.0), _p(GOOD, 12.5)]
    out = list(retimed(ps, 1000.0))
    assert [p.ts for p in out] == [1010.0, 1012.5]


def test_counts_survive_more_than_one_batch():
    stats = Stats()
    n = sum(1 for _ in records_from((_p(GOOD) for _ in range(2500)), Options(plan=NumberPlan()), stats))
    assert n == 2500 and stats.messages == 2500 and stats.payloads == 2500


def test_realtime_pacing_keeps_the_capture_gaps_and_max_does_not_wait():
    import time as _time

    from producers.pcap_source import Payload
    from producers.pipeline import PACE_SLACK_S, paced

    ts = [100.0, 100.0005, 100.001, 100.06, 100.12]  # a sub-millisecond burst, then 60 ms gaps
    items = [Payload(ts=t, src_ip="10.0.0.1", src_port=5060, dst_ip="10.0.0.2", dst_port=5060, transport="udp",
                     data=b"x", frame=i) for i, t in enumerate(ts)]
    t0 = _time.monotonic()
    seen = [(p.ts, _time.monotonic() - t0) for p in paced(iter(items), "realtime")]
    for t, wall in seen:
        assert wall >= (t - ts[0]) - PACE_SLACK_S - 1e-4, "never more than the slack ahead of the capture"
    assert seen[-1][1] >= 0.12 - PACE_SLACK_S
    t0 = _time.monotonic()
    assert [p.ts for p in paced(iter(items), "max")] == ts and _time.monotonic() - t0 < 0.05
