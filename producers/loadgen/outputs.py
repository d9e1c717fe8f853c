"""Where generated messages go: a pcap file (simulated time, no waiting), HEP3 over UDP, or raw SIP over
UDP/TCP to a target (both paced on the wall clock by :class:`Pacer`).

Every output has ``send(ts, wire)``, ``close()`` and the counters ``messages`` / ``bytes``.
"""

from __future__ import annotations

import socket
import sys
import time
from collections.abc import Iterable
from typing import BinaryIO

from producers.hep import HepPacket, encode_hep3
from producers.loadgen.frames import FrameBuilder, PcapWriter
from producers.loadgen.session import Wire


class Pacer:
    """Holds messages back until their simulated time, scaled by ``speed`` (0 = as fast as possible).

    The first message sets the origin; a message is due ``(ts - ts0) / speed`` seconds of wall clock
    after it. Sleeps only when at least 2 ms ahead, so bursts go out back to back. ``lag`` is how far
    behind schedule the last message went out (seconds), ``max_lag`` the worst seen."""

    def __init__(self, speed: float = 1.0) -> None:
        self.speed = speed
        self._wall0: float | None = None
        self._ts0 = 0.0
        self.lag = self.max_lag = 0.0

    def wait(self, ts: float) -> None:
        if self.speed <= 0:
            return
        now = time.monotonic()
        if self._wall0 is None:
            self._wall0, self._ts0 = now, ts
            return
        ahead = self._wall0 + (ts - self._ts0) / self.speed - now
        if ahead > 0.002:
            time.sleep(ahead)
        elif ahead < 0:
            self.lag = -ahead
            self.max_lag = max(self.max_lag, self.lag)


def pump(messages: Iterable[tuple[float, Wire]], output, pacer: Pacer | None = None,
         progress: bool = False) -> tuple[float | None, float | None]:
    """Move every message to the output (waiting on ``pacer`` when it paces); returns the first and last
    capture times. ``progress`` prints a line to stderr every 2 s."""
    send = output.send
    wait = pacer.wait if pacer is not None and pacer.speed > 0 else None
    first = ts = None
    t_next = time.monotonic() + 2.0
    printed = False
    for n, (ts, wire) in enumerate(messages, 1):
        if first is None:
            first = ts
        if wait is not None:
            wait(ts)
        send(ts, wire)
        if progress and not n & 1023 and time.monotonic() > t_next:
            t_next += 2.0
            printed = True
            print(f"\rsipscope loadgen: {n} messages, simulated {ts - first:,.0f} s", end="", file=sys.stderr,
                  flush=True)
    if printed:
        print(file=sys.stderr)
    return first, ts


class PcapOutput:
    """Ethernet/IPv4/UDP frames with the messages' simulated capture times."""

    def __init__(self, f: BinaryIO) -> None:
        self.writer = PcapWriter(f)
        self.frames = FrameBuilder()
        self.messages = self.bytes = 0

    def send(self, ts: float, wire: Wire) -> None:
        frame = self.frames.frame(*wire)
        self.writer.write(ts, frame)
        self.messages += 1
        self.bytes += len(frame)

    def close(self) -> None:
        self.writer.flush()


def _target(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bad target {text!r}: want HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


class HepOutput:
    """One HEP3 packet per message over UDP (chunk times = the message's simulated capture time)."""

    def __init__(self, target: str, *, capture_id: int = 2001, node_name: str | None = "loadgen",
                 auth_key: str | None = None) -> None:
        self.addr = _target(target)
        self.sock = socket.socket(socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        self.capture_id, self.node_name, self.auth_key = capture_id, node_name, auth_key
        self.messages = self.bytes = 0

    def send(self, ts: float, wire: Wire) -> None:
        src_ip, src_port, dst_ip, dst_port, payload = wire
        packet = HepPacket(src_ip=src_ip, src_port=src_port, dst_ip=dst_ip, dst_port=dst_port, ts=ts,
                           payload=payload, capture_id=self.capture_id, node_name=self.node_name,
                           auth_key=self.auth_key)
        data = encode_hep3(packet)
        self.sock.sendto(data, self.addr)
        self.messages += 1
        self.bytes += len(data)

    def close(self) -> None:
        self.sock.close()


class SipOutput:
    """The SIP messages themselves to one target, over UDP (one datagram each) or one TCP connection.

    The network addresses of the generated dialog cannot be kept (the datagrams leave from this host);
    the SIP headers keep them (Via, Contact, SDP)."""

    def __init__(self, target: str, transport: str = "udp") -> None:
        self.addr = _target(target)
        family = socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET
        if transport == "tcp":
            self.sock = socket.create_connection(self.addr, timeout=10)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._send = self.sock.sendall
        else:
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            addr = self.addr
            self._send = lambda data: self.sock.sendto(data, addr)
        self.messages = self.bytes = 0

    def send(self, ts: float, wire: Wire) -> None:
        payload = wire[4]
        self._send(payload)
        self.messages += 1
        self.bytes += len(payload)

    def close(self) -> None:
        self.sock.close()
