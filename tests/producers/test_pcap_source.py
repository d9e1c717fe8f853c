"""producers.pcap_source on small synthetic captures, and the reassembly tables it drives.

Each test writes a capture with :func:`producers.pcapfile.write_pcap` / ``write_pcapng`` from frames
built here byte by byte, then reads it back through :func:`iter_payloads`.
"""

from __future__ import annotations

import io
import socket
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.pcap_source import Counters, Payload, PcapSource, iter_payloads, looks_like_sip
from producers.pcapfile import CaptureFormatError, write_pcap, write_pcapng
from producers.reassembly import FIN, RST, SYN, FragmentTable, SctpReassembler, TcpReassembler
from producers.sip_parser import parse_sip

A = socket.inet_aton("192.0.2.1")
B = socket.inet_aton("192.0.2.2")
A6 = socket.inet_pton(socket.AF_INET6, "2001:db8::a")
B6 = socket.inet_pton(socket.AF_INET6, "2001:db8::b")
ACK = 0x10
PSH_ACK = 0x18


def sip_message(n: int, body: bytes = b"") -> bytes:
    head = (
        f"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1;branch=z9hG4bK{n}\r\n"
        f"From: <sip:alice@example.com>;tag={n}\r\nTo: <sip:bob@example.com>\r\nCall-ID: call-{n}\r\n"
        f"CSeq: {n} INVITE\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


MSG1 = sip_message(1, b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\n")
MSG2 = sip_message(2)


# -- frame builders ------------------------------------------------------------------------------


def udp(payload: bytes, sport: int = 5060, dport: int = 5060) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(payload: bytes, seq: int, flags: int = PSH_ACK, sport: int = 40000, dport: int = 5060) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, 0, 5 << 4, flags, 65535, 0, 0) + payload


def ipv4(payload: bytes, proto: int = 17, src: bytes = A, dst: bytes = B, ident: int = 1, frag: int = 0) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, frag, 64, proto, 0, src, dst) + payload


def ipv6(payload: bytes, nh: int = 17, src: bytes = A6, dst: bytes = B6) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nh, 64, src, dst) + payload


def eth(payload: bytes, etype: int = 0x0800, tags: tuple[int, ...] = ()) -> bytes:
    """Ethernet with optional VLAN tags, outermost first (TPIDs such as 0x88a8, 0x8100)."""
    out = b"\x02" * 6 + b"\x04" * 6
    for tpid in tags:
        out += struct.pack("!HH", tpid, 10)
    return out + struct.pack("!H", etype) + payload


def ipv4_fragments(datagram: bytes, size: int, ident: int = 9) -> list[bytes]:
    """The IPv4 fragments (UDP 17) of a transport datagram, each carrying ``size`` bytes (multiple of 8)."""
    out = []
    for off in range(0, len(datagram), size):
        more = off + size < len(datagram)
        out.append(ipv4(datagram[off : off + size], ident=ident, frag=(0x2000 if more else 0) | (off >> 3)))
    return out


def capture(tmp_path: Path, frames: list, linktype: int = 1, name: str = "t.pcap") -> Path:
    """Write ``frames`` (bytes, or (ts, bytes)) as a pcap; timestamps default to 1 s apart."""
    path = tmp_path / name
    with path.open("wb") as f:
        write_pcap(f, [fr if isinstance(fr, tuple) else (1000.0 + i, fr) for i, fr in enumerate(frames)], linktype)
    return path


def read(path: Path, **options: object) -> tuple[list[Payload], Counters]:
    counters = Counters()
    return list(iter_payloads(path, counters, **options)), counters


# -- UDP, link layers, filtering -----------------------------------------------------------------


def test_udp_sip_with_its_metadata(tmp_path: Path) -> None:
    payloads, counters = read(capture(tmp_path, [(Decimal("1700000000.25"), eth(ipv4(udp(MSG1, 5070, 5060))))]))
    assert payloads == [Payload(1700000000.25, "192.0.2.1", 5070, "192.0.2.2", 5060, "udp", MSG1, 1)]
    assert counters["packets"] == 1 and counters["payloads_udp"] == 1


def test_vlan_and_qinq(tmp_path: Path) -> None:
    frames = [eth(ipv4(udp(MSG1)), tags=(0x8100,)), eth(ipv4(udp(MSG2)), tags=(0x88A8, 0x8100))]
    payloads, _ = read(capture(tmp_path, frames))
    assert [(p.data, p.src_ip, p.frame) for p in payloads] == [(MSG1, "192.0.2.1", 1), (MSG2, "192.0.2.1", 2)]


def test_ipv6_udp(tmp_path: Path) -> None:
    payloads, _ = read(capture(tmp_path, [eth(ipv6(udp(MSG1)), etype=0x86DD)]))
    assert [(p.src_ip, p.dst_ip, p.data) for p in payloads] == [("2001:db8::a", "2001:db8::b", MSG1)]


def test_filter_keeps_sip_ports_and_sip_looking_payloads(tmp_path: Path) -> None:
    rtp = b"\x80\x00\x00\x01" + b"\x00" * 168
    frames = [
        eth(ipv4(udp(rtp, 16384, 16386))),  # RTP: skipped
        eth(ipv4(udp(MSG1, 7000, 7001))),  # SIP on an odd port: kept, it looks like SIP
        eth(ipv4(udp(b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n", 7001, 7000))),  # a status line: kept
        eth(ipv4(udp(b"GET / HTTP/1.1\r\n\r\n", 40000, 8080))),  # HTTP: skipped
        eth(ipv4(udp(b"\r\n\r\n", 5060, 5060))),  # keep-alive
        eth(ipv4(udp(b"\x00\x01\x00\x00garbage", 5080, 5080))),  # junk on a SIP port: the parser decides
    ]
    payloads, counters = read(capture(tmp_path, frames))
    assert [p.frame for p in payloads] == [2, 3, 6]
    assert counters["not_sip"] == 2 and counters["keepalive"] == 1


def test_sip_only_false_keeps_every_datagram(tmp_path: Path) -> None:
    payloads, _ = read(capture(tmp_path, [eth(ipv4(udp(b"\x80rtp", 16384, 16386)))]), sip_only=False)
    assert [p.data for p in payloads] == [b"\x80rtp"]


def test_other_ports_can_be_configured(tmp_path: Path) -> None:
    path = capture(tmp_path, [eth(ipv4(udp(b"\x80junk", 6060, 6060)))])
    assert read(path)[0] == []
    assert [p.frame for p in read(path, ports={6060})[0]] == [1]


def test_looks_like_sip() -> None:
    assert looks_like_sip(MSG1) and looks_like_sip(b"SIP/2.0 180 Ringing\r\n")
    assert looks_like_sip(b"MESSAGE sip:x SIP/2.0\n")
    assert not looks_like_sip(b"GET / HTTP/1.1\r\n") and not looks_like_sip(b"") and not looks_like_sip(b"\x80\x08")
    assert not looks_like_sip(b"INVITE sip:x SIP/2.0")  # no line end yet
    assert not looks_like_sip(b"invite sip:x SIP/2.0\r\n")


def test_unsupported_linktype_and_bad_packets_are_counted_not_raised(tmp_path: Path) -> None:
    payloads, counters = read(capture(tmp_path, [b"\x00" * 40, b"\x01" * 10], linktype=147))
    assert payloads == [] and counters["unsupported_linktype"] == 2


def test_truncated_packet(tmp_path: Path) -> None:
    cut = eth(ipv4(udp(MSG1)))[:80]  # snaplen 80: the IP total length says more
    payloads, counters = read(capture(tmp_path, [cut, eth(ipv4(udp(MSG2)))]))
    assert [p.data for p in payloads] == [MSG2]
    assert counters["truncated_packet"] == 1


def test_truncated_file(tmp_path: Path) -> None:
    path = capture(tmp_path, [eth(ipv4(udp(MSG1))), eth(ipv4(udp(MSG2)))])
    path.write_bytes(path.read_bytes()[:-25])
    payloads, counters = read(path)
    assert [p.data for p in payloads] == [MSG1]
    assert counters["truncated_file"] == 1 and counters["packets"] == 1


def test_not_a_capture(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"hello, this is text\n" * 3)
    with pytest.raises(CaptureFormatError):
        list(iter_payloads(path))


def test_pcapng_nanosecond_if_tsresol(tmp_path: Path) -> None:
    path = tmp_path / "ns.pcapng"
    with path.open("wb") as f:
        frames = [
            (Decimal("1700000000.123456789"), eth(ipv4(udp(MSG1))), 0),
            (Decimal("1700000000.5"), ipv4(udp(MSG2)), 1),
        ]
        write_pcapng(f, frames, interfaces=((1, 9), (101, 6)))
    payloads, counters = read(path)
    assert [p.data for p in payloads] == [MSG1, MSG2]
    assert payloads[0].ts == pytest.approx(1700000000.123456789, abs=3e-7)
    assert payloads[1].ts == 1700000000.5
    assert not counters["truncated_file"]


def test_file_object_input() -> None:
    buf = io.BytesIO()
    write_pcap(buf, [(1.0, ipv4(udp(MSG1)))], linktype=101)
    buf.seek(0)
    assert [p.data for p in iter_payloads(buf)] == [MSG1]


# -- IP fragments --------------------------------------------------------------------------------


def test_ipv4_fragments_out_of_order(tmp_path: Path) -> None:
    big = sip_message(7, b"x" * 1800)
    first, middle, last = ipv4_fragments(udp(big), 800)
    frames = [eth(last), eth(ipv4(udp(MSG2))), eth(first), eth(middle)]
    payloads, counters = read(capture(tmp_path, frames))
    assert [(p.data, p.frame) for p in payloads] == [(MSG2, 2), (big, 4)]
    assert payloads[1].ts == 1003.0  # the time of the fragment that completed the datagram
    assert not counters["fragment_timeout"] and not counters["fragment_incomplete"]


def test_ipv4_duplicate_and_overlapping_fragments(tmp_path: Path) -> None:
    datagram = udp(sip_message(8, b"y" * 1000))
    frags = ipv4_fragments(datagram, 512)
    overlap = ipv4(datagram[256:768], ident=9, frag=0x2000 | (256 >> 3))
    payloads, _ = read(capture(tmp_path, [eth(frags[0]), eth(frags[0]), eth(overlap), *map(eth, frags[1:])]))
    assert [p.data for p in payloads] == [datagram[8:]]


def test_ipv6_fragments(tmp_path: Path) -> None:
    big = sip_message(9, b"z" * 1500)
    datagram = udp(big)
    frames = []
    for off in range(0, len(datagram), 1024):
        more = off + 1024 < len(datagram)
        header = struct.pack("!BBHI", 17, 0, off | int(more), 0x1234)
        frames.append(eth(ipv6(header + datagram[off : off + 1024], nh=44), etype=0x86DD))
    payloads, _ = read(capture(tmp_path, list(reversed(frames))))
    assert [(p.data, p.src_ip) for p in payloads] == [(big, "2001:db8::a")]


def test_fragment_timeout_and_leftovers(tmp_path: Path) -> None:
    first = ipv4_fragments(udp(sip_message(3, b"q" * 1000)), 512)[0]
    frames = [(100.0, eth(first)), (200.0, eth(ipv4(udp(MSG2)))), (201.0, eth(ipv4(b"zz" * 8, ident=5, frag=0x2000)))]
    payloads, counters = read(capture(tmp_path, frames))
    assert [p.data for p in payloads] == [MSG2]
    assert counters["fragment_timeout"] == 1  # the first, 100 s old when the second packet came
    assert counters["fragment_incomplete"] == 1  # the last, still waiting at the end of the file


# -- TCP -----------------------------------------------------------------------------------------


def handshake(isn_a: int = 1000, isn_b: int = 5000) -> list[bytes]:
    return [
        eth(ipv4(tcp(b"", isn_a, SYN), proto=6)),
        eth(ipv4(tcp(b"", isn_b, SYN | ACK, 5060, 40000), proto=6, src=B, dst=A)),
        eth(ipv4(tcp(b"", isn_a + 1, ACK), proto=6)),
    ]


def seg(payload: bytes, seq: int, flags: int = PSH_ACK) -> bytes:
    return eth(ipv4(tcp(payload, seq, flags), proto=6))


def test_tcp_two_messages_in_one_segment(tmp_path: Path) -> None:
    payloads, counters = read(capture(tmp_path, [*handshake(), seg(MSG1 + MSG2, 1001)]))
    assert [(p.data, p.frame, p.transport, p.src_port, p.dst_port) for p in payloads] == [
        (MSG1, 4, "tcp", 40000, 5060),
        (MSG2, 4, "tcp", 40000, 5060),
    ]
    assert counters["tcp_control"] == 3


def test_tcp_one_message_in_three_segments(tmp_path: Path) -> None:
    a, b, c = MSG1[:50], MSG1[50:120], MSG1[120:]
    frames = [*handshake(), seg(a, 1001), seg(b, 1001 + len(a)), seg(c, 1001 + len(a) + len(b))]
    payloads, _ = read(capture(tmp_path, frames))
    assert [(p.data, p.frame, p.ts) for p in payloads] == [(MSG1, 6, 1005.0)]


def test_tcp_out_of_order_and_retransmission(tmp_path: Path) -> None:
    stream = MSG1 + MSG2
    cuts = [0, 60, 130, len(MSG1) + 10, len(stream)]
    parts = [(1001 + cuts[i], stream[cuts[i] : cuts[i + 1]]) for i in range(4)]
    order = [parts[0], parts[2], parts[0], parts[3], parts[1], parts[1], parts[3]]
    payloads, counters = read(capture(tmp_path, [*handshake(), *(seg(data, seq) for seq, data in order)]))
    assert [p.data for p in payloads] == [MSG1, MSG2]
    assert payloads[0].frame == 8  # the segment that filled the hole
    assert counters["tcp_out_of_order"] == 2
    assert counters["tcp_retransmission"] == 3


def test_tcp_partial_overlap_is_trimmed(tmp_path: Path) -> None:
    frames = [*handshake(), seg(MSG1[:100], 1001), seg(MSG1[50:], 1051)]
    assert [p.data for p in read(capture(tmp_path, frames))[0]] == [MSG1]


def test_tcp_sequence_number_wraps(tmp_path: Path) -> None:
    isn = 0xFFFFFFFF - 40
    frames = [*handshake(isn), seg(MSG1[:100], isn + 1), seg(MSG1[100:], isn + 101)]
    assert [p.data for p in read(capture(tmp_path, frames))[0]] == [MSG1]


def test_tcp_both_directions(tmp_path: Path) -> None:
    reply = b"SIP/2.0 100 Trying\r\nCall-ID: call-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    back = eth(ipv4(tcp(reply, 5001, PSH_ACK, 5060, 40000), proto=6, src=B, dst=A))
    payloads, _ = read(capture(tmp_path, [*handshake(), seg(MSG1, 1001), back]))
    assert [(p.data, p.src_ip, p.src_port) for p in payloads] == [
        (MSG1, "192.0.2.1", 40000),
        (reply, "192.0.2.2", 5060),
    ]


def test_tcp_capture_started_mid_message(tmp_path: Path) -> None:
    frames = [seg(MSG1[40:], 7000), seg(MSG2, 7000 + len(MSG1) - 40)]
    payloads, counters = read(capture(tmp_path, frames))
    assert [p.data for p in payloads] == [MSG2]
    assert counters["tcp_garbage"] == 1


def test_tcp_hole_that_never_fills_is_skipped_at_fin(tmp_path: Path) -> None:
    a, b = MSG1[:100], MSG1[100:]
    frames = [*handshake(), seg(a, 1001), seg(MSG2, 1001 + len(MSG1), PSH_ACK | FIN)]  # b never captured
    payloads, counters = read(capture(tmp_path, frames))
    assert [p.data for p in payloads] == [MSG2]
    assert counters["tcp_gap"] == 1
    assert len(b) > 0


def test_tcp_incomplete_message_at_the_end(tmp_path: Path) -> None:
    payloads, counters = read(capture(tmp_path, [*handshake(), seg(MSG1 + MSG2[:30], 1001)]))
    assert [p.data for p in payloads] == [MSG1]
    assert counters["tcp_incomplete_message"] == 1


def test_tcp_rst_ends_the_stream(tmp_path: Path) -> None:
    frames = [*handshake(), seg(MSG1 + MSG2[:30], 1001), seg(b"", 1001 + len(MSG1) + 30, RST), seg(MSG2, 90000)]
    source = PcapSource(capture(tmp_path, frames))
    payloads = iter(source)
    assert next(payloads).data == MSG1
    assert next(payloads).data == MSG2  # the same 4-tuple after the RST: a new stream
    assert source.counters["tcp_incomplete_message"] == 1  # counted at the RST, not at the end
    assert list(payloads) == []


def test_tls_on_5061_is_counted(tmp_path: Path) -> None:
    record = b"\x17\x03\x03\x00\x20" + b"\xaa" * 32
    frames = [
        eth(ipv4(tcp(record, 1, PSH_ACK, 50000, 5061), proto=6)),
        eth(ipv4(tcp(record, 38, PSH_ACK, 50000, 5061), proto=6)),
    ]
    mid_record = eth(ipv4(tcp(b"\xbb" * 40, 9, PSH_ACK, 5061, 50001), proto=6, src=B, dst=A))
    payloads, counters = read(capture(tmp_path, [*frames, mid_record]))
    assert payloads == [] and counters["tls_undecryptable"] == 3


def test_http_stream_is_skipped_cheaply(tmp_path: Path) -> None:
    get = b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n"
    frames = [
        eth(ipv4(tcp(get, 1, PSH_ACK, 40000, 80), proto=6)),
        eth(ipv4(tcp(b"more", 1 + len(get), PSH_ACK, 40000, 80), proto=6)),
    ]
    payloads, counters = read(capture(tmp_path, frames))
    assert payloads == [] and counters["not_sip"] == 2


def test_sip_over_tcp_on_an_odd_port_is_followed(tmp_path: Path) -> None:
    frames = [
        eth(ipv4(tcp(MSG1[:90], 1, PSH_ACK, 40000, 7777), proto=6)),
        eth(ipv4(tcp(MSG1[90:], 91, PSH_ACK, 40000, 7777), proto=6)),
    ]
    assert [p.data for p in read(capture(tmp_path, frames))[0]] == [MSG1]


def ws_frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes = b"") -> bytes:
    head = bytes([(0x80 if fin else 0) | opcode])
    bit = 0x80 if mask else 0
    if len(payload) < 126:
        head += bytes([bit | len(payload)])
    elif len(payload) < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", len(payload))
    if mask:
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return head + mask + payload


def test_sip_over_websocket(tmp_path: Path) -> None:
    upgrade = (
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
    )
    stream = upgrade + ws_frame(1, MSG1, mask=b"\x01\x02\x03\x04") + ws_frame(9, b"")  # masked text, ping
    stream += ws_frame(1, MSG2[:50], fin=False) + ws_frame(0, MSG2[50:])  # a fragmented message
    stream += ws_frame(2, bytes(70000))  # a binary non-SIP message, 64-bit length
    frames = [
        eth(ipv4(tcp(stream[i : i + 1400], 1 + i, PSH_ACK, 40000, 8080), proto=6)) for i in range(0, len(stream), 1400)
    ]
    payloads, counters = read(capture(tmp_path, frames))
    assert [(p.data, p.transport) for p in payloads] == [(MSG1, "ws"), (MSG2, "ws")]
    assert counters["payloads_ws"] == 2 and counters["not_sip"] == 1


# -- SCTP ----------------------------------------------------------------------------------------


def sctp_packet(*chunks: tuple[int, int, bytes]) -> bytes:
    body = b""
    for flags, tsn, data in chunks:
        length = 16 + len(data)
        body += struct.pack("!BBHIHHI", 0, flags, length, tsn, 0, 0, 3) + data + b"\0" * (-length % 4)
    return eth(ipv4(struct.pack("!HHII", 5060, 5060, 7, 0) + body, proto=132))


def test_sctp_data_chunks_and_fragmented_user_message(tmp_path: Path) -> None:
    frames = [
        sctp_packet((3, 1, MSG1), (3, 2, MSG2)),
        sctp_packet((2, 3, MSG1[:70])),
        sctp_packet((0, 4, MSG1[70:100])),
        sctp_packet((1, 5, MSG1[100:])),
    ]
    payloads, _counters = read(capture(tmp_path, frames))
    assert [(p.data, p.transport, p.frame) for p in payloads] == [
        (MSG1, "sctp", 1),
        (MSG2, "sctp", 1),
        (MSG1, "sctp", 4),
    ]
    init = eth(ipv4(struct.pack("!HHII", 5060, 5060, 0, 0) + struct.pack("!BBH", 1, 0, 4), proto=132))
    assert read(capture(tmp_path, [init]))[1]["sctp_no_data"] == 1


# -- robustness ----------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(frames=st.lists(st.binary(max_size=120), max_size=6), linktype=st.sampled_from([1, 101, 113, 276, 0]))
def test_random_frames_never_raise(frames: list[bytes], linktype: int) -> None:
    buf = io.BytesIO()
    write_pcap(buf, [(float(i), f) for i, f in enumerate(frames)], linktype)
    buf.seek(0)
    counters = Counters()
    for payload in iter_payloads(buf, counters, sip_only=False):
        assert isinstance(payload.data, bytes)
    assert counters["packets"] == len(frames)


@settings(max_examples=80, deadline=None)
@given(order=st.permutations(range(6)), dup=st.integers(0, 5), isn=st.sampled_from([1000, 0xFFFFFFFF - 150]))
def test_tcp_any_segment_order_gives_the_messages_once(order: list[int], dup: int, isn: int) -> None:
    """Any arrival order plus a retransmission, also across the 2^32 sequence number wrap."""
    stream = MSG1 + MSG2
    size = -(-len(stream) // 6)
    parts = [(isn + 1 + i * size, stream[i * size : (i + 1) * size]) for i in range(6)]
    sequence = [parts[i] for i in order] + [parts[dup]]
    buf = io.BytesIO()
    frames = [*handshake(isn), *(seg(d, s) for s, d in sequence)]
    write_pcap(buf, [(float(i), fr) for i, fr in enumerate(frames)])
    buf.seek(0)
    assert [p.data for p in iter_payloads(buf)] == [MSG1, MSG2]


def test_payloads_parse() -> None:
    assert parse_sip(MSG1).call_id == "call-1"  # the fixtures above are valid SIP


# -- the reassembly tables alone -----------------------------------------------------------------


def test_fragment_table_is_bounded() -> None:
    counters: Counters = Counters()
    table = FragmentTable(counters, max_datagrams=2)
    for ident in range(3):
        assert table.add(0.0, (ident,), 0, 1, b"x" * 8) is None
    assert len(table) == 2 and counters["fragment_table_full"] == 1
    assert table.add(0.0, (9,), 65528, 0, b"x" * 16) is None
    assert counters["fragment_too_large"] == 1


def test_tcp_reassembler_bounds() -> None:
    counters: Counters = Counters()
    tcp = TcpReassembler(counters, max_streams=2, max_buffer=100, max_pending=50)
    for port in range(3):
        tcp.segment(0.0, (port,), 0, SYN, b"")
    assert len(tcp) == 2 and counters["tcp_stream_evicted"] == 1
    st = tcp.segment(0.0, (2,), 1, ACK, b"a" * 80)
    assert st is not None and len(st.buf) == 80
    tcp.segment(0.0, (2,), 81, ACK, b"b" * 40)
    assert counters["tcp_buffer_overflow"] == 1 and st.gap and bytes(st.buf) == b"b" * 40
    tcp.segment(0.0, (2,), 200, ACK, b"c" * 60)  # beyond a hole, more than max_pending: hole skipped
    assert counters["tcp_gap"] == 1 and bytes(st.buf) == b"c" * 60


def test_tcp_reassembler_timeout() -> None:
    counters: Counters = Counters()
    tcp = TcpReassembler(counters, timeout=10.0)
    tcp.segment(0.0, ("a",), 0, SYN, b"")
    tcp.segment(5.0, ("b",), 0, SYN, b"")
    assert [st.key for st in tcp.expire(12.0)] == [("a",)]
    assert counters["tcp_stream_timeout"] == 1 and len(tcp) == 1


def test_sctp_reassembler() -> None:
    counters: Counters = Counters()
    sctp = SctpReassembler(counters)
    assert sctp.chunk("k", 2, 10, b"ab") is None
    assert sctp.chunk("k", 0, 10, b"ab") is None  # retransmitted TSN
    assert sctp.chunk("k", 1, 11, b"cd") == b"abcd"
    assert sctp.chunk("k", 1, 12, b"ef") is None  # an end without a beginning
    assert counters["sctp_retransmission"] == 1 and counters["sctp_fragment_incomplete"] == 1


def test_websocket_message_over_the_limit_gives_the_stream_up(tmp_path: Path) -> None:
    upgrade = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
    huge = bytes([0x81, 127]) + struct.pack("!Q", 1 << 40) + b"x" * 100
    frames = [eth(ipv4(tcp(upgrade + huge, 1, PSH_ACK, 40000, 8080), proto=6))]
    frames.append(eth(ipv4(tcp(b"y" * 50, 1 + len(upgrade + huge), PSH_ACK, 40000, 8080), proto=6)))
    payloads, counters = read(capture(tmp_path, frames))
    assert payloads == [] and counters["ws_message_too_large"] == 2
