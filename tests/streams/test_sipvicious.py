"""Real attack tools against a real Kamailio on loopback, next to a normal SIPp load, captured with dumpcap.

Topology (every address on ``lo``, ports picked free at test time)::

    sipvicious  127.0.0.1  --svmap/svwar/svcrack-->  kamailio 127.0.0.5:K  (registrar-like: REGISTER -> 401
                                                                             with a digest challenge, every
                                                                             other request -> 404)
    sipp -sn uac 127.0.0.3  ------ 5 calls/s, 10 s ---->  sipp -sn uas 127.0.0.4:U

    dumpcap -i lo -f "udp port K or udp port U"  ->  capture.pcapng  ->  producers (the ``sipscope parse`` path)
                                                                     ->  AnomalyEngine

Expected: ``scanner_user_agent`` (friendly-scanner), ``extension_enumeration`` (svwar's INVITE scan, 404s)
and ``registration_bruteforce`` (svcrack's REGISTERs with credentials, each 401) for 127.0.0.1, each
within a few seconds (event time) of the start of the tool's traffic; nothing about the SIPp addresses or
Kamailio. Every process started here is stopped in ``finally`` by its own id.
"""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
from peers import (free_udp_port, messages, module_dir, need, spawn, start_dumpcap, start_kamailio, stop, udp_bound,
                   wait)

from sipscope.settings import Settings
from streams.anomaly import AnomalyEngine

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

SCANNER, KAM, UAC, UAS = "127.0.0.1", "127.0.0.5", "127.0.0.3", "127.0.0.4"

KAMAILIO_MODULES = ["pv", "sl", "textops", "siputils"]
KAMAILIO_SCRIPT = """# a registrar that knows nobody: every REGISTER is challenged (and every retry with credentials fails
# the same way), every other request is for an unknown user
request_route {
    if (is_method("ACK")) {
        exit;
    }
    if (is_method("REGISTER")) {
        append_to_reply("WWW-Authenticate: Digest realm=\\"sipscope.test\\", nonce=\\"5f3e2c1a9b8d7e6f\\", algorithm=MD5, qop=\\"auth\\"\\r\\n");
        sl_send_reply("401", "Unauthorized");
        exit;
    }
    sl_send_reply("404", "Not Found");
    exit;
}
"""


def test_sipvicious_raises_scanner_enumeration_bruteforce_and_sipp_raises_nothing(tmp_path):
    kamailio, sipp, dumpcap = need("kamailio"), need("sipp"), need("dumpcap")
    svmap, svwar, svcrack = need("svmap"), need("svwar"), need("svcrack")
    mpath = module_dir()
    kam_port, uas_port = free_udp_port(KAM), free_udp_port(UAS)
    capture = tmp_path / "capture.pcapng"
    procs: list[subprocess.Popen] = []
    cap = None
    try:
        cap = start_dumpcap(dumpcap, [kam_port, uas_port], capture, tmp_path)
        procs.append(start_kamailio(kamailio, tmp_path, KAM, kam_port, mpath, KAMAILIO_MODULES, KAMAILIO_SCRIPT))
        procs.append(spawn([sipp, "-sn", "uas", "-i", UAS, "-p", str(uas_port), "-nostdin"], tmp_path, "uas.log"))
        wait(lambda: udp_bound(KAM, kam_port) and udp_bound(UAS, uas_port), 10, "kamailio and the sipp UAS")
        assert all(p.poll() is None for p in procs), (tmp_path / "kamailio.log").read_text(errors="replace")[-2000:]
        # the normal load: 5 calls/s for 10 s, 2 s each
        uac = spawn([sipp, "-sn", "uac", f"{UAS}:{uas_port}", "-i", UAC, "-p", str(free_udp_port(UAC)),
                      "-m", "50", "-r", "5", "-d", "2000", "-nostdin", "-timeout", "40", "-timeout_error"],
                     tmp_path, "uac.log")
        procs.append(uac)
        # the attack, meanwhile, from 127.0.0.1: the three tools side by side (own local ports)
        target = ["-p", str(kam_port), KAM]
        tools = [
            spawn([svcrack, "-u", "100", "-r", "1-20", "-P", str(free_udp_port(SCANNER)), *target], tmp_path, "svcrack.log"),
            spawn([svmap, "-P", str(free_udp_port(SCANNER)), *target], tmp_path, "svmap.log"),
            spawn([svwar, "-m", "INVITE", "-e", "100-130", "-P", str(free_udp_port(SCANNER)), *target], tmp_path,
                   "svwar.log"),
        ]
        procs += tools
        for t in tools:
            t.wait(60)
        assert uac.wait(60) == 0, (tmp_path / "uac.log").read_text(errors="replace")[-2000:]
        time.sleep(0.3)
    finally:
        for p in procs:
            stop(p)
        stop(cap, signal.SIGINT)
    msgs = messages(capture)
    assert msgs, "the capture holds SIP"
    answered = [m for m in msgs if m.status_code == 200 and m.cseq_method == "INVITE" and m.src_ip == UAS]
    assert len({m.call_id for m in answered}) >= 45, "the SIPp calls are in the capture"

    eng = AnomalyEngine.from_settings(Settings())
    alerts = []
    for m in msgs:
        alerts += eng.feed_message(m)
    alerts += eng.advance(msgs[-1].ts)
    opened = [a for a in alerts if a.status == "open"]
    assert {a.subject for a in alerts} == {SCANNER}, [(a.name, a.subject) for a in alerts]
    first = {}
    for a in opened:
        first.setdefault(a.name, a)
    assert {"scanner_user_agent", "extension_enumeration", "registration_bruteforce"} <= set(first)

    from_scanner = [m for m in msgs if m.src_ip == SCANNER and m.is_request]
    start_scan = from_scanner[0].ts
    start_war = next(m.ts for m in from_scanner if m.method == "INVITE")
    start_crack = next(m.ts for m in from_scanner if m.method == "REGISTER" and m.auth_user)
    assert first["scanner_user_agent"].ts == start_scan
    assert "friendly-scanner" in first["scanner_user_agent"].description
    assert 0 <= first["extension_enumeration"].ts - start_war < 5
    assert 0 <= first["registration_bruteforce"].ts - start_crack < 5
    assert "100" in first["registration_bruteforce"].description
    for a in first.values():
        assert a.evidence and set(a.evidence) <= {m.call_id for m in from_scanner}
