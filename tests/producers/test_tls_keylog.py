"""TLS on 5061: real TLS SIP on loopback (Python ssl with keylog_filename), captured by dumpcap,
decrypted by `sipscope parse --keylog`: every message comes back."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import require_binary

pytestmark = pytest.mark.peers

PORT = 5061


def _invite(i: int, body: str = "") -> bytes:
    return (f"INVITE sip:0289707501@example.com SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bK-tls{i}\r\n"
            f"From: \"Alice\" <sips:alice@example.com>;tag=a{i}\r\nTo: <sip:0289707501@example.com>\r\n"
            f"Call-ID: tls-call-{i}@test\r\nCSeq: {i + 1} INVITE\r\nMax-Forwards: 70\r\nUser-Agent: tls-test/1\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode()


def _ok(i: int) -> bytes:
    return (f"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.1:40000;branch=z9hG4bK-tls{i}\r\n"
            f"From: \"Alice\" <sips:alice@example.com>;tag=a{i}\r\nTo: <sip:0289707501@example.com>;tag=b{i}\r\n"
            f"Call-ID: tls-call-{i}@test\r\nCSeq: {i + 1} INVITE\r\nContent-Length: 0\r\n\r\n").encode()


SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8 0\r\n" + "a=x-pad:" + "p" * 3000 + "\r\n"


def _talk(keylog: Path, cert: Path, key: Path, n: int) -> None:
    done = threading.Event()
    ready = threading.Event()

    def server():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", PORT))
        s.listen()
        ready.set()
        c, _ = s.accept()
        t = ctx.wrap_socket(c, server_side=True)
        buf = b""
        while buf.count(b"SIP/2.0\r\n") < n:
            d = t.recv(65536)
            if not d:
                break
            buf += d
        # two responses in one TLS write, the rest one by one
        t.sendall(_ok(0) + _ok(1))
        for i in range(2, n):
            t.sendall(_ok(i))
        done.wait(5)
        t.close()
        s.close()

    th = threading.Thread(target=server, daemon=True)
    th.start()
    assert ready.wait(10)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.keylog_filename = str(keylog)
    t = ctx.wrap_socket(socket.create_connection(("127.0.0.1", PORT)))
    big = _invite(0, SDP)  # a message split across two TLS records
    t.sendall(big[:700])
    time.sleep(0.05)
    t.sendall(big[700:])
    for i in range(1, n):
        t.sendall(_invite(i))
        time.sleep(0.02)
    buf = b""
    while buf.count(b"SIP/2.0 200") < n:
        d = t.recv(65536)
        if not d:
            break
        buf += d
    done.set()
    t.close()
    th.join(10)


def test_parse_keylog_recovers_every_tls_message(tmp_path):
    dumpcap = require_binary("dumpcap")
    require_binary("tshark")
    openssl = require_binary("openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                    "-subj", "/CN=sipscope-test"], check=True, capture_output=True)
    pcap, keylog = tmp_path / "tls.pcapng", tmp_path / "keys.log"
    cap = subprocess.Popen([dumpcap, "-q", "-i", "lo", "-f", f"tcp port {PORT}", "-w", str(pcap)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 10
        while not pcap.exists() and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        n = 6
        _talk(keylog, cert, key, n)
        time.sleep(0.5)
    finally:
        cap.terminate()
        cap.wait(10)
    assert keylog.read_text().count("CLIENT_TRAFFIC_SECRET_0") == 1

    without = subprocess.run([sys.executable, "-m", "sipscope.cli", "parse", str(pcap)], capture_output=True, text=True, timeout=60)
    assert without.stdout.strip() == "", "no key, no SIP: the TLS records are counted as undecryptable"
    assert "tls_undecryptable" in without.stderr

    out = subprocess.run([sys.executable, "-m", "sipscope.cli", "parse", str(pcap), "--keylog", str(keylog)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    msgs = [json.loads(line) for line in out.stdout.splitlines()]
    got = sorted((m.get("method") or str(m.get("status_code")), m["call_id"], m["cseq_num"]) for m in msgs)
    want = sorted([("INVITE", f"tls-call-{i}@test", i + 1) for i in range(n)] + [("200", f"tls-call-{i}@test", i + 1) for i in range(n)])
    assert got == want
    assert all(m["transport"] == "tls" for m in msgs)
    first = next(m for m in msgs if m.get("method") == "INVITE" and m["call_id"] == "tls-call-0@test")
    assert first["to_user_e164"] == "61289707501"
    assert first["sdp"]["codecs"][:2] == ["PCMA/8000", "PCMU/8000"]
    assert first["dst_port"] == PORT
