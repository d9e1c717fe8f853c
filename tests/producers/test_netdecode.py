"""producers.netdecode: every link type and encapsulation, built byte by byte, and the error reasons."""

from __future__ import annotations

import contextlib
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.netdecode import FRAGMENT, LINKTYPES, SCTP, TCP, UDP, DecodeError, decode, decode_transport, ip_str

A4 = socket.inet_aton("10.0.0.1")
B4 = socket.inet_aton("10.0.0.2")
A6 = socket.inet_pton(socket.AF_INET6, "2001:db8::1")
B6 = socket.inet_pton(socket.AF_INET6, "2001:db8::2")
SIP = b"OPTIONS sip:bob@example.com SIP/2.0\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
MAC = b"\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb"


# -- builders -----------------------------------------------------------------------------------


def udp(payload: bytes, sport: int = 5060, dport: int = 5060) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(
    payload: bytes, seq: int = 1000, flags: int = 0x18, sport: int = 40000, dport: int = 5060, options: bytes = b""
) -> bytes:
    doff = (20 + len(options)) // 4
    return struct.pack("!HHIIBBHHH", sport, dport, seq, 0, doff << 4, flags, 65535, 0, 0) + options + payload


def ipv4(
    payload: bytes,
    proto: int = 17,
    src: bytes = A4,
    dst: bytes = B4,
    ident: int = 1,
    frag: int = 0,
    options: bytes = b"",
) -> bytes:
    ihl = (20 + len(options)) // 4
    total = 20 + len(options) + len(payload)
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, total, ident, frag, 64, proto, 0, src, dst) + options + payload


def ipv6(payload: bytes, nh: int = 17, src: bytes = A6, dst: bytes = B6) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64, src, dst) + payload


def ext(nh: int, body: bytes = b"\x00" * 6) -> bytes:
    """A generic IPv6 extension header (hop-by-hop, routing, destination options)."""
    return bytes([nh, (2 + len(body)) // 8 - 1]) + body


def frag6(nh: int, offset: int, more: bool, ident: int) -> bytes:
    return struct.pack("!BBHI", nh, 0, offset | int(more), ident)


def eth(payload: bytes, etype: int = 0x0800) -> bytes:
    return MAC + struct.pack("!H", etype) + payload


def vlan(payload: bytes, etype: int, tpid: int = 0x8100, vid: int = 100) -> bytes:
    """A VLAN tag as it follows the MAC addresses: TPID is the outer ethertype, then TCI + inner type."""
    return struct.pack("!H", vid) + struct.pack("!H", etype) + payload


def gre(payload: bytes, ptype: int, key: int | None = None, seq: int | None = None, checksum: bool = False) -> bytes:
    flags = (0x8000 if checksum else 0) | (0x2000 if key is not None else 0) | (0x1000 if seq is not None else 0)
    out = struct.pack("!HH", flags, ptype)
    if checksum:
        out += b"\x00" * 4
    if key is not None:
        out += struct.pack("!I", key)
    if seq is not None:
        out += struct.pack("!I", seq)
    return out + payload


def sctp(*chunks: bytes, sport: int = 5060, dport: int = 5060) -> bytes:
    return struct.pack("!HHII", sport, dport, 1, 0) + b"".join(chunks)


def data_chunk(data: bytes, flags: int = 3, tsn: int = 1, sid: int = 0, ppid: int = 0) -> bytes:
    length = 16 + len(data)
    return struct.pack("!BBHIHHI", 0, flags, length, tsn, sid, 0, ppid) + data + b"\x00" * (-length % 4)


def expect_udp(result: tuple, src: bytes = A4, dst: bytes = B4, payload: bytes = SIP) -> None:
    assert result == (UDP, src, dst, 5060, 5060, payload, 0, 0)


# -- link layers --------------------------------------------------------------------------------


def test_ethernet_ipv4_udp() -> None:
    expect_udp(decode(1, eth(ipv4(udp(SIP)))))


def test_ethernet_padding_and_fcs_are_ignored() -> None:
    frame = eth(ipv4(udp(b"hi"))) + b"\x00" * 16 + b"\xde\xad\xbe\xef"
    assert decode(1, frame)[5] == b"hi"


def test_ipv4_options_take_the_general_path() -> None:
    expect_udp(decode(1, eth(ipv4(udp(SIP), options=b"\x01\x01\x01\x00"))))


def test_vlan_8021q() -> None:
    expect_udp(decode(1, eth(vlan(ipv4(udp(SIP)), 0x0800), etype=0x8100)))


def test_qinq_8021ad_then_8021q() -> None:
    inner = vlan(ipv4(udp(SIP)), 0x0800, vid=20)
    outer = vlan(inner, 0x8100, vid=10)
    expect_udp(decode(1, eth(outer, etype=0x88A8)))


def test_qinq_legacy_9100() -> None:
    expect_udp(decode(1, eth(vlan(vlan(ipv4(udp(SIP)), 0x0800), 0x8100), etype=0x9100)))


def test_vlan_ipv6() -> None:
    expect_udp(decode(1, eth(vlan(ipv6(udp(SIP)), 0x86DD), etype=0x8100)), A6, B6)


def test_pppoe_session_ipv4_and_ipv6() -> None:
    def pppoe(payload: bytes, proto: int) -> bytes:
        return struct.pack("!BBHHH", 0x11, 0, 0x1234, len(payload) + 2, proto) + payload

    expect_udp(decode(1, eth(pppoe(ipv4(udp(SIP)), 0x0021), etype=0x8864)))
    expect_udp(decode(1, eth(pppoe(ipv6(udp(SIP)), 0x0057), etype=0x8864)), A6, B6)
    with pytest.raises(DecodeError) as exc:
        decode(1, eth(pppoe(b"\xc0\x21" + b"\x00" * 8, 0xC021), etype=0x8864))  # LCP
    assert exc.value.reason == "not_ip"


def test_mpls_label_stack() -> None:
    labels = struct.pack("!II", (100 << 12) | 64, (200 << 12) | 0x100 | 64)  # second is bottom of stack
    expect_udp(decode(1, eth(labels + ipv4(udp(SIP)), etype=0x8847)))


def test_linux_cooked_sll() -> None:
    header = struct.pack("!HHH8sH", 0, 1, 6, b"\x00" * 8, 0x0800)
    expect_udp(decode(113, header + ipv4(udp(SIP))))


def test_linux_cooked_sll2() -> None:
    header = struct.pack("!HHIHBB8s", 0x86DD, 0, 2, 1, 0, 6, b"\x00" * 8)
    expect_udp(decode(276, header + ipv6(udp(SIP))), A6, B6)


@pytest.mark.parametrize("linktype", [101, 12, 14])
def test_raw_ip_either_version(linktype: int) -> None:
    expect_udp(decode(linktype, ipv4(udp(SIP))))
    expect_udp(decode(linktype, ipv6(udp(SIP))), A6, B6)


def test_raw_ipv4_and_ipv6_linktypes() -> None:
    expect_udp(decode(228, ipv4(udp(SIP))))
    expect_udp(decode(229, ipv6(udp(SIP))), A6, B6)


@pytest.mark.parametrize(
    ("linktype", "family"),
    [(0, struct.pack("<I", 2)), (0, struct.pack(">I", 2)), (0, struct.pack("<I", 30)), (108, struct.pack(">I", 24))],
)
def test_bsd_loopback_null_and_loop(linktype: int, family: bytes) -> None:
    packet = ipv6(udp(SIP)) if family in (struct.pack("<I", 30), struct.pack(">I", 24)) else ipv4(udp(SIP))
    result = decode(linktype, family + packet)
    assert result[0] == UDP and result[5] == SIP


def test_every_documented_linktype_is_known() -> None:
    assert {0, 1, 12, 14, 101, 108, 113, 228, 229, 276} <= LINKTYPES


# -- IP -----------------------------------------------------------------------------------------


def test_ipv6_extension_headers_are_skipped() -> None:
    packet = ipv6(ext(60, b"\x01\x04\x00\x00\x00\x00") + ext(17) + udp(SIP), nh=0)  # hop-by-hop, dest opts
    expect_udp(decode(101, packet), A6, B6)


def test_ipv6_routing_header_and_ah() -> None:
    ah = bytes([17, 4]) + b"\x00" * 22  # AH: length in 4-octet units minus 2 -> (4 + 2) * 4 = 24 bytes
    packet = ipv6(ext(51) + ah + udp(SIP), nh=43)
    expect_udp(decode(101, packet), A6, B6)


def test_ipv4_fragment_is_returned_for_reassembly() -> None:
    first = decode(101, ipv4(udp(SIP)[:24], ident=77, frag=0x2000))
    assert first[:3] == (FRAGMENT, A4, B4)
    assert first[3] == (A4, B4, 77, 17) and first[4] == 0 and first[5] and first[6] == udp(SIP)[:24]
    assert first[7] == 17
    later = decode(101, ipv4(b"x" * 16, ident=77, frag=3))  # offset 3 * 8 = 24, last fragment
    assert later[4] == 24 and not later[5]


def test_ipv6_fragment_header() -> None:
    whole = udp(SIP)
    first = decode(101, ipv6(frag6(17, 0, True, 0xABCDEF) + whole[:48], nh=44))
    assert first[0] == FRAGMENT and first[3] == (A6, B6, 0xABCDEF)
    assert (first[4], bool(first[5]), first[6], first[7]) == (0, True, whole[:48], 17)
    last = decode(101, ipv6(frag6(17, 48, False, 0xABCDEF) + whole[48:], nh=44))
    assert (last[4], bool(last[5])) == (48, False)
    assert decode_transport(17, A6, B6, first[6] + last[6]) == (UDP, A6, B6, 5060, 5060, SIP, 0, 0)


def test_ipv6_atomic_fragment_is_a_plain_packet() -> None:
    expect_udp(decode(101, ipv6(frag6(17, 0, False, 5) + udp(SIP), nh=44)), A6, B6)


def test_ip_in_ip() -> None:
    expect_udp(decode(101, ipv4(ipv4(udp(SIP)), proto=4, src=B4, dst=A4)))
    expect_udp(decode(101, ipv4(ipv6(udp(SIP)), proto=41)), A6, B6)


def test_ipv4_total_length_zero_means_the_whole_frame() -> None:
    packet = bytearray(ipv4(udp(SIP)))
    packet[2:4] = b"\x00\x00"  # segmentation offload captures
    expect_udp(decode(101, bytes(packet)))


# -- GRE / ERSPAN / VXLAN -----------------------------------------------------------------------


def test_gre_ipv4_with_key_and_sequence() -> None:
    inner = ipv4(udp(SIP))
    expect_udp(decode(1, eth(ipv4(gre(inner, 0x0800, key=7, seq=9, checksum=True), proto=47, src=B4, dst=B4))))


def test_gre_transparent_ethernet_bridging() -> None:
    expect_udp(decode(1, eth(ipv4(gre(eth(ipv4(udp(SIP))), 0x6558), proto=47))))


def test_erspan_type_1_2_and_3() -> None:
    mirrored = eth(vlan(ipv4(udp(SIP)), 0x0800), etype=0x8100)
    type1 = gre(mirrored, 0x88BE)
    type2 = gre(struct.pack("!HHI", 0x1000 | 5, 42, 0) + mirrored, 0x88BE, seq=1)
    type3 = gre(struct.pack("!HHIHH", 0x2000 | 5, 42, 123, 0, 0) + mirrored, 0x22EB, seq=1)
    type3_sub = gre(struct.pack("!HHIHH", 0x2000, 42, 123, 0, 1) + b"\x00" * 8 + mirrored, 0x22EB, seq=1)
    for encapsulated in (type1, type2, type3, type3_sub):
        expect_udp(decode(1, eth(ipv4(encapsulated, proto=47, src=B4, dst=B4))))


def test_erspan_3_non_ethernet_frame_type_is_named() -> None:
    header = struct.pack("!HHIHH", 0x2000, 42, 123, 0, 2 << 10)  # FT = 2 (IP)
    with pytest.raises(DecodeError) as exc:
        decode(101, ipv4(gre(header + ipv4(udp(SIP)), 0x22EB, seq=1), proto=47))
    assert exc.value.reason == "unsupported_erspan"


def test_gre_version_1_pptp_is_unsupported() -> None:
    with pytest.raises(DecodeError) as exc:
        decode(101, ipv4(struct.pack("!HHHHI", 0x3001, 0x880B, 0, 0, 0), proto=47))
    assert exc.value.reason == "unsupported_gre"


def test_vxlan() -> None:
    inner = eth(ipv4(udp(SIP)))
    vxlan = struct.pack("!II", 0x08000000, 5 << 8) + inner
    expect_udp(decode(1, eth(ipv4(udp(vxlan, sport=1234, dport=4789), src=B4, dst=B4))))


# -- transports ---------------------------------------------------------------------------------


def test_tcp_fields_and_options() -> None:
    result = decode(101, ipv4(tcp(SIP, seq=0xFFFFFFF0, flags=0x19, options=b"\x01\x01\x08\x0a" + b"\x00" * 8), proto=6))
    assert result == (TCP, A4, B4, 40000, 5060, SIP, 0xFFFFFFF0, 0x19)


def test_sctp_bundled_data_chunks_and_other_chunks() -> None:
    sack = struct.pack("!BBHIHHI", 3, 0, 16, 0, 0, 0, 0)
    packet = sctp(sack, data_chunk(SIP, tsn=5, sid=1), data_chunk(b"second", flags=2, tsn=6))
    proto, src, dst, sport, dport, chunks, _, _ = decode(101, ipv4(packet, proto=132))
    assert (proto, src, dst, sport, dport) == (SCTP, A4, B4, 5060, 5060)
    assert chunks == [(3, 1, 5, SIP), (2, 0, 6, b"second")]


def test_sctp_i_data_chunk() -> None:
    length = 20 + len(SIP)
    chunk = struct.pack("!BBHIHHII", 64, 3, length, 9, 2, 0, 1, 0) + SIP + b"\x00" * (-length % 4)
    assert decode(101, ipv4(sctp(chunk), proto=132))[5] == [(3, 2, 9, SIP)]


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("linktype", "frame", "reason"),
    [
        (1, MAC[:10], "truncated_packet"),
        (1, eth(ipv4(udp(SIP)))[:60], "truncated_packet"),  # snaplen cut: IP total length > captured
        (1, eth(b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, etype=0x0806), "not_ip"),  # ARP
        (147, b"\x00" * 40, "unsupported_linktype"),
        (101, b"\x50" + b"\x00" * 30, "not_ip"),
        (228, b"\x60" + b"\x00" * 50, "bad_ip_header"),  # IPv6 bytes on the IPv4 link type
        (228, ipv4(b"\x08\x00" + b"\x00" * 6, proto=1), "unsupported_transport"),  # ICMP
        (228, ipv4(struct.pack("!HHHH", 1, 2, 400, 0), proto=17), "bad_udp_header"),
        (228, ipv4(struct.pack("!HHHH", 1, 2, 3, 0), proto=17), "bad_udp_header"),
        (228, ipv4(tcp(b"")[:12] + b"\x10" + tcp(b"")[13:], proto=6), "bad_tcp_header"),
        (228, ipv4(b"\x00" * 8, proto=132), "bad_sctp_header"),
        (229, ipv6(b"", nh=59), "ip_no_payload"),
    ],
)
def test_errors_are_named(linktype: int, frame: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as exc:
        decode(linktype, frame)
    assert exc.value.reason == reason


def test_endless_encapsulation_is_refused() -> None:
    packet = udp(SIP)
    packet = ipv4(packet)
    for _ in range(600):
        packet = ipv4(gre(packet, 0x0800), proto=47)
    with pytest.raises(DecodeError) as exc:
        decode(101, packet[:65535] if len(packet) > 65535 else packet)
    assert exc.value.reason in ("encapsulation_too_deep", "truncated_packet")


@settings(max_examples=400, deadline=None)
@given(linktype=st.sampled_from(sorted(LINKTYPES)), data=st.binary(max_size=200))
def test_decode_raises_nothing_but_decode_error(linktype: int, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        decode(linktype, data)


@settings(max_examples=300, deadline=None)
@given(tail=st.binary(max_size=120), proto=st.sampled_from([6, 17, 47, 132, 0, 43, 60, 4, 41]))
def test_decode_of_mangled_headers_raises_nothing_but_decode_error(tail: bytes, proto: int) -> None:
    for frame in (eth(ipv4(tail, proto=proto)), eth(ipv6(tail, nh=proto), etype=0x86DD)):
        with contextlib.suppress(DecodeError):
            decode(1, frame)


def test_ip_str() -> None:
    assert ip_str(A4) == "10.0.0.1"
    assert ip_str(A6) == "2001:db8::1"
    assert ip_str(socket.inet_pton(socket.AF_INET6, "::ffff:1.2.3.4")) == "::ffff:1.2.3.4"
