"""Capture files read by the native core: records straight from the file's bytes, in batches.

``records_from(PcapSource(path))`` costs about 5 µs of Python per message before the record is built
(link/IP/UDP decoding, the address strings, a ``Payload``, the generators between them). For the bulk of
a SIP capture (classic pcap or pcapng Enhanced Packet Blocks; Ethernet or Linux cooked; IPv4 without
options, UDP, not a fragment), the core's ``RecordBuilder.build_pcap`` / ``build_pcapng`` does all of that
in one call per run of packets: the same decoding, the same rules of
:class:`~producers.pcap_source.PcapSource` (SIP ports, keep-alives, ``looks_like_sip`` elsewhere, its
timeout sweeps), the same record. A run stops at the first packet the core cannot finish alone (another
link or network layer, a fragment, TCP, SCTP, a message it declines); that packet goes through
``PcapSource`` like any other, and the next run starts after it. pcapng framing (sections, interfaces,
other blocks) stays with :mod:`producers.pcapfile`, which hands each run of Enhanced Packet Blocks to the
core. So the records, their order, the rejected payloads and every counter are the ones of the Python path
(``tests/producers/test_native_pcap.py`` compares both on every shared capture).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from producers.live import iter_pcap_records, read_pcap_head
from producers.pcap_source import Counters, Payload, PcapSource
from producers.pcapfile import CaptureReader, open_capture
from producers.pipeline import Options, retimed
from producers.sip_record import native_builder
from sipscope.records import SipMessage

FAST_LINKTYPES = frozenset({1, 113, 276})
"""Ethernet, Linux cooked SLL and SLL2: the link types of ``netdecode.decode``'s fast path."""


def file_items(path: str, opts: Options, *, ports: Iterable[int], counters: Counters | None = None,
               shift: float = 0.0) -> Iterator[Payload | SipMessage]:
    """What ``records_from`` takes: the core's records and ``PcapSource``'s payloads of the packets left to
    Python, in capture order (``PcapSource``'s payloads alone without the core or for other formats).
    ``shift`` is added to every time, as :func:`producers.pipeline.retimed` does (``--retime``)."""
    counters = counters if counters is not None else Counters()
    reader = open_capture(path, counters)
    builder = native_builder(tuple(opts.correlation_headers), opts.node, opts.plan)
    source = PcapSource(path, ports=ports, counters=counters, packets=reader)
    layout = reader.pcap_layout()
    if builder is None:
        return _retimed(source, shift)
    runs = _Runs(builder, source, shift)
    if layout is not None and layout[3] in FAST_LINKTYPES:
        return _pcap_items(reader, layout, runs)
    if reader.format == "pcapng":
        return _pcapng_items(reader, runs)
    return _retimed(source, shift)


def _retimed(payloads: Iterable[Payload], shift: float) -> Iterator[Payload]:
    return retimed(payloads, shift) if shift else iter(payloads)


class _Runs:
    """What a run of packets read by the core leaves behind: its counts, its sweep, its records."""

    __slots__ = ("builder", "source", "shift")

    def __init__(self, builder: Any, source: PcapSource, shift: float) -> None:
        self.builder = builder
        self.source = source
        self.shift = shift

    def done(self, frames: int, keepalive: int, not_sip: int, records: list, sweep: float | None) -> None:
        source, counters = self.source, self.source.counters
        source.frame += frames
        counters["packets"] += frames
        if keepalive:
            counters["keepalive"] += keepalive
        if not_sip:
            counters["not_sip"] += not_sip
        if records:
            counters["payloads_udp"] += len(records)
        if sweep is not None:
            source.sweep(sweep)  # handled packets never touch the reassembly tables: sweeping now is the same


def _pcap_items(reader: CaptureReader, layout: tuple[bool, bool, int, int],
                runs: _Runs) -> Iterator[Payload | SipMessage]:
    source, linktype, ports, shift = runs.source, layout[3], runs.source.ports, runs.shift
    build_pcap = runs.builder.build_pcap
    chunks = reader.pcap_buffers(layout[2])
    buf, off = next(chunks, (None, 0))
    try:
        while buf is not None:
            (records, off, source.next_sweep, sweep, fallback, status, frames, keepalive,
             not_sip) = build_pcap(buf, off, layout, ports, source.next_sweep, shift)
            runs.done(frames, keepalive, not_sip, records, sweep)
            yield from records
            if fallback is not None:
                ts, data, orig_len = fallback
                yield from _retimed(source.payloads_of(((ts, linktype, data, orig_len),)), shift)
                continue
            if status:  # a record too large to be one: the file is corrupt from here
                source.counters["corrupt_file"] += 1
                break
            try:
                buf, off = chunks.send(off)
            except StopIteration:
                break
    finally:
        chunks.close()
    yield from _retimed(source.finish(), shift)


def _pcapng_items(reader: CaptureReader, runs: _Runs) -> Iterator[Payload | SipMessage]:
    source, ports, shift = runs.source, runs.source.ports, runs.shift
    build_pcapng = runs.builder.build_pcapng
    pending: list[SipMessage] = []

    def native_epb(buf: bytes, off: int, big_endian: bool, ifaces: list) -> tuple[int, float | None, Any]:
        (records, after, last_ts, source.next_sweep, sweep, fallback, frames, keepalive,
         not_sip) = build_pcapng(buf, off, big_endian, ifaces, ports, source.next_sweep, shift)
        runs.done(frames, keepalive, not_sip, records, sweep)
        pending.extend(records)
        return after, last_ts, fallback

    reader.native_epb = native_epb
    for packet in reader:  # after each native run: its records, then the packet it left to Python (or None)
        if pending:
            yield from pending
            pending.clear()
        if packet is not None:
            yield from _retimed(source.payloads_of((packet,)), shift)
    yield from pending
    yield from _retimed(source.finish(), shift)


def stream_items(f: BinaryIO, opts: Options, *, ports: Iterable[int],
                 counters: Counters | None = None) -> Iterator[Payload | SipMessage]:
    """:func:`file_items` for a live classic pcap stream (dumpcap's pipe): each read takes what the pipe
    holds (up to 1 MiB), so a busy link is read in runs and a quiet one packet by packet, never held back.
    Records are the ones ``PcapSource`` over :func:`producers.live.iter_pcap_stream` gives."""
    counters = counters if counters is not None else Counters()
    head = read_pcap_head(f)
    if head is None:
        return
    endian, unit, linktype = head
    source = PcapSource("live", ports=ports, counters=counters, packets=())
    builder = native_builder(tuple(opts.correlation_headers), opts.node, opts.plan)
    if builder is None or linktype not in FAST_LINKTYPES:
        yield from source.payloads_of(iter_pcap_records(f, endian, unit, linktype))
        yield from source.finish()
        return
    runs = _Runs(builder, source, 0.0)
    build_pcap, ports_set = builder.build_pcap, source.ports
    layout = (endian == ">", unit == 1e-9, 16, linktype)
    read = getattr(f, "read1", f.read)
    buf, off = b"", 0
    while True:
        more = read(1 << 20)
        if not more:
            break
        buf, off = buf[off:] + more, 0
        while True:
            # no record size limit: iter_pcap_stream has none (a record waits until it is whole)
            (records, off, source.next_sweep, sweep, fallback, _status, frames, keepalive,
             not_sip) = build_pcap(buf, off, layout, ports_set, source.next_sweep, 0.0, 1 << 62)
            runs.done(frames, keepalive, not_sip, records, sweep)
            yield from records
            if fallback is None:
                break
            ts, data, orig_len = fallback
            yield from source.payloads_of(((ts, linktype, data, orig_len),))
    yield from source.finish()
