"""The native pcap path (producers/native_pcap.py) gives what records_from(PcapSource) gives: the same records
in the same order, the same rejections, the same counters, on every shared capture and on hand-made
captures of each case the native core hands back to Python (fragments, TCP, IPv6, VLAN, malformed SIP),
handles itself (keep-alives, non-SIP UDP, SIP off the SIP ports, cooked captures, nanosecond and
big-endian files) or must stop at (truncated and corrupt files)."""

from __future__ import annotations

import json
import struct
from decimal import Decimal
from pathlib import Path

import pytest

from producers.cli import _options, file_payloads
from producers.native_pcap import file_records as native_file_records
from producers.pcap_source import Counters
from producers.pcapfile import write_pcap
from producers.pipeline import Stats, records_from
from producers.sip_record import NATIVE_RECORD, e164_memo
from sipscope import records
from sipscope.numbers import NumberPlan
from sipscope.records import SipMessage
from sipscope.settings import NumberingSettings, Settings
from tests.producers.test_pcap_source import (
    MSG1,
    MSG2,
    eth,
    ipv4,
    ipv4_fragments,
    ipv6,
    sip_message,
    tcp,
    udp,
)

PCAPS = Path(__file__).resolve().parents[3] / "shared" / "testdata" / "pcaps"
pytestmark = pytest.mark.skipif(not NATIVE_RECORD, reason="the native core is not installed")


def both(path: Path, settings: Settings | None = None) -> tuple[tuple, tuple]:
    """(records as bytes, counters, stats) by the Python path and by the native path."""
    s = settings or Settings()
    out = []
    for native in (False, True):
        e164_memo(NumberPlan.from_settings(s.numbering)).clear()  # each path normalises for itself
        counters, stats = Counters(), Stats()
        if native:
            recs = native_file_records(str(path), _options(s, "t"), stats, ports=s.capture.sip_ports, counters=counters)
        else:
            recs = records_from(file_payloads(str(path), None, s, counters), _options(s, "t"), stats)
        out.append(([records.encode(r) for r in recs], dict(counters), stats.as_dict()))
    return out[0], out[1]


def write(tmp_path: Path, frames: list, linktype: int = 1, **kw: object) -> Path:
    path = tmp_path / "t.pcap"
    with path.open("wb") as f:
        write_pcap(f, [fr if isinstance(fr, tuple) else (Decimal(1000 + i) + Decimal("0.123456"), fr)
                       for i, fr in enumerate(frames)], linktype, **kw)
    return path


def sll(payload: bytes) -> bytes:
    """Linux cooked capture (SLL, LINKTYPE 113) header of an IPv4 packet."""
    return struct.pack("!HHH8sH", 0, 1, 6, b"\x02" * 8, 0x0800) + payload


def sll2(payload: bytes) -> bytes:
    """SLL2 (LINKTYPE 276) header of an IPv4 packet."""
    return struct.pack("!HHIHBB8s", 0x0800, 0, 2, 1, 0, 6, b"\x02" * 8) + payload


BAD_SIP = b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK1\r\n\r\n"  # no Call-ID, no CSeq


def mixed() -> list[bytes]:
    """Every kind of packet, interleaved with plain UDP SIP ones that the native core finishes."""
    frag = ipv4_fragments(udp(sip_message(7, b"x" * 600)), 256)
    return [
        eth(ipv4(udp(MSG1))),
        eth(ipv4(udp(b"\r\n\r\n"))),  # keep-alive on a SIP port
        eth(ipv4(udp(b"\x80" * 40, 10000, 20000))),  # RTP-like, off the SIP ports
        eth(ipv4(udp(MSG2, 40000, 5999))),  # SIP off the SIP ports
        eth(ipv4(udp(BAD_SIP))),  # rejected by the parser
        *[eth(f) for f in frag[:2]],
        eth(ipv4(udp(sip_message(3)))),
        *[eth(f) for f in frag[2:]],
        eth(ipv4(tcp(sip_message(4), 1, sport=40001), proto=6)),
        eth(ipv6(udp(sip_message(5))), etype=0x86DD),
        eth(ipv4(udp(sip_message(6))), tags=(0x8100,)),
        eth(ipv4(udp(sip_message(8), 5060, 4789))),  # VXLAN port: the Python path decides
        eth(ipv4(udp(sip_message(9)))),
    ]


def test_mixed_capture_same_records_order_and_counters(tmp_path: Path) -> None:
    python, native = both(write(tmp_path, mixed()))
    assert native == python
    recs, counters, stats = native
    order = [json.loads(r).get("call_id") for r in recs]
    # capture order, the fragmented call-7 completing at its last fragment, the rejection in its place
    assert order == ["call-1", "call-2", None, "call-3", "call-7", "call-4", "call-5", "call-6", "call-9"]
    assert stats == {"payloads": 9, "messages": 8, "rejected": {"missing_call_id": 1}}
    assert counters == {"packets": 15, "keepalive": 1, "not_sip": 1, "payloads_udp": 8, "payloads_tcp": 1,
                        "not_ip": 1}

@pytest.mark.parametrize("linktype,wrap", [(1, eth), (113, sll), (276, sll2)], ids=["ethernet", "sll", "sll2"])
@pytest.mark.parametrize("nsec,big_endian", [(False, False), (True, False), (False, True)],
                         ids=["usec", "nsec", "big-endian"])
def test_link_types_and_file_layouts(tmp_path: Path, linktype: int, wrap, nsec: bool, big_endian: bool) -> None:
    frames = [wrap(ipv4(udp(sip_message(n)))) for n in range(1, 6)] + [wrap(ipv4(udp(b"\r\n")))]
    python, native = both(write(tmp_path, frames, linktype, nsec=nsec, big_endian=big_endian))
    assert native == python
    assert len(native[0]) == 5 and native[1]["packets"] == 6 and native[1]["keepalive"] == 1


def test_truncated_file_stops_where_python_stops(tmp_path: Path) -> None:
    path = write(tmp_path, [eth(ipv4(udp(MSG1))), eth(ipv4(udp(MSG2)))])
    path.write_bytes(path.read_bytes()[:-25])
    python, native = both(path)
    assert native == python
    assert len(native[0]) == 1 and native[1]["truncated_file"] == 1


def test_corrupt_record_length_stops_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, [eth(ipv4(udp(MSG1))), eth(ipv4(udp(MSG2)))])
    data = bytearray(path.read_bytes())
    second = 24 + 16 + len(eth(ipv4(udp(MSG1))))
    struct.pack_into("<I", data, second + 8, 300_000)  # caplen over 256 KiB
    path.write_bytes(bytes(data))
    python, native = both(path)
    assert native == python
    assert len(native[0]) == 1 and native[1]["corrupt_file"] == 1


def test_sweeps_expire_fragments_at_the_same_packet(tmp_path: Path) -> None:
    """A fragment left alone is expired by the sweep a later UDP packet triggers (handled natively):
    its late second half must then not complete a datagram, exactly as on the Python path."""
    frag = ipv4_fragments(udp(sip_message(7, b"x" * 600)), 256)
    frames = [(Decimal(1000), eth(frag[0])), (Decimal(1031), eth(ipv4(udp(MSG1)))),
              (Decimal("1031.5"), eth(frag[1])), (Decimal("1031.6"), eth(frag[2])),
              (Decimal(1032), eth(ipv4(udp(MSG2))))]
    python, native = both(write(tmp_path, frames))
    assert native == python
    assert len(native[0]) == 2  # the datagram never completes


def test_numbers_normalised_by_the_core_match_python(tmp_path: Path) -> None:
    """User parts in digit forms get their E.164 form from the core (national, international, +, short)."""
    users = ["0289707501", "0061289707501", "+61289707501", "1001", "000", "00", "+", "alice", "02-8970-7501"]
    frames = []
    for i, u in enumerate(users):
        msg = (f"INVITE sip:{u}@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK{i}\r\n"
               f"From: <sip:{u}@example.com>;tag={i}\r\nTo: <sip:{u}@example.com>\r\nCall-ID: n-{i}\r\n"
               f"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n").encode()
        frames.append(eth(ipv4(udp(msg))))
    s = Settings(numbering=NumberingSettings(country_code="44", trunk_prefix="9", international_prefix="010"))
    python, native = both(write(tmp_path, frames), s)
    assert native == python
    got = {r["call_id"]: r.get("from_user_e164") for r in map(json.loads, native[0])}
    assert got["n-0"] == "0289707501" and got["n-3"] == "1001" and got["n-6"] is None and got["n-7"] is None
    python, native = both(write(tmp_path, frames), Settings(numbering=NumberingSettings()))
    assert native == python
    got = {r["call_id"]: r.get("from_user_e164") for r in map(json.loads, native[0])}
    assert got["n-0"] == got["n-1"] == got["n-2"] == got["n-8"] == "61289707501"


def _captures() -> list[Path]:
    if not PCAPS.is_dir():
        return []
    return sorted(p for p in PCAPS.iterdir() if p.suffix in (".pcap", ".pcapng", ".cap"))


@pytest.mark.shared
@pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/testdata is absent")
@pytest.mark.parametrize("pcap", _captures(), ids=lambda p: p.name)
def test_shared_captures_same_as_python(pcap: Path) -> None:
    python, native = both(pcap)
    assert native == python

