"""Benchmark of the KPI rollup and the anomaly engine: records/s per core (run on demand).

    .venv/bin/python bench/bench_anomaly.py [CAPTURE ...] [--rounds 5] [--repeat 4]

For each capture (default: the shared ``attack-register-bruteforce-single-ip.pcap``) the SIP messages are
parsed once and correlated once (``streams.engine.Correlator``, untimed) into call summaries and
registrations. The record stream a worker would see (messages, then each summary/registration at the
time it was produced) is replayed ``--repeat`` times, shifted in time, and only the engines are timed with
``time.process_time`` (CPU time of this process, so per core), best of ``--rounds``:

* ``kpi``      ``KpiRollup``: ``add_*`` for every record, ``close_until`` once per event-time second;
* ``anomaly``  ``AnomalyEngine``: ``feed_*`` for every record (and ``advance`` once per second);
* ``both``     the two together, as the Faust worker will run them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import SHARED_PCAPS, machine
from sipscope.records import CallSummary, Registration, SipMessage
from sipscope.settings import Settings
from streams.anomaly import AnomalyEngine
from streams.kpis import KpiRollup

DEFAULT = ["attack-register-bruteforce-single-ip.pcap"]


def load(path: Path, settings: Settings) -> list:
    """Messages of a capture plus the correlator's outputs, in the order a worker would receive them."""
    from streams.analyze import load_messages
    from streams.engine import Correlator

    msgs = load_messages(str(path), settings)
    corr = Correlator(settings.correlation)
    stream: list = []
    for m in msgs:
        stream.append(m)
        stream += [r for r in corr.feed(m) if not isinstance(r, CallSummary) or r.final]
    stream += [r for r in corr.flush_all() if not isinstance(r, CallSummary) or r.final]
    return stream


def shifted(stream: list, repeat: int) -> list:
    """The stream ``repeat`` times, each copy after the previous one in event time (new Call-IDs)."""
    if repeat <= 1:
        return stream
    t0 = min(_ts(r) for r in stream)
    span = max(_ts(r) for r in stream) - t0 + 600.0
    out = []
    for k in range(repeat):
        d = k * span
        for r in stream:
            if isinstance(r, SipMessage):
                out.append(msgspec.structs.replace(r, ts=r.ts + d, call_id=f"{k}-{r.call_id}"))
            elif isinstance(r, CallSummary):
                out.append(msgspec.structs.replace(r, start_ts=r.start_ts + d, end_ts=r.end_ts + d,
                                                   answer_ts=None if r.answer_ts is None else r.answer_ts + d,
                                                   call_id=f"{k}-{r.call_id}"))
            else:
                out.append(msgspec.structs.replace(r, start_ts=r.start_ts + d, end_ts=r.end_ts + d,
                                                   call_id=f"{k}-{r.call_id}"))
    return out


def _ts(r) -> float:
    return r.ts if isinstance(r, SipMessage) else r.end_ts


def run_kpi(stream: list, settings: Settings) -> int:
    k = KpiRollup.from_settings(settings)
    add_m, add_c, add_r = k.add_message, k.add_call, k.add_registration
    rows = 0
    nxt = 0.0
    for r in stream:
        t = type(r)
        if t is SipMessage:
            add_m(r)
            if r.ts >= nxt:
                nxt = r.ts + 1.0
                rows += len(k.close_until(r.ts))
        elif t is CallSummary:
            add_c(r)
        elif t is Registration:
            add_r(r)
    return rows + len(k.flush())


def run_anomaly(stream: list, settings: Settings) -> int:
    e = AnomalyEngine.from_settings(settings)
    fm, fc, fr = e.feed_message, e.feed_call, e.feed_registration
    n = 0
    for r in stream:
        t = type(r)
        if t is SipMessage:
            n += len(fm(r))
        elif t is CallSummary:
            n += len(fc(r))
        elif t is Registration:
            n += len(fr(r))
    return n + len(e.advance(_ts(stream[-1])))


def run_both(stream: list, settings: Settings) -> int:
    return run_kpi(stream, settings) + run_anomaly(stream, settings)


def best(fn, stream: list, settings: Settings, rounds: int) -> tuple[float, int]:
    times, out = [], 0
    for _ in range(rounds):
        t0 = time.process_time()
        out = fn(stream, settings)
        times.append(time.process_time() - t0)
    return min(times), out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captures", nargs="*", help="pcap/pcapng files (default: the shared bruteforce capture)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds, the best is kept")
    ap.add_argument("--repeat", type=int, default=4, help="copies of the record stream, shifted in time")
    args = ap.parse_args(argv)
    settings = Settings()
    paths = [Path(p) for p in args.captures] or [SHARED_PCAPS / n for n in DEFAULT]
    print(machine())
    for path in paths:
        if not path.is_file():
            print(f"{path}: missing, skipped")
            continue
        stream = shifted(load(path, settings), args.repeat)
        n_msgs = sum(1 for r in stream if type(r) is SipMessage)
        print(f"\n{path.name}: {len(stream)} records ({n_msgs} messages, {len(stream) - n_msgs} summaries), "
              f"x{args.repeat}, best of {args.rounds}")
        for name, fn in (("kpi", run_kpi), ("anomaly", run_anomaly), ("both", run_both)):
            cpu, out = best(fn, stream, settings, args.rounds)
            print(f"  {name:8} {len(stream) / cpu:>10,.0f} records/s per core   ({cpu * 1000:.1f} ms CPU, {out} outputs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
