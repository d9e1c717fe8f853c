"""A call as a classic pcap file, rebuilt from the indexed messages (``struct`` only, no I/O here).

Each message becomes one Ethernet frame with its original addresses, ports and capture time (microsecond
precision, as indexed):

* IPv4 (checksummed header, DF) or IPv6; the MAC addresses are made up (locally administered, derived
  from the IP address so that a host keeps one MAC);
* ``udp`` -> UDP with its checksum;
* ``tcp``, ``tls``, ``ws``, ``wss`` -> TCP: each connection opens with a three-way handshake just before
  its first message, then every message is one PSH/ACK segment whose sequence and acknowledgement numbers
  follow the bytes sent each way, so Wireshark's TCP analysis and SIP reassembly work. TLS and WebSocket
  framing is not re-created (the index holds the decrypted SIP): use *Decode As... SIP* on such ports;
* ``sctp`` -> one SCTP DATA chunk per message (CRC32c checksum).

The messages' text is encoded back to UTF-8; bytes that were not valid UTF-8 in the capture had been
replaced when they were indexed, and stay replaced.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

PCAP_MAGIC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 262144
_HANDSHAKE_US = (3, 2, 1)
_MAX_IP_PAYLOAD = 65535 - 60


@dataclass(frozen=True)
class Packet:
    ts_us: int
    """Capture time, microseconds since the epoch."""
    src_ip: str
    src_port: int
    dst_ip: str
    dst_port: int
    transport: str
    payload: bytes


def iso_to_us(value: str | float) -> int:
    """Indexed time (``2011-08-01T06:37:30.454022Z``, or epoch seconds) -> epoch microseconds, exactly."""
    if isinstance(value, int | float):
        return round(value * 1_000_000)
    text = value.strip().replace("Z", "+00:00")
    base, dot, rest = text.partition(".")
    frac, tz = "", ""
    if dot:
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, tz = rest[:i], rest[i:]
    else:
        for sign in ("+", "-"):
            if sign in base[10:]:
                cut = base.rindex(sign)
                base, tz = base[:cut], base[cut:]
                break
    whole = datetime.fromisoformat(base + (tz or "+00:00"))
    return int(whole.timestamp()) * 1_000_000 + int((frac + "000000")[:6])


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _crc32c_table() -> list[int]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def _mac(ip: bytes) -> bytes:
    return b"\x02" + hashlib.blake2b(ip, digest_size=5).digest()


class PcapWriter:
    """Builds the file in memory: ``add()`` each packet, then ``getvalue()``."""

    def __init__(self) -> None:
        self._frames: list[tuple[int, int, bytes]] = []
        self._conns: dict[tuple, dict] = {}
        self._sctp_tsn: dict[tuple, int] = {}
        self._ip_id = 0

    # -- layers
    def _ip(self, src: str, dst: str, proto: int, l4: bytes, l4_csum_at: int | None) -> bytes:
        s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        if s.version != d.version:
            raise ValueError(f"address families differ: {src} -> {dst}")
        if l4_csum_at is not None:
            if s.version == 4:
                pseudo = s.packed + d.packed + struct.pack("!BBH", 0, proto, len(l4))
            else:
                pseudo = s.packed + d.packed + struct.pack("!I3xB", len(l4), proto)
            c = _csum(pseudo + l4) or 0xFFFF
            l4 = l4[:l4_csum_at] + struct.pack("!H", c) + l4[l4_csum_at + 2:]
        if s.version == 4:
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), self._ip_id, 0x4000, 64, proto, 0, s.packed, d.packed)
            hdr = hdr[:10] + struct.pack("!H", _csum(hdr)) + hdr[12:]
            eth_type = 0x0800
        else:
            hdr = struct.pack("!IHBB16s16s", 0x60000000, len(l4), proto, 64, s.packed, d.packed)
            eth_type = 0x86DD
        return _mac(d.packed) + _mac(s.packed) + struct.pack("!H", eth_type) + hdr + l4

    def _udp(self, p: Packet, data: bytes) -> bytes:
        l4 = struct.pack("!HHHH", p.src_port, p.dst_port, 8 + len(data), 0) + data
        return self._ip(p.src_ip, p.dst_ip, 17, l4, 6)

    def _tcp_segment(self, src: tuple, dst: tuple, seq: int, ack: int, flags: int, data: bytes) -> bytes:
        l4 = struct.pack("!HHIIHHHH", src[1], dst[1], seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, (5 << 12) | flags,
                         65535, 0, 0) + data
        return self._ip(src[0], dst[0], 6, l4, 16)

    def _tcp(self, p: Packet, data: bytes) -> None:
        src, dst = (p.src_ip, p.src_port), (p.dst_ip, p.dst_port)
        key = tuple(sorted((src, dst)))
        conn = self._conns.get(key)
        if conn is None:
            isn = lambda a, b: int.from_bytes(hashlib.blake2b(repr((a, b)).encode(), digest_size=4).digest(), "big")
            c, s = isn(src, dst), isn(dst, src)
            conn = self._conns[key] = {src: c + 1, dst: s + 1}
            for dt, (a, b, seq, ack, flags) in zip(_HANDSHAKE_US, (
                    (src, dst, c, 0, 0x02), (dst, src, s, c + 1, 0x12), (src, dst, c + 1, s + 1, 0x10)), strict=True):
                self._frames.append((p.ts_us - dt, len(self._frames), self._tcp_segment(a, b, seq, ack, flags, b"")))
        frame = self._tcp_segment(src, dst, conn[src], conn[dst], 0x18, data)
        conn[src] += len(data)
        self._frames.append((p.ts_us, len(self._frames), frame))

    def _sctp(self, p: Packet, data: bytes) -> bytes:
        key = (p.src_ip, p.src_port, p.dst_ip, p.dst_port)
        tsn = self._sctp_tsn.get(key, 1)
        self._sctp_tsn[key] = tsn + 1
        pad = b"\0" * (-len(data) % 4)
        chunk = struct.pack("!BBHIHHI", 0, 0x03, 16 + len(data), tsn, 0, (tsn - 1) & 0xFFFF, 0) + data + pad
        pkt = struct.pack("!HHII", p.src_port, p.dst_port, 1, 0) + chunk
        pkt = pkt[:8] + struct.pack("<I", crc32c(pkt)) + pkt[12:]
        return self._ip(p.src_ip, p.dst_ip, 132, pkt, None)

    # -- public
    def add(self, p: Packet) -> None:
        data = p.payload[:_MAX_IP_PAYLOAD]
        t = (p.transport or "udp").lower()
        if t in ("tcp", "tls", "ws", "wss"):
            self._tcp(p, data)
            return
        frame = self._sctp(p, data) if t == "sctp" else self._udp(p, data)
        self._frames.append((p.ts_us, len(self._frames), frame))

    def getvalue(self) -> bytes:
        out = [struct.pack("<IHHiIII", PCAP_MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)]
        for ts, _, frame in sorted(self._frames):
            out.append(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(frame), len(frame)))
            out.append(frame)
        return b"".join(out)


def write_pcap(packets: Iterable[Packet]) -> bytes:
    w = PcapWriter()
    for p in packets:
        w.add(p)
    return w.getvalue()
