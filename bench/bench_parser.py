"""Micro-benchmark of the SIP parser: messages/s per core for parse_sip, + to_record, + JSON encode.

Run on demand (not part of the test suite)::

    .venv/bin/python bench/bench_parser.py                      # embedded RFC 3261 style call flow
    .venv/bin/python bench/bench_parser.py --pcap ../shared/testdata/pcaps/call-basic-udp-via-proxy.pcap

``--pcap`` extracts the UDP SIP payloads of the given captures with ``tshark`` (it must be installed;
this script is a benchmark, not a pcap reader). Rates are measured in CPU time of this process
(``time.process_time``), so they read as "per core" even on a busy machine; the best of ``--rounds``
rounds is kept. The parser memoises its pure address/URI/SDP sub-parsers (see producers/sip_parser.py,
"Speed"): the first line is measured with the memos emptied before every message (the worst case),
the others pass by pass in capture order, each pass from empty memos, and the memo hit ratios of one
pass are printed. ``parse_sip`` uses the native core (producers/sipcore) when it is installed; the
``parse_sip_python`` lines time the pure-Python parser side by side, and the ``native RecordBuilder`` lines
the one-call parse + record (+ id) of the capture fast path (``producers.pipeline.records_from``). The embedded samples are one
dialog, so their hits are those of one call; captures of load generators
(SIPp) reuse the same URIs and SDP in every call and hit more than real traffic.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from producers.sip_parser import (
    SipParseError,
    _address,
    _from_to,
    _sdp_fields,
    _uri_parts,
    NATIVE,
    clear_caches,
    parse_sip,
    parse_sip_python,
)
from producers.sip_record import NATIVE_RECORD, native_builder, to_record
from sipscope import records
from sipscope.numbers import NumberPlan

CORRELATION = ("X-CID", "P-Charging-Vector", "Session-ID", "X-Call-ID")

_SDP_OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.com\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.101\r\n"
    "t=0 0\r\n"
    "m=audio 49172 RTP/AVP 0 8 18 101\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:18 G729/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=fmtp:101 0-16\r\n"
    "a=ptime:20\r\n"
    "a=sendrecv\r\n"
)
_SDP_ANSWER = (
    "v=0\r\n"
    "o=bob 2808844564 2808844564 IN IP4 biloxi.example.com\r\n"
    "s=-\r\n"
    "c=IN IP4 192.0.2.201\r\n"
    "t=0 0\r\n"
    "m=audio 3456 RTP/AVP 8 101\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
)


def _msg(head: str, body: str = "") -> bytes:
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    return f"{head}{ctype}Content-Length: {len(body)}\r\n\r\n{body}".encode()


_DIALOG = (
    'From: "Alice" <sip:+61289707501@atlanta.example.com>;tag=1928301774\r\n'
    "To: <sip:0298765432@biloxi.example.com;user=phone>{to_tag}\r\n"
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
)
_VIA = "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport\r\n"

SAMPLES: list[bytes] = [
    _msg(
        "INVITE sip:0298765432@biloxi.example.com;user=phone SIP/2.0\r\n"
        + _VIA
        + "Max-Forwards: 70\r\n"
        + _DIALOG.format(to_tag="")
        + "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:+61289707501@192.0.2.101:5060>\r\n"
        'P-Asserted-Identity: "Alice" <sip:+61289707501@atlanta.example.com>\r\n'
        "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, INFO, UPDATE\r\n"
        "Supported: replaces, timer\r\n"
        "User-Agent: ExamplePhone/1.2.3\r\n",
        _SDP_OFFER,
    ),
    _msg("SIP/2.0 100 Trying\r\n" + _VIA + _DIALOG.format(to_tag="") + "CSeq: 314159 INVITE\r\n"),
    _msg(
        "SIP/2.0 180 Ringing\r\n" + _VIA + _DIALOG.format(to_tag=";tag=a6c85cf") + "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:0298765432@192.0.2.201>\r\n"
        "Server: ExampleGW/4.5\r\n"
    ),
    _msg(
        "SIP/2.0 200 OK\r\n" + _VIA + _DIALOG.format(to_tag=";tag=a6c85cf") + "CSeq: 314159 INVITE\r\n"
        "Contact: <sip:0298765432@192.0.2.201>\r\n"
        "Allow: INVITE, ACK, CANCEL, OPTIONS, BYE\r\n"
        "Server: ExampleGW/4.5\r\n",
        _SDP_ANSWER,
    ),
    _msg(
        "ACK sip:0298765432@192.0.2.201 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds9\r\n"
        "Max-Forwards: 70\r\n" + _DIALOG.format(to_tag=";tag=a6c85cf") + "CSeq: 314159 ACK\r\n"
    ),
    _msg(
        "BYE sip:+61289707501@192.0.2.101:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.201:5060;branch=z9hG4bKnashds10\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:0298765432@biloxi.example.com;user=phone>;tag=a6c85cf\r\n"
        'To: "Alice" <sip:+61289707501@atlanta.example.com>;tag=1928301774\r\n'
        "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
        "CSeq: 231 BYE\r\n"
        'Reason: Q.850;cause=16;text="Normal call clearing"\r\n'
        "User-Agent: ExampleGW/4.5\r\n"
    ),
    _msg(
        "REGISTER sip:registrar.biloxi.example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP bobspc.biloxi.example.com:5060;branch=z9hG4bKnashds7\r\n"
        "Max-Forwards: 70\r\n"
        "To: Bob <sip:bob@biloxi.example.com>\r\n"
        "From: Bob <sip:bob@biloxi.example.com>;tag=456248\r\n"
        "Call-ID: 843817637684230@998sdasdh09\r\n"
        "CSeq: 1826 REGISTER\r\n"
        "Contact: <sip:bob@192.0.2.4>;expires=7200\r\n"
        'Authorization: Digest username="bob", realm="biloxi.example.com", nonce="dcd98b7102dd2f0e",'
        ' uri="sip:registrar.biloxi.example.com", response="6629fae49393a05397450978507c4ef1"\r\n'
        "User-Agent: ExamplePhone/1.2.3\r\n"
    ),
]
"""An RFC 3261 section 24 style call (INVITE/100/180/200/ACK/BYE) and a REGISTER, 300-900 bytes."""


def from_pcaps(paths: list[str]) -> list[bytes]:
    tshark = shutil.which("tshark")
    if tshark is None:
        sys.exit("--pcap needs tshark")
    out: list[bytes] = []
    for path in paths:
        proc = subprocess.run(
            [tshark, "-r", path, "-Y", "sip && udp", "-T", "fields", "-e", "udp.payload"],
            capture_output=True,
            text=True,
            check=True,
        )
        out += [bytes.fromhex(line) for line in proc.stdout.split() if line]
    return out


def rate(fn: Callable[[bytes], object], messages: list[bytes], rounds: int, seconds: float, cold: bool) -> float:
    """Best messages per CPU-second over ``rounds`` rounds of about ``seconds`` each.

    Each pass over the messages starts with empty parser memos and goes in capture order (so the
    memos hit as often as they would on this traffic, and never more); ``cold`` empties them before
    every message (the cost of emptying them is measured and taken off).
    """
    passes = max(1, int(seconds * 20_000 / len(messages)))
    overhead = 0.0
    if cold:
        t0 = time.process_time()
        for _ in range(passes * len(messages)):
            clear_caches()
        overhead = time.process_time() - t0
    best = 0.0
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(passes):
            clear_caches()
            for m in messages:
                if cold:
                    clear_caches()
                fn(m)
        elapsed = time.process_time() - t0 - overhead
        best = max(best, passes * len(messages) / elapsed)
    return best


def hit_ratio(messages: list[bytes]) -> str:
    """Memo hit ratios after one pass over the messages in capture order, from empty memos
    (of the Python parser: the native core, when installed, keeps no memos)."""
    clear_caches()
    for m in messages:
        parse_sip_python(m, CORRELATION)
    parts = []
    for name, fn in (("address", _from_to), ("contact/pai", _address), ("ruri", _uri_parts), ("sdp", _sdp_fields)):
        info = fn.cache_info()
        total = info.hits + info.misses
        parts.append(f"{name} {info.hits / total:.0%}" if total else f"{name} -")
    return ", ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pcap", nargs="*", default=[], help="captures whose UDP SIP payloads to use")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="approximate length of one round")
    args = ap.parse_args()

    messages = from_pcaps(args.pcap) if args.pcap else SAMPLES
    good = []
    for m in messages:
        try:
            parse_sip(m, CORRELATION)
            good.append(m)
        except SipParseError:
            pass
    plan = NumberPlan()

    def parse(m: bytes) -> object:
        return parse_sip(m, CORRELATION)

    def parse_record(m: bytes) -> object:
        return to_record(
            parse_sip(m, CORRELATION),
            ts=1_700_000_000.123456,
            src_ip="192.0.2.101",
            src_port=5060,
            dst_ip="192.0.2.201",
            dst_port=5060,
            transport="udp",
            node="bench",
            plan=plan,
        )

    def parse_record_json(m: bytes) -> object:
        return records.encode(parse_record(m))

    builder = native_builder(tuple(CORRELATION), "bench", plan)
    build = builder.build if builder is not None else None

    def one_call(m: bytes) -> object:  # the capture loop's path (producers/pipeline.py: records_from)
        rec = build(m, 1_700_000_000.123456, "192.0.2.101", 5060, "192.0.2.201", 5060, "udp") if build else None
        return rec or parse_record(m)

    def one_call_json(m: bytes) -> object:
        return records.encode(one_call(m))

    sizes = [len(m) for m in good]
    print(
        f"{len(good)} messages ({len(messages) - len(good)} rejected), "
        f"size mean {statistics.mean(sizes):.0f} B, min {min(sizes)}, max {max(sizes)}"
    )
    print(f"memo hits in one pass: {hit_ratio(good)}")

    def parse_python(m: bytes) -> object:
        return parse_sip_python(m, CORRELATION)

    print(f"native core (sipscope_sipcore) in use: {NATIVE}")
    runs = (
        ("parse_sip_python, cold", parse_python, True),
        ("parse_sip_python", parse_python, False),
        ("parse_sip, cold memos", parse, True),
        ("parse_sip", parse, False),
        ("parse_sip+to_record", parse_record, False),
        ("+ JSON encode", parse_record_json, False),
    )
    if NATIVE_RECORD:
        runs += (("native RecordBuilder", one_call, False), ("+ JSON encode", one_call_json, False))
    for name, fn, cold in runs:
        r = rate(fn, good, args.rounds, args.seconds, cold)
        print(f"{name:24s} {r:10,.0f} msg/s per core   {1e6 / r:6.2f} us/msg")


if __name__ == "__main__":
    main()
