"""Ethernet II / IPv4 / UDP frames with correct header and UDP checksums, and a fast classic-pcap writer.

Checksums use one identity instead of a loop over 16-bit words: 2**16 = 1 (mod 0xFFFF), so the
ones'-complement sum of a byte string read as big-endian 16-bit words is ``int.from_bytes(data) % 0xFFFF``
(with 0xFFFF in place of 0 for non-zero data). One big-integer remainder per packet, done in C.

MAC addresses are locally administered and derived from the IPv4 address (``02:00:a.b.c.d``), so each
host keeps one MAC. IPv4: DF set, TTL 64, DSCP CS3 (signalling), identification counting per writer.
"""

from __future__ import annotations

import socket
import struct
from typing import BinaryIO

PCAP_MAGIC_USEC = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1

_pack_heads = struct.Struct("!BBHHHBBH8sHHHH").pack
"""IPv4 header (version/IHL, DSCP, total length, id, flags, TTL, protocol, checksum, src + dst) + UDP header."""
_pack_rec = struct.Struct("<IIII").pack


def ones_sum(data: bytes) -> int:
    """Ones'-complement sum of ``data`` as 16-bit big-endian words (odd length padded with a zero byte)."""
    if len(data) & 1:
        data += b"\0"
    n = int.from_bytes(data, "big")
    s = n % 0xFFFF
    return 0xFFFF if s == 0 and n else s


class FrameBuilder:
    """``frame(src_ip, src_port, dst_ip, dst_port, payload) -> bytes`` (Ethernet + IPv4 + UDP + payload).

    Per address pair the MACs, the packed addresses and the constant parts of both checksums are kept, so a
    frame costs one struct pack and one big-integer remainder over the payload."""

    def __init__(self) -> None:
        self._ip_id = 0
        self._pairs: dict[tuple[str, str], tuple[bytes, bytes, int, int]] = {}

    def _pair(self, src_ip: str, dst_ip: str) -> tuple[bytes, bytes, int, int]:
        src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
        addrs = src + dst
        eth = b"\x02\x00" + dst + b"\x02\x00" + src + b"\x08\x00"
        # constant IPv4 header words: 0x4560, flags 0x4000, TTL/protocol 0x4011, the addresses
        ip_base = 0x4560 + 0x4000 + 0x4011 + ones_sum(addrs)
        # UDP pseudo header: the addresses and the protocol (the lengths and ports are added per packet)
        udp_base = ones_sum(addrs) + 17
        entry = self._pairs[(src_ip, dst_ip)] = (eth, addrs, ip_base, udp_base)
        return entry

    def frame(self, src_ip: str, src_port: int, dst_ip: str, dst_port: int, payload: bytes) -> bytes:
        pair = self._pairs.get((src_ip, dst_ip)) or self._pair(src_ip, dst_ip)
        eth, addrs, ip_base, udp_base = pair
        ulen = 8 + len(payload)
        ip_id = self._ip_id = (self._ip_id + 1) & 0xFFFF
        ip_sum = ~((ip_base + 20 + ulen + ip_id) % 0xFFFF or 0xFFFF) & 0xFFFF
        data = payload + b"\0" if ulen & 1 else payload
        total = udp_base + 2 * ulen + src_port + dst_port + int.from_bytes(data, "big") % 0xFFFF
        udp_sum = ~(total % 0xFFFF or 0xFFFF) & 0xFFFF or 0xFFFF
        heads = _pack_heads(0x45, 0x60, 20 + ulen, ip_id, 0x4000, 64, 17, ip_sum, addrs, src_port, dst_port, ulen,
                            udp_sum)
        return eth + heads + payload


class PcapWriter:
    """Classic pcap (microsecond timestamps, Ethernet link type); records are gathered and written in blocks."""

    def __init__(self, f: BinaryIO, snaplen: int = 65535) -> None:
        self.f = f
        self.packets = 0
        self._buf: list[bytes] = []
        f.write(struct.pack("<IHHiIII", PCAP_MAGIC_USEC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))

    def write(self, ts: float, frame: bytes) -> None:
        usec = round(ts * 1_000_000)
        n = len(frame)
        buf = self._buf
        buf.append(_pack_rec(usec // 1_000_000, usec % 1_000_000, n, n))
        buf.append(frame)
        self.packets += 1
        if len(buf) >= 8192:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            self.f.write(b"".join(self._buf))
            self._buf.clear()
        self.f.flush()
