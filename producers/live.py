"""Live capture: dumpcap writes classic pcap to a pipe; we read it record by record as it arrives.

The file reader (:mod:`producers.pcapfile`) reads big chunks, right for files but not for a pipe where
a quiet link would hold packets back; this reader asks for exactly one record at a time.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}


class LiveCaptureError(RuntimeError):
    """The capture process did not produce a pcap stream."""


def _read_exact(f: BinaryIO, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = f.read(n - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def read_pcap_head(f: BinaryIO) -> tuple[str, float, int] | None:
    """``(byte order, time unit, linktype)`` from a classic pcap stream's header; None at an empty stream."""
    head = _read_exact(f, 24)
    if len(head) < 24:
        return None
    fmt = _MAGIC.get(head[:4])
    if fmt is None:
        raise LiveCaptureError("the capture stream is not classic pcap (dumpcap -P)")
    endian, unit = fmt
    return endian, unit, struct.unpack(endian + "I", head[20:24])[0] & 0x0FFFFFFF


def iter_pcap_records(f: BinaryIO, endian: str, unit: float, linktype: int) -> Iterator[tuple[float, int, bytes, int]]:
    """``(ts, linktype, data, orig_len)`` for each record after the header, until EOF."""
    rec = struct.Struct(endian + "IIII")
    while True:
        h = _read_exact(f, 16)
        if len(h) < 16:
            return
        sec, frac, incl, orig = rec.unpack(h)
        data = _read_exact(f, incl)
        if len(data) < incl:
            return
        yield sec + frac * unit, linktype, data, orig


def iter_pcap_stream(f: BinaryIO) -> Iterator[tuple[float, int, bytes, int]]:
    """``(ts, linktype, data, orig_len)`` for each record of a classic pcap stream, until EOF."""
    head = read_pcap_head(f)
    if head is not None:
        yield from iter_pcap_records(f, *head)
