"""HEP (Homer Encapsulation Protocol) codec: bytes in, a :class:`HepPacket` or a named error out.

Pure: no sockets, settings or logging. The collector (``producers.hep_collector``) owns the I/O.

Versions decoded:

* **HEPv3** (``HEP3`` + big-endian uint16 total length + chunks ``vendor:u16 type:u16 length:u16 value``,
  length including the 6-byte chunk header). Generic chunks (vendor 0) types 1-19 are decoded; any other
  chunk (vendor-specific, or a generic type this codec does not know) is skipped by its length and kept
  in :attr:`HepPacket.unknown_chunks`. The payload is chunk 0x000f, or chunk 0x0010 compressed with
  zlib or gzip.
* **HEPv1 / HEPv2**, the older fixed header written by Kamailio ``siptrace``, captagent and sngrep
  (``struct hep_hdr`` + ``struct hep_iphdr``/``hep_ip6hdr`` [+ ``struct hep_timehdr`` for v2], then the
  SIP message)::

      0 version (1|2)  1 header length  2 family (2|10)  3 IP protocol  4-5 src port  6-7 dst port  (BE)
      8 src addr, dst addr (4+4 bytes for IPv4, 16+16 for IPv6)
      v2 only: tv_sec u32, tv_usec u32, capture id u16, 2 bytes padding  (12 bytes, host byte order;
               little-endian as sent by every x86/ARM agent, which is what Kamailio's receiver assumes)

  Those versions carry only SIP (``proto_type`` 1) and have no total length, so they cannot be framed
  on a TCP stream; they are accepted on UDP only.

Errors: every failure raises :class:`HepDecodeError` with a stable snake_case ``reason``:

=============================  ==================================================================
``not_hep``                    neither ``HEP3`` nor a version-1/2 header
``hep_truncated``              the bytes end inside a header (packet header, chunk header, v1/v2 header)
``hep_bad_length``             the HEPv3 total length disagrees with the bytes given (too long or short)
``hep_bad_chunk_length``       a chunk shorter than its header, running past the packet, or of the
                               wrong size for its type (e.g. a 3-byte IPv4 address)
``hep_bad_family``             a v1/v2 header with an address family other than 2 (IPv4) or 10 (IPv6)
``hep_missing_payload``        no payload chunk (and no keep-alive chunk either)
``hep_bad_compressed_payload`` chunk 0x0010 is not valid zlib/gzip/deflate data, or inflates past
                               :data:`MAX_PAYLOAD`
=============================  ==================================================================
"""

from __future__ import annotations

import ipaddress
import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple

HEP3_MAGIC = b"HEP3"
MAX_PACKET = 0xFFFF
"""A HEPv3 packet's length is a uint16."""
MAX_PAYLOAD = 1 << 20
"""Largest payload a compressed chunk may inflate to (guards against zip bombs)."""

AF_INET = 2
AF_INET6 = 10
PROTO_SIP = 1

# generic chunk types (vendor 0)
CH_FAMILY, CH_IP_PROTO, CH_SRC_IP4, CH_DST_IP4, CH_SRC_IP6, CH_DST_IP6 = 1, 2, 3, 4, 5, 6
CH_SRC_PORT, CH_DST_PORT, CH_TS_SEC, CH_TS_USEC, CH_PROTO_TYPE, CH_CAPTURE_ID = 7, 8, 9, 10, 11, 12
CH_KEEPALIVE, CH_AUTH_KEY, CH_PAYLOAD, CH_COMPRESSED, CH_CORRELATION, CH_VLAN, CH_NODE_NAME = (
    13, 14, 15, 16, 17, 18, 19,
)

# value sizes of the fixed-size chunks; capture id is uint32 but some agents send a uint16
_FIXED_SIZES: dict[int, tuple[int, ...]] = {
    CH_FAMILY: (1,), CH_IP_PROTO: (1,), CH_PROTO_TYPE: (1,),
    CH_SRC_IP4: (4,), CH_DST_IP4: (4,), CH_SRC_IP6: (16,), CH_DST_IP6: (16,),
    CH_SRC_PORT: (2,), CH_DST_PORT: (2,), CH_KEEPALIVE: (2,), CH_VLAN: (2,),
    CH_TS_SEC: (4,), CH_TS_USEC: (4,), CH_CAPTURE_ID: (4, 2),
}

_CHUNK_HDR = struct.Struct("!HHH")
_V12_HDR = struct.Struct("!BBBBHH")
_V2_TIME = struct.Struct("<IIHxx")


class HepDecodeError(ValueError):
    """Input that is not a valid HEP packet. ``reason`` is a stable snake_case name (see module doc)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class HepPacket:
    """One HEP packet. The defaults suit building a SIP-over-UDP packet for :func:`encode_hep3`;
    :func:`decode_hep` sets what the packet says: an absent optional chunk is ``None``, an absent numeric
    chunk 0 (family is then inferred from the address chunks)."""

    version: int = 3
    """HEP version: 1, 2 or 3."""
    family: int = AF_INET
    """IP family of the captured packet: 2 = IPv4, 10 = IPv6."""
    ip_proto: int = 17
    """IP protocol of the captured packet: 17 UDP, 6 TCP, 132 SCTP."""
    src_ip: str = ""
    dst_ip: str = ""
    src_port: int = 0
    dst_port: int = 0
    ts: float = 0.0
    """Capture time, seconds since the epoch (time chunks sec + usec); 0.0 when the packet has none."""
    proto_type: int = PROTO_SIP
    """Payload type: 1 SIP, 5 RTCP (JSON), 32/34/35 reports, 53 DNS, 100 log..."""
    capture_id: int = 0
    """Capture agent id (chunk 0x000c)."""
    auth_key: str | None = None
    payload: bytes = b""
    """The captured message, already inflated when it came in a compressed chunk."""
    correlation_id: str | None = None
    vlan: int | None = None
    node_name: str | None = None
    keepalive: int | None = None
    """Keep-alive timer (chunk 0x000d), seconds."""
    unknown_chunks: list[tuple[int, int, bytes]] = field(default_factory=list)
    """``(vendor_id, type_id, value)`` of every chunk skipped, in packet order."""


def decode_hep(data: bytes) -> HepPacket:
    """Decode one HEP packet (v1, v2 or v3). Raises :class:`HepDecodeError` and nothing else."""
    data = bytes(data)
    if data[:4] == HEP3_MAGIC:
        return _decode_v3(data)
    if data[:1] in (b"\x01", b"\x02"):
        return _decode_v12(data)
    if len(data) < 4 and HEP3_MAGIC.startswith(data) and data:
        raise HepDecodeError("hep_truncated", f"{len(data)} bytes")
    raise HepDecodeError("not_hep", f"starts with {data[:4].hex() or 'nothing'}")


def _decode_v3(data: bytes) -> HepPacket:
    if len(data) < 6:
        raise HepDecodeError("hep_truncated", f"{len(data)} bytes, HEP3 header needs 6")
    total = int.from_bytes(data[4:6], "big")
    if total != len(data):
        raise HepDecodeError("hep_bad_length", f"header says {total} bytes, packet has {len(data)}")
    fields: dict[str, object] = {"version": 3}
    unknown: list[tuple[int, int, bytes]] = []
    sec = usec = None
    has_payload = False
    pos = 6
    while pos < total:
        if total - pos < 6:
            raise HepDecodeError("hep_truncated", f"chunk header at offset {pos} cut after {total - pos} bytes")
        vendor, ctype, clen = _CHUNK_HDR.unpack_from(data, pos)
        if clen < 6 or pos + clen > total:
            raise HepDecodeError(
                "hep_bad_chunk_length", f"chunk {vendor}:{ctype} at offset {pos} says {clen} bytes, {total - pos} left"
            )
        value = data[pos + 6 : pos + clen]
        pos += clen
        if vendor != 0 or not CH_FAMILY <= ctype <= CH_NODE_NAME:
            unknown.append((vendor, ctype, value))
            continue
        sizes = _FIXED_SIZES.get(ctype)
        if sizes is not None and len(value) not in sizes:
            detail = f"chunk type {ctype} has {len(value)} value bytes, want {sizes[0]}"
            raise HepDecodeError("hep_bad_chunk_length", detail)
        if ctype == CH_TS_SEC:
            sec = int.from_bytes(value, "big")
        elif ctype == CH_TS_USEC:
            usec = int.from_bytes(value, "big")
        else:
            has_payload |= ctype in (CH_PAYLOAD, CH_COMPRESSED)
            _apply_chunk(fields, ctype, value)
    if not has_payload and "keepalive" not in fields:
        raise HepDecodeError("hep_missing_payload", "no payload chunk (0x000f/0x0010)")
    if "family" not in fields:
        address = str(fields.get("src_ip", fields.get("dst_ip", "")))
        fields["family"] = (AF_INET6 if ":" in address else AF_INET) if address else 0
    fields.setdefault("ip_proto", 0)
    fields.setdefault("proto_type", 0)
    if sec is not None or usec is not None:
        fields["ts"] = (sec or 0) + (usec or 0) / 1_000_000
    return HepPacket(**fields, unknown_chunks=unknown)  # type: ignore[arg-type]


def _apply_chunk(fields: dict[str, object], ctype: int, value: bytes) -> None:
    """Store the value of one known generic chunk (size already checked) into ``fields``."""
    if ctype in (CH_SRC_IP4, CH_SRC_IP6, CH_DST_IP4, CH_DST_IP6):
        key = "src_ip" if ctype in (CH_SRC_IP4, CH_SRC_IP6) else "dst_ip"
        fields[key] = str(ipaddress.ip_address(value))
    elif ctype in (CH_AUTH_KEY, CH_CORRELATION, CH_NODE_NAME):
        key = {CH_AUTH_KEY: "auth_key", CH_CORRELATION: "correlation_id", CH_NODE_NAME: "node_name"}[ctype]
        fields[key] = value.rstrip(b"\x00").decode("utf-8", "replace")
    elif ctype == CH_PAYLOAD:
        fields["payload"] = value
    elif ctype == CH_COMPRESSED:
        fields["payload"] = _inflate(value)
    else:
        key = {
            CH_FAMILY: "family", CH_IP_PROTO: "ip_proto", CH_SRC_PORT: "src_port", CH_DST_PORT: "dst_port",
            CH_PROTO_TYPE: "proto_type", CH_CAPTURE_ID: "capture_id", CH_KEEPALIVE: "keepalive", CH_VLAN: "vlan",
        }[ctype]
        fields[key] = int.from_bytes(value, "big")


def _inflate(value: bytes) -> bytes:
    """Inflate a compressed payload chunk: zlib or gzip (auto-detected), else raw deflate."""
    error = ""
    for wbits in (32 + 15, -15):
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(value, MAX_PAYLOAD)
        except zlib.error as exc:
            error = str(exc)
            continue
        if inflater.unconsumed_tail:
            raise HepDecodeError("hep_bad_compressed_payload", f"inflates past {MAX_PAYLOAD} bytes")
        if not inflater.eof:
            error = "incomplete compressed stream"
            continue
        return out
    raise HepDecodeError("hep_bad_compressed_payload", error)


def _decode_v12(data: bytes) -> HepPacket:
    if len(data) < _V12_HDR.size:
        raise HepDecodeError("hep_truncated", f"{len(data)} bytes, HEPv{data[0]} header needs {_V12_HDR.size}")
    version, _hdr_len, family, ip_proto, sport, dport = _V12_HDR.unpack_from(data)
    if family not in (AF_INET, AF_INET6):
        raise HepDecodeError("hep_bad_family", f"HEPv{version} family {family}")
    alen = 4 if family == AF_INET else 16
    end = _V12_HDR.size + 2 * alen + (_V2_TIME.size if version == 2 else 0)
    if len(data) < end:
        raise HepDecodeError("hep_truncated", f"{len(data)} bytes, HEPv{version} headers need {end}")
    src = ipaddress.ip_address(data[8 : 8 + alen])
    dst = ipaddress.ip_address(data[8 + alen : 8 + 2 * alen])
    ts, capture_id = 0.0, 0
    if version == 2:
        sec, usec, capture_id = _V2_TIME.unpack_from(data, 8 + 2 * alen)
        ts = sec + usec / 1_000_000
    if len(data) == end:
        raise HepDecodeError("hep_missing_payload", f"HEPv{version} packet has no payload")
    return HepPacket(
        version=version, family=family, ip_proto=ip_proto, src_ip=str(src), dst_ip=str(dst),
        src_port=sport, dst_port=dport, ts=ts, proto_type=PROTO_SIP, capture_id=capture_id, payload=data[end:],
    )


def _chunk(ctype: int, value: bytes, vendor: int = 0) -> bytes:
    return _CHUNK_HDR.pack(vendor, ctype, 6 + len(value)) + value


def _address_chunk(ip: str, v4_type: int) -> bytes:
    if not ip:
        return b""
    addr = ipaddress.ip_address(ip)
    return _chunk(v4_type if addr.version == 4 else v4_type + 2, addr.packed)


def encode_hep3(packet: HepPacket, *, compress: bool = False) -> bytes:
    """Encode ``packet`` as HEPv3 (``packet.version`` is ignored). ``compress`` zlib-deflates the payload
    into chunk 0x0010. Raises ``ValueError`` when the result would exceed 65535 bytes."""
    sec = math.floor(packet.ts)
    usec = round((packet.ts - sec) * 1_000_000)
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    parts = [
        _chunk(CH_FAMILY, bytes([packet.family])),
        _chunk(CH_IP_PROTO, bytes([packet.ip_proto])),
        _address_chunk(packet.src_ip, CH_SRC_IP4),
        _address_chunk(packet.dst_ip, CH_DST_IP4),
        _chunk(CH_SRC_PORT, packet.src_port.to_bytes(2, "big")),
        _chunk(CH_DST_PORT, packet.dst_port.to_bytes(2, "big")),
        _chunk(CH_TS_SEC, sec.to_bytes(4, "big")),
        _chunk(CH_TS_USEC, usec.to_bytes(4, "big")),
        _chunk(CH_PROTO_TYPE, bytes([packet.proto_type])),
        _chunk(CH_CAPTURE_ID, packet.capture_id.to_bytes(4, "big")),
    ]
    optional = [
        (CH_KEEPALIVE, None if packet.keepalive is None else packet.keepalive.to_bytes(2, "big")),
        (CH_AUTH_KEY, None if packet.auth_key is None else packet.auth_key.encode()),
        (CH_CORRELATION, None if packet.correlation_id is None else packet.correlation_id.encode()),
        (CH_VLAN, None if packet.vlan is None else packet.vlan.to_bytes(2, "big")),
        (CH_NODE_NAME, None if packet.node_name is None else packet.node_name.encode()),
    ]
    parts += [_chunk(ctype, value) for ctype, value in optional if value is not None]
    parts += [_chunk(ctype, value, vendor) for vendor, ctype, value in packet.unknown_chunks]
    if compress:
        parts.append(_chunk(CH_COMPRESSED, zlib.compress(packet.payload)))
    else:
        parts.append(_chunk(CH_PAYLOAD, packet.payload))
    body = b"".join(parts)
    total = 6 + len(body)
    if total > MAX_PACKET:
        raise ValueError(f"HEPv3 packet would be {total} bytes, max {MAX_PACKET}")
    return HEP3_MAGIC + total.to_bytes(2, "big") + body


class HepStreamSplit(NamedTuple):
    """Result of :func:`split_hep_stream`."""

    packets: list[bytes]
    """Complete HEPv3 packets, in stream order (not yet decoded)."""
    consumed: int
    """Bytes of the buffer used up (packets + garbage); drop them and keep the rest for the next read."""
    skipped: int
    """Bytes of garbage skipped while resynchronising on the next ``HEP3``."""


def split_hep_stream(buf: bytes | bytearray | memoryview) -> HepStreamSplit:
    """Cut a TCP/TLS byte stream into HEPv3 packets using the length at bytes 4-6.

    Garbage (bytes that do not start a ``HEP3`` header, or a header whose length is below 6) is skipped
    up to the next ``HEP3``, and counted in ``skipped``. An incomplete packet at the end stays in the
    buffer (not consumed) until more bytes arrive.
    """
    buf = bytes(buf)
    packets: list[bytes] = []
    pos = skipped = 0
    while pos < len(buf):
        if buf.startswith(HEP3_MAGIC, pos):
            if len(buf) - pos < 6:
                break
            length = int.from_bytes(buf[pos + 4 : pos + 6], "big")
            if length >= 6:
                if pos + length > len(buf):
                    break
                packets.append(buf[pos : pos + length])
                pos += length
                continue
            start = pos + 1
        else:
            start = pos
        nxt = buf.find(HEP3_MAGIC, start)
        if nxt < 0:
            nxt = _keep_partial_magic(buf, start)
        skipped += nxt - pos
        pos = nxt
        if nxt == len(buf) or not buf.startswith(HEP3_MAGIC, nxt):
            break
    return HepStreamSplit(packets, pos, skipped)


def _keep_partial_magic(buf: bytes, start: int) -> int:
    """Offset from which to keep ``buf``: a trailing prefix of ``HEP3`` may be completed by the next read."""
    for keep in (3, 2, 1):
        if len(buf) - start >= keep and HEP3_MAGIC.startswith(buf[-keep:]):
            return len(buf) - keep
    return len(buf)
