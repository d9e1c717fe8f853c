"""Classic pcap files read by the native core: records straight from the file's bytes, in batches.

``records_from(PcapSource(path))`` costs about 5 µs of Python per message before the record is built
(the record loop, link/IP/UDP decoding, the address strings, a ``Payload``, the generators between them).
For the bulk of a SIP capture (classic pcap, Ethernet or Linux cooked, IPv4 without options, UDP, not a
fragment), the core's ``RecordBuilder.build_pcap`` does all of that in one call per chunk of the file:
the same decoding, the same rules of :class:`~producers.pcap_source.PcapSource` (SIP ports, keep-alives,
``looks_like_sip`` elsewhere, its timeout sweeps), the same record. It stops at the first packet it
cannot finish alone (another link or network layer, a fragment, TCP, SCTP, a message the core declines);
that packet goes through ``PcapSource`` and ``records_from`` like any other, and the batch goes on after
it. So the records, their order, the rejected payloads and every counter are the ones of the Python path
(``tests/producers/test_native_pcap.py`` compares both on every shared capture).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from producers.pcap_source import Counters, PcapSource
from producers.pcapfile import open_capture
from producers.pipeline import CAPTURE_PACKETS, SIP_MESSAGES, Options, Stats, records_from
from producers.sip_record import native_builder
from sipscope.records import Rejected, SipMessage

FAST_LINKTYPES = frozenset({1, 113, 276})
"""Ethernet, Linux cooked SLL and SLL2: the link types of ``netdecode.decode``'s fast path."""


def file_records(path: str, opts: Options, stats: Stats, *, ports: Iterable[int],
                 counters: Counters | None = None) -> Iterator[SipMessage | Rejected]:
    """``records_from(iter(PcapSource(path, ports=ports, counters=counters)), opts, stats)``, with the native
    core doing the common packets of a classic pcap file (see the module docstring)."""
    counters = counters if counters is not None else Counters()
    reader = open_capture(path, counters)
    layout = reader.pcap_layout()
    builder = native_builder(tuple(opts.correlation_headers), opts.node, opts.plan)
    if builder is None or layout is None or layout[3] not in FAST_LINKTYPES:
        yield from records_from(iter(PcapSource(path, ports=ports, counters=counters, packets=reader)), opts, stats)
        return
    source = PcapSource(path, ports=ports, counters=counters, packets=())
    linktype = layout[3]
    build_pcap = builder.build_pcap
    port_set = source.ports
    packets = CAPTURE_PACKETS.labels(opts.source)
    sipc = SIP_MESSAGES.labels(opts.source)
    chunks = reader.pcap_buffers(layout[2])
    buf, off = next(chunks, (None, 0))
    try:
        while buf is not None:
            (recs, off, source.next_sweep, sweep, fallback, status, frames, keepalive,
             not_sip) = build_pcap(buf, off, layout, port_set, source.next_sweep)
            source.frame += frames
            counters["packets"] += frames
            if keepalive:
                counters["keepalive"] += keepalive
            if not_sip:
                counters["not_sip"] += not_sip
            if recs:
                n = len(recs)
                counters["payloads_udp"] += n
                packets.inc(n)
                sipc.inc(n)
                stats.payloads += n
                stats.messages += n
                yield from recs
            if sweep is not None:
                source.sweep(sweep)
            if fallback is not None:
                ts, data, orig_len = fallback
                yield from records_from(source.payloads_of(((ts, linktype, data, orig_len),)), opts, stats)
                continue
            if status:  # a record too large to be one: the file is corrupt from here
                counters["corrupt_file"] += 1
                break
            try:
                buf, off = chunks.send(off)
            except StopIteration:
                break
    finally:
        chunks.close()
    yield from records_from(source.finish(), opts, stats)

