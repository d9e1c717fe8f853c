"""``sipscope loadgen``: synthetic carrier SIP traffic to a pcap file, a HEP collector or a SIP target.

Examples::

    sipscope loadgen --out day.pcap --day --cps 100 --curve business --seed 7
    sipscope loadgen --out short.pcap --duration 10m --cps 20 --reg-rate 5 \\
        --attack scan:start=120,duration=60,rate=30 --attack wangiri:start=300,rate=2 --plan truth.jsonl
    sipscope loadgen --hep 127.0.0.1:9060 --cps 700 --duration 5m        # real time, HEP3 over UDP
    sipscope loadgen --sip 127.0.0.1:5060 --cps 50 --duration 60 --speed 0   # as fast as possible

``--out`` writes simulated time (a day takes minutes to write, not a day); ``--hep`` and ``--sip`` send in
real time (``--speed 2`` twice as fast, ``--speed 0`` without waiting) starting now unless ``--start`` says
otherwise. The same ``--seed`` and options give the same bytes (pcap) / the same messages (HEP, SIP).
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from producers.loadgen.profile import (
    Profile,
    ProfileError,
    Trunk,
    load_profile,
    parse_attack,
    parse_curve,
    parse_dist,
    parse_mix,
    trunk_map,
    validate,
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90``, ``90s``, ``10m``, ``2h``, ``1d`` -> seconds."""
    t = text.strip().lower()
    try:
        if t and t[-1] in _UNITS:
            return float(t[:-1]) * _UNITS[t[-1]]
        return float(t)
    except ValueError:
        raise ProfileError(f"bad duration {text!r}: seconds, or a number with s/m/h/d") from None


def parse_start(text: str, now: float) -> float:
    """``now``, ``today`` (00:00 UTC today), an ISO-8601 time (UTC when no offset) or epoch seconds."""
    t = text.strip().lower()
    if t == "now":
        return now
    if t == "today":
        return float(int(now // 86400) * 86400)
    try:
        return float(t)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ProfileError(f"bad start {text!r}: now, today, ISO-8601 or epoch seconds") from None
    return (dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt).timestamp()


def parse_trunk(text: str) -> Trunk:
    """``NAME,CIDR,PREFIX[/PREFIX...][,WEIGHT[,DIRECTION]]``."""
    parts = [p.strip() for p in text.split(",")]
    try:
        name, cidr, prefixes = parts[:3]
        weight = float(parts[3]) if len(parts) > 3 else 1.0
    except ValueError:
        raise ProfileError(f"bad trunk {text!r}: NAME,CIDR,PREFIX[/PREFIX...][,WEIGHT[,in|out|both]]") from None
    direction = parts[4] if len(parts) > 4 else "in"
    return Trunk(name, cidr, [p for p in prefixes.split("/") if p], weight, direction)


def build_profile(args: Any, now: float) -> Profile:
    """The profile file (or the defaults) with the command-line options applied on top."""
    prof = load_profile(args.profile) if args.profile else Profile()
    realtime = not args.out
    if args.start:
        prof.start = parse_start(args.start, now)
    elif realtime:
        prof.start = now  # a profile's start is for --out only: HEP/SIP carry live capture times
    if args.seed is not None:
        prof.seed = args.seed
    if args.day:
        prof.duration = 86400.0
    if args.duration:
        prof.duration = parse_duration(args.duration)
    if args.tail is not None:
        prof.tail = parse_duration(args.tail)
    elif realtime and prof.tail < 0:
        prof.tail = 30.0
    if args.cps is not None:
        prof.cps = args.cps
    if args.curve:
        prof.curve = parse_curve(args.curve)
    if args.mix:
        prof.mix = parse_mix(args.mix)
    for name, cap in (("hold", 4 * 3600.0 - 60), ("pdd", 20.0), ("ring", 60.0)):
        value = getattr(args, name)
        if value:
            setattr(prof, name, parse_dist(value, cap))
    if args.reg_rate is not None:
        prof.reg_rate = args.reg_rate
    if args.sbc:
        prof.sbc = args.sbc
    if args.trunk:
        prof.trunks = [parse_trunk(t) for t in args.trunk]
    if args.attack:
        midnight = int(prof.start // 86400) * 86400.0
        prof.attacks = list(prof.attacks) + [parse_attack(a, midnight, prof.start) for a in args.attack]
    return validate(prof)


def _open_output(args: Any):
    from producers.loadgen.outputs import HepOutput, PcapOutput, SipOutput

    if args.out:
        f = sys.stdout.buffer if args.out == "-" else open(args.out, "wb", buffering=1 << 20)  # noqa: SIM115
        return PcapOutput(f), f
    if args.hep:
        return HepOutput(args.hep, capture_id=args.hep_capture_id, node_name=args.hep_node,
                         auth_key=args.hep_auth_key), None
    return SipOutput(args.sip, args.transport), None


def _cmd_loadgen(args: Any) -> int:
    from producers.loadgen.engine import Generator
    from producers.loadgen.outputs import Pacer, pump

    now = time.time()
    try:
        prof = build_profile(args, now)
    except ProfileError as exc:
        print(f"sipscope loadgen: error: {exc}", file=sys.stderr)
        return 2
    if args.print_profile:
        sys.stdout.write(json.dumps(msgspec.to_builtins(prof), indent=2) + "\n")
        return 0
    if args.trunks_out:
        with open(args.trunks_out, "w") as f:
            json.dump(trunk_map(prof), f, indent=2)
    plan_file = open(args.plan, "w") if args.plan else None  # noqa: SIM115
    on_session = None
    if plan_file is not None:
        enc = msgspec.json.Encoder()
        on_session = lambda s: plan_file.write(enc.encode(s.plan()).decode() + "\n")
    try:
        output, f = _open_output(args)
    except (OSError, ValueError) as exc:
        print(f"sipscope loadgen: error: cannot open the output: {exc}", file=sys.stderr)
        return 1
    gen = Generator(prof, on_session=on_session)
    pacer = Pacer(0.0 if args.out else args.speed)
    t0 = time.monotonic()
    first = last = None
    try:
        first, last = pump(gen.messages(args.max_messages), output, pacer, progress=not args.quiet)
    except KeyboardInterrupt:
        pass
    finally:
        output.close()
        if f is not None and f is not sys.stdout.buffer:
            f.close()
        if plan_file is not None:
            plan_file.close()
    elapsed = time.monotonic() - t0
    summary = {"messages": output.messages, "bytes": output.bytes, "sessions": dict(gen.sessions),
               "seconds": round(elapsed, 3), "rate": round(output.messages / max(elapsed, 1e-9)),
               "simulated_s": round((last or 0) - (first or 0), 3), "max_lag_s": round(pacer.max_lag, 3)}
    print(f"sipscope loadgen: {json.dumps(summary)}", file=sys.stderr)
    return 0


def register(sub) -> None:
    g = sub.add_parser("loadgen", help="synthetic carrier SIP traffic (calls, registrations, attacks) to a "
                                       "pcap, a HEP collector or a SIP target", description=__doc__,
                       formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    out = g.add_mutually_exclusive_group(required=True)
    out.add_argument("--out", metavar="FILE.pcap", help="write a pcap in simulated time ('-' = stdout)")
    out.add_argument("--hep", metavar="HOST:PORT", help="send HEP3 over UDP to a collector, paced in real time")
    out.add_argument("--sip", metavar="HOST:PORT", help="send the SIP messages to a target, paced in real time")
    g.add_argument("--transport", choices=["udp", "tcp"], default="udp", help="with --sip (default udp)")
    g.add_argument("--profile", metavar="FILE", help="profile file (.json or .toml, fields of "
                                                     "producers.loadgen.profile.Profile); options override it")
    g.add_argument("--seed", type=int, help="random seed (default 1)")
    g.add_argument("--start", help="simulated start: now, today, ISO-8601 or epoch (default 2025-01-06T00:00Z "
                                   "for --out, now for --hep/--sip)")
    g.add_argument("--duration", help="seconds of call arrivals: 90, 10m, 2h, 1d (default 60)")
    g.add_argument("--day", action="store_true", help="a whole day of arrivals (--duration 1d)")
    g.add_argument("--tail", help="answered calls still up this long after the last arrival hang up (default: "
                                  "natural hold times for --out, 30 s for --hep/--sip)")
    g.add_argument("--cps", type=float, help="call attempts/s in the busiest hour of the curve (default 10)")
    g.add_argument("--curve", help="daily curve: flat, business, evening, or 24 comma-separated hourly weights")
    g.add_argument("--mix", help="outcome shares, e.g. answered=0.6,busy=0.1,no_answer=0.15,cancelled=0.05,"
                                 "failed=0.05,rejected=0.05")
    g.add_argument("--hold", help="hold time of answered calls: exp:120 (default), lognormal:120:0.8, uniform:A:B")
    g.add_argument("--pdd", help="post-dial delay (default lognormal:1.5:0.5)")
    g.add_argument("--ring", help="ringing before answer (default lognormal:8:0.6)")
    g.add_argument("--reg-rate", type=float, help="REGISTER chains/s with 401 challenges (default 0)")
    g.add_argument("--sbc", help="IP:PORT of the SBC every dialog passes (default 10.10.0.10:5060)")
    g.add_argument("--trunk", action="append", metavar="NAME,CIDR,PREFIXES[,WEIGHT[,DIR]]",
                   help="a trunk (repeat; replaces the default three), prefixes separated by '/'")
    g.add_argument("--attack", action="append", metavar="KIND[:k=v,...]",
                   help="scan|bruteforce|flood|wangiri with start (s or HH:MM), duration, rate, src, ua, target")
    g.add_argument("--speed", type=float, default=1.0, help="with --hep/--sip: 1 = real time, 0 = no waiting")
    g.add_argument("--max-messages", type=int, default=0, help="stop after this many messages")
    g.add_argument("--plan", metavar="FILE.jsonl", help="write the ground truth: one JSON line per session")
    g.add_argument("--trunks-out", metavar="FILE.json", help="write the CIDR -> trunk name map of the profile "
                                                             "(for SIPSCOPE_CORRELATION__TRUNKS / capacity --trunks)")
    g.add_argument("--hep-capture-id", type=int, default=2001)
    g.add_argument("--hep-node", default="loadgen", help="HEP node name chunk")
    g.add_argument("--hep-auth-key", default=None, help="HEP auth key chunk")
    g.add_argument("--print-profile", action="store_true", help="print the effective profile as JSON and exit")
    g.add_argument("--quiet", action="store_true", help="no progress line")
    g.set_defaults(func=_cmd_loadgen)
