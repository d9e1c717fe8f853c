"""Live capture from an interface: `sipscope capture --interface lo` while real sipp calls run on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.conftest import require_binary

pytestmark = pytest.mark.peers


def test_live_capture_sees_every_sipp_message(tmp_path):
    require_binary("dumpcap")
    sipp = require_binary("sipp")
    out = tmp_path / "live.jsonl"
    cap = subprocess.Popen([sys.executable, "-m", "sipscope.cli", "capture", "--interface", "lo", "--bpf",
                            "udp port 25060 or udp port 25061", "--sink", "jsonl", "--out", str(out), "--quiet"],
                           stderr=subprocess.PIPE, text=True)
    uas = None
    try:
        time.sleep(2.5)  # dumpcap up
        uas = subprocess.Popen([sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", "25061", "-m", "4", "-nostdin"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        uac = subprocess.run([sipp, "-sn", "uac", "127.0.0.1:25061", "-i", "127.0.0.1", "-p", "25060", "-m", "4",
                              "-r", "4", "-d", "100", "-nostdin"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        assert uac.returncode == 0, "sipp completed its 4 calls"
        time.sleep(1.0)
    finally:
        cap.send_signal(signal.SIGINT)
        _, err = cap.communicate(timeout=30)
        if uas and uas.poll() is None:
            uas.kill()
    msgs = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = Counter(m.get("method") or str(m.get("status_code")) for m in msgs)
    # sipp's built-in uac/uas: INVITE, 180, 200, ACK, BYE, 200 per call
    assert kinds == Counter({"INVITE": 4, "180": 4, "200": 8, "ACK": 4, "BYE": 4}), (kinds, err)
    assert len({m["call_id"] for m in msgs}) == 4
    assert all(m["transport"] == "udp" and m["src_ip"] == "127.0.0.1" for m in msgs)
    ts = [m["ts"] for m in msgs]
    assert abs(ts[-1] - time.time()) < 60, "capture time comes from the packets, which are live"
