"""Commands of the capture agents: ``sipscope parse``, ``sipscope capture``, ``sipscope hep``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

from sipscope.logs import get_logger
from sipscope.settings import Settings, get_settings

log = get_logger(__name__)


def _options(settings: Settings, source: str):
    from producers.pipeline import Options
    from sipscope.numbers import NumberPlan

    return Options(plan=NumberPlan.from_settings(settings.numbering), node=settings.node,
                   correlation_headers=tuple(settings.correlation_headers), source=source)


def file_payloads(path: str, keylog: str | None, settings: Settings, counters=None):
    """Payloads of a capture file: the pure-Python fast path, or tshark when a TLS key log is given."""
    if keylog:
        from producers.tshark_source import iter_tshark_payloads, tshark_command

        return iter_tshark_payloads(tshark_command(read=path, keylog=keylog))
    from producers.pcap_source import PcapSource

    return iter(PcapSource(path, ports=settings.capture.sip_ports, counters=counters))


def file_items(path: str, keylog: str | None, settings: Settings, opts, counters, shift: float = 0.0):
    """What ``records_from`` takes for a capture file: the native core's records and the payloads it leaves
    to Python (:mod:`producers.native_pcap`), or, with a TLS key log, tshark's payloads; every time shifted
    by ``shift`` seconds (``--retime``)."""
    if keylog:
        from producers.pipeline import retimed

        payloads = file_payloads(path, keylog, settings, counters)
        return retimed(payloads, shift) if shift else payloads
    from producers.native_pcap import file_items as native_file_items

    return native_file_items(path, opts, ports=settings.capture.sip_ports, counters=counters, shift=shift)


def file_records(path: str, keylog: str | None, settings: Settings, opts, stats, counters):
    """Records (and rejections) of a capture file: ``records_from`` over :func:`file_items`."""
    from producers.pipeline import records_from

    return records_from(file_items(path, keylog, settings, opts, counters), opts, stats)


def last_capture_time(path: str) -> float | None:
    from producers.pcapfile import open_capture

    last = None
    with open_capture(path) as reader:
        for pkt in reader:
            last = pkt[0]
    return last


def _cmd_parse(args) -> int:
    from producers.pcap_source import Counters
    from producers.pipeline import Stats
    from sipscope import records
    from sipscope.records import SipMessage

    settings = get_settings()
    stats, counters = Stats(), Counters()
    out = sys.stdout.buffer
    try:
        for rec in file_records(args.file, args.keylog, settings, _options(settings, "parse"), stats, counters):
            if type(rec) is SipMessage or args.rejected:
                out.write(records.encode(rec) + b"\n")
    except Exception as exc:  # noqa: BLE001 - one clear line for a file we cannot read at all
        print(f"sipscope parse: error: {args.file}: {exc}", file=sys.stderr)
        return 1
    out.flush()
    summary = stats.as_dict() | {"skipped": dict(counters)}
    print(f"sipscope parse: {json.dumps(summary)}", file=sys.stderr)
    return 0


def open_sink(kind: str, out: str | None, settings: Settings):
    """The sink of a capture command: ``jsonl`` (a file or stdout) or ``kafka`` (topics created if missing)."""
    if kind == "jsonl":
        from producers.sinks import JsonlSink

        return JsonlSink(sys.stdout if out in (None, "-") else out)
    from producers.kafka_sink import KafkaSink
    from sipscope import topics

    topics.ensure(settings.kafka.bootstrap, [topics.name(t, settings) for t in (topics.MESSAGES, topics.REJECTED)],
                  settings.kafka.partitions)
    return KafkaSink(settings)


def _cmd_capture(args) -> int:
    from producers.metrics import start_metrics_server
    from producers.pcap_source import Counters
    from producers.pipeline import Stats, paced, publish_all, records_from

    settings = get_settings()
    start_metrics_server(settings.metrics_port, settings.metrics_host)
    stats, counters = Stats(), Counters()
    try:
        sink = open_sink(args.sink, args.out, settings)
    except Exception as exc:  # noqa: BLE001
        print(f"sipscope capture: error: cannot open the {args.sink} sink: {exc}", file=sys.stderr)
        return 1
    try:
        if args.pcap:
            last = last_capture_time(args.pcap) if args.retime else None
            shift = time.time() - last if last is not None else 0.0
            payloads = paced(file_items(args.pcap, args.keylog, settings, _options(settings, "pcap"), counters, shift),
                             args.speed)
            source = "pcap"
        else:
            payloads = live_payloads(args.interface, args.keylog, args.bpf, settings, counters)
            source = "live"
        n = publish_all(records_from(payloads, _options(settings, source), stats), sink,
                        progress_every=0 if args.quiet else 5000)
    except KeyboardInterrupt:
        n = stats.messages
    finally:
        # one drain: KafkaSink.close flushes (spool replay included) within the timeout
        if args.sink == "kafka":
            sink.close(timeout=args.drain_timeout)
        else:
            sink.close()
    summary = stats.as_dict() | {"records": n, "skipped": dict(counters)}
    if args.sink == "kafka":
        summary |= {"delivered": sink.delivered, "spooled_left": sink.spool_depth, "dropped": sink.dropped}
    print(f"sipscope capture: {json.dumps(summary)}", file=sys.stderr)
    return 0 if args.sink != "kafka" or sink.spool_depth == 0 else 4


def live_payloads(interface: str, keylog: str | None, bpf: str | None, settings: Settings, counters):
    """Live capture: dumpcap -> the native pcap path (:func:`producers.native_pcap.stream_items`; records and
    payloads); with a TLS key log, tshark decrypts (slower)."""
    from producers.tshark_source import TsharkError, bpf_for_ports, iter_tshark_payloads, tshark_command

    bpf = bpf or bpf_for_ports(settings.capture.sip_ports)
    if keylog:
        yield from iter_tshark_payloads(tshark_command(interface=interface, keylog=keylog, bpf=bpf))
        return
    dumpcap = shutil.which("dumpcap")
    if not dumpcap:
        raise TsharkError("dumpcap not found (apt-get install tshark)")
    from producers.native_pcap import stream_items

    proc = subprocess.Popen([dumpcap, "-q", "-i", interface, "-f", bpf, "-P", "-w", "-"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    try:
        yield from stream_items(proc.stdout, _options(settings, "live"),  # type: ignore[arg-type]
                                ports=settings.capture.sip_ports, counters=counters)
    finally:
        proc.terminate()
        proc.wait(5)


def _cmd_hep(args) -> int:
    from producers.hep_cli import run_hep

    return run_hep(args.listen, args.sink, args.out, args.auth_key)


def register(sub) -> None:
    p = sub.add_parser("parse", help="print one JSON object per SIP message of a capture (offline, no Kafka)")
    p.add_argument("file", help="pcap or pcapng file")
    p.add_argument("--keylog", help="NSS key log (SSLKEYLOGFILE format) to decrypt SIP over TLS")
    p.add_argument("--rejected", action="store_true", help="also print the rejected payloads (with their reason)")
    p.set_defaults(func=_cmd_parse)

    c = sub.add_parser("capture", help="capture SIP from a file or an interface and publish it to Kafka")
    src = c.add_mutually_exclusive_group(required=True)
    src.add_argument("--pcap", help="pcap or pcapng file to replay")
    src.add_argument("--interface", "-i", help="network interface to capture live")
    c.add_argument("--keylog", help="NSS key log to decrypt SIP over TLS")
    c.add_argument("--bpf", help="capture filter for --interface (default: the SIP ports and IP fragments)")
    c.add_argument("--speed", choices=["max", "realtime"], default="max", help="replay pace of --pcap")
    c.add_argument("--retime", action="store_true", help="shift the capture's times so it ends now (gaps kept)")
    c.add_argument("--sink", choices=["kafka", "jsonl"], default="kafka")
    c.add_argument("--out", help="output file of --sink jsonl (default stdout)")
    c.add_argument("--drain-timeout", type=float, default=120.0,
                   help="seconds to wait at the end for Kafka to take everything (spool replay included)")
    c.add_argument("--quiet", action="store_true", help="no progress line")
    c.set_defaults(func=_cmd_capture)

    h = sub.add_parser("hep", help="HEP v1/v2/v3 collector (UDP and TCP) publishing the SIP it carries")
    h.add_argument("--listen", default="127.0.0.1:9060", help="ADDR:PORT (default 127.0.0.1:9060)")
    h.add_argument("--sink", choices=["kafka", "jsonl"], default="kafka")
    h.add_argument("--out", help="output file of --sink jsonl (default stdout)")
    h.add_argument("--auth-key", default=None,
                   help="require this HEP auth key (chunk 0x000e) on every packet (better: SIPSCOPE_HEP_AUTH_KEY)")
    h.set_defaults(func=_cmd_hep)
