"""The live outputs of ``sipscope loadgen``: HEP3 into sipscope's own collector, raw SIP over UDP and TCP,
and the real-time pacing."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from producers.hep_collector import HepCollector
from producers.loadgen import (
    Dist,
    Generator,
    HepOutput,
    Pacer,
    Profile,
    SipOutput,
    pump,
)
from producers.sinks import MemorySink
from producers.sip_parser import frame_stream, parse_sip


def quick_profile(**kw) -> Profile:
    """Short calls that all end within ~2 s of their start (so real-time runs stay short)."""
    base = {"seed": 4, "cps": 40, "duration": 1.0, "mix": {"answered": 0.7, "busy": 0.3},
            "hold": Dist("fixed", 0.5), "ring": Dist("fixed", 0.2), "pdd": Dist("fixed", 0.1), "reg_rate": 5}
    base.update(kw)
    return Profile(**base)


def test_hep_output_reaches_the_collector_intact():
    expected = list(Generator(quick_profile()).messages())
    sink = MemorySink()

    async def scenario() -> HepCollector:
        async with HepCollector(sink, host="127.0.0.1", port=0) as collector:
            out = HepOutput(f"127.0.0.1:{collector.port}", capture_id=7, node_name="lg-test")
            # paced 4x faster than real time: bursts stay far below the socket buffers
            sender = asyncio.to_thread(pump, Generator(quick_profile()).messages(), out, Pacer(4.0))
            await sender
            out.close()
            for _ in range(100):
                if collector.stats.sip_messages >= len(expected):
                    break
                await asyncio.sleep(0.02)
            return collector

    collector = asyncio.run(scenario())
    assert collector.stats.sip_messages == len(expected) == len(sink.messages)
    assert sink.rejected == []
    got = sorted((m.ts, m.src_ip, m.src_port, m.dst_ip, m.dst_port, m.raw) for m in sink.messages)
    want = sorted((round(ts, 6), s, sp, d, dp, p.decode()) for ts, (s, sp, d, dp, p) in expected)
    assert [g[1:] for g in got] == [w[1:] for w in want]
    assert all(abs(g[0] - w[0]) < 2e-6 for g, w in zip(got, want, strict=True))
    assert {m.node for m in sink.messages} == {"lg-test"}


def _udp_receiver() -> tuple[socket.socket, list[bytes]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.5)
    got: list[bytes] = []

    def run() -> None:
        while True:
            try:
                data = sock.recv(65535)
            except (TimeoutError, OSError):
                return
            got.append(data)

    threading.Thread(target=run, daemon=True).start()
    return sock, got


def test_sip_over_udp_every_message_parses():
    expected = [w[4] for _, w in Generator(quick_profile()).messages()]
    sock, got = _udp_receiver()
    out = SipOutput(f"127.0.0.1:{sock.getsockname()[1]}")
    pump(Generator(quick_profile()).messages(), out, Pacer(4.0))
    out.close()
    deadline = time.monotonic() + 3
    while len(got) < len(expected) and time.monotonic() < deadline:
        time.sleep(0.02)
    sock.close()
    assert got == expected
    assert all(parse_sip(d).call_id for d in got)


def test_sip_over_tcp_one_stream_frames_back_into_the_messages():
    expected = [w[4] for _, w in Generator(quick_profile(cps=20)).messages()]
    server = socket.create_server(("127.0.0.1", 0))
    chunks: list[bytes] = []

    def accept() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                chunks.append(data)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    out = SipOutput(f"127.0.0.1:{server.getsockname()[1]}", transport="tcp")
    pump(Generator(quick_profile(cps=20)).messages(), out, Pacer(0))
    out.close()
    t.join(5)
    server.close()
    framed = frame_stream(b"".join(chunks))
    assert [bytes(m) for m in framed.messages] == expected and not framed.garbage


def test_pacer_keeps_real_time():
    prof = quick_profile(cps=30, duration=1.0, reg_rate=0)
    msgs = list(Generator(prof).messages())
    span = msgs[-1][0] - msgs[0][0]

    class Null:
        messages = 0

        def send(self, ts, wire):
            self.messages += 1

    pacer = Pacer(2.0)
    t0 = time.monotonic()
    pump(iter(msgs), Null(), pacer)
    elapsed = time.monotonic() - t0
    assert elapsed == pytest.approx(span / 2, abs=0.1)
    assert pacer.max_lag < 0.1
