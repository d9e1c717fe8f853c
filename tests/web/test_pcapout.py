"""The pcap export writer: exact times, valid IPv4/IPv6/UDP/TCP/SCTP headers, and tshark reads it back."""

from __future__ import annotations

import shutil
import struct
import subprocess

import dpkt
import pytest

from indexers.web.pcapout import Packet, crc32c, iso_to_us, write_pcap


def sip(method_or_status: str, call_id: str, cseq: str = "1 INVITE") -> bytes:
    first = f"SIP/2.0 {method_or_status}" if method_or_status[0].isdigit() else f"{method_or_status} sip:101@example.net SIP/2.0"
    return (f"{first}\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK{abs(hash(method_or_status))}\r\n"
            f"From: <sip:201@example.net>;tag=a\r\nTo: <sip:101@example.net>\r\nCall-ID: {call_id}\r\n"
            f"CSeq: {cseq}\r\nContent-Length: 0\r\n\r\n").encode()


MIXED = [
    Packet(1_700_000_000_123_456, "192.0.2.1", 5060, "192.0.2.2", 5060, "udp", sip("INVITE", "udp-call")),
    Packet(1_700_000_000_223_456, "192.0.2.2", 5060, "192.0.2.1", 5060, "udp", sip("180 Ringing", "udp-call")),
    Packet(1_700_000_001_000_001, "2001:db8::1", 5060, "2001:db8::2", 5060, "udp", sip("OPTIONS", "v6-call", "7 OPTIONS")),
    Packet(1_700_000_002_000_000, "192.0.2.1", 40312, "192.0.2.9", 5060, "tcp", sip("INVITE", "tcp-call")),
    Packet(1_700_000_002_100_000, "192.0.2.9", 5060, "192.0.2.1", 40312, "tcp", sip("100 Trying", "tcp-call")),
    Packet(1_700_000_002_200_000, "192.0.2.9", 5060, "192.0.2.1", 40312, "tcp", sip("486 Busy Here", "tcp-call")),
    Packet(1_700_000_002_300_000, "192.0.2.1", 40312, "192.0.2.9", 5060, "tcp", sip("ACK", "tcp-call", "1 ACK")),
    Packet(1_700_000_003_000_000, "192.0.2.5", 5060, "192.0.2.6", 5060, "sctp", sip("INVITE", "sctp-call")),
]


@pytest.mark.parametrize("text,us", [
    ("2011-08-01T06:37:30.454022Z", 1312180650_454022),
    ("2011-08-01T06:37:30.4Z", 1312180650_400000),
    ("2011-08-01T06:37:30.454022987Z", 1312180650_454022),  # nanoseconds: cut, never rounded across a second
    ("2011-08-01T06:37:30Z", 1312180650_000000),
    ("2011-08-01T08:37:30.000001+02:00", 1312180650_000001),
    (1312180650.454022, 1312180650_454022),
])
def test_indexed_times_become_exact_microseconds(text, us):
    assert iso_to_us(text) == us


def test_crc32c_check_value():
    assert crc32c(b"123456789") == 0xE3069283


def _frames(data: bytes) -> list[tuple[float, dpkt.ethernet.Ethernet]]:
    import io

    reader = dpkt.pcap.Reader(io.BytesIO(data))
    assert reader.datalink() == dpkt.pcap.DLT_EN10MB
    return [(ts, dpkt.ethernet.Ethernet(buf)) for ts, buf in reader]


def _ones(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def test_ipv4_and_ipv6_udp_frames_carry_the_original_addresses_times_and_valid_checksums():
    data = write_pcap(MIXED[:3])
    assert struct.unpack("<IHHiIII", data[:24]) == (0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)
    assert struct.unpack("<II", data[24:32]) == (1_700_000_000, 123_456)
    (t1, e1), (_, e2), (_t3, e3) = _frames(data)
    ip = e1.data
    assert isinstance(ip, dpkt.ip.IP) and _ones(bytes(ip)[:20]) == 0xFFFF  # header checksum valid
    assert (dpkt.utils.inet_to_str(ip.src), ip.data.sport, dpkt.utils.inet_to_str(ip.dst), ip.data.dport) == \
        ("192.0.2.1", 5060, "192.0.2.2", 5060)
    pseudo = ip.src + ip.dst + struct.pack("!BBH", 0, 17, len(bytes(ip.data)))
    assert _ones(pseudo + bytes(ip.data)) == 0xFFFF  # UDP checksum valid
    assert ip.data.data == MIXED[0].payload and abs(t1 - 1_700_000_000.123456) < 1e-6
    v6 = e3.data
    assert isinstance(v6, dpkt.ip6.IP6) and dpkt.utils.inet_to_str(v6.src) == "2001:db8::1"
    pseudo6 = v6.src + v6.dst + struct.pack("!I3xB", len(bytes(v6.data)), 17)
    assert _ones(pseudo6 + bytes(v6.data)) == 0xFFFF and v6.data.data == MIXED[2].payload
    assert e1.src == e2.dst  # one made-up MAC per host


def test_tcp_connection_opens_with_a_handshake_and_follows_the_bytes_each_way():
    frames = [e.data.data for _, e in _frames(write_pcap(MIXED[3:7]))]
    syn, synack, ack, inv, trying, busy, ack2 = frames
    assert (syn.flags, synack.flags, ack.flags) == (dpkt.tcp.TH_SYN, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, dpkt.tcp.TH_ACK)
    assert synack.ack == syn.seq + 1 and ack.seq == syn.seq + 1 and ack.ack == synack.seq + 1
    assert inv.seq == syn.seq + 1 and inv.data == MIXED[3].payload
    assert trying.seq == synack.seq + 1 and trying.ack == inv.seq + len(inv.data)
    assert busy.seq == trying.seq + len(trying.data)
    assert ack2.seq == inv.seq + len(inv.data) and ack2.ack == busy.seq + len(busy.data)
    for seg in (inv, trying, busy, ack2):
        assert seg.flags == dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK


def test_sctp_data_chunk_with_a_valid_crc32c():
    (_, e), = _frames(write_pcap(MIXED[7:]))
    raw = bytearray(bytes(e.data.data))
    stored = struct.unpack("<I", raw[8:12])[0]
    raw[8:12] = b"\0\0\0\0"
    assert stored == crc32c(bytes(raw))
    assert raw[12] == 0 and raw[28:28 + len(MIXED[7].payload)] == MIXED[7].payload  # DATA chunk, payload


@pytest.mark.peers
def test_tshark_reads_back_the_same_sip_messages():
    tshark = shutil.which("tshark") or pytest.skip("tshark is not installed")
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".pcap") as f:
        f.write(write_pcap(MIXED))
        f.flush()
        out = subprocess.run([tshark, "-r", f.name, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                              "-o", "tcp.check_checksum:TRUE", "-Y", "sip", "-T", "fields", "-e", "frame.time_epoch",
                              "-e", "sip.Method", "-e", "sip.Status-Code", "-e", "sip.Call-ID", "-e", "ip.checksum.status",
                              "-e", "udp.checksum.status", "-e", "tcp.checksum.status"],
                             capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in out.splitlines()]
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("INVITE", "", "udp-call"), ("", "180", "udp-call"), ("OPTIONS", "", "v6-call"), ("INVITE", "", "tcp-call"),
        ("", "100", "tcp-call"), ("", "486", "tcp-call"), ("ACK", "", "tcp-call"), ("INVITE", "", "sctp-call")]
    assert [r[0] for r in rows][:2] == ["1700000000.123456000", "1700000000.223456000"]
    statuses = [s for r in rows for s in r[4:] if s]
    assert statuses and set(statuses) == {"1"}, rows  # tshark's checksum status 1 = good (0 would be bad)
