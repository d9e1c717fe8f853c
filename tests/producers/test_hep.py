"""HEP codec (producers.hep) and collector (producers.hep_collector): real captures, properties, bad input."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import shutil
import socket
import struct
import subprocess
import zlib
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from producers.hep import (
    MAX_PAYLOAD,
    HepDecodeError,
    HepPacket,
    decode_hep,
    encode_hep3,
    split_hep_stream,
)
from producers.hep_collector import HepCollector, parse_listen, transport_of
from producers.sinks import JsonlSink, MemorySink
from sipscope import records
from sipscope.records import Rejected, SipMessage

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"
PCAPS = SHARED / "pcaps"
INVITE_CAPTURE = "hep3-sip-invite-407-options-publish.pcap"
COMPRESSED_CAPTURE = "hep3-compressed-register-401-200.pcapng"

SIP_INVITE = (
    b"INVITE sip:0289707501@example.net SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: \"Alice\" <sip:alice@example.net>;tag=a1\r\n"
    b"To: <sip:0289707501@example.net>\r\n"
    b"Call-ID: hep-test-1@10.0.0.1\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.1:5060>\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def sip_packet(**kw) -> HepPacket:
    base = dict(src_ip="10.0.0.1", dst_ip="10.0.0.2", src_port=5060, dst_port=5060, ts=1_700_000_000.25,
                capture_id=7, payload=SIP_INVITE)
    return HepPacket(**(base | kw))


def first_word(payload: bytes) -> str:
    """INVITE / 100 / REGISTER... from a SIP start line."""
    words = payload.split(b"\n", 1)[0].split()
    return words[1].decode() if words[0] == b"SIP/2.0" else words[0].decode()


def message_key(m: SipMessage) -> str:
    return m.method if m.is_request else str(m.status_code)


@lru_cache(maxsize=None)
def capture_payloads(name: str) -> tuple[bytes, ...]:
    """UDP payloads of a shared capture, via tshark (skips when tshark or the captures are absent)."""
    path = PCAPS / name
    if not path.is_file():
        pytest.skip(f"{PCAPS} is absent (third-party captures live outside the project)")
    if not shutil.which("tshark"):
        pytest.skip("tshark is not installed")
    out = subprocess.run(
        ["tshark", "-r", str(path), "-T", "fields", "-e", "udp.payload"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    return tuple(bytes.fromhex(line.replace(":", "")) for line in out.split())


# -- real captures ----------------------------------------------------------------------------------


@pytest.mark.shared
def test_decode_invite_capture():
    packets = [decode_hep(p) for p in capture_payloads(INVITE_CAPTURE)]
    assert len(packets) == 8
    assert Counter(p.proto_type for p in packets) == {1: 6, 100: 1, 5: 1}
    sip = [first_word(p.payload) for p in packets if p.proto_type == 1]
    assert sip == ["INVITE", "100", "407", "OPTIONS", "200", "PUBLISH"]
    for p in packets:
        assert (p.version, p.family, p.ip_proto, p.capture_id, p.auth_key) == (3, 2, 17, 2001, "myHep")
        assert p.correlation_id == "qgf3dm9rudi@127.0.0.1"
        assert {p.src_ip, p.dst_ip} == {"192.168.1.1", "192.168.1.2"}
        assert p.unknown_chunks == [] and p.node_name is None and p.vlan is None
    invite = packets[0]
    where = (invite.src_ip, invite.src_port, invite.dst_ip, invite.dst_port)
    assert where == ("192.168.1.1", 5060, "192.168.1.2", 5060)
    assert invite.ts == pytest.approx(1481455196.0001)
    assert [p.ts for p in packets] == sorted(p.ts for p in packets)
    assert packets[-1].payload.startswith(b'{"sender_information"')  # type 5: RTCP as JSON


@pytest.mark.shared
def test_decode_compressed_capture():
    packets = [decode_hep(p) for p in capture_payloads(COMPRESSED_CAPTURE)]
    assert len(packets) == 21
    assert Counter(first_word(p.payload) for p in packets) == {"REGISTER": 12, "401": 6, "200": 3}
    assert {(p.ip_proto, p.capture_id, p.auth_key, p.proto_type) for p in packets} == {(6, 228, "myHep", 1)}
    assert all(b"Call-ID:" in p.payload or b"i:" in p.payload for p in packets)
    assert packets[0].ts == pytest.approx(1502941090.307169)


@pytest.mark.shared
@pytest.mark.parametrize("name", [INVITE_CAPTURE, COMPRESSED_CAPTURE])
def test_real_packets_reencode(name):
    for raw in capture_payloads(name):
        packet = decode_hep(raw)
        assert decode_hep(encode_hep3(packet)) == packet
        assert decode_hep(encode_hep3(packet, compress=True)) == packet


@pytest.mark.shared
def test_collector_on_invite_capture():
    sink = MemorySink()
    collector = HepCollector(sink, auth_key="myHep")
    for raw in capture_payloads(INVITE_CAPTURE):
        collector.handle_datagram(raw)
    # hepgen.js wrote the INVITE and PUBLISH bodies with LF line ends but a Content-Length counted with
    # CRLF, so whether those two become records is the SIP parser's call; either way each of the six SIP
    # payloads ends up exactly once, as a record or as a named rejection, and nothing else does.
    payloads = [p.payload for p in map(decode_hep, capture_payloads(INVITE_CAPTURE)) if p.proto_type == 1]
    published = [m.raw.encode() for m in sink.messages]
    rejected = {base64.b64decode(r.raw_b64): r for r in sink.rejected}
    assert len(published) + len(rejected) == 6
    assert published == [p for p in payloads if p not in rejected]
    assert {"100", "407", "OPTIONS", "200"} <= {first_word(p) for p in published}
    assert all(r.stage == "hep" and r.reason and r.node == "2001" and r.ts for r in rejected.values())
    assert collector.stats.packets == 8 and collector.stats.sip_messages == len(sink.messages)
    assert collector.stats.skipped == {100: 1, 5: 1}
    trying = next(m for m in sink.messages if m.status_code == 100)
    assert (trying.transport, trying.node, trying.correlation_id) == ("udp", "2001", "qgf3dm9rudi@127.0.0.1")
    where = (trying.src_ip, trying.src_port, trying.dst_ip, trying.dst_port)
    assert where == ("192.168.1.2", 5060, "192.168.1.1", 5060)
    assert trying.ts == pytest.approx(1481455196.000325)


@pytest.mark.shared
def test_collector_on_compressed_capture():
    sink = MemorySink()
    collector = HepCollector(sink)
    for raw in capture_payloads(COMPRESSED_CAPTURE):
        collector.handle_datagram(raw)
    assert Counter(message_key(m) for m in sink.messages) == {"REGISTER": 12, "401": 6, "200": 3}
    assert {(m.transport, m.node) for m in sink.messages} == {("tcp", "228")}
    assert len({m.call_id for m in sink.messages}) == 1
    assert sink.rejected == []


@pytest.mark.shared
def test_wrong_auth_key_rejects_everything():
    sink = MemorySink()
    collector = HepCollector(sink, auth_key="not-myHep")
    before = REGISTRY.get_sample_value("sipscope_rejected_total", {"source": "hep", "reason": "hep_auth_failed"}) or 0
    for raw in capture_payloads(INVITE_CAPTURE):
        collector.handle_datagram(raw)
    assert sink.messages == []
    assert [r.reason for r in sink.rejected] == ["hep_auth_failed"] * 8
    assert collector.stats.rejected == {"hep_auth_failed": 8}
    after = REGISTRY.get_sample_value("sipscope_rejected_total", {"source": "hep", "reason": "hep_auth_failed"})
    assert after - before == 8
    rej = sink.rejected[0]
    assert (rej.stage, rej.node, rej.src_ip, rej.detail) == ("hep", "2001", "192.168.1.1", "auth key mismatch")
    assert base64.b64decode(rej.raw_b64) == capture_payloads(INVITE_CAPTURE)[0]


# -- round trip and robustness properties -----------------------------------------------------------

_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=40)
_ip = st.one_of(st.just(""), st.ip_addresses().map(str))
_u8, _u16, _u32 = (st.integers(0, 2**n - 1) for n in (8, 16, 32))
_unknown_chunk = st.tuples(_u16, _u16, st.binary(max_size=40)).filter(lambda c: c[0] != 0 or not 1 <= c[1] <= 19)


@st.composite
def hep_packets(draw) -> HepPacket:
    return HepPacket(
        version=3,
        family=draw(st.sampled_from([2, 10]) | _u8),
        ip_proto=draw(st.sampled_from([6, 17, 132]) | _u8),
        src_ip=draw(_ip),
        dst_ip=draw(_ip),
        src_port=draw(_u16),
        dst_port=draw(_u16),
        ts=draw(_u32) + draw(st.integers(0, 999_999)) / 1_000_000,
        proto_type=draw(_u8),
        capture_id=draw(_u32),
        auth_key=draw(st.none() | _text),
        payload=draw(st.just(SIP_INVITE) | st.binary(max_size=3000)),
        correlation_id=draw(st.none() | _text),
        vlan=draw(st.none() | _u16),
        node_name=draw(st.none() | _text),
        keepalive=draw(st.none() | _u16),
        unknown_chunks=draw(st.lists(_unknown_chunk, max_size=4)),
    )


@given(hep_packets(), st.booleans())
def test_encode_decode_identity(packet, compress):
    assert decode_hep(encode_hep3(packet, compress=compress)) == packet


def _decode_or_named_error(data: bytes) -> None:
    try:
        packet = decode_hep(data)
    except HepDecodeError as exc:
        assert exc.reason and exc.reason == exc.reason.lower() and " " not in exc.reason
    else:
        assert isinstance(packet, HepPacket)


@given(st.binary(max_size=400))
def test_decode_arbitrary_bytes(data):
    _decode_or_named_error(data)


@given(st.sampled_from([b"HEP3", b"\x01", b"\x02"]), st.binary(max_size=400), st.booleans())
def test_decode_arbitrary_bytes_with_hep_prefix(prefix, rest, fix_length):
    data = prefix + rest
    if prefix == b"HEP3" and fix_length and len(data) >= 6:
        data = data[:4] + len(data).to_bytes(2, "big") + data[6:]
    _decode_or_named_error(data)


_mutations = st.lists(
    st.tuples(st.sampled_from(["set", "insert", "delete"]), st.integers(0, 10_000), _u8), min_size=1, max_size=6
)


def _mutate(data: bytes, mutations, truncate: int | None) -> bytes:
    buf = bytearray(data)
    for op, pos, value in mutations:
        i = pos % (len(buf) + 1)
        if op == "insert":
            buf.insert(i, value)
        elif buf and i < len(buf):
            if op == "set":
                buf[i] = value
            else:
                del buf[i]
    return bytes(buf[:truncate] if truncate is not None else buf)


@given(hep_packets(), st.booleans(), _mutations, st.none() | st.integers(0, 400))
def test_decode_mutated_synthetic_packets(packet, compress, mutations, truncate):
    _decode_or_named_error(_mutate(encode_hep3(packet, compress=compress), mutations, truncate))


@pytest.fixture(scope="module")
def real_packets() -> tuple[bytes, ...]:
    return capture_payloads(INVITE_CAPTURE) + capture_payloads(COMPRESSED_CAPTURE)


@pytest.mark.shared
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), mutations=_mutations, truncate=st.none() | st.integers(0, 1000))
def test_decode_mutated_real_packets(real_packets, data, mutations, truncate):
    raw = data.draw(st.sampled_from(real_packets))
    _decode_or_named_error(_mutate(raw, mutations, truncate))


_garbage = st.binary(max_size=30).map(lambda b: b.replace(b"H", b"h"))


@given(st.lists(st.tuples(_garbage, hep_packets()), max_size=5), st.lists(st.integers(1, 300), max_size=20))
def test_split_stream_recovers_packets_around_garbage(items, cuts):
    stream = b"".join(g + encode_hep3(p) for g, p in items)
    expected = [encode_hep3(p) for _, p in items]
    whole = split_hep_stream(stream)
    assert whole.packets == expected
    assert whole.skipped == sum(len(g) for g, _ in items)
    assert whole.consumed == len(stream)
    # the same stream in arbitrary pieces, as TCP delivers it
    buf, got, skipped, pos = bytearray(), [], 0, 0
    for size in [*cuts, len(stream)]:
        buf += stream[pos : pos + size]
        pos += size
        split = split_hep_stream(buf)
        del buf[: split.consumed]
        got += split.packets
        skipped += split.skipped
    assert got == expected and skipped == whole.skipped and not buf


def test_split_stream_edge_cases():
    pkt = encode_hep3(sip_packet())
    assert split_hep_stream(b"") == ([], 0, 0)
    assert split_hep_stream(pkt[:5]) == ([], 0, 0)  # header incomplete: wait
    assert split_hep_stream(pkt[:-1]) == ([], 0, 0)  # body incomplete: wait
    assert split_hep_stream(b"xxHE") == ([], 2, 2)  # keeps a possible start of "HEP3"
    assert split_hep_stream(b"HEP3\x00\x02" + pkt) == ([pkt], 6 + len(pkt), 6)  # impossible length: resync
    assert split_hep_stream(b"HEP3\x00\x00HEP3") == ([], 6, 6)


# -- bad input ---------------------------------------------------------------------------------------


def _reason(data: bytes) -> str:
    with pytest.raises(HepDecodeError) as info:
        decode_hep(data)
    return info.value.reason


def _chunk(ctype: int, value: bytes, vendor: int = 0, length: int | None = None) -> bytes:
    return struct.pack("!HHH", vendor, ctype, 6 + len(value) if length is None else length) + value


def _hep3(*chunks: bytes, length: int | None = None) -> bytes:
    body = b"".join(chunks)
    return b"HEP3" + (6 + len(body) if length is None else length).to_bytes(2, "big") + body


def test_unknown_and_vendor_chunks_are_skipped_and_listed():
    base = encode_hep3(sip_packet())
    body = base[6:]
    boundary = 7 + 7 + 10 + 10  # after the family, protocol and two IPv4 chunks
    data = _hep3(_chunk(99, b"future"), body[:boundary], _chunk(3, b"\x01\x02\x03\x04", vendor=0x1234), body[boundary:])
    packet = decode_hep(data)
    assert packet.unknown_chunks == [(0, 99, b"future"), (0x1234, 3, b"\x01\x02\x03\x04")]
    assert packet.src_ip == "10.0.0.1" and packet.payload == SIP_INVITE  # vendor chunk 3 is not an address


def test_length_that_lies():
    good = encode_hep3(sip_packet())
    too_long = good[:4] + (len(good) + 10).to_bytes(2, "big") + good[6:]
    too_short = good[:4] + (len(good) - 10).to_bytes(2, "big") + good[6:]
    assert _reason(too_long) == "hep_bad_length"
    assert _reason(too_short) == "hep_bad_length"
    assert _reason(good[:4] + b"\x00\x03" + good[6:]) == "hep_bad_length"
    assert _reason(good[:-1]) == "hep_bad_length"  # datagram cut: header length no longer matches


def test_truncated_and_lying_chunks():
    assert _reason(b"HEP3\x00") == "hep_truncated"
    assert _reason(b"HEP") == "hep_truncated"
    assert _reason(_hep3(_chunk(15, SIP_INVITE), b"\x00\x00\x00")) == "hep_truncated"  # half a chunk header
    assert _reason(_hep3(_chunk(15, SIP_INVITE, length=len(SIP_INVITE) + 20))) == "hep_bad_chunk_length"
    assert _reason(_hep3(_chunk(15, SIP_INVITE, length=3))) == "hep_bad_chunk_length"
    assert _reason(_hep3(_chunk(3, b"\x0a\x00\x00"), _chunk(15, SIP_INVITE))) == "hep_bad_chunk_length"
    assert _reason(_hep3(_chunk(7, b"\x13\xc4\x00"), _chunk(15, SIP_INVITE))) == "hep_bad_chunk_length"


def test_payload_chunks():
    assert _reason(_hep3(_chunk(1, b"\x02"), _chunk(3, bytes(4)))) == "hep_missing_payload"
    keepalive = decode_hep(_hep3(_chunk(12, (5).to_bytes(4, "big")), _chunk(13, (30).to_bytes(2, "big"))))
    assert (keepalive.keepalive, keepalive.payload, keepalive.capture_id) == (30, b"", 5)
    assert decode_hep(_hep3(_chunk(16, gzip.compress(SIP_INVITE)))).payload == SIP_INVITE
    raw_deflate = zlib.compressobj(wbits=-15)
    deflated = raw_deflate.compress(SIP_INVITE) + raw_deflate.flush()
    assert decode_hep(_hep3(_chunk(16, deflated))).payload == SIP_INVITE
    assert _reason(_hep3(_chunk(16, b"not compressed at all"))) == "hep_bad_compressed_payload"
    assert _reason(_hep3(_chunk(16, zlib.compress(SIP_INVITE)[:-6]))) == "hep_bad_compressed_payload"
    assert _reason(_hep3(_chunk(16, zlib.compress(bytes(MAX_PAYLOAD + 1))))) == "hep_bad_compressed_payload"


def test_not_hep():
    for data in (b"", b"GET / HTTP/1.1\r\n\r\n", SIP_INVITE, b"\x03" + bytes(40), b"HEP2\x00\x06"):
        assert _reason(data) == "not_hep"


def _hep12(version: int, payload: bytes, *, family=2, src="10.0.0.1", dst="10.0.0.2", ts=(1_700_000_000, 250_000)):
    """A HEPv1/v2 packet laid out as Kamailio's siptrace writes it (struct hep_hdr, hep_iphdr, hep_timehdr)."""
    af = socket.AF_INET6 if ":" in src else socket.AF_INET
    addrs = socket.inet_pton(af, src) + socket.inet_pton(af, dst)
    hdr = struct.pack("!BBBBHH", version, 8 + len(addrs), family, 17, 5060, 5080)
    time_hdr = struct.pack("<IIHxx", ts[0], ts[1], 4242) if version == 2 else b""
    return hdr + addrs + time_hdr + payload


def test_hep_v1_and_v2():
    v2 = decode_hep(_hep12(2, SIP_INVITE))
    assert (v2.version, v2.family, v2.ip_proto, v2.src_ip, v2.src_port, v2.dst_ip, v2.dst_port) == (
        2, 2, 17, "10.0.0.1", 5060, "10.0.0.2", 5080)
    assert (v2.ts, v2.capture_id, v2.proto_type, v2.payload) == (1_700_000_000.25, 4242, 1, SIP_INVITE)
    v1 = decode_hep(_hep12(1, SIP_INVITE, family=10, src="2001:db8::1", dst="::1"))
    assert (v1.version, v1.family, v1.src_ip, v1.dst_ip, v1.ts) == (1, 10, "2001:db8::1", "::1", 0.0)
    assert v1.payload == SIP_INVITE
    assert _reason(_hep12(2, SIP_INVITE, family=7)) == "hep_bad_family"
    assert _reason(_hep12(2, SIP_INVITE)[:20]) == "hep_truncated"
    assert _reason(b"\x02\x10") == "hep_truncated"
    assert _reason(_hep12(1, b"")) == "hep_missing_payload"


# -- collector ---------------------------------------------------------------------------------------


def test_transport_and_listen_helpers():
    assert transport_of(17, 5060, 5060) == "udp"
    assert transport_of(6, 40000, 5061) == "tls"
    assert transport_of(6, 5060, 40000) == "tcp"
    assert transport_of(132, 5060, 5060) == "sctp"
    assert transport_of(22, 5061, 5061) == "tls"  # Kamailio's "fake" TLS protocol number
    assert parse_listen("127.0.0.1:9060") == ("127.0.0.1", 9060)
    assert parse_listen("[::1]:9061") == ("::1", 9061)
    assert parse_listen(":9062") == ("127.0.0.1", 9062)
    with pytest.raises(ValueError):
        parse_listen("localhost:http")


def test_collector_records_and_rejections():
    sink = MemorySink()
    collector = HepCollector(sink, node_default="edge-1")
    tls = sip_packet(node_name="sbc-a", correlation_id="cid-9", ip_proto=6, dst_port=5061)
    collector.handle_datagram(encode_hep3(tls))
    collector.handle_datagram(encode_hep3(sip_packet(capture_id=0)))
    collector.handle_datagram(_hep12(2, SIP_INVITE))
    collector.handle_datagram(encode_hep3(sip_packet(proto_type=100, payload=b"a log line")))
    collector.handle_datagram(encode_hep3(sip_packet(payload=b"", keepalive=10)))
    collector.handle_datagram(b"garbage")
    collector.handle_datagram(encode_hep3(sip_packet(src_ip="")))
    collector.handle_datagram(encode_hep3(sip_packet(payload=b"\x00\x01 definitely not SIP")))
    first, second, third = sink.messages
    assert (first.node, first.transport, first.correlation_id, first.method) == ("sbc-a", "tls", "cid-9", "INVITE")
    assert (first.ts, first.call_id, first.ruri_user_e164) == (1_700_000_000.25, "hep-test-1@10.0.0.1", "61289707501")
    assert second.node == "edge-1"
    assert (third.node, third.dst_port, third.ts) == ("4242", 5080, 1_700_000_000.25)
    assert first.id and len({m.id for m in sink.messages}) == 3
    reasons = [r.reason for r in sink.rejected]
    assert reasons[:2] == ["not_hep", "hep_missing_address"] and len(reasons) == 3
    assert all(isinstance(r, Rejected) and r.stage == "hep" for r in sink.rejected)
    assert base64.b64decode(sink.rejected[2].raw_b64) == b"\x00\x01 definitely not SIP"
    assert sink.rejected[2].src_ip == "10.0.0.1" and sink.rejected[2].ts == 1_700_000_000.25
    stats = collector.stats
    assert (stats.packets, stats.sip_messages, stats.keepalives, stats.skipped) == (8, 3, 1, {100: 1})
    assert sum(stats.rejected.values()) == 3


def test_collector_survives_a_broken_sink():
    class Broken(MemorySink):
        def publish(self, msg):
            raise RuntimeError("disk full")

    sink = Broken()
    collector = HepCollector(sink)
    collector.handle_datagram(encode_hep3(sip_packet()))
    collector.handle_datagram(encode_hep3(sip_packet()))
    assert [r.reason for r in sink.rejected] == ["internal_error", "internal_error"]
    assert "disk full" in sink.rejected[0].detail


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the collector")
        await asyncio.sleep(0.01)


def test_collector_over_udp_and_tcp():
    sink = MemorySink()
    good = encode_hep3(sip_packet(auth_key="k"))

    async def scenario() -> HepCollector:
        async with HepCollector(sink, host="127.0.0.1", port=0, auth_key="k") as collector:
            loop = asyncio.get_running_loop()
            udp, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=("127.0.0.1", collector.port)
            )
            udp.sendto(good)
            udp.sendto(encode_hep3(sip_packet(auth_key="wrong")))
            udp.close()
            reader, writer = await asyncio.open_connection("127.0.0.1", collector.port)
            stream = good + b"\r\n\r\nnoise" + good + good[:30]
            for i in range(0, len(stream), 7):  # TCP may deliver any split
                writer.write(stream[i : i + 7])
                await writer.drain()
            writer.close()
            await writer.wait_closed()
            await _wait_for(lambda: collector.stats.packets >= 4 and sum(collector.stats.rejected.values()) >= 3)
            return collector

    collector = asyncio.run(scenario())
    assert len(sink.messages) == 3
    assert collector.stats.rejected == {"hep_auth_failed": 1, "hep_stream_garbage": 1, "hep_truncated": 1}
    assert collector.stats.stream_bytes_skipped == len(b"\r\n\r\nnoise")


def test_jsonl_sink(tmp_path):
    sink = MemorySink()
    HepCollector(sink).handle_datagram(encode_hep3(sip_packet()))
    HepCollector(sink).handle_datagram(b"nope")
    msg, rej = sink.messages[0], sink.rejected[0]
    path = tmp_path / "out.jsonl"
    jsonl = JsonlSink(path)
    jsonl.publish(msg)
    jsonl.reject(rej)
    jsonl.close()
    lines = path.read_bytes().splitlines()
    assert records.decode(lines[0], SipMessage) == msg
    assert records.decode(lines[1], Rejected) == rej
    text, rejected = io.StringIO(), io.BytesIO()
    split = JsonlSink(text, rejected=rejected)
    split.publish(msg)
    split.reject(rej)
    split.flush()
    assert records.decode(text.getvalue().encode(), SipMessage) == msg
    assert records.decode(rejected.getvalue(), Rejected) == rej
