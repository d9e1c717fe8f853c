"""Capture file reader: classic pcap, pcapng and Network Monitor 2.x, in pure Python.

:func:`open_capture` sniffs the format from the first bytes and returns a :class:`CaptureReader`.
Iterating it yields one plain tuple per packet, no per-packet object::

    (ts, linktype, data, orig_len)

``ts`` is seconds since the epoch (float, UTC), ``linktype`` the LINKTYPE_* number of the packet's
interface, ``data`` the captured bytes and ``orig_len`` the length on the wire.

Supported:

* pcap: both byte orders, microsecond (``a1b2c3d4``) and nanosecond (``a1b23c4d``) magic, the
  Kuznetzov "modified" pcap (``a1b2cd34``, 24-byte record headers);
* pcapng: any number of sections (SHB), each with its own byte order and interfaces (IDB: link type,
  ``if_tsresol`` in powers of 10 or 2, ``if_tsoffset``); packets from EPB, SPB and the obsolete PB;
  every other block is skipped;
* Microsoft Network Monitor 2.x (``GMBU``), as found in older public samples.

Problems never raise out of the iteration. Problems inside the file are counted in the optional
``counters`` mapping (reason -> count) given to the reader:

* ``truncated_file``: the file ends inside a record (the iteration ends there);
* ``corrupt_file``: a record header is impossible (length out of bounds); the iteration ends;
* ``corrupt_block``: a pcapng packet block whose captured length exceeds the block (skipped);
* ``unknown_interface``: a pcapng packet names an interface no IDB declared (packet skipped);

Only :func:`open_capture` raises, with :class:`CaptureFormatError`, when the file is not a capture.

:func:`write_pcap` and :func:`write_pcapng` write small captures (tests, exported selections).
"""

from __future__ import annotations

import calendar
import struct
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO

__all__ = ["MAX_PACKET", "CaptureFormatError", "CaptureReader", "Packet", "open_capture", "write_pcap", "write_pcapng"]

Packet = tuple[float, int, bytes, int]
"""``(ts, linktype, data, orig_len)``."""

MAX_PACKET = 262144
"""Largest record accepted (Wireshark's limit for ordinary link types); a larger one means corruption."""

_CHUNK = 1 << 20
_MAX_BLOCK = 1 << 26  # pcapng blocks other than packets (name resolution, secrets) can be large

PCAP_USEC = 0xA1B2C3D4
PCAP_NSEC = 0xA1B23C4D
PCAP_KUZNETZOV = 0xA1B2CD34
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D

_BT_IDB = 1
_BT_PB = 2
_BT_SPB = 3
_BT_EPB = 6

_OPT_IF_TSRESOL = 9
_OPT_IF_TSOFFSET = 14

# Network Monitor media types -> LINKTYPE_*
_NETMON_MEDIA = {1: 1, 2: 6, 3: 10, 4: 107}
_NETMON_PCAP_BASE = 0xE000


class _Section:
    """One pcapng section: its byte order and the interfaces its IDBs declared."""

    __slots__ = ("endian", "ifaces")

    def __init__(self, endian: str) -> None:
        self.endian = endian
        self.ifaces: list[tuple[int, int, int]] = []


class CaptureFormatError(Exception):
    """The file is not a pcap, pcapng or Network Monitor 2.x capture."""


class CaptureReader:
    """Iterable over the packets of one capture file (see the module docstring).

    ``format`` is ``pcap``, ``pcapng`` or ``netmon``; ``linktypes`` collects the link types seen.
    Iterate once; the file is closed when the iteration ends or :meth:`close` is called.
    """

    def __init__(self, fobj: BinaryIO, head: bytes, fmt: str, counters: MutableMapping[str, int] | None):
        self._f = fobj
        self._head = head
        self.format = fmt
        self.counters: MutableMapping[str, int] = counters if counters is not None else {}
        self.linktypes: set[int] = set()
        self.native_epb: Callable[[bytes, int, bool, list], tuple[int, float, Packet | None]] | None = None
        """pcapng: reader of a run of Enhanced Packet Blocks (:mod:`producers.native_pcap`), called at each
        EPB with ``(buf, off, big_endian, interfaces)``; returns ``(off after the run, time of its last
        block, the packet that stopped it or None)``, ``off`` unchanged when it reads nothing. After each
        run the iteration yields that packet, or None."""

    def __iter__(self) -> Iterator[Packet]:
        # the per-format generator is returned as is (no extra generator layer per packet); each
        # closes the file when it ends
        if self.format == "pcap":
            return self._iter_pcap()
        if self.format == "pcapng":
            return self._iter_pcapng()
        if self.format == "netmon":
            return self._iter_netmon()
        self._count("truncated_file")  # a known magic number, but the file header is cut short
        self.close()
        return iter(())

    def pcap_layout(self) -> tuple[bool, bool, int, int] | None:
        """``(big_endian, nanoseconds, record_header_length, linktype)`` of a classic pcap file, else None.

        With :meth:`pcap_buffers`, for a reader of the records other than this class's iteration (the
        native core's, :mod:`producers.native_pcap`); the file is read either way, never both."""
        if self.format != "pcap":
            return None
        head = self._head
        magic_le = struct.unpack_from("<I", head)[0]
        endian = "<" if magic_le in (PCAP_USEC, PCAP_NSEC, PCAP_KUZNETZOV) else ">"
        magic, network = struct.unpack_from(endian + "I", head)[0], struct.unpack_from(endian + "I", head, 20)[0]
        linktype = network & 0xFFFF  # the upper bits announce an FCS and its length
        self.linktypes.add(linktype)
        return (endian == ">", magic == PCAP_NSEC, 24 if magic == PCAP_KUZNETZOV else 16, linktype)

    def pcap_buffers(self, hlen: int) -> Iterator[tuple[bytes, int]]:
        """``(buf, off)``: the file's records from the first one, one chunk after another; ``send(off)``
        the offset where the records of ``buf`` stop being whole (it keeps the tail). Ends at the end of
        the file, counting ``truncated_file`` when it ends inside a record; closes the file."""
        try:
            buf, off = self._head[24:], 0
            while True:
                off = yield buf, off
                buf, off = _refill(self._f, buf, off, hlen)
                if buf is None:
                    self._count("truncated_file")
                    return
                if not buf:
                    return
        finally:
            self._f.close()

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, reason: str) -> None:
        self.counters[reason] = self.counters.get(reason, 0) + 1

    # -- pcap ---------------------------------------------------------------------------------

    def _iter_pcap(self) -> Iterator[Packet]:
        big_endian, nsec, hlen, linktype = self.pcap_layout()  # type: ignore[misc] - format is pcap here
        scale = 1e-9 if nsec else 1e-6
        unpack = struct.Struct((">" if big_endian else "<") + "IIII").unpack_from
        chunks = self.pcap_buffers(hlen)
        try:
            buf, off = next(chunks)
            while True:
                n = len(buf)
                while off + hlen <= n:
                    sec, frac, caplen, origlen = unpack(buf, off)
                    if caplen > MAX_PACKET:
                        self._count("corrupt_file")
                        return
                    start = off + hlen
                    end = start + caplen
                    if end > n:
                        break
                    yield (sec + frac * scale, linktype, buf[start:end], origlen)
                    off = end
                buf, off = chunks.send(off)
        except StopIteration:  # the end of the file (pcap_buffers counted a truncated one)
            return
        finally:
            chunks.close()

    # -- pcapng -------------------------------------------------------------------------------

    def _iter_pcapng(self) -> Iterator[Packet]:
        try:
            yield from self._pcapng_blocks()
        finally:
            self._f.close()

    def _pcapng_blocks(self) -> Iterator[Packet]:
        f = self._f
        buf = self._head
        off = 0
        # one unpack for the common case, an EPB: type, length, interface, ts high, ts low, caplen,
        # origlen (the last five are junk for other blocks)
        epb = struct.Struct("<7I").unpack_from
        hdr = struct.Struct("<2I").unpack_from
        section = _Section("<")
        ifaces = section.ifaces  # per interface: (linktype, divisor, offset seconds)
        last_ts = 0.0
        native_epb = self.native_epb
        while True:
            n = len(buf)
            need = 12
            while off + 12 <= n:
                if off + 28 <= n:
                    btype, blen, ifid, hi, lo, caplen, origlen = epb(buf, off)
                else:
                    btype, blen = hdr(buf, off)
                    ifid = hi = lo = caplen = origlen = 0
                if btype == PCAPNG_SHB:
                    bom = buf[off + 8 : off + 12]
                    if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                        self._count("corrupt_file")
                        return
                    section = _Section("<" if bom == b"\x4d\x3c\x2b\x1a" else ">")
                    ifaces = section.ifaces
                    epb = struct.Struct(section.endian + "7I").unpack_from
                    hdr = struct.Struct(section.endian + "2I").unpack_from
                    btype, blen = hdr(buf, off)
                if blen < 12 or blen & 3 or blen > _MAX_BLOCK:
                    self._count("corrupt_file")
                    return
                end = off + blen
                if end > n:
                    need = blen
                    break
                if btype == _BT_EPB:
                    if native_epb is not None:
                        after, ts, packet = native_epb(buf, off, section.endian == ">", ifaces)
                        if after != off:  # a run of EPBs read natively; the packet that stopped it is ours
                            off = after
                            last_ts = ts
                            yield packet  # None after a run the core finished: its caller takes the run's records
                            continue
                    if 32 + caplen > blen:
                        self._count("corrupt_block")  # the block itself is sound: skip it
                    elif ifid < len(ifaces):
                        linktype, divisor, tsoff = ifaces[ifid]
                        last_ts = ((hi << 32) | lo) / divisor + tsoff
                        yield (last_ts, linktype, buf[off + 28 : off + 28 + caplen], origlen)
                    else:
                        self._count("unknown_interface")
                elif btype == _BT_IDB:
                    ifaces.append(_parse_idb(buf, off, blen, section.endian))
                    self.linktypes.add(ifaces[-1][0])
                elif btype in (_BT_SPB, _BT_PB):
                    packet = self._other_packet(btype, buf, off, blen, section, last_ts)
                    if packet is not None:
                        last_ts = packet[0]
                        yield packet
                off = end
            buf, off = _refill(f, buf, off, need)
            if buf is None:
                self._count("truncated_file")
                return
            if not buf:
                return

    def _other_packet(
        self, btype: int, buf: bytes, off: int, blen: int, section: _Section, last_ts: float
    ) -> Packet | None:
        """A Simple Packet Block or an obsolete Packet Block, or None (counted) when unusable."""
        ifaces = section.ifaces
        if btype == _BT_SPB:
            if not ifaces:
                self._count("unknown_interface")
                return None
            origlen = struct.unpack_from(section.endian + "I", buf, off + 8)[0]
            caplen = min(origlen, blen - 16)
            # an SPB has no timestamp: keep the previous packet's time
            return (last_ts, ifaces[0][0], buf[off + 12 : off + 12 + caplen], origlen)
        ifid, _drops, hi, lo, caplen, origlen = struct.unpack_from(section.endian + "HHIIII", buf, off + 8)
        if 32 + caplen > blen or ifid >= len(ifaces):
            self._count("unknown_interface" if ifid >= len(ifaces) else "corrupt_block")
            return None
        linktype, divisor, tsoff = ifaces[ifid]
        return (((hi << 32) | lo) / divisor + tsoff, linktype, buf[off + 28 : off + 28 + caplen], origlen)

    # -- Network Monitor 2.x ------------------------------------------------------------------

    def _iter_netmon(self) -> Iterator[Packet]:
        try:
            f = self._f
            head = self._head
            if len(head) < 32:
                self._count("truncated_file")
                return
            minor, _major, media = struct.unpack_from("<BBH", head, 4)  # major is 2 (sniff_format)
            year, month, _dow, day, hour, minute, sec, msec = struct.unpack_from("<8H", head, 8)
            table_off, table_len = struct.unpack_from("<II", head, 24)
            try:
                start = calendar.timegm((year, month, day, hour, minute, sec, 0, 0, 0)) + msec / 1000
            except (ValueError, OverflowError):
                start = 0.0
            linktype = _netmon_linktype(media)
            # 2.1 and later append a trailer to each record: media type (2.1), + process index (2.2),
            # + UTC time stamp and time zone (2.3 and later); the media type overrides the header's
            trailer = {0: 0, 1: 2, 2: 6}.get(minor, 15)
            f.seek(table_off)
            table = f.read(table_len)
            if len(table) < table_len or table_len % 4:
                self._count("truncated_file")
                return
            for (frame_off,) in struct.iter_unpack("<I", table):
                f.seek(frame_off)
                fh = f.read(16)
                if len(fh) < 16:
                    self._count("truncated_file")
                    return
                delta_us, origlen, caplen = struct.unpack("<QII", fh)
                if caplen > MAX_PACKET:
                    self._count("corrupt_file")
                    return
                data = f.read(caplen + trailer)
                if len(data) < caplen + trailer:
                    self._count("truncated_file")
                    return
                lt = linktype
                if trailer:
                    lt = _netmon_linktype(struct.unpack_from("<H", data, caplen)[0])
                    data = data[:caplen]
                self.linktypes.add(lt)
                yield (start + delta_us / 1e6, lt, data, origlen)
        finally:
            self._f.close()


def _refill(f: BinaryIO, buf: bytes, off: int, need: int) -> tuple[bytes | None, int]:
    """Keep the unread tail of ``buf`` and append at least ``need`` more bytes (one chunk or more).

    Returns ``(b"", 0)`` at a clean end of file and ``(None, 0)`` when the file ends inside a record.
    """
    more = f.read(max(_CHUNK, need))
    if not more:
        return (None if off < len(buf) else b""), 0
    return buf[off:] + more, 0


def _parse_idb(buf: bytes, off: int, blen: int, endian: str) -> tuple[int, int, int]:
    linktype = struct.unpack_from(endian + "H", buf, off + 8)[0]
    divisor = 1_000_000
    tsoff = 0
    pos = off + 16
    end = off + blen - 4
    while pos + 4 <= end:
        code, length = struct.unpack_from(endian + "HH", buf, pos)
        if code == 0:
            break
        value = buf[pos + 4 : pos + 4 + length]
        if code == _OPT_IF_TSRESOL and length >= 1:
            r = value[0]
            divisor = 2 ** (r & 0x7F) if r & 0x80 else 10**r
        elif code == _OPT_IF_TSOFFSET and length >= 8:
            tsoff = struct.unpack_from(endian + "q", value)[0]
        pos += 4 + ((length + 3) & ~3)
    return linktype, divisor, tsoff


def _netmon_linktype(media: int) -> int:
    if media in _NETMON_MEDIA:
        return _NETMON_MEDIA[media]
    if _NETMON_PCAP_BASE <= media < 0xF000:
        return media - _NETMON_PCAP_BASE
    return -1


_MAGICS = tuple(struct.pack(e + "I", m) for m in (PCAP_USEC, PCAP_NSEC, PCAP_KUZNETZOV) for e in "<>")


def sniff_format(head: bytes) -> str | None:
    """``pcap``, ``pcapng``, ``netmon``, ``truncated`` (a known magic number but the file header is
    cut short, or an empty file) or None (not a capture), from the first bytes of a file."""
    if not head:
        return "truncated"
    if head[:4] in _MAGICS:
        return "pcap" if len(head) >= 24 else "truncated"
    if head[:4] == b"\x0a\x0d\x0d\x0a":
        if len(head) < 12:
            return "truncated"
        return "pcapng" if head[8:12] in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d") else None
    if head[:4] == b"GMBU":
        if len(head) < 6:
            return "truncated"
        return "netmon" if head[5] == 2 else None
    return None


def open_capture(path: str | Path | BinaryIO, counters: MutableMapping[str, int] | None = None) -> CaptureReader:
    """Open a capture file (path or binary file object) and return its :class:`CaptureReader`.

    Raises :class:`CaptureFormatError` when the first bytes are not a known capture format.
    """
    f: BinaryIO = open(path, "rb") if isinstance(path, (str, Path)) else path  # noqa: SIM115
    try:
        head = f.read(_CHUNK)
        fmt = sniff_format(head)
    except BaseException:
        f.close()
        raise
    if fmt is None:
        f.close()
        raise CaptureFormatError(f"not a pcap, pcapng or Network Monitor 2.x capture: {path!r}")
    return CaptureReader(f, head, fmt, counters)


# -- writers ------------------------------------------------------------------------------------


def _units(ts: float | Decimal, per_second: int) -> int:
    """Timestamp -> integer units, exact for a Decimal and for the float's shortest repr."""
    return int((ts if isinstance(ts, Decimal) else Decimal(repr(ts))) * per_second)


def write_pcap(
    f: BinaryIO,
    packets: Iterable[tuple[float | Decimal, bytes]],
    linktype: int = 1,
    *,
    nsec: bool = False,
    big_endian: bool = False,
    snaplen: int = MAX_PACKET,
) -> None:
    """Write a classic pcap: ``packets`` are ``(ts, data)``; ``nsec`` picks the nanosecond magic."""
    e = ">" if big_endian else "<"
    per_second = 1_000_000_000 if nsec else 1_000_000
    f.write(struct.pack(e + "IHHiIII", PCAP_NSEC if nsec else PCAP_USEC, 2, 4, 0, 0, snaplen, linktype))
    for ts, data in packets:
        sec, frac = divmod(_units(ts, per_second), per_second)
        f.write(struct.pack(e + "IIII", sec, frac, len(data), len(data)))
        f.write(data)


def write_pcapng(
    f: BinaryIO,
    packets: Iterable[tuple[float | Decimal, bytes] | tuple[float | Decimal, bytes, int]],
    interfaces: Sequence[tuple[int, int]] = ((1, 6),),
    *,
    big_endian: bool = False,
) -> None:
    """Write one pcapng section: an SHB, one IDB per ``(linktype, if_tsresol byte)`` and one EPB per
    packet ``(ts, data)`` or ``(ts, data, interface index)``. ``if_tsresol`` 6 is microseconds, 9
    nanoseconds, ``0x80 | n`` means 2^-n seconds; 6 is written as no option (the default)."""
    e = ">" if big_endian else "<"

    def block(btype: int, body: bytes) -> bytes:
        body += b"\0" * (-len(body) % 4)
        length = 12 + len(body)
        return struct.pack(e + "II", btype, length) + body + struct.pack(e + "I", length)

    f.write(block(PCAPNG_SHB, struct.pack(e + "IHHq", PCAPNG_BOM, 1, 0, -1)))
    per_second = []
    for linktype, tsresol in interfaces:
        options = b""
        if tsresol != 6:
            options = struct.pack(e + "HH", _OPT_IF_TSRESOL, 1) + bytes([tsresol, 0, 0, 0])
            options += struct.pack(e + "HH", 0, 0)
        f.write(block(_BT_IDB, struct.pack(e + "HHI", linktype, 0, 0) + options))
        per_second.append(2 ** (tsresol & 0x7F) if tsresol & 0x80 else 10**tsresol)
    for packet in packets:
        ts, data = packet[0], packet[1]
        ifid = packet[2] if len(packet) > 2 else 0  # type: ignore[misc]
        units = _units(ts, per_second[ifid])
        head = struct.pack(e + "IIIII", ifid, units >> 32, units & 0xFFFFFFFF, len(data), len(data))
        f.write(block(_BT_EPB, head + data))
