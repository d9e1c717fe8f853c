"""Call outcomes and KPIs from real SIPp calls through a real Kamailio proxy, captured with dumpcap.

Topology (every address on ``lo``, ports picked free at test time)::

    sipp UACs 127.0.0.3  --INVITE-->  kamailio 127.0.0.5:K  --INVITE-->  sipp UASes 127.0.0.4:U1..U7
                                      (stateful, tm; record-routes;      (one per callee number, each
                                       routes on the R-URI user)          behaving as in CASES)

    dumpcap -i lo -f "udp port K or udp port U1 ..."  ->  capture.pcapng  ->  ``sipscope analyze --json``

Each case is one callee number: a UAS scenario that answers, refuses, rings and gives up, or is cancelled,
and the UAC scenario that goes with it (``tests/streams/sipp/*.xml``, the test fills in codes and
provisional responses). Every call is seen twice (caller -> proxy, proxy -> callee), one Call-ID: one leg.

Expected values come from the scenarios, not from the code: each case's outcome and final status, the
timings the scenarios impose (the UAS rings 200 ms before answering, the UAC hangs up 1 s after its ACK,
the 480 comes 1 s after the 180, the CANCEL 500 ms after the response it waits for), and the KPIs of the
whole run computed by hand from the counts (formulas: ``streams/kpis.py``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from peers import free_udp_port, module_dir, need, spawn, start_dumpcap, start_kamailio, stop, udp_bound, wait

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

UAC, UAS, KAM = "127.0.0.3", "127.0.0.4", "127.0.0.5"
SCENARIOS = Path(__file__).parent / "sipp"
CALLER = "61355500001"

KAMAILIO_MODULES = ["tm", "sl", "rr", "maxfwd", "pv", "textops", "siputils"]
KAMAILIO_SCRIPT = """# a transaction-stateful proxy that record-routes INVITEs and sends each callee number to its own UAS
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    t_check_trans();
    if (is_method("INVITE")) {{
        record_route();
    }}
{routes}
    sl_send_reply("404", "No Route");
    exit;
}}
"""

RING_THEN_WAIT = '<send><![CDATA[\n      SIP/2.0 180 Ringing\n      [last_Via:]\n      [last_From:]\n' \
    '      [last_To:];tag=[pid]SIPpTag01[call_number]\n      [last_Call-ID:]\n      [last_CSeq:]\n' \
    '      Contact: <sip:[service]@[local_ip]:[local_port]>\n      Content-Length: 0\n    ]]></send>\n' \
    '  <pause milliseconds="1000"/>'


@dataclass(frozen=True)
class Case:
    name: str
    callee: str
    calls: int
    uac: tuple[str, dict[str, str]]
    uas: tuple[str, dict[str, str]]
    outcome: str
    final_status: int
    ringing: bool


def _final(code: str, reason: str, ring: str = "") -> tuple[tuple[str, dict], tuple[str, dict]]:
    return (("uac_final.xml", {"FINAL_CODE": code}),
            ("uas_final.xml", {"FINAL_CODE": code, "FINAL_REASON": reason, "RING": ring}))


def _cancel(provisional: str) -> tuple[tuple[str, dict], tuple[str, dict]]:
    code = provisional.split()[0]
    wait_recv = '<recv response="100"/>' if code == "100" else \
        '<recv response="100" optional="true"/>\n  <recv response="180"/>'
    return (("uac_cancel.xml", {"WAIT_FOR": code, "WAIT_RECV": wait_recv}),
            ("uas_cancel.xml", {"PROVISIONAL": provisional}))


CASES = [
    Case("answered", "61291000001", 6, ("uac_answer.xml", {}), ("uas_answer.xml", {}), "answered", 200, True),
    Case("busy", "61291000002", 4, *_final("486", "Busy Here"), "busy", 486, False),
    Case("no_answer_480", "61291000003", 3, *_final("480", "Temporarily Unavailable", RING_THEN_WAIT),
         "no_answer", 480, True),
    Case("no_answer_cancel", "61291000004", 3, *_cancel("180 Ringing"), "no_answer", 487, True),
    Case("cancelled", "61291000005", 3, *_cancel("100 Trying"), "cancelled", 487, False),
    Case("rejected", "61291000006", 2, *_final("404", "Not Found"), "rejected", 404, False),
    Case("failed", "61291000007", 2, *_final("500", "Server Internal Error"), "failed", 500, False),
]


def _scenario(tmp: Path, case: Case, side: str) -> Path:
    name, subs = case.uac if side == "uac" else case.uas
    text = (SCENARIOS / name).read_text()
    for marker, value in subs.items():
        text = text.replace(marker, value)
    out = tmp / f"{side}_{case.name}.xml"
    out.write_text(text)
    return out


def _run_calls(tmp: Path) -> Path:
    kamailio, sipp, dumpcap = need("kamailio"), need("sipp"), need("dumpcap")
    mpath = module_dir()
    kam_port = free_udp_port(KAM)
    uas_ports = {c.name: free_udp_port(UAS) for c in CASES}
    routes = "\n".join(f'    if ($rU == "{c.callee}") {{\n        $du = "sip:{UAS}:{uas_ports[c.name]}";\n'
                       f'        t_relay();\n        exit;\n    }}' for c in CASES)
    capture = tmp / "capture.pcapng"
    procs: list[subprocess.Popen] = []
    cap = None
    try:
        cap = start_dumpcap(dumpcap, [kam_port, *uas_ports.values()], capture, tmp)
        procs.append(start_kamailio(kamailio, tmp, KAM, kam_port, mpath, KAMAILIO_MODULES,
                                    KAMAILIO_SCRIPT.format(routes=routes)))
        for c in CASES:
            procs.append(spawn([sipp, "-sf", str(_scenario(tmp, c, "uas")), "-i", UAS, "-p", str(uas_ports[c.name]),
                                "-nostdin", "-trace_err"], tmp, f"uas_{c.name}.log"))
        wait(lambda: udp_bound(KAM, kam_port) and all(udp_bound(UAS, p) for p in uas_ports.values()), 10,
             "kamailio and the sipp UASes")
        assert all(p.poll() is None for p in procs), (tmp / "kamailio.log").read_text(errors="replace")[-2000:]
        uacs = {c.name: spawn([sipp, "-sf", str(_scenario(tmp, c, "uac")), f"{KAM}:{kam_port}", "-s", c.callee,
                               "-i", UAC, "-p", str(free_udp_port(UAC)), "-m", str(c.calls), "-r", "2",
                               "-nostdin", "-timeout", "40", "-timeout_error", "-trace_err"], tmp, f"uac_{c.name}.log")
                for c in CASES}
        procs += uacs.values()
        for name, uac in uacs.items():
            # sipp exits 0 only when every call of its scenario went as written
            assert uac.wait(60) == 0, f"{name}: " + (tmp / f"uac_{name}.log").read_text(errors="replace")[-2000:]
        time.sleep(0.5)  # the last ACKs on the proxy -> UAS hop
    finally:
        for p in procs:
            stop(p)
        stop(cap, signal.SIGINT)
    return capture


def _analyze(capture: Path) -> dict:
    """``sipscope analyze --json``, the command support staff run, on the capture."""
    env = dict(os.environ, SIPSCOPE_CORRELATION__TRUNKS=json.dumps({f"{UAC}/32": "callers"}))
    out = subprocess.run([sys.executable, "-m", "sipscope.cli", "analyze", str(capture), "--json"], env=env,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    return _analyze(_run_calls(tmp_path_factory.mktemp("sipp-outcomes")))


def _calls_of(report: dict, case: Case) -> list[dict]:
    return [c for c in report["calls"] if c["to_user"] == case.callee]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_scenario_gives_its_outcome_and_final_status(report, case):
    calls = _calls_of(report, case)
    assert len(calls) == case.calls, [(c["call_id"], c["outcome"]) for c in calls]
    for c in calls:
        assert (c["outcome"], c["final_status"]) == (case.outcome, case.final_status), c
        assert c["final"] is True
        assert c["from_user"] == CALLER and c["caller_e164"] == CALLER and c["callee_e164"] == case.callee
        assert c["src_ip"] == UAC and c["src_trunk"] == "callers"
        # both hops of the proxy are one leg: caller, proxy and callee addresses
        assert {h.rsplit(":", 1)[0] for h in c["hosts"]} == {UAC, KAM, UAS}
        assert (c["ringing_ts"] is not None) == case.ringing, c
        assert c["retransmissions"] == 0
        if case.final_status == 487:
            assert c["end_reason"] == "cancel" and c["hangup_by"] == "caller"


SIPP_TICK_S = 0.002
"""SIPp runs a pause from its loop's millisecond clock, read before the message that starts it was sent: a
200 ms pause can end 199.7 ms after that message on the wire (seen in CI). Lower bounds allow for it."""


def test_timings_follow_the_scenarios(report):
    by_case = {c.name: _calls_of(report, c) for c in CASES}
    for c in by_case["answered"]:
        # 180 at once, 200 ms of ringing, 1 s from ACK to BYE (loopback and scheduling add milliseconds;
        # the bounds leave room for a loaded CI machine)
        assert c["srd_success_ms"] is not None and c["srd_success_ms"] < 300
        assert 0.2 - SIPP_TICK_S <= c["ring_time_s"] < 0.6
        assert c["pdd_ms"] == c["srd_success_ms"]
        assert 1.0 - SIPP_TICK_S <= c["duration_s"] < 1.6
        assert c["hangup_by"] == "caller" and c["end_reason"] == "bye"
        assert c["sdd_ms"] is not None and c["sdd_ms"] < 300
        assert c["srd_failure_ms"] is None
    for c in by_case["no_answer_480"]:
        assert 1.0 - SIPP_TICK_S <= c["ring_time_s"] < 1.5
        assert 1000 <= c["srd_failure_ms"] < 1500
        assert c["pdd_ms"] < 300 and c["duration_s"] is None
    for c in by_case["busy"] + by_case["rejected"] + by_case["failed"]:
        assert c["srd_failure_ms"] < 300 and c["pdd_ms"] == c["srd_failure_ms"]
    for c in by_case["no_answer_cancel"]:
        assert 0.5 <= c["ring_time_s"] < 1.0
    for c in by_case["cancelled"]:
        assert c["ring_time_s"] is None and c["pdd_ms"] >= 500


def test_kpis_of_the_run(report):
    n = Counter()
    for c in CASES:
        n[c.outcome] += c.calls
    attempts = sum(n.values())
    # rows are JSON without their default values: a count of 0 or a ratio of None is absent
    rows = [r for r in report["stats"] if r["scope"] == "all"]
    got = Counter()
    for r in rows:
        for k in ("attempts", "answered", "busy", "no_answer", "cancelled", "rejected", "failed"):
            got[k] += r.get(k, 0)
    assert +got == +Counter(attempts=attempts, answered=n["answered"], busy=n["busy"], no_answer=n["no_answer"],
                            cancelled=n["cancelled"], rejected=n["rejected"], failed=n["failed"])
    assert got["attempts"] == 23 and got["answered"] == 6
    trunk = [r for r in report["stats"] if r["scope"] == "trunk" and r["key"] == "callers"]
    assert sum(r.get("attempts", 0) for r in trunk) == attempts

    # The run takes ~6 s; it may straddle a minute. Each minute's ratios, by hand from the calls that
    # started in it, whose outcomes and codes the test above holds to the scenarios.
    case_of = {c.callee: c for c in CASES}
    for r in rows:
        mine = [case_of[c["to_user"]] for c in report["calls"] if r["ts"] <= c["start_ts"] < r["ts"] + 60]
        d = len(mine)  # D = S = attempts: no call is incomplete, none redirected
        count = Counter(c.outcome for c in mine)
        codes = Counter(c.final_status for c in mine)
        assert r.get("attempts", 0) == d
        if not d:  # a minute with only the last BYEs of calls started in the one before
            assert r.get("asr") is None
            continue
        assert r["cps"] == pytest.approx(d / 60, abs=0.01)
        assert r.get("asr", 0.0) == pytest.approx(100 * count["answered"] / d, abs=0.01)
        assert r.get("ner", 0.0) == pytest.approx(100 * (count["answered"] + count["busy"] + count["no_answer"]) / d,
                                                  abs=0.01)
        assert r.get("ser", 0.0) == pytest.approx(100 * count["answered"] / d, abs=0.01)
        assert r.get("seer", 0.0) == pytest.approx(100 * (count["answered"] + codes[486] + codes[480]) / d, abs=0.01)
        assert r.get("isa", 0.0) == pytest.approx(100 * codes[500] / d, abs=0.01)
        if count["answered"]:
            assert 1.0 <= r["acd_s"] < 1.6
            assert r["concurrent_max"] >= 1
    if len(rows) == 1:  # the usual case (the run did not straddle a minute), in figures
        assert (rows[0]["asr"], rows[0]["ner"], rows[0]["seer"], rows[0]["isa"]) == pytest.approx(
            (26.09, 69.57, 56.52, 8.70), abs=0.01)
