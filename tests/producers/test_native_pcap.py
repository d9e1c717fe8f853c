"""The native pcap path (producers/native_pcap.py) gives what records_from(PcapSource) gives: the same records
in the same order, the same rejections, the same counters, on every shared capture and on hand-made
captures of each case the native core hands back to Python (fragments, TCP, IPv6, VLAN, malformed SIP),
handles itself (keep-alives, non-SIP UDP, SIP off the SIP ports, cooked captures, nanosecond and
big-endian files) or must stop at (truncated and corrupt files)."""

from __future__ import annotations

import io
import json
import struct
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from producers.cli import _options, file_payloads
from producers import native_pcap
from producers.pcap_source import Counters, PcapSource
from producers.pcapfile import write_pcap, write_pcapng
from producers.pipeline import Stats, records_from, retimed
from producers.sip_record import NATIVE_RECORD, e164_memo
from sipscope import records
from sipscope.numbers import NumberPlan
from sipscope.records import SipMessage
from sipscope.settings import NumberingSettings, Settings
from tests.conftest import shared_captures
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


def both(path: Path, settings: Settings | None = None, shift: float = 0.0) -> tuple[tuple, tuple]:
    """(records as bytes, counters, stats) by the Python path and by the native path (``--retime``'s
    ``shift`` added to the times: ``pipeline.retimed`` on the Python path)."""
    s = settings or Settings()
    out = []
    for native in (False, True):
        e164_memo(NumberPlan.from_settings(s.numbering)).clear()  # each path normalises for itself
        counters, stats = Counters(), Stats()
        if native:
            items = native_pcap.file_items(str(path), _options(s, "t"), ports=s.capture.sip_ports, counters=counters,
                                           shift=shift)
        else:
            items = file_payloads(str(path), None, s, counters)
            items = retimed(items, shift) if shift else items
        recs = records_from(items, _options(s, "t"), stats)
        out.append(([records.encode(r) for r in recs], dict(counters), stats.as_dict()))
    return out[0], out[1]


def native_count(path: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    """How many records of ``path`` the core built in its runs (the rest came through PcapSource)."""
    built = [0]
    done = native_pcap._Runs.done

    def counting(self, frames, keepalive, not_sip, recs, sweep):  # noqa: ANN001, ANN202
        built[0] += len(recs)
        return done(self, frames, keepalive, not_sip, recs, sweep)

    monkeypatch.setattr(native_pcap._Runs, "done", counting)
    s = Settings()
    list(native_pcap.file_items(str(path), _options(s, "t"), ports=s.capture.sip_ports))
    monkeypatch.undo()
    return built[0]


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

@pytest.mark.parametrize("name", ["pcap", "pcapng"])
def test_retimed_records_as_python_retimes_them(tmp_path: Path, name: str) -> None:
    """``--retime``: the core adds the shift to each record's time (and its id), PcapSource's payloads get it
    from ``pipeline.retimed``; the sweeps keep the packets' own times."""
    if name == "pcap":
        path = write(tmp_path, mixed())
    else:
        path = write_ng(tmp_path, ng([(Decimal(1000 + i) + Decimal("0.123456789"), f) for i, f in enumerate(mixed())],
                                     ((1, 9),)))
    shift = 1_764_000_000.987654 - 1000
    python, native = both(path, shift=shift)
    assert native == python
    assert json.loads(native[0][0])["ts"] == pytest.approx(1_764_000_000.987654 + 0.123456, abs=1e-3)


@pytest.mark.parametrize("linktype,wrap", [(1, eth), (113, sll), (276, sll2)], ids=["ethernet", "sll", "sll2"])
@pytest.mark.parametrize("nsec,big_endian", [(False, False), (True, False), (False, True)],
                         ids=["usec", "nsec", "big-endian"])
def test_link_types_and_file_layouts(tmp_path: Path, linktype: int, wrap, nsec: bool, big_endian: bool,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [wrap(ipv4(udp(sip_message(n)))) for n in range(1, 6)] + [wrap(ipv4(udp(b"\r\n")))]
    path = write(tmp_path, frames, linktype, nsec=nsec, big_endian=big_endian)
    python, native = both(path)
    assert native == python
    assert native_count(path, monkeypatch) == 5
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


@pytest.mark.shared
@pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/testdata is absent")
@pytest.mark.parametrize("pcap", shared_captures(), ids=lambda p: p.name)
def test_shared_captures_same_as_python(pcap: Path) -> None:
    python, native = both(pcap)
    assert native == python



# -- pcapng: sections, interfaces, resolutions, other blocks ---------------------------------------------


def write_ng(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "t.pcapng"
    path.write_bytes(data)
    return path


def ng(frames: list, interfaces: tuple = ((1, 6),), **kw: object) -> bytes:
    out = io.BytesIO()
    write_pcapng(out, frames, interfaces, **kw)
    return out.getvalue()


def block(btype: int, body: bytes, e: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(e + "II", btype, 12 + len(body)) + body + struct.pack(e + "I", 12 + len(body))


def sip(n: int) -> bytes:
    return eth(ipv4(udp(sip_message(n))))


@pytest.mark.parametrize("big_endian", [False, True], ids=["little", "big"])
def test_pcapng_interfaces_resolutions_and_sections(tmp_path: Path, big_endian: bool,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Several interfaces (Ethernet in us, SLL in ns, SLL2 in 2^-20 s, raw IP left to Python), then a second
    section of the other byte order: the same records, times and counters as the Python reader."""
    ts = Decimal("1700000000.123456789")
    first = ng([(ts, sip(1), 0), (ts + 1, sll(ipv4(udp(sip_message(2)))), 1), (ts + 2, mixed()[2], 0),
                (ts + 3, sll2(ipv4(udp(sip_message(3)))), 2), (ts + 4, ipv4(udp(sip_message(4))), 3),
                (ts + 5, sip(5), 0)], ((1, 6), (113, 9), (276, 0x80 | 20), (101, 6)), big_endian=big_endian)
    second = ng([(ts + 6, sip(6)), (ts + 7, mixed()[1])], ((1, 9),), big_endian=not big_endian)
    path = write_ng(tmp_path, first + second)
    python, native = both(path)
    assert native == python
    assert native_count(path, monkeypatch) == 5  # all but the raw-IP interface's
    recs, counters, _ = native
    assert [json.loads(r)["call_id"] for r in recs] == [f"call-{n}" for n in range(1, 7)]
    assert counters == {"packets": 8, "payloads_udp": 6, "not_sip": 1, "keepalive": 1}


def test_pcapng_other_blocks_between_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Name resolution, statistics, custom and simple packet blocks, an unknown interface, a packet longer
    than its block and an if_tsoffset: the reader handles them between the core's runs."""
    options = struct.pack("<HH", 14, 8) + struct.pack("<q", 1_000_000_000) + struct.pack("<HH", 0, 0)
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = block(1, struct.pack("<HHI", 1, 0, 0) + options)

    def epb(ifid: int, units: int, data: bytes, caplen: int | None = None) -> bytes:
        n = len(data) if caplen is None else caplen
        return block(6, struct.pack("<IIIII", ifid, units >> 32, units & 0xFFFFFFFF, n, len(data)) + data)

    nrb = block(4, b"\x01\x00\x08\x00\x0a\x00\x00\x01host\x00\x00\x00\x00")
    isb = block(5, struct.pack("<III", 0, 0, 0))
    spb = block(3, struct.pack("<I", len(sip(9))) + sip(9))
    custom = block(0x40000BAD, b"vendor stuff")
    data = (shb + idb + epb(0, 2_500_000, sip(1)) + epb(0, 3_000_000, sip(2)) + nrb + epb(0, 3_500_000, sip(3))
            + isb + spb + epb(7, 4_000_000, sip(4)) + epb(0, 4_500_000, sip(5), caplen=4000) + custom
            + epb(0, 5_000_000, sip(6)))
    path = write_ng(tmp_path, data)
    python, native = both(path)
    assert native == python
    assert native_count(path, monkeypatch) == 4  # the SPB's packet is the reader's
    recs, counters, _ = native
    assert [json.loads(r)["call_id"] for r in recs] == ["call-1", "call-2", "call-3", "call-9", "call-6"]
    assert json.loads(recs[3])["ts"] == json.loads(recs[2])["ts"] == 1_000_000_003.5  # an SPB keeps the last time
    assert counters["unknown_interface"] == 1 and counters["corrupt_block"] == 1


@pytest.mark.parametrize("cut", [1, 30, 200])
def test_pcapng_truncated_and_corrupt(tmp_path: Path, cut: int) -> None:
    data = ng([(1.0, sip(1)), (2.0, sip(2)), (3.0, sip(3))])
    python, native = both(write_ng(tmp_path, data[:-cut]))
    assert native == python and native[1]["truncated_file"] == 1 and len(native[0]) == 2
    bad = data + struct.pack("<II", 6, 13) + b"\0" * 20  # a block length that is not a multiple of 4
    python, native = both(write_ng(tmp_path, bad))
    assert native == python and native[1]["corrupt_file"] == 1 and len(native[0]) == 3


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(min_size=8, max_size=8).map(lambda b: int.from_bytes(b, "big") >> (b[0] & 15)),
                min_size=1, max_size=8),
       st.sampled_from([6, 9, 3, 0x80 | 20, 0x80 | 30, 7]))
@example([9_007_199_254_740_995, 1_700_000_000_123_456_836], 9)  # float(u) / 10**9 != u / 10**9 for both
def test_pcapng_times_as_python_computes_them(tmp_path: Path, units: list[int], tsresol: int) -> None:
    """Times from any 64-bit count of units at any resolution: the core's division is Python's int / int,
    correctly rounded (a double of the count, then a division, differs in a quarter of the cases above 2^53)."""
    options = struct.pack("<HH", 9, 1) + bytes([tsresol, 0, 0, 0]) + struct.pack("<HH", 0, 0)
    data = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)) + block(1, struct.pack("<HHI", 1, 0, 0) + options)
    for i, u in enumerate(units):
        frame = sip(i)
        data += block(6, struct.pack("<IIIII", 0, u >> 32, u & 0xFFFFFFFF, len(frame), len(frame)) + frame)
    python, native = both(write_ng(tmp_path, data))
    assert native == python


# -- live: dumpcap's pcap stream --------------------------------------------------------------------------


class _Trickle(io.RawIOBase):
    """A pipe that hands out at most ``step`` bytes per read, as a slow link does."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.pos, self.step = data, 0, step

    def readable(self) -> bool:
        return True

    def read1(self, n: int = -1) -> bytes:
        out = self.data[self.pos : self.pos + min(self.step, n if n >= 0 else self.step)]
        self.pos += len(out)
        return out

    def readinto(self, b) -> int:  # noqa: ANN001 - what _read_exact's f.read uses
        out = self.read1(len(b))
        b[: len(out)] = out
        return len(out)


@pytest.mark.parametrize("step", [7, 100, 1 << 20])
@pytest.mark.parametrize("nsec,big_endian", [(False, False), (True, True)], ids=["usec", "nsec-big"])
def test_live_stream_same_as_python(tmp_path: Path, step: int, nsec: bool, big_endian: bool) -> None:
    """The stream read in pieces of any size (a record split across reads waits for its end) gives what
    PcapSource over iter_pcap_stream gives."""
    from producers.live import iter_pcap_stream

    data = write(tmp_path, mixed(), nsec=nsec, big_endian=big_endian).read_bytes()
    s = Settings()
    out = []
    for native in (False, True):
        counters, stats = Counters(), Stats()
        if native:
            items = native_pcap.stream_items(_Trickle(data, step), _options(s, "t"), ports=s.capture.sip_ports,
                                             counters=counters)
        else:
            items = iter(PcapSource("live", ports=s.capture.sip_ports, counters=counters,
                                    packets=iter_pcap_stream(_Trickle(data, step))))
        out.append(([records.encode(r) for r in records_from(items, _options(s, "t"), stats)], dict(counters),
                    stats.as_dict()))
    assert out[1] == out[0]
    assert len(out[1][0]) == 9 and out[1][1]["keepalive"] == 1
