"""Benchmark of the capture-file path: packets/s and SIP payloads/s per core (run on demand).

    .venv/bin/python bench/bench_pcap.py [CAPTURE ...] [--seconds 2]

For each capture (default: the two shared UDP captures below) it times, with ``time.process_time``
(CPU time of this process, i.e. per core), the best of several rounds of:

* ``read``            producers.pcapfile alone (records out of the file);
* ``read+decode``     + producers.netdecode on every packet;
* ``iter_payloads``   the whole source: read, decode, reassemble, filter, Payload objects;
* ``dpkt source``     the same source built on dpkt (dpkt reader + dpkt layer objects, our
                      fragment table), for comparison;
* ``dpkt read``, ``dpkt read+decode``, ``read+dpkt decode``: the dpkt variants layer by layer;
* ``iter_payloads+parse_sip``  end to end through the SIP parser (the project goal: 50k msg/s/core).
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dpkt

from producers.netdecode import DecodeError, decode
from producers.pcap_source import DEFAULT_SIP_PORTS, Counters, Payload, iter_payloads, looks_like_sip
from producers.pcapfile import open_capture
from producers.reassembly import FragmentTable
from producers.sip_parser import SipParseError, parse_sip

PCAPS = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "pcaps"
DEFAULT = ["sipp-branch-load-1334-calls-403.pcapng", "b2bua-freeswitch-100-calls-ipv4-fragmented-invites.pcap"]


# -- the dpkt-based equivalent -------------------------------------------------------------------


def dpkt_reader(path: Path) -> Iterator[tuple[float, int, bytes]]:
    f = path.open("rb")
    magic = f.read(4)
    f.seek(0)
    reader = dpkt.pcapng.Reader(f) if magic == b"\n\r\r\n" else dpkt.pcap.Reader(f)
    linktype = reader.datalink()
    for ts, buf in reader:
        yield float(ts), linktype, buf


def _dpkt_link(linktype: int, buf: bytes) -> object:
    if linktype == 1:
        return dpkt.ethernet.Ethernet(buf).data
    if linktype == 113:
        return dpkt.sll.SLL(buf).data
    if linktype == 276:
        return dpkt.sll2.SLL2(buf).data
    if linktype in (101, 12, 14, 228):
        return dpkt.ip.IP(buf)
    raise ValueError(linktype)


def dpkt_decode(linktype: int, buf: bytes) -> object:
    return _dpkt_link(linktype, buf)


def dpkt_payloads(path: Path) -> Iterator[Payload]:
    """UDP SIP payloads via dpkt objects (IPv4/IPv6, fragments through our FragmentTable)."""
    counters = Counters()
    fragments = FragmentTable(counters)
    ports = DEFAULT_SIP_PORTS
    for frame, (ts, linktype, buf) in enumerate(dpkt_reader(path), 1):
        try:
            ip = _dpkt_link(linktype, buf)
        except (dpkt.UnpackError, ValueError):
            continue
        if isinstance(ip, dpkt.ip.IP):
            flags_offset = ip._flags_offset
            if flags_offset & 0x3FFF:
                offset, more = (flags_offset & 0x1FFF) << 3, flags_offset & 0x2000
                whole = fragments.add(ts, (ip.src, ip.dst, ip.id, ip.p), offset, more, bytes(ip.data))
                if whole is None:
                    continue
                udp = dpkt.udp.UDP(whole)
            else:
                udp = ip.data
            family = socket.AF_INET
        elif isinstance(ip, dpkt.ip6.IP6):
            udp = ip.data
            family = socket.AF_INET6
        else:
            continue
        if not isinstance(udp, dpkt.udp.UDP):
            continue
        data = bytes(udp.data)
        if udp.sport in ports or udp.dport in ports or looks_like_sip(data):
            src, dst = socket.inet_ntop(family, ip.src), socket.inet_ntop(family, ip.dst)
            yield Payload(ts, src, udp.sport, dst, udp.dport, "udp", data, frame)


# -- the measured loops --------------------------------------------------------------------------


def run_read(path: Path) -> tuple[int, int]:
    n = 0
    for _ in open_capture(path):
        n += 1
    return n, 0


def run_read_decode(path: Path) -> tuple[int, int]:
    n = 0
    for _ts, linktype, data, _len in open_capture(path):
        n += 1
        with contextlib.suppress(DecodeError):
            decode(linktype, data)
    return n, 0


def run_source(path: Path) -> tuple[int, int]:
    counters = Counters()
    m = sum(1 for _ in iter_payloads(path, counters))
    return counters["packets"], m


def run_source_parse(path: Path) -> tuple[int, int]:
    counters = Counters()
    m = 0
    for payload in iter_payloads(path, counters):
        try:
            parse_sip(payload.data)
            m += 1
        except SipParseError:
            pass
    return counters["packets"], m


def run_dpkt_read(path: Path) -> tuple[int, int]:
    return sum(1 for _ in dpkt_reader(path)), 0


def run_dpkt_read_decode(path: Path) -> tuple[int, int]:
    n = 0
    for _ts, linktype, buf in dpkt_reader(path):
        n += 1
        dpkt_decode(linktype, buf)
    return n, 0


def run_read_dpkt_decode(path: Path) -> tuple[int, int]:
    n = 0
    for _ts, linktype, data, _len in open_capture(path):
        n += 1
        dpkt_decode(linktype, data)
    return n, 0


def run_dpkt_source(path: Path) -> tuple[int, int]:
    m = sum(1 for _ in dpkt_payloads(path))
    return sum(1 for _ in dpkt_reader(path)), m


VARIANTS: list[tuple[str, Callable[[Path], tuple[int, int]]]] = [
    ("read", run_read),
    ("read+decode", run_read_decode),
    ("iter_payloads", run_source),
    ("dpkt read", run_dpkt_read),
    ("dpkt read+decode", run_dpkt_read_decode),
    ("read+dpkt decode", run_read_dpkt_decode),
    ("dpkt source", run_dpkt_source),
    ("iter_payloads+parse_sip", run_source_parse),
]


def measure(fn: Callable[[Path], tuple[int, int]], path: Path, seconds: float) -> tuple[float, int, int]:
    """Best CPU seconds of one pass, over rounds adding up to at least ``seconds``; and the counts."""
    best = float("inf")
    spent = 0.0
    rounds = 0
    packets = messages = 0
    while spent < seconds or rounds < 3:
        start = time.process_time()
        packets, messages = fn(path)
        elapsed = time.process_time() - start
        best = min(best, elapsed)
        spent += elapsed
        rounds += 1
    return best, packets, messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("captures", nargs="*", help=f"capture files (default: {', '.join(DEFAULT)} in {PCAPS})")
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds spent per variant and capture")
    args = parser.parse_args(argv)
    paths = [Path(c) for c in args.captures] or [PCAPS / name for name in DEFAULT]
    for path in paths:
        if not path.is_file():
            print(f"missing: {path}", file=sys.stderr)
            return 2
        print(f"\n{path.name}")
        print(f"  {'variant':26} {'packets':>8} {'payloads':>8} {'packets/s':>12} {'payloads/s':>12} {'us/packet':>10}")
        for name, fn in VARIANTS:
            best, packets, messages = measure(fn, path, args.seconds)
            rate = packets / best
            mrate = f"{messages / best:12,.0f}" if messages else f"{'-':>12}"
            print(f"  {name:26} {packets:8d} {messages or '-':>8} {rate:12,.0f} {mrate} {best / packets * 1e6:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
