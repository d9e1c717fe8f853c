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

import contextlib
import glob
import os
import select
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sipscope.records import SipMessage
from sipscope.settings import Settings
from streams.anomaly import AnomalyEngine

pytestmark = [pytest.mark.peers, pytest.mark.timeout(120)]

SCANNER, KAM, UAC, UAS = "127.0.0.1", "127.0.0.5", "127.0.0.3", "127.0.0.4"

KAMAILIO_CFG = """#!KAMAILIO
debug=1
log_stderror=yes
fork=yes
children=2
disable_tcp=yes
auto_aliases=no
listen=udp:{host}:{port}
mpath="{mpath}"

loadmodule "pv.so"
loadmodule "sl.so"
loadmodule "textops.so"
loadmodule "siputils.so"

# a registrar that knows nobody: every REGISTER is challenged (and every retry with credentials fails
# the same way), every other request is for an unknown user
request_route {{
    if (is_method("ACK")) {{
        exit;
    }}
    if (is_method("REGISTER")) {{
        append_to_reply("WWW-Authenticate: Digest realm=\\"sipscope.test\\", nonce=\\"5f3e2c1a9b8d7e6f\\", algorithm=MD5, qop=\\"auth\\"\\r\\n");
        sl_send_reply("401", "Unauthorized");
        exit;
    }}
    sl_send_reply("404", "Not Found");
    exit;
}}
"""


def _need(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.skip(f"{name} is not installed (make setup installs it as root)")
    return path


def _module_dir() -> str:
    for pattern in ("/usr/lib/*/kamailio/modules", "/usr/lib*/kamailio/modules", "/usr/local/lib*/kamailio/modules"):
        for d in sorted(glob.glob(pattern)):
            if Path(d, "textops.so").is_file() and Path(d, "sl.so").is_file():
                return d
    pytest.skip("kamailio's sl/textops modules are not installed")


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _udp_bound(host: str, port: int) -> bool:
    want = f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/udp") as table:
        return any(line.split()[1] == want for line in table.readlines()[1:])


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def _spawn(args: list[str], cwd: Path, log: str, **kw) -> subprocess.Popen:
    with open(cwd / log, "wb") as out:
        return subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=kw.pop("stderr", out),
                                start_new_session=True, **kw)


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Stop a process we started (and the children of its session, e.g. kamailio's workers), by its id."""
    if proc is None or proc.poll() is not None:
        return
    for s, grace in ((sig, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
            return


def _start_dumpcap(dumpcap: str, ports: list[int], out: Path, cwd: Path) -> subprocess.Popen:
    bpf = " or ".join(f"udp port {p}" for p in ports)
    proc = subprocess.Popen([dumpcap, "-i", "lo", "-f", bpf, "-w", str(out)], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    seen = b""
    deadline = time.monotonic() + 15
    while b"Capturing on" not in seen:
        if proc.poll() is not None or time.monotonic() > deadline:
            _stop(proc)
            pytest.skip(f"dumpcap cannot capture on lo: {seen.decode(errors='replace')[-300:]}")
        ready, _, _ = select.select([proc.stderr], [], [], 0.2)
        if ready:
            seen += os.read(proc.stderr.fileno(), 4096)
    time.sleep(0.3)
    return proc


def _messages(path: Path) -> list[SipMessage]:
    from producers.cli import _options, file_payloads
    from producers.pipeline import Stats, records_from

    settings = Settings()
    recs = [r for r in records_from(file_payloads(str(path), None, settings), _options(settings, "parse"), Stats())
            if isinstance(r, SipMessage)]
    recs.sort(key=lambda m: m.ts)
    return recs


def test_sipvicious_raises_scanner_enumeration_bruteforce_and_sipp_raises_nothing(tmp_path):
    kamailio, sipp, dumpcap = _need("kamailio"), _need("sipp"), _need("dumpcap")
    svmap, svwar, svcrack = _need("svmap"), _need("svwar"), _need("svcrack")
    mpath = _module_dir()
    kam_port, uas_port = _free_udp_port(KAM), _free_udp_port(UAS)
    capture = tmp_path / "capture.pcapng"
    (tmp_path / "run").mkdir()
    (tmp_path / "kamailio.cfg").write_text(KAMAILIO_CFG.format(host=KAM, port=kam_port, mpath=mpath))
    procs: list[subprocess.Popen] = []
    cap = None
    try:
        cap = _start_dumpcap(dumpcap, [kam_port, uas_port], capture, tmp_path)
        procs.append(_spawn([kamailio, "-f", str(tmp_path / "kamailio.cfg"), "-DD", "-E", "-m", "32", "-M", "8",
                             "-Y", str(tmp_path / "run"), "-P", str(tmp_path / "run" / "kamailio.pid")],
                            tmp_path, "kamailio.log"))
        procs.append(_spawn([sipp, "-sn", "uas", "-i", UAS, "-p", str(uas_port), "-nostdin"], tmp_path, "uas.log"))
        _wait(lambda: _udp_bound(KAM, kam_port) and _udp_bound(UAS, uas_port), 10, "kamailio and the sipp UAS")
        assert all(p.poll() is None for p in procs), (tmp_path / "kamailio.log").read_text(errors="replace")[-2000:]
        # the normal load: 5 calls/s for 10 s, 2 s each
        uac = _spawn([sipp, "-sn", "uac", f"{UAS}:{uas_port}", "-i", UAC, "-p", str(_free_udp_port(UAC)),
                      "-m", "50", "-r", "5", "-d", "2000", "-nostdin", "-timeout", "40", "-timeout_error"],
                     tmp_path, "uac.log")
        procs.append(uac)
        # the attack, meanwhile, from 127.0.0.1: the three tools side by side (own local ports)
        target = ["-p", str(kam_port), KAM]
        tools = [
            _spawn([svcrack, "-u", "100", "-r", "1-20", "-P", str(_free_udp_port(SCANNER)), *target], tmp_path, "svcrack.log"),
            _spawn([svmap, "-P", str(_free_udp_port(SCANNER)), *target], tmp_path, "svmap.log"),
            _spawn([svwar, "-m", "INVITE", "-e", "100-130", "-P", str(_free_udp_port(SCANNER)), *target], tmp_path,
                   "svwar.log"),
        ]
        procs += tools
        for t in tools:
            t.wait(60)
        assert uac.wait(60) == 0, (tmp_path / "uac.log").read_text(errors="replace")[-2000:]
        time.sleep(0.3)
    finally:
        for p in procs:
            _stop(p)
        _stop(cap, signal.SIGINT)
    msgs = _messages(capture)
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
