"""producers.pcapfile: pcap (both byte orders, us/ns), pcapng (sections, interfaces, if_tsresol,
if_tsoffset, EPB/SPB/PB), Network Monitor 2.x, and files that end early or are corrupt."""

from __future__ import annotations

import io
import struct
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.pcapfile import CaptureFormatError, open_capture, write_pcap, write_pcapng

TS = Decimal("1700000000.123456789")


def read(data: bytes) -> tuple[list[tuple], Counter]:
    counters: Counter = Counter()
    return list(open_capture(io.BytesIO(data), counters)), counters


def pcap_bytes(packets: list, linktype: int = 1, **kw: object) -> bytes:
    out = io.BytesIO()
    write_pcap(out, packets, linktype, **kw)  # type: ignore[arg-type]
    return out.getvalue()


def pcapng_bytes(packets: list, interfaces: tuple = ((1, 6),), **kw: object) -> bytes:
    out = io.BytesIO()
    write_pcapng(out, packets, interfaces, **kw)  # type: ignore[arg-type]
    return out.getvalue()


def block(btype: int, body: bytes, e: str = "<") -> bytes:
    body += b"\0" * (-len(body) % 4)
    return struct.pack(e + "II", btype, 12 + len(body)) + body + struct.pack(e + "I", 12 + len(body))


# -- pcap ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_microseconds(big_endian: bool) -> None:
    packets, counters = read(pcap_bytes([(TS, b"abc"), (Decimal("1700000001.5"), b"de")], 113, big_endian=big_endian))
    assert [(p[1], p[2], p[3]) for p in packets] == [(113, b"abc", 3), (113, b"de", 2)]
    assert packets[0][0] == pytest.approx(1700000000.123456, abs=1e-7)  # microseconds kept, ns dropped
    assert packets[1][0] == 1700000001.5
    assert not counters


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcap_nanosecond_magic(big_endian: bool) -> None:
    packets, _ = read(pcap_bytes([(TS, b"abc")], nsec=True, big_endian=big_endian))
    assert packets[0][0] == pytest.approx(1700000000.123456789, abs=3e-7)
    assert packets[0][0] != pytest.approx(1700000000.123456, abs=5e-7)  # not read as microseconds


def test_pcap_linktype_fcs_bits_are_masked() -> None:
    data = bytearray(pcap_bytes([(1.0, b"x")], 1))
    data[20:24] = struct.pack("<I", 0x14000001)  # FCS length 4 announced in the upper bits
    assert read(bytes(data))[0][0][1] == 1


def test_pcap_kuznetzov_modified_records() -> None:
    header = struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, 1)
    record = struct.pack("<IIII", 10, 500000, 3, 3) + struct.pack("<IHBx", 1, 2, 0) + b"abc"
    packets, _ = read(header + record * 2)
    assert [(p[0], p[2]) for p in packets] == [(10.5, b"abc")] * 2


def test_pcap_records_across_the_read_chunks() -> None:
    """Records are read in 1 MiB chunks: a record cut by a chunk boundary must come out whole."""
    sent = [(float(i), bytes([i % 256]) * (900 + i % 700)) for i in range(3000)]
    packets, counters = read(pcap_bytes(sent))
    assert [(p[0], p[2]) for p in packets] == sent
    assert not counters


def test_pcap_from_a_path_closes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(pcap_bytes([(1.0, b"a")]))
    reader = open_capture(path)
    assert [p[2] for p in reader] == [b"a"]
    assert reader._f.closed


# -- truncated and corrupt files ----------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 10, 17])
def test_pcap_truncated_inside_the_last_record(cut: int) -> None:
    data = pcap_bytes([(1.0, b"a" * 40), (2.0, b"b" * 40)])
    packets, counters = read(data[:-cut])
    assert [p[2] for p in packets] == [b"a" * 40]
    assert counters == {"truncated_file": 1}


@pytest.mark.parametrize("cut", [1, 4, 20])
def test_pcapng_truncated_inside_the_last_block(cut: int) -> None:
    data = pcapng_bytes([(1.0, b"a" * 40), (2.0, b"b" * 40)])
    packets, counters = read(data[:-cut])
    assert [p[2] for p in packets] == [b"a" * 40]
    assert counters == {"truncated_file": 1}


@pytest.mark.parametrize("data", [b"", b"\xd4\xc3\xb2\xa1\x02\x00", b"\x0a\x0d\x0d\x0a\x1c\x00"])
def test_file_header_cut_short(data: bytes) -> None:
    assert read(data) == ([], {"truncated_file": 1})


def test_impossible_record_length_is_corrupt() -> None:
    data = pcap_bytes([(1.0, b"a")]) + struct.pack("<IIII", 2, 0, 0x7FFFFFFF, 10) + b"zz"
    packets, counters = read(data)
    assert len(packets) == 1 and counters == {"corrupt_file": 1}


def test_pcapng_bad_block_length_is_corrupt() -> None:
    data = pcapng_bytes([(1.0, b"a")]) + struct.pack("<II", 6, 13) + b"\0" * 20
    packets, counters = read(data)
    assert len(packets) == 1 and counters == {"corrupt_file": 1}


def test_not_a_capture() -> None:
    with pytest.raises(CaptureFormatError):
        open_capture(io.BytesIO(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))


# -- pcapng -------------------------------------------------------------------------------------


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_nanosecond_if_tsresol(big_endian: bool) -> None:
    packets, counters = read(pcapng_bytes([(TS, b"abc")], ((1, 9),), big_endian=big_endian))
    assert packets == [(pytest.approx(1700000000.123456789, abs=3e-7), 1, b"abc", 3)]
    assert not counters


def test_pcapng_binary_if_tsresol() -> None:
    packets, _ = read(pcapng_bytes([(Decimal("1700000000.5"), b"x")], ((1, 0x80 | 20),)))
    assert packets[0][0] == 1700000000.5


def test_pcapng_interfaces_have_their_own_linktype_and_resolution() -> None:
    data = pcapng_bytes([(1.25, b"eth", 0), (TS, b"raw", 1), (2.5, b"sll", 2)], ((1, 6), (101, 9), (113, 3)))
    packets, _ = read(data)
    assert [(p[1], p[2]) for p in packets] == [(1, b"eth"), (101, b"raw"), (113, b"sll")]
    assert packets[0][0] == 1.25 and packets[2][0] == 2.5
    assert packets[1][0] == pytest.approx(1700000000.123456789, abs=3e-7)


def test_pcapng_if_tsoffset_and_unknown_blocks_and_spb() -> None:
    options = struct.pack("<HH", 14, 8) + struct.pack("<q", 1_000_000_000) + struct.pack("<HH", 0, 0)
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = block(1, struct.pack("<HHI", 1, 0, 0) + options)
    nrb = block(4, b"\x01\x00\x08\x00\x0a\x00\x00\x01host\x00\x00\x00\x00")
    epb = block(6, struct.pack("<IIIII", 0, 0, 2_500_000, 3, 3) + b"abc")
    isb = block(5, struct.pack("<III", 0, 0, 0))
    spb = block(3, struct.pack("<I", 5) + b"hello")
    custom = block(0x40000BAD, b"vendor stuff")
    packets, counters = read(shb + idb + nrb + epb + isb + spb + custom)
    assert packets == [(1_000_000_002.5, 1, b"abc", 3), (1_000_000_002.5, 1, b"hello", 5)]
    assert not counters


def test_pcapng_obsolete_packet_block() -> None:
    shb = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = block(1, struct.pack("<HHI", 228, 0, 0))
    pb = block(2, struct.pack("<HHIIII", 0, 0, 0, 3_000_000, 2, 2) + b"ip")
    assert read(shb + idb + pb)[0] == [(3.0, 228, b"ip", 2)]


def test_pcapng_sections_reset_byte_order_and_interfaces() -> None:
    first = pcapng_bytes([(1.0, b"one")], ((1, 6),), big_endian=True)
    second = pcapng_bytes([(2.0, b"two")], ((113, 9),), big_endian=False)
    packets, counters = read(first + second)
    assert [(p[0], p[1], p[2]) for p in packets] == [(1.0, 1, b"one"), (2.0, 113, b"two")]
    assert not counters


def test_pcapng_unknown_interface_is_counted() -> None:
    data = pcapng_bytes([(1.0, b"a", 0)]) + block(6, struct.pack("<IIIII", 3, 0, 0, 1, 1) + b"z")
    packets, counters = read(data)
    assert len(packets) == 1 and counters == {"unknown_interface": 1}


# -- Network Monitor 2.x ------------------------------------------------------------------------


def netmon(frames: list[tuple[int, bytes]], minor: int = 0, trailer: bytes = b"") -> bytes:
    header_len = 128
    body = b""
    offsets = []
    for delta_us, data in frames:
        offsets.append(header_len + len(body))
        body += struct.pack("<QII", delta_us, len(data), len(data)) + data + trailer
    table_off = header_len + len(body)
    header = b"GMBU" + struct.pack("<BBH", minor, 2, 1)
    header += struct.pack("<8H", 2005, 7, 0, 17, 15, 39, 20, 502)  # 2005-07-17 15:39:20.502 UTC
    header += struct.pack("<II", table_off, 4 * len(frames))
    header += b"\0" * (header_len - len(header))
    return header + body + struct.pack(f"<{len(offsets)}I", *offsets)


def test_netmon_2() -> None:
    packets, counters = read(netmon([(0, b"first"), (4_621_000, b"second")]))
    assert packets == [(1121614760.502, 1, b"first", 5), (pytest.approx(1121614765.123), 1, b"second", 6)]
    assert not counters


@pytest.mark.parametrize(("minor", "size"), [(1, 2), (2, 6), (3, 15)])
def test_netmon_2_x_record_trailers_carry_the_media_type(minor: int, size: int) -> None:
    trailer = struct.pack("<H", 0xE000 + 101) + b"\0" * (size - 2)  # a pcap link type: raw IP
    packets, counters = read(netmon([(0, b"one"), (1, b"two")], minor, trailer))
    assert [(p[1], p[2]) for p in packets] == [(101, b"one"), (101, b"two")]
    assert not counters


def test_netmon_truncated() -> None:
    data = netmon([(0, b"first"), (1, b"second")])
    _packets, counters = read(data[:-10])
    assert counters == {"truncated_file": 1}


# -- robustness ---------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=400), ng=st.booleans())
def test_random_bytes_after_a_valid_header_never_raise(body: bytes, ng: bool) -> None:
    head = pcapng_bytes([]) if ng else pcap_bytes([])
    packets, counters = read(head + body)
    assert set(counters) <= {"truncated_file", "corrupt_file", "corrupt_block", "unknown_interface"}
    assert all(len(p) == 4 for p in packets)


def test_pcapng_packet_longer_than_its_block_is_skipped() -> None:
    bad = block(6, struct.pack("<IIIII", 0, 0, 0, 500, 500) + b"short")
    data = pcapng_bytes([(1.0, b"a")]) + bad + pcapng_bytes([(2.0, b"b")])[28 + 20 :]
    packets, counters = read(data)
    assert [p[2] for p in packets] == [b"a", b"b"] and counters == {"corrupt_block": 1}
