"""Link, network and transport decoding of one captured packet, in pure Python.

No per-layer objects: :func:`decode` reads headers with ``struct`` at offsets and returns one flat
tuple for the innermost transport it reached::

    (proto, src, dst, sport, dport, payload, seq, flags)

* ``proto`` is :data:`UDP` (17), :data:`TCP` (6) or :data:`SCTP` (132);
* ``src``/``dst`` are the raw addresses (4 or 16 bytes; format them with :func:`ip_str`);
* ``payload`` is the transport payload as bytes, except for SCTP where it is a list of DATA /
  I-DATA chunks ``(flags, stream_id, tsn, user_data)`` (flags: ``B``=2, ``E``=1);
* ``seq``/``flags`` are the TCP sequence number and flag byte (0 for UDP/SCTP).

An IP fragment is returned as ``(FRAGMENT, src, dst, key, offset, more, payload, proto)``: feed it to
:class:`producers.reassembly.FragmentTable`, then decode the whole datagram with
:func:`decode_transport`.

Link types: Ethernet (1, with 802.1Q/802.1ad/QinQ VLAN tags, PPPoE session, MPLS), Linux cooked
SLL (113) and SLL2 (276), raw IP (101, 12, 14, 228, 229), BSD loopback NULL (0) and LOOP (108).
Network: IPv4, IPv6 (extension headers skipped, fragment header), IP-in-IP, GRE (plain, transparent
Ethernet bridging, ERSPAN type I/II/III), VXLAN (UDP 4789).

A packet that cannot be used raises :class:`DecodeError` whose ``reason`` is a stable snake_case
name: ``truncated_packet``, ``unsupported_linktype``, ``not_ip``, ``bad_ip_header``,
``bad_udp_header``, ``bad_tcp_header``, ``bad_sctp_header``, ``unsupported_transport``,
``unsupported_gre``, ``unsupported_erspan``, ``ip_no_payload``, ``encapsulation_too_deep``.
"""

from __future__ import annotations

import socket
import struct

__all__ = [
    "FRAGMENT",
    "LINKTYPES",
    "SCTP",
    "TCP",
    "UDP",
    "DecodeError",
    "Decoded",
    "decode",
    "decode_transport",
    "ip_str",
]

UDP = 17
TCP = 6
SCTP = 132
FRAGMENT = -1

Decoded = tuple
"""``(proto, src, dst, sport, dport, payload, seq, flags)`` or a fragment tuple (module docstring)."""

VXLAN_PORT = 4789

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLAN = frozenset({0x8100, 0x88A8, 0x9100, 0x9200, 0x9300})
_ETH_PPPOE_SESSION = 0x8864
_ETH_MPLS = frozenset({0x8847, 0x8848})
_ETH_TEB = 0x6558  # transparent Ethernet bridging (GRE)
_ETH_ERSPAN_2 = 0x88BE
_ETH_ERSPAN_3 = 0x22EB
_PPP_IPV4 = 0x0021
_PPP_IPV6 = 0x0057

# IPv6 extension headers with the generic (next header, length in 8-octet units) layout
_IPV6_EXT = frozenset({0, 43, 60, 135, 139, 140, 253, 254})
_IPV6_FRAG = 44
_IPV6_AH = 51
_IPV6_NONE = 59

_H = struct.Struct("!H").unpack_from
_HH = struct.Struct("!HH").unpack_from
_HHH = struct.Struct("!HHH").unpack_from
_I = struct.Struct("!I").unpack_from
_TCP = struct.Struct("!HHIIBB").unpack_from
_SCTP_CHUNK = struct.Struct("!BBH").unpack_from
_SCTP_DATA = struct.Struct("!IH").unpack_from
# IPv4 version/IHL, total length, id, flags/offset, protocol, addresses; UDP ports, length
_IP4_UDP = struct.Struct("!BxHHHxBxx4s4sHHH").unpack_from
# the same after an Ethernet header (and its type)
_ETH_IP4_UDP = struct.Struct("!12xHBxHHHxBxx4s4sHHH").unpack_from
# Linux cooked captures SLL and SLL2: (offset of the ethertype, offset of the network header)
_COOKED = {113: (14, 16), 276: (0, 20)}


class DecodeError(Exception):
    """A packet that cannot be decoded; ``reason`` is a stable snake_case counter name."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail


def decode(linktype: int, data: bytes) -> Decoded:
    """Decode one captured frame of the given LINKTYPE_*; see the module docstring."""
    try:
        # fast paths, one unpack for IPv4 without options, not a fragment, UDP (the bulk of SIP and RTP)
        if linktype == 1:
            if len(data) >= 42:
                etype, vihl, total, _id, frag, proto, src, dst, sport, dport, ulen = _ETH_IP4_UDP(data)
                if (
                    etype == _ETH_IPV4
                    and vihl == 0x45
                    and proto == UDP
                    and not frag & 0x3FFF
                    and 8 <= ulen <= total - 20
                    and 14 + total <= len(data)
                    and dport != VXLAN_PORT
                ):
                    return (UDP, src, dst, sport, dport, data[42 : 34 + ulen], 0, 0)
            return _ethernet(data)
        cooked = _COOKED.get(linktype)
        if cooked is not None:
            etype_off, off = cooked
            if len(data) >= off + 28 and data[etype_off] == 8 and data[etype_off + 1] == 0:
                vihl, total, _id, frag, proto, src, dst, sport, dport, ulen = _IP4_UDP(data, off)
                if (
                    vihl == 0x45
                    and proto == UDP
                    and not frag & 0x3FFF
                    and 8 <= ulen <= total - 20
                    and off + total <= len(data)
                    and dport != VXLAN_PORT
                ):
                    return (UDP, src, dst, sport, dport, data[off + 28 : off + 20 + ulen], 0, 0)
        link = _LINK.get(linktype)
        if link is None:
            raise DecodeError("unsupported_linktype", str(linktype))
        return link(data)
    except (IndexError, struct.error):
        raise DecodeError("truncated_packet") from None
    except RecursionError:
        raise DecodeError("encapsulation_too_deep") from None


def decode_transport(proto: int, src: bytes, dst: bytes, data: bytes) -> Decoded:
    """Decode the transport layer of a reassembled IP datagram payload (``data`` starts at it)."""
    try:
        return _transport(proto, src, dst, data, 0, len(data))
    except (IndexError, struct.error):
        raise DecodeError("truncated_packet") from None
    except RecursionError:
        raise DecodeError("encapsulation_too_deep") from None


# -- link layers ------------------------------------------------------------------------------


def _ethernet(data: bytes, off: int = 0) -> Decoded:
    etype = (data[off + 12] << 8) | data[off + 13]
    if etype == _ETH_IPV4:
        return _ipv4(data, off + 14)
    return _ether_payload(etype, data, off + 14)


def _ether_payload(etype: int, data: bytes, off: int) -> Decoded:
    while etype in _ETH_VLAN:
        etype = (data[off + 2] << 8) | data[off + 3]
        off += 4
    if etype == _ETH_IPV4:
        return _ipv4(data, off)
    if etype == _ETH_IPV6:
        return _ipv6(data, off)
    if etype == _ETH_PPPOE_SESSION:
        ppp = (data[off + 6] << 8) | data[off + 7]
        if ppp == _PPP_IPV4:
            return _ipv4(data, off + 8)
        if ppp == _PPP_IPV6:
            return _ipv6(data, off + 8)
        raise DecodeError("not_ip", f"ppp protocol 0x{ppp:04x}")
    if etype in _ETH_MPLS:
        while True:
            label = _I(data, off)[0]
            off += 4
            if label & 0x100:  # bottom of stack
                break
        return _ip_by_version(data, off)
    raise DecodeError("not_ip", f"ethertype 0x{etype:04x}")


def _sll(data: bytes) -> Decoded:
    return _ether_payload((data[14] << 8) | data[15], data, 16)


def _sll2(data: bytes) -> Decoded:
    return _ether_payload((data[0] << 8) | data[1], data, 20)


def _raw(data: bytes) -> Decoded:
    return _ip_by_version(data, 0)


def _raw4(data: bytes) -> Decoded:
    return _ipv4(data, 0)


def _raw6(data: bytes) -> Decoded:
    return _ipv6(data, 0)


def _null(data: bytes) -> Decoded:
    # 4-byte address family in the capturing host's byte order (NULL) or network order (LOOP);
    # the IP version nibble that follows is unambiguous, so use it.
    return _ip_by_version(data, 4)


def _ip_by_version(data: bytes, off: int) -> Decoded:
    version = data[off] >> 4
    if version == 4:
        return _ipv4(data, off)
    if version == 6:
        return _ipv6(data, off)
    raise DecodeError("not_ip", f"ip version {version}")


_LINK = {
    1: _ethernet,
    113: _sll,
    276: _sll2,
    101: _raw,
    12: _raw,
    14: _raw,
    228: _raw4,
    229: _raw6,
    0: _null,
    108: _null,
}

LINKTYPES = frozenset(_LINK)
"""LINKTYPE_* numbers :func:`decode` understands."""


# -- network layers ---------------------------------------------------------------------------


def _ipv4(data: bytes, off: int) -> Decoded:
    vihl = data[off]
    ihl = (vihl & 15) << 2
    if vihl >> 4 != 4 or ihl < 20:
        raise DecodeError("bad_ip_header")
    total, ident, frag = _HHH(data, off + 2)
    proto = data[off + 9]
    src = data[off + 12 : off + 16]
    dst = data[off + 16 : off + 20]
    if len(dst) < 4:
        raise DecodeError("truncated_packet")
    if total == 0:
        end = len(data)  # segmentation offload captures: the frame is the datagram
    else:
        end = off + total
        if end > len(data):
            raise DecodeError("truncated_packet")
        if total < ihl:
            raise DecodeError("bad_ip_header")
    off += ihl
    if frag & 0x3FFF:
        return (FRAGMENT, src, dst, (src, dst, ident, proto), (frag & 0x1FFF) << 3, frag & 0x2000, data[off:end], proto)
    return _transport(proto, src, dst, data, off, end)


def _ipv6(data: bytes, off: int) -> Decoded:
    if data[off] >> 4 != 6:
        raise DecodeError("bad_ip_header")
    plen = (data[off + 4] << 8) | data[off + 5]
    nh = data[off + 6]
    src = data[off + 8 : off + 24]
    dst = data[off + 24 : off + 40]
    off += 40
    end = off + plen
    if end > len(data):
        raise DecodeError("truncated_packet")
    if plen == 0:
        end = len(data)  # jumbogram or segmentation offload
    while True:
        if nh in _IPV6_EXT:
            nh, off = data[off], off + ((data[off + 1] + 1) << 3)
        elif nh == _IPV6_FRAG:
            nnh = data[off]
            fo = (data[off + 2] << 8) | data[off + 3]
            ident = _I(data, off + 4)[0]
            off += 8
            if fo & 0xFFF9:  # offset or more-fragments: a real fragment
                return (FRAGMENT, src, dst, (src, dst, ident), fo & 0xFFF8, fo & 1, data[off:end], nnh)
            nh = nnh  # atomic fragment
        elif nh == _IPV6_AH:
            nh, off = data[off], off + ((data[off + 1] + 2) << 2)
        else:
            break
        if off > end:
            raise DecodeError("truncated_packet")
    if nh == _IPV6_NONE:
        raise DecodeError("ip_no_payload")
    return _transport(nh, src, dst, data, off, end)


# -- transport layers -------------------------------------------------------------------------


def _transport(proto: int, src: bytes, dst: bytes, data: bytes, off: int, end: int) -> Decoded:
    if proto == UDP:
        sport, dport, ulen = _HHH(data, off)
        pend = off + ulen
        if pend > end or ulen < 8:
            if ulen:
                raise DecodeError("bad_udp_header")
            pend = end  # length 0: IPv6 jumbogram
        if dport == VXLAN_PORT and ulen >= 24 and data[off + 8] & 0x08:
            return _ethernet(data[off + 16 : pend])
        return (UDP, src, dst, sport, dport, data[off + 8 : pend], 0, 0)
    if proto == TCP:
        sport, dport, seq, _ack, doff, flags = _TCP(data, off)
        hlen = (doff >> 4) << 2
        if hlen < 20 or off + hlen > end:
            raise DecodeError("bad_tcp_header")
        return (TCP, src, dst, sport, dport, data[off + hlen : end], seq, flags)
    if proto == SCTP:
        return _sctp(src, dst, data, off, end)
    if proto == 47:
        return _gre(data, off, end)
    if proto == 4:
        return _ipv4(data, off)
    if proto == 41:
        return _ipv6(data, off)
    if proto in _IPV6_EXT or proto == _IPV6_AH:
        # extension headers after a reassembled IPv6 fragment header
        skip = (data[off + 1] + 2) << 2 if proto == _IPV6_AH else (data[off + 1] + 1) << 3
        return _transport(data[off], src, dst, data, off + skip, end)
    raise DecodeError("unsupported_transport", f"ip protocol {proto}")


def _sctp(src: bytes, dst: bytes, data: bytes, off: int, end: int) -> Decoded:
    if off + 12 > end:
        raise DecodeError("bad_sctp_header")
    sport, dport = _HH(data, off)
    chunks = []
    pos = off + 12
    while pos + 4 <= end:
        ctype, cflags, clen = _SCTP_CHUNK(data, pos)
        if clen < 4 or pos + clen > end:
            raise DecodeError("bad_sctp_header", "chunk length")
        if ctype == 0 and clen >= 16:  # DATA
            tsn, sid = _SCTP_DATA(data, pos + 4)
            chunks.append((cflags, sid, tsn, data[pos + 16 : pos + clen]))
        elif ctype == 64 and clen >= 20:  # I-DATA (RFC 8260)
            tsn, sid = _SCTP_DATA(data, pos + 4)
            chunks.append((cflags, sid, tsn, data[pos + 20 : pos + clen]))
        pos += (clen + 3) & ~3
    return (SCTP, src, dst, sport, dport, chunks, 0, 0)


def _gre(data: bytes, off: int, end: int) -> Decoded:
    fv, ptype = _HH(data, off)
    if fv & 0x4007:  # version 1 (PPTP) or source routing
        raise DecodeError("unsupported_gre", f"flags 0x{fv:04x}")
    pos = off + 4
    if fv & 0x8000:  # checksum
        pos += 4
    if fv & 0x2000:  # key
        pos += 4
    if fv & 0x1000:  # sequence number
        pos += 4
    if ptype == _ETH_IPV4:
        return _ipv4(data, pos)
    if ptype == _ETH_IPV6:
        return _ipv6(data, pos)
    if ptype == _ETH_TEB:
        return _ethernet(data, pos)
    if ptype == _ETH_ERSPAN_2:
        # type I has no sequence number and no ERSPAN header; type II has both (8-byte header)
        return _ethernet(data, pos + 8 if fv & 0x1000 else pos)
    if ptype == _ETH_ERSPAN_3:
        word = (data[pos + 10] << 8) | data[pos + 11]
        if (word >> 10) & 0x1F:
            raise DecodeError("unsupported_erspan", "frame type is not Ethernet")
        return _ethernet(data, pos + (20 if word & 1 else 12))
    raise DecodeError("unsupported_gre", f"protocol 0x{ptype:04x}")


# -- addresses --------------------------------------------------------------------------------

_addr_cache: dict[bytes, str] = {}
_ntop = socket.inet_ntop
_AF_INET6 = socket.AF_INET6
_ntoa = socket.inet_ntoa


def ip_str(raw: bytes) -> str:
    """Dotted IPv4 or compressed IPv6 text of a raw 4/16-byte address (cached)."""
    s = _addr_cache.get(raw)
    if s is None:
        if len(_addr_cache) >= 65536:
            _addr_cache.clear()
        s = _addr_cache[raw] = _ntoa(raw) if len(raw) == 4 else _ntop(_AF_INET6, raw)
    return s
