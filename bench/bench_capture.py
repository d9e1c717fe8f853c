"""Capture benchmark: SIP messages per CPU-second through the file fast path, side by side with peers.

Same capture, same run:
* sipscope fast path: pcap reader + reassembly + SIP parser + record building (what `sipscope parse` does);
* tshark field extraction: ``tshark -r F -Y sip -T fields -e ...`` (CPU of the tshark process);
* pyshark: ``FileCapture(display_filter='sip')`` reading the same fields (CPU of Python + its tshark);
* publish: the fast path into the real Kafka (KafkaSink, idempotent, acks=all) - wall-clock rate.

Usage: python -m bench.bench_capture [--pcap FILE] [--repeat N] [--pyshark-limit N] [--no-kafka]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path

from bench.common import SHARED_PCAPS, Measure, machine, run_child, timed

DEFAULT_PCAP = SHARED_PCAPS / "sipp-branch-load-1334-calls-403.pcapng"
FIELDS = ["sip.Method", "sip.Status-Code", "sip.Call-ID", "sip.CSeq.seq", "sip.from.user", "sip.to.user", "sip.User-Agent"]


def ours(pcap: Path, repeat: int) -> Measure:
    from producers.cli import _options, file_payloads
    from producers.pipeline import Stats, records_from
    from sipscope.settings import get_settings

    settings = get_settings()
    opts = _options(settings, "bench")
    n = 0
    with timed() as t:
        for _ in range(repeat):
            stats = Stats()
            for _rec in records_from(file_payloads(str(pcap), None, settings), opts, stats):
                pass
            n += stats.messages
    return Measure("sipscope fast path (read+reassemble+parse+record)", n, t.cpu, t.wall)


def tshark_fields(pcap: Path) -> Measure:
    cmd = ["tshark", "-n", "-r", str(pcap), "-Y", "sip", "-T", "fields", "-E", "occurrence=a"]
    for f in FIELDS:
        cmd += ["-e", f]
    out, cpu, wall = run_child(cmd)
    n = sum(max(1, len(line.split("\t")[2].split(","))) for line in out.splitlines() if line)
    return Measure("tshark -T fields", n, cpu, wall)


def pyshark_fields(pcap: Path, limit: int) -> Measure:
    import pyshark

    n = 0
    loop = asyncio.new_event_loop()
    with timed() as t:
        cap = pyshark.FileCapture(str(pcap), display_filter="sip", keep_packets=False, eventloop=loop)
        try:
            for pkt in cap:
                sip = pkt.sip
                for f in ("method", "status_code", "call_id", "cseq_seq", "from_user", "to_user"):
                    getattr(sip, f, None)
                n += 1
                if limit and n >= limit:
                    break
        finally:
            cap.close()
    # tshark's subprocess transports must go while their loop is open (else "Event loop is closed" at exit)
    del cap
    gc.collect()
    loop.close()
    return Measure(f"pyshark FileCapture (first {n} SIP packets)", n, t.cpu, t.wall)


def publish(pcap: Path, repeat: int) -> Measure:
    import uuid

    from producers.cli import _options, file_payloads
    from producers.kafka_sink import KafkaSink
    from producers.pipeline import Stats, publish_all, records_from
    from sipscope import topics
    from sipscope.settings import KafkaSettings, get_settings

    base = get_settings()
    settings = base.model_copy(update={"kafka": KafkaSettings(bootstrap=base.kafka.bootstrap, topic_prefix=f"bench-{uuid.uuid4().hex[:6]}-")})
    topics.ensure(settings.kafka.bootstrap, [topics.name(topics.MESSAGES, settings), topics.name(topics.REJECTED, settings)], 6)
    sink = KafkaSink(settings, spool_dir=Path("/tmp") / f"bench-spool-{uuid.uuid4().hex[:6]}")
    opts = _options(settings, "bench")
    n = 0
    with timed() as t:
        for _ in range(repeat):
            n += publish_all(records_from(file_payloads(str(pcap), None, settings), opts, Stats()), sink)
        sink.flush(120)
    sink.close()
    assert sink.delivered >= n, (sink.delivered, n)
    return Measure("sipscope capture -> Kafka (acked)", n, t.cpu, t.wall)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pcap", type=Path, default=DEFAULT_PCAP)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--pyshark-limit", type=int, default=2000)
    ap.add_argument("--no-kafka", action="store_true")
    args = ap.parse_args(argv)
    if not args.pcap.exists():
        print(f"bench: {args.pcap} not found", file=sys.stderr)
        return 1
    rows = [ours(args.pcap, args.repeat), tshark_fields(args.pcap), pyshark_fields(args.pcap, args.pyshark_limit)]
    if not args.no_kafka:
        rows.append(publish(args.pcap, args.repeat))
    base = rows[0].per_core
    print(f"# capture benchmark, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print(f"machine: {machine()}")
    print(f"capture: {args.pcap.name}; command: python -m bench.bench_capture --repeat {args.repeat} --pyshark-limit {args.pyshark_limit}")
    print()
    print("| path | SIP messages | CPU s | wall s | msgs per CPU-second | msgs/s wall | sipscope fast path is |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = "1x" if r is rows[0] else f"{base / r.per_core:.1f}x faster" if "Kafka" not in r.name else f"publish = {r.per_wall / rows[0].per_wall:.2f} of parse (wall)"
        print(f"| {r.name} | {r.items} | {r.cpu_s:.2f} | {r.wall_s:.2f} | {r.per_core:,.0f} | {r.per_wall:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
