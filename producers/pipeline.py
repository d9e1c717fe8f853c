"""From payloads to records: parse each SIP payload, build its record, hand it (or its rejection) to a sink.

Shared by every source (pcap fast path, tshark for TLS and live capture); the HEP collector does the
same per HEP packet. Nothing here raises for bad input: a payload the parser refuses becomes a
:class:`~sipscope.records.Rejected` with the parser's reason, is counted, and goes to the sink.
"""

from __future__ import annotations

import base64
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from producers.metrics import CAPTURE_PACKETS, REJECTED, SIP_MESSAGES
from producers.pcap_source import Payload
from producers.sip_parser import SipParseError, parse_sip
from producers.sip_record import native_builder, to_record
from producers.sinks import Sink
from sipscope.numbers import NumberPlan
from sipscope.records import Rejected, SipMessage


@dataclass
class Stats:
    payloads: int = 0
    messages: int = 0
    rejected: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"payloads": self.payloads, "messages": self.messages, "rejected": dict(self.rejected)}


@dataclass
class Options:
    plan: NumberPlan
    node: str = ""
    correlation_headers: tuple[str, ...] = ()
    stage: str = "capture"
    source: str = "pcap"


def records_from(payloads: Iterable[Payload | SipMessage], opts: Options, stats: Stats) -> Iterator[SipMessage | Rejected]:
    """Parse payloads into records (or rejections), counting both in ``stats`` and in Prometheus
    (the Prometheus counters are advanced in batches: a per-message ``inc()`` costs 5% of the path).

    With the native core installed, a message it handles becomes its record in one call
    (the builder of :func:`~producers.sip_record.native_builder`); the others go through ``parse_sip`` and
    ``to_record``. Items that are already records (the native pcap path's, :mod:`producers.native_pcap`)
    pass through, counted like the others.
    """
    packets = CAPTURE_PACKETS.labels(opts.source)
    sipc = SIP_MESSAGES.labels(opts.source)
    plan, node, corr = opts.plan, opts.node, opts.correlation_headers
    builder = native_builder(tuple(corr), node, plan)
    build = builder.build if builder is not None else None
    pending_p = pending_m = 0
    try:
        for p in payloads:
            pending_p += 1
            if type(p) is SipMessage:
                rec = p
            elif build is not None:
                rec = None
                try:
                    rec = build(p.data, p.ts, p.src_ip, p.src_port, p.dst_ip, p.dst_port, p.transport)
                except BaseException as exc:  # noqa: BLE001 - a panic in the core (a BaseException) or odd
                    # arguments: the Python parser decides (as native_record does)
                    if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                        raise
            else:
                rec = None
            if rec is None:
                try:
                    parsed = parse_sip(p.data, corr)
                except SipParseError as exc:
                    stats.rejected[exc.reason] += 1
                    REJECTED.labels(opts.source, exc.reason).inc()
                    yield Rejected(stage=opts.stage, reason=exc.reason, detail=str(exc), ts=p.ts, src_ip=p.src_ip,
                                   src_port=p.src_port, dst_ip=p.dst_ip, dst_port=p.dst_port, node=node,
                                   raw_b64=base64.b64encode(p.data).decode())
                    continue
                rec = to_record(parsed, ts=p.ts, src_ip=p.src_ip, src_port=p.src_port, dst_ip=p.dst_ip,
                                dst_port=p.dst_port, transport=p.transport, node=node, plan=plan)
            pending_m += 1
            if pending_p >= 1000:
                packets.inc(pending_p)
                sipc.inc(pending_m)
                stats.payloads += pending_p
                stats.messages += pending_m
                pending_p = pending_m = 0
            yield rec
    finally:
        packets.inc(pending_p)
        sipc.inc(pending_m)
        stats.payloads += pending_p
        stats.messages += pending_m


def retimed(payloads: Iterable[Payload], shift: float) -> Iterator[Payload]:
    """Shift every capture time by ``shift`` seconds (``--retime``: replay an old capture "as now")."""
    for p in payloads:
        p.ts += shift
        yield p


PACE_SLACK_S = 0.02
"""``realtime`` replay sleeps only once it is this far ahead of the capture's clock: a packet leaves at most
20 ms early (its capture time is in the record, so nothing downstream sees the difference), and a busy link
costs at most 50 wake-ups a second instead of one per packet. Against 2 ms, replaying 60 s of the 700 CPS
mix (259,781 messages) took 11.1 instead of 14.8 CPU s, side by side (at full speed: 8.3 s)."""


def paced(payloads: Iterable[Payload | SipMessage], speed: str) -> Iterator[Payload | SipMessage]:
    """``max``: as fast as possible; ``realtime``: keep the capture's gaps between packets (to 20 ms)."""
    if speed == "max":
        yield from payloads
        return
    start_wall = None
    start_ts = 0.0
    monotonic, sleep = time.monotonic, time.sleep
    for p in payloads:
        if start_wall is None:
            start_wall, start_ts = monotonic(), p.ts
        else:
            wait = (p.ts - start_ts) - (monotonic() - start_wall)
            if wait > PACE_SLACK_S:
                sleep(wait)
        yield p


def publish_all(items: Iterable[SipMessage | Rejected], sink: Sink, progress_every: int = 0, total: int = 0) -> int:
    """Send records to the sink; prints progress to stderr every ``progress_every`` records."""
    n = 0
    t0 = time.monotonic()
    for rec in items:
        if type(rec) is SipMessage:
            sink.publish(rec)
        else:
            sink.reject(rec)  # type: ignore[arg-type]
        n += 1
        if progress_every and n % progress_every == 0:
            rate = n / max(1e-9, time.monotonic() - t0)
            of = f"/{total}" if total else ""
            print(f"\rsipscope: {n}{of} records, {rate:,.0f}/s", end="", file=sys.stderr, flush=True)
    if progress_every and n >= progress_every:
        print(file=sys.stderr)
    return n
